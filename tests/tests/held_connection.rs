//! `db::HeldConnection`, the connection the hot loops keep between rounds,
//! against a real PostgreSQL: calls share one server process; a call cut off
//! mid-statement leaves the connection usable for the next; a connection
//! killed under it costs one failed call, and the next call takes a fresh
//! one from the pool; closing the pool is not held up by it.

use std::time::Duration;

use salesync_core::db::HeldConnection;
use salesync_e2e::TestDb;

async fn backend_pid(held: &mut HeldConnection) -> sqlx::Result<i32> {
    held.run(async |conn| {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
    })
    .await
}

#[tokio::test]
async fn calls_share_one_connection_and_recover_from_cut_offs_kills_and_a_closed_pool() {
    let db = TestDb::create().await.expect("database");
    let mut held = HeldConnection::new(db.pool().clone());

    let first = backend_pid(&mut held).await.expect("first call");
    assert_eq!(backend_pid(&mut held).await.expect("second call"), first);

    // A call dropped while its statement runs (a shutdown, a timeout): the
    // next call still gets its own answer, on the same connection.
    let cut_off = tokio::time::timeout(
        Duration::from_millis(50),
        held.run(async |conn| {
            sqlx::query("SELECT pg_sleep(0.5)")
                .execute(conn)
                .await
                .map(|_| ())
        }),
    )
    .await;
    assert!(cut_off.is_err(), "the sleep was expected to be cut off");
    assert_eq!(
        backend_pid(&mut held).await.expect("after a cut-off call"),
        first
    );

    // Killed from outside (a restarted database, a dropped connection): one
    // call fails, the next runs on a new server process, and is kept again.
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(first)
        .fetch_one(db.pool())
        .await
        .expect("terminate");
    assert!(killed);
    assert!(
        backend_pid(&mut held).await.is_err(),
        "a call on the killed connection cannot succeed"
    );
    let next = backend_pid(&mut held).await.expect("a fresh connection");
    assert_ne!(next, first);
    assert_eq!(backend_pid(&mut held).await.expect("kept"), next);

    // Closing the pool waits for every connection, the held one too: the
    // next call gives it back (and fails: the pool is closed).
    let pool = db.pool().clone();
    let closing = tokio::spawn(async move { pool.close().await });
    while !db.pool().is_closed() {
        tokio::task::yield_now().await;
    }
    assert!(backend_pid(&mut held).await.is_err());
    tokio::time::timeout(Duration::from_secs(5), closing)
        .await
        .expect("the pool closed")
        .expect("close task");

    db.cleanup().await.expect("db cleanup");
}
