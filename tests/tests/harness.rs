//! Checks of the harness itself against the real PostgreSQL and RabbitMQ:
//! throwaway databases and vhosts really appear and disappear, the broker
//! helpers capture and inject messages, and a private RabbitMQ node starts,
//! goes away and comes back. None of these need the service binaries.

use std::time::Duration;

use salesync_core::amqp::publisher::OutgoingMessage;
use salesync_core::amqp::topology::Q_DEAD;
use salesync_e2e::vhost::Management;
use salesync_e2e::{
    Broker, PrivateRabbit, Services, ServicesConfig, TestDb, TestVhost, wait_until,
};

async fn database_exists(name: &str) -> bool {
    let url = salesync_e2e::db::with_database(
        &std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| salesync_e2e::db::DEFAULT_DATABASE_URL.into()),
        "postgres",
    );
    let pool = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to postgres");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&pool)
        .await
        .expect("query");
    pool.close().await;
    n == 1
}

async fn vhost_exists(name: &str) -> bool {
    let m = Management::from_env();
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/vhosts/{}",
            m.url,
            salesync_e2e::vhost::encode_path_segment(name)
        ))
        .basic_auth(&m.user, Some(&m.password))
        .send()
        .await
        .expect("management API");
    resp.status().is_success()
}

#[tokio::test]
async fn harness_test_db_is_migrated_and_dropped() {
    let db = TestDb::create().await.expect("create db");
    let name = db.name().to_string();
    assert!(database_exists(&name).await);
    assert_eq!(
        db.scalar("SELECT count(*) FROM sales")
            .await
            .expect("schema"),
        0
    );
    db.cleanup().await.expect("cleanup");
    assert!(!database_exists(&name).await);

    // Drop (as after a failed test) cleans up too.
    let db = TestDb::create().await.expect("create db");
    let name = db.name().to_string();
    drop(db);
    assert!(!database_exists(&name).await);
}

#[tokio::test]
async fn harness_vhost_capture_publish_drain() {
    let vhost = TestVhost::create().await.expect("create vhost");
    let name = vhost.name().to_string();
    assert!(vhost_exists(&name).await);
    assert!(vhost.amqp_url().ends_with(&format!("/{name}")));

    let broker = Broker::connect(vhost.amqp_url()).await.expect("connect");
    let capture = broker.capture("#").await.expect("capture");
    let msg = OutgoingMessage::new(
        "sale.dead",
        "m-1".into(),
        "sale.forward",
        [("x-dead-reason".to_string(), "test".to_string())].into(),
        br#"{"type":"sale.forward"}"#.to_vec(),
    );
    broker.publish(&[msg]).await.expect("publish");
    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { capture.len() == 1 },
    )
    .await
    .expect("captured");
    let got = &capture.messages()[0];
    assert_eq!(got.routing_key, "sale.dead");
    assert_eq!(got.message_id.as_deref(), Some("m-1"));
    assert_eq!(got.envelope_type().as_deref(), Some("sale.forward"));
    assert_eq!(got.headers["x-dead-reason"], "test");

    wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async { broker.queue_depth(Q_DEAD).await.unwrap_or(0) == 1 },
    )
    .await
    .expect("dead queue holds it");
    let dead = broker.drain(Q_DEAD).await.expect("drain");
    assert_eq!(dead.len(), 1);
    assert_eq!(broker.queue_depth(Q_DEAD).await.expect("depth"), 0);
    assert_eq!(broker.queue_depth("no-such-queue").await.expect("depth"), 0);
    drop(capture);
    broker.close().await;

    vhost.cleanup().await.expect("cleanup");
    assert!(!vhost_exists(&name).await);
}

#[tokio::test]
async fn harness_services_refuse_a_missing_bin_dir() {
    let mut cfg = ServicesConfig::new("postgres://unused", "amqp://unused");
    cfg.bin_dir = Some("/nonexistent/salesync-bins".into());
    let err = match Services::start(cfg).await {
        Ok(_) => panic!("started without binaries"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("cargo build --workspace --bins"), "{err}");
}

#[tokio::test]
async fn harness_private_rabbit_stops_and_starts() {
    let mut rabbit = PrivateRabbit::start().await.expect("start private rabbit");
    let url = rabbit.amqp_url();
    let broker = Broker::connect(&url).await.expect("connect");
    broker.close().await;

    rabbit.stop_app().await.expect("stop_app");
    assert!(
        Broker::connect(&url).await.is_err(),
        "broker still accepts connections after stop_app"
    );
    rabbit.start_app().await.expect("start_app");
    let broker = Broker::connect(&url).await.expect("connect again");
    // Durable topology survived the restart of the app.
    assert_eq!(broker.queue_depth(Q_DEAD).await.expect("depth"), 0);
    broker.close().await;
    rabbit.stop().await.expect("stop");
}

#[tokio::test]
async fn harness_private_rabbit_is_stopped_on_drop() {
    let rabbit = PrivateRabbit::start().await.expect("start private rabbit");
    let port = rabbit.port();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    );
    // As after a failed test: no explicit stop.
    drop(rabbit);
    let gone = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        },
    )
    .await;
    assert!(gone.is_ok(), "the private node outlived its PrivateRabbit");
}
