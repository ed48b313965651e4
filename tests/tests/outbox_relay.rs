//! The outbox relay against a real broker and database: a pass whose publish
//! fails mid-way (the exchange vanished under it) gives its rows back, and the
//! relay publishes them once the topology is back — every message arrives,
//! none is left in the outbox, none is published twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, ExchangeDeleteOptions};
use lapin::types::FieldTable;
use salesync_core::amqp::{self, topology};
use salesync_core::messages::EXCHANGE;
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_core::outbox::{self, OutboxMessage, Relay};
use salesync_e2e::{TestDb, TestVhost};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn message(n: usize) -> OutboxMessage {
    OutboxMessage {
        message_id: uuid::Uuid::now_v7(),
        routing_key: "sale.ingested".into(),
        message_type: "test.relay".into(),
        headers: BTreeMap::new(),
        body: format!("{{\"n\":{n}}}").into_bytes(),
    }
}

async fn enqueue(db: &TestDb, messages: &[OutboxMessage]) {
    let mut tx = db.pool().begin().await.expect("begin");
    outbox::enqueue(&mut tx, messages).await.expect("enqueue");
    tx.commit().await.expect("commit");
}

async fn pending(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM outbox")
        .await
        .expect("count")
}

#[tokio::test]
async fn a_failed_publish_gives_the_rows_back_and_nothing_is_lost_or_doubled() {
    let db = TestDb::create().await.expect("database");
    let vhost = TestVhost::create().await.expect("vhost");
    let wake = Arc::new(Notify::new());
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    let relay = Relay {
        pool: db.pool().clone(),
        amqp_url: vhost.amqp_url().to_string(),
        connection_name: "relay-test".into(),
        wake: wake.clone(),
        batch_size: 100,
        metrics: Metrics::new("relay-test"),
        ready: readiness.part("outbox relay"),
    };
    let task = tokio::spawn(relay.run(shutdown.clone()));

    let conn = amqp::connect(vhost.amqp_url(), "relay-test-watch")
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    topology::declare(&ch).await.expect("topology");
    let mut consumer = ch
        .basic_consume(
            topology::Q_SALE_EVENTS.into(),
            "relay-test".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");

    // First batch goes through normally.
    let first: Vec<OutboxMessage> = (0..50).map(message).collect();
    enqueue(&db, &first).await;
    wake.notify_one();

    // Then the exchange disappears: the next pass's publish fails (404 closes
    // its channel), its transaction rolls back and the rows stay pending.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let take = |seen: &mut BTreeMap<String, usize>, d: lapin::message::Delivery| {
        let id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        *seen.entry(id).or_default() += 1;
    };
    while seen.len() < first.len() {
        let d = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("first batch arrives")
            .expect("stream open")
            .expect("delivery");
        take(&mut seen, d);
    }
    ch.exchange_delete(EXCHANGE.into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
    let second: Vec<OutboxMessage> = (50..250).map(message).collect();
    enqueue(&db, &second).await;
    wake.notify_one();

    // The relay reconnects, declares the topology again (exchange and
    // bindings) and publishes what was given back.
    let all: Vec<&OutboxMessage> = first.iter().chain(&second).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < all.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let d = tokio::time::timeout(left, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} messages arrived", seen.len(), all.len()))
            .expect("stream open")
            .expect("delivery");
        take(&mut seen, d);
    }
    // Nothing more trickles in, and the outbox is empty.
    let extra = tokio::time::timeout(Duration::from_millis(500), consumer.next()).await;
    assert!(extra.is_err(), "an extra message arrived: {extra:?}");
    for _ in 0..50 {
        if pending(&db).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending(&db).await, 0, "rows left in the outbox");
    for m in &all {
        assert_eq!(
            seen.get(&m.message_id.to_string()),
            Some(&1),
            "message {} published once",
            m.message_id
        );
    }

    shutdown.cancel();
    task.await.expect("relay stops");
    let _ = conn.close(200, "bye".into()).await;
    vhost.cleanup().await.expect("vhost cleanup");
    db.cleanup().await.expect("db cleanup");
}
