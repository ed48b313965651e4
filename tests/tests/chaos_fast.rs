//! The chaos campaign in small, in the normal test suite: a few hundred
//! sales through the real services on a private PostgreSQL cluster and
//! RabbitMQ node, while every fault of the schedule happens once — kill -9
//! of each service, broker stop/start and forced disconnect, database
//! restart, and each kind of target misbehaviour. The ledger must balance:
//! nothing lost, nothing booked twice, every service ready at the end. No
//! timing is asserted (the machine is shared).

use salesync_e2e::PrivatePostgres;
use salesync_e2e::chaos::{self, CampaignConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_fast_ledger_balances() {
    let cfg = CampaignConfig::fast();
    let report = chaos::run(&cfg).await.expect("the campaign runs");
    eprintln!("{report}");
    let kinds = report.faults.by_kind();
    for kind in [
        "kill -9 ingest",
        "kill -9 condition-filter",
        "kill -9 forwarder",
        "kill -9 status-poller",
        "rabbitmq stop_app/start_app",
        "rabbitmq close_all_connections",
        "postgresql restart -m fast",
        "target answers 500",
        "target answers 429 Retry-After",
        "target hangs past the timeout",
        "target closes mid-head",
        "target closes mid-body",
        "target answers 200 garbage",
    ] {
        assert!(
            kinds.contains_key(kind),
            "fault {kind} never happened: {kinds:?}"
        );
    }
    assert_eq!(report.accepted, cfg.sales, "every sale accepted");
    assert!(report.balanced(), "{:?}\n{report}", report.problems());
}

/// The private cluster itself: restart cuts connections and comes back,
/// stop and start again keep the data, drop removes everything.
#[tokio::test]
async fn private_postgres_restarts_and_is_removed() {
    let mut pg = PrivatePostgres::start().await.expect("start");
    let pool = sqlx::PgPool::connect(&pg.url()).await.expect("connect");
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&pool)
        .await
        .expect("create");
    pg.restart().await.expect("restart");
    // The pool notices the cut connection and opens a new one.
    let mut ok = false;
    for _ in 0..20 {
        if sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&pool)
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "usable after a restart");
    pool.close().await;
    pg.stop().await.expect("stop");
    let refused = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect(&pg.url())
        .await;
    assert!(refused.is_err(), "stopped means stopped");
    pg.start_again().await.expect("start again");
    let pool = sqlx::PgPool::connect(&pg.url()).await.expect("connect");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 1, "data survives stop/start");
    pool.close().await;
    let port = pg.port();
    let dir = pg.cluster_dir().to_path_buf();
    assert!(dir.join("data/PG_VERSION").is_file());
    drop(pg);
    assert!(!dir.exists(), "{} removed", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens after drop"
    );
}

/// The campaign's first find, pinned down: retries that come due while the
/// broker app is stopped must reach `salesync.forward` once it is back (the
/// delay queues dead-letter at least once; at most once lost them all).
#[tokio::test]
async fn delay_queue_keeps_retries_due_during_a_broker_restart() {
    use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
    use salesync_core::amqp::topology::{self, Q_FORWARD};
    use std::time::Duration;

    let mut rabbit = salesync_e2e::PrivateRabbit::start().await.expect("rabbit");
    let conn = salesync_core::amqp::connect(&rabbit.amqp_url(), "delay-test")
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    topology::declare(&ch).await.expect("topology");
    let delay = Duration::from_secs(2);
    topology::declare_retry_queues(&ch, &[delay])
        .await
        .expect("delay queue");
    let publisher = Publisher::open(&conn).await.expect("publisher");
    // As the forwarder publishes a retry: default exchange, per-message expiry.
    let copies: Vec<OutgoingMessage> = (0..50)
        .map(|i| {
            let mut m = OutgoingMessage::new(
                &topology::retry_queue(delay),
                format!("retry-{i}"),
                "sale.forward",
                Default::default(),
                b"{}".to_vec(),
            );
            m.exchange = String::new();
            m.expiration_ms = Some(1500 + i);
            m
        })
        .collect();
    publisher.publish_all(&copies).await.expect("publish");
    let _ = conn.close(200, "bye".into()).await;

    // Every copy expires while the broker app is down.
    rabbit.stop_app().await.expect("stop_app");
    tokio::time::sleep(Duration::from_secs(3)).await;
    rabbit.start_app().await.expect("start_app");

    let broker = salesync_e2e::Broker::connect(&rabbit.amqp_url())
        .await
        .expect("broker");
    let arrived = salesync_e2e::wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let n = broker.queue_depth(Q_FORWARD).await.unwrap_or(0);
            (n >= 50).then_some(n)
        },
    )
    .await;
    let left = broker
        .queue_depth(&topology::retry_queue(delay))
        .await
        .unwrap_or(0);
    assert_eq!(
        arrived.ok(),
        Some(50),
        "retries lost over the restart ({left} still waiting in the delay queue)"
    );
    broker.close().await;
    rabbit.stop().await.expect("stop");
}
