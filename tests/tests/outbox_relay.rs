//! The outbox relay against a real broker and database: a pass whose publish
//! fails mid-way (the exchange vanished under it) gives its rows back, and the
//! relay publishes them once the topology is back — every message arrives,
//! none is left in the outbox, none is published twice; overlapping passes
//! keep the order the rows were written in; rows handed off by their writer
//! are published at once and deleted, and leased rows whose hand-off never
//! came (the writer died) are swept once the lease ends.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use salesync_core::amqp::{self, bundle, topology};
use salesync_core::messages::{EXCHANGE, Payload, SaleEvent};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_core::outbox::{self, Committed, Handoff, HandoffQueue, OutboxMessage, Relay};
use salesync_e2e::{TestDb, TestVhost};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn message(n: usize) -> OutboxMessage {
    routed(n, "sale.ingested")
}

fn routed(n: usize, routing_key: &str) -> OutboxMessage {
    OutboxMessage {
        message_id: uuid::Uuid::now_v7(),
        routing_key: routing_key.into(),
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

/// Writes rows as a hot writer does, leased for `lease_secs`; returns them
/// with their outbox ids, in written order.
async fn write_leased(db: &TestDb, messages: &[OutboxMessage], lease_secs: f64) -> Vec<Committed> {
    let c = outbox::OutboxColumns::new(messages.iter());
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO outbox (message_id, routing_key, message_type, headers, body, leased_until)
         SELECT m.*, now() + make_interval(secs => $6)
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[]) AS m
         RETURNING id",
    )
    .bind(c.message_ids)
    .bind(c.routing_keys)
    .bind(c.message_types)
    .bind(c.headers)
    .bind(c.bodies)
    .bind(lease_secs)
    .fetch_all(db.pool())
    .await
    .expect("insert leased rows");
    let mut rows: Vec<Committed> = ids
        .into_iter()
        .zip(messages)
        .map(|(outbox_id, m)| Committed {
            outbox_id,
            message: m.clone(),
        })
        .collect();
    rows.sort_unstable_by_key(|c| c.outbox_id);
    rows
}

async fn pending(db: &TestDb) -> i64 {
    db.scalar("SELECT count(*) FROM outbox")
        .await
        .expect("count")
}

/// Consumes `queue` without acks (the tests only count what arrives).
async fn consume(ch: &lapin::Channel, queue: &str, tag: &str) -> lapin::Consumer {
    ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("consume")
}

/// A running relay on its own database and vhost, and a consumer of the
/// queue its messages land in.
struct Running {
    db: TestDb,
    vhost: TestVhost,
    wake: Arc<Notify>,
    handoff: Handoff,
    readiness: Readiness,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    conn: lapin::Connection,
    ch: lapin::Channel,
    consumer: lapin::Consumer,
    /// Broker deliveries taken so far (a bundle is one).
    deliveries: usize,
    /// Ids of a bundle's parts not yet returned by `next_id`.
    parts: VecDeque<String>,
}

/// A relay on `db` and `vhost`, as the services run it.
fn relay(
    db: &TestDb,
    vhost: &TestVhost,
    wake: &Arc<Notify>,
    handoff: HandoffQueue,
    batch_size: i64,
    readiness: &Readiness,
) -> Relay {
    Relay {
        pool: db.pool().clone(),
        amqp_url: vhost.amqp_url().to_string(),
        connection_name: "relay-test".into(),
        wake: wake.clone(),
        handoff: Some(handoff),
        batch_size,
        metrics: Metrics::new("relay-test"),
        ready: readiness.part("outbox relay"),
    }
}

impl Running {
    async fn start(batch_size: i64) -> Self {
        let db = TestDb::create().await.expect("database");
        let vhost = TestVhost::create().await.expect("vhost");
        let wake = Arc::new(Notify::new());
        let (handoff, handoff_queue) = outbox::handoff();
        let readiness = Readiness::default();
        let shutdown = CancellationToken::new();
        let relay = relay(&db, &vhost, &wake, handoff_queue, batch_size, &readiness);
        let task = tokio::spawn(relay.run(shutdown.clone()));
        let conn = amqp::connect(vhost.amqp_url(), "relay-test-watch")
            .await
            .expect("connect");
        let ch = conn.create_channel().await.expect("channel");
        topology::declare(&ch).await.expect("topology");
        let consumer = consume(&ch, topology::Q_SALE_EVENTS, "relay-test").await;
        Self {
            db,
            vhost,
            wake,
            handoff,
            readiness,
            shutdown,
            task,
            conn,
            ch,
            consumer,
            deliveries: 0,
            parts: VecDeque::new(),
        }
    }

    /// Waits until the relay has its broker connection.
    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !self.readiness.is_ready() {
            assert!(tokio::time::Instant::now() < deadline, "relay never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next message's id (a bundle's parts one by one), or a panic
    /// after `wait`.
    async fn next_id(&mut self, wait: Duration, what: &str) -> String {
        if let Some(id) = self.parts.pop_front() {
            return id;
        }
        let d = tokio::time::timeout(wait, self.consumer.next())
            .await
            .unwrap_or_else(|_| panic!("{what}"))
            .expect("stream open")
            .expect("delivery");
        self.deliveries += 1;
        if d.properties.kind().as_ref().map(|k| k.as_str()) == Some(bundle::BUNDLE_TYPE) {
            let parts = bundle::unbundle(&d.data).expect("a bundle");
            self.parts = parts.into_iter().map(|p| p.message_id).collect();
            return self.parts.pop_front().expect("parts");
        }
        d.properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    /// Stops the relay; what it held goes back to pending.
    async fn stop_relay(&mut self) {
        self.shutdown.cancel();
        (&mut self.task).await.expect("relay stops");
    }

    /// Starts a new relay on the same database and vhost (after `stop_relay`).
    async fn start_relay(&mut self, batch_size: i64) {
        let (handoff, handoff_queue) = outbox::handoff();
        self.handoff = handoff;
        self.shutdown = CancellationToken::new();
        let relay = relay(
            &self.db,
            &self.vhost,
            &self.wake,
            handoff_queue,
            batch_size,
            &self.readiness,
        );
        self.task = tokio::spawn(relay.run(self.shutdown.clone()));
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("relay stops");
        let _ = self.conn.close(200, "bye".into()).await;
        self.vhost.cleanup().await.expect("vhost cleanup");
        self.db.cleanup().await.expect("db cleanup");
    }
}

#[tokio::test]
async fn a_failed_publish_gives_the_rows_back_and_nothing_is_lost_or_doubled() {
    let mut r = Running::start(100).await;
    // First batch goes through normally.
    let first: Vec<OutboxMessage> = (0..50).map(message).collect();
    enqueue(&r.db, &first).await;
    r.wake.notify_one();

    // Then the exchange disappears: the next passes' publishes fail (404
    // closes the channel), their transactions roll back and the rows stay
    // pending.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while seen.len() < first.len() {
        let id = r
            .next_id(Duration::from_secs(20), "first batch arrives")
            .await;
        *seen.entry(id).or_default() += 1;
    }
    r.ch.exchange_delete(EXCHANGE.into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
    // Two batches' worth: two passes in flight when the publish fails.
    let second: Vec<OutboxMessage> = (50..250).map(message).collect();
    enqueue(&r.db, &second).await;
    r.wake.notify_one();

    // The relay reconnects, declares the topology again (exchange and
    // bindings) and publishes what was given back.
    let all: Vec<&OutboxMessage> = first.iter().chain(&second).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < all.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let what = format!("only {} of {} messages arrived", seen.len(), all.len());
        let id = r.next_id(left, &what).await;
        *seen.entry(id).or_default() += 1;
    }
    // Nothing more trickles in, and the outbox is empty.
    let extra = tokio::time::timeout(Duration::from_millis(500), r.consumer.next()).await;
    assert!(extra.is_err(), "an extra message arrived: {extra:?}");
    for _ in 0..50 {
        if pending(&r.db).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending(&r.db).await, 0, "rows left in the outbox");
    for m in &all {
        assert_eq!(
            seen.get(&m.message_id.to_string()),
            Some(&1),
            "message {} published once",
            m.message_id
        );
    }
    r.stop().await;
}

/// Passes overlap (the next one sends while the previous awaits its
/// confirms); rows written one transaction after another still arrive each
/// exactly once and in the order they were written.
#[tokio::test]
async fn overlapping_passes_keep_the_written_order() {
    let mut r = Running::start(20).await;
    let all: Vec<OutboxMessage> = (0..1000).map(message).collect();
    for chunk in all.chunks(25) {
        enqueue(&r.db, chunk).await;
        r.wake.notify_one();
    }
    let mut arrived = Vec::with_capacity(all.len());
    while arrived.len() < all.len() {
        let what = format!("only {} of {} messages arrived", arrived.len(), all.len());
        arrived.push(r.next_id(Duration::from_secs(30), &what).await);
    }
    let written: Vec<String> = all.iter().map(|m| m.message_id.to_string()).collect();
    assert_eq!(arrived, written, "every row once, in the written order");
    let extra = tokio::time::timeout(Duration::from_millis(500), r.consumer.next()).await;
    assert!(extra.is_err(), "an extra message arrived: {extra:?}");
    r.stop().await;
}

/// The broker takes the messages but refuses them (nack: the only queue they
/// route to is full and rejects publishes). The sends succeeded, so only the
/// confirms can tell: the relay must not delete the rows until the broker
/// confirmed them, and publishes them once the broker accepts them.
#[tokio::test]
async fn rows_stay_pending_until_the_broker_confirms_them() {
    let mut r = Running::start(50).await;
    const KEY: &str = "test.refused";
    const QUEUE: &str = "relay-test-refusing";
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let watch = r.ch.clone();
    let declare = |args: FieldTable| {
        let ch = watch.clone();
        async move {
            ch.queue_declare(QUEUE.into(), QueueDeclareOptions::default(), args)
                .await
                .expect("declare queue");
            ch.queue_bind(
                QUEUE.into(),
                EXCHANGE.into(),
                KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind queue");
        }
    };
    declare(args).await;

    let refused: Vec<OutboxMessage> = (0..120).map(|n| routed(n, KEY)).collect();
    enqueue(&r.db, &refused).await;
    r.wake.notify_one();
    // The relay keeps trying (nack → roll back → reconnect → again); the rows
    // must all still be there meanwhile.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            pending(&r.db).await,
            120,
            "rows deleted although the broker refused them"
        );
    }

    // The broker accepts again: a plain queue under the same binding. The
    // switch is made while no relay runs: a batch published across it would
    // be confirmed in part, rolled back whole and sent again — duplicates
    // consumers absorb, but not what this test is about.
    r.stop_relay().await;
    r.ch.queue_delete(QUEUE.into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");
    declare(FieldTable::default()).await;
    assert_eq!(pending(&r.db).await, 120, "nothing published while refused");
    r.start_relay(50).await;
    let mut consumer = consume(&r.ch, QUEUE, "relay-test-refused").await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while seen.len() < refused.len() {
        let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} arrived", seen.len(), refused.len()))
            .expect("stream open")
            .expect("delivery");
        let id = d.properties.message_id().as_ref().map(|s| s.to_string());
        *seen.entry(id.unwrap_or_default()).or_default() += 1;
    }
    for m in &refused {
        assert_eq!(
            seen.get(&m.message_id.to_string()),
            Some(&1),
            "published once when accepted"
        );
    }
    for _ in 0..50 {
        if pending(&r.db).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending(&r.db).await, 0, "rows left in the outbox");
    r.stop().await;
}

/// Writes `messages` leased far longer than the test (only the hand-off can
/// publish them), hands them off as two commits, and checks that they are
/// published in hand-off order, each once, and deleted once confirmed.
/// Returns how many broker messages carried them.
async fn hand_off_in_two_commits(r: &mut Running, messages: &[OutboxMessage]) -> usize {
    let rows = write_leased(&r.db, messages, 3600.0).await;
    let want: Vec<String> = rows
        .iter()
        .map(|c| c.message.message_id.to_string())
        .collect();
    r.handoff.committed(rows[..20].to_vec());
    r.handoff.committed(rows[20..].to_vec());
    let mut got = Vec::new();
    for _ in 0..want.len() {
        got.push(
            r.next_id(Duration::from_secs(10), "handed-off rows not published")
                .await,
        );
    }
    assert_eq!(got, want, "published in hand-off order, each once");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pending(&r.db).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handed-off rows not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing is published a second time.
    r.wake.notify_one();
    let extra = tokio::time::timeout(Duration::from_millis(700), r.consumer.next()).await;
    assert!(extra.is_err(), "a handed-off row was published twice");
    r.deliveries
}

#[tokio::test]
async fn handed_off_rows_are_published_at_once_in_order_and_deleted() {
    let mut r = Running::start(100).await;
    r.wait_ready().await;
    let messages: Vec<OutboxMessage> = (0..50).map(message).collect();
    let carried = hand_off_in_two_commits(&mut r, &messages).await;
    assert_eq!(carried, 50, "a type that is not bundled goes one by one");
    r.stop().await;
}

/// Sale events handed off together travel as one bundle per hand-off
/// (condition-filter's consumer opens it), in order, each once.
#[tokio::test]
async fn handed_off_sale_events_travel_as_one_bundle_per_hand_off() {
    let mut r = Running::start(100).await;
    r.wait_ready().await;
    let messages: Vec<OutboxMessage> = (0..50)
        .map(|n| OutboxMessage {
            message_type: SaleEvent::TYPE.into(),
            ..message(n)
        })
        .collect();
    let carried = hand_off_in_two_commits(&mut r, &messages).await;
    assert_eq!(carried, 2, "one broker message per hand-off");
    r.stop().await;
}

#[tokio::test]
async fn leased_rows_never_handed_off_are_swept_once_the_lease_ends() {
    let mut r = Running::start(100).await;
    r.wait_ready().await;
    // The writer committed these and died before handing them off.
    let messages: Vec<OutboxMessage> = (0..10).map(message).collect();
    let rows = write_leased(&r.db, &messages, 2.0).await;
    let written = tokio::time::Instant::now();
    r.wake.notify_one();
    // The sweep leaves them alone while the lease lasts …
    let early = tokio::time::timeout(Duration::from_millis(1200), r.consumer.next()).await;
    assert!(
        early.is_err(),
        "a leased row was swept before its lease ended"
    );
    assert_eq!(pending(&r.db).await, 10);
    // … and publishes each once after it (the idle poll looks again).
    let mut got = Vec::new();
    for _ in 0..rows.len() {
        got.push(
            r.next_id(Duration::from_secs(10), "leased rows not swept")
                .await,
        );
    }
    assert!(
        written.elapsed() >= Duration::from_millis(1900),
        "swept early"
    );
    let want: Vec<String> = rows
        .iter()
        .map(|c| c.message.message_id.to_string())
        .collect();
    assert_eq!(got, want);
    let extra = tokio::time::timeout(Duration::from_millis(700), r.consumer.next()).await;
    assert!(extra.is_err(), "a swept row was published twice");
    assert_eq!(pending(&r.db).await, 0);
    r.stop().await;
}

/// An idle relay publishes nothing, so only a look at its channel tells it
/// the broker closed its connection: it reconnects on its own, before any
/// row needs it (and is not reported ready meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_relay_whose_connection_is_closed_reconnects_on_its_own() {
    let r = Running::start(100).await;
    r.wait_ready().await;
    let relay_connected = || async {
        r.vhost
            .connections()
            .await
            .expect("list connections")
            .iter()
            .any(|props| props.contains("relay-test\""))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !relay_connected().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay never connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r.vhost
        .close_connections()
        .await
        .expect("close connections");
    let closed = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deadline = closed + Duration::from_secs(10);
    while !relay_connected().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle relay did not reconnect within 10 s of losing its connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("relay reconnected {:?} after the close", closed.elapsed());
    r.wait_ready().await;
    r.stop().await;
}

#[tokio::test]
async fn the_oldest_unpublished_row_gives_the_outbox_lag() {
    let db = TestDb::create().await.expect("database");
    assert_eq!(outbox::oldest_age(db.pool()).await.expect("age"), 0.0);
    enqueue(&db, &[message(1)]).await;
    sqlx::query("UPDATE outbox SET created_at = now() - interval '90 seconds'")
        .execute(db.pool())
        .await
        .expect("age the row");
    enqueue(&db, &[message(2)]).await;
    let age = outbox::oldest_age(db.pool()).await.expect("age");
    assert!((90.0..120.0).contains(&age), "oldest row's age: {age}");
    // Probing from the oldest id finds it; from past it, the next row.
    let (oldest, _) = outbox::oldest_since(db.pool(), 0)
        .await
        .expect("probe")
        .expect("a row");
    let (next, young) = outbox::oldest_since(db.pool(), oldest + 1)
        .await
        .expect("probe")
        .expect("the second row");
    assert!(next > oldest && young < 30.0, "{next} {young}");
    db.cleanup().await.expect("db cleanup");
}
