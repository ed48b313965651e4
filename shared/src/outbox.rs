//! Transactional outbox. A service writes its state change and the message
//! announcing it in one database transaction (`enqueue`); the relay takes
//! pending rows in batches, publishes them with publisher confirms and commits
//! their deletion only after the broker confirmed. A broker outage therefore
//! delays messages, never loses them; a crash between confirm and commit
//! republishes, and consumers dedupe.
//!
//! The hot writers also hand the rows they just committed straight to their
//! process's relay ([`Handoff`]), under a lease that keeps every relay's sweep
//! off them: the relay publishes them at once, without reading them back, and
//! then deletes them by id. Should that fail or the process die, the lease
//! lapses and the rows are swept like any other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::amqp::publisher::{Confirms, OutgoingMessage, PublishError, Publisher};
use crate::amqp::{
    bundle, close_quietly, connect_with_retry, reconnect_backoff, topology, within_setup,
};
use crate::db;
use crate::messages::{self, Envelope, Payload};
use crate::metrics::Metrics;
use crate::ops::ReadyFlag;
use crate::telemetry;

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub message_id: uuid::Uuid,
    pub routing_key: String,
    pub message_type: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl OutboxMessage {
    /// Wraps an envelope, carrying the current trace context along.
    pub fn from_envelope<T: Payload>(routing_key: &str, envelope: &Envelope<T>) -> Self {
        Self {
            message_id: *envelope.id.as_uuid(),
            routing_key: routing_key.to_string(),
            message_type: T::TYPE.to_string(),
            headers: telemetry::current_trace_headers(),
            body: envelope.to_bytes(),
        }
    }

    /// The message as the publisher sends it.
    fn into_outgoing(self) -> OutgoingMessage {
        OutgoingMessage::new(
            &self.routing_key,
            self.message_id.to_string(),
            &self.message_type,
            self.headers,
            self.body,
        )
    }
}

/// Messages as the column arrays of an `INSERT INTO outbox … SELECT * FROM
/// UNNEST($a::uuid[], $b::text[], $c::text[], $d::jsonb[], $e::bytea[])`, for
/// statements that write outbox rows along with other rows (see `enqueue`).
pub struct OutboxColumns {
    pub message_ids: Vec<uuid::Uuid>,
    pub routing_keys: Vec<String>,
    pub message_types: Vec<String>,
    pub headers: Vec<serde_json::Value>,
    pub bodies: Vec<Vec<u8>>,
}

impl OutboxColumns {
    pub fn new<'a>(messages: impl ExactSizeIterator<Item = &'a OutboxMessage>) -> Self {
        let n = messages.len();
        let mut c = Self {
            message_ids: Vec::with_capacity(n),
            routing_keys: Vec::with_capacity(n),
            message_types: Vec::with_capacity(n),
            headers: Vec::with_capacity(n),
            bodies: Vec::with_capacity(n),
        };
        for m in messages {
            c.message_ids.push(m.message_id);
            c.routing_keys.push(m.routing_key.clone());
            c.message_types.push(m.message_type.clone());
            c.headers
                .push(serde_json::to_value(&m.headers).unwrap_or_default());
            c.bodies.push(m.body.clone());
        }
        c
    }
}

/// Inserts messages inside the caller's transaction (one statement for all).
pub async fn enqueue(conn: &mut PgConnection, messages: &[OutboxMessage]) -> sqlx::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let c = OutboxColumns::new(messages.iter());
    sqlx::query(
        "INSERT INTO outbox (message_id, routing_key, message_type, headers, body)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])",
    )
    .bind(c.message_ids)
    .bind(c.routing_keys)
    .bind(c.message_types)
    .bind(c.headers)
    .bind(c.bodies)
    .execute(conn)
    .await?;
    Ok(())
}

/// How long a handed-off row is left to the relay it was handed to: long
/// enough for a publish and its confirm, short enough that rows of a process
/// that died are swept soon.
pub const LEASE: Duration = Duration::from_secs(5);

/// Handed-off batches waiting for the relay; a writer never waits for room.
const HANDOFF_CAPACITY: usize = 1024;

/// A message whose outbox row was just committed under a lease (the writer's
/// statement set `leased_until = now() + LEASE`).
#[derive(Debug, Clone)]
pub struct Committed {
    pub outbox_id: i64,
    pub message: OutboxMessage,
}

struct HandedOff {
    at: Instant,
    rows: Vec<Committed>,
}

impl HandedOff {
    /// Waited past half its lease (the broker link was down): left to the
    /// sweep, which takes the rows once the lease ends, so that a late send
    /// here does not race it.
    fn is_stale(&self) -> bool {
        self.at.elapsed() > LEASE / 2
    }
}

/// The writers' side of the hand-off to their process's relay (see
/// [`handoff`]). Cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    tx: mpsc::Sender<HandedOff>,
}

/// The relay's side of the hand-off.
pub struct HandoffQueue {
    rx: mpsc::Receiver<HandedOff>,
}

impl HandoffQueue {
    /// The next batch handed off, if one is waiting (the relay receives
    /// them itself; this is for a look from outside, e.g. a test).
    pub fn try_recv(&mut self) -> Option<Vec<Committed>> {
        self.rx.try_recv().ok().map(|b| b.rows)
    }
}

/// A hand-off channel: writers keep the [`Handoff`], the relay the queue.
pub fn handoff() -> (Handoff, HandoffQueue) {
    let (tx, rx) = mpsc::channel(HANDOFF_CAPACITY);
    (Handoff { tx }, HandoffQueue { rx })
}

impl Handoff {
    /// The lease, in seconds, for writers to bind as
    /// `now() + make_interval(secs => $n)` (the database's clock decides).
    pub fn lease_secs() -> f64 {
        LEASE.as_secs_f64()
    }

    /// Hands rows committed under a lease to the relay, in the order given.
    /// Never waits: if the relay is behind or has no broker connection, the
    /// rows stay leased until the lease ends and are swept then.
    pub fn committed(&self, rows: Vec<Committed>) {
        if rows.is_empty() {
            return;
        }
        let n = rows.len();
        match self.tx.try_send(HandedOff {
            at: Instant::now(),
            rows,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => tracing::warn!(
                rows = n,
                "outbox relay is behind; these rows are published when their lease ends"
            ),
            // No relay in this process (a test, a one-off command): the
            // rows are swept once their lease ends.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Publishes the outbox. Run one per process that writes outbox rows; several
/// replicas share the table safely (`FOR UPDATE SKIP LOCKED`).
pub struct Relay {
    /// The database; the relay opens its own few connections to it (their
    /// commits do not wait for the WAL flush, see `run`).
    pub pool: PgPool,
    pub amqp_url: String,
    pub connection_name: String,
    /// Woken by writers right after they commit, so latency is not a poll interval.
    pub wake: Arc<Notify>,
    /// Rows the process's writers committed under a lease, to publish at once.
    pub handoff: Option<HandoffQueue>,
    pub batch_size: i64,
    pub metrics: Metrics,
    pub ready: ReadyFlag,
}

/// How long an idle relay waits before looking again without being woken
/// (rows left by another process or a crash).
const IDLE_POLL: Duration = Duration::from_millis(250);

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    message_id: uuid::Uuid,
    routing_key: String,
    message_type: String,
    headers: serde_json::Value,
    body: Vec<u8>,
}

/// How often a relay samples the age of the oldest unpublished row.
const LAG_SAMPLE: Duration = Duration::from_secs(5);

/// The oldest row in the outbox at or after id `from`: its id and how many
/// seconds it has waited; `None` when there is none. Relays delete rows in
/// id order, so the low end of the primary key is a long run of dead index
/// entries until vacuum; starting the scan at the previous oldest id (no
/// smaller id can come back: ids only grow) skips them, so the probe stays
/// one index lookup under load.
pub async fn oldest_since(pool: &PgPool, from: i64) -> sqlx::Result<Option<(i64, f64)>> {
    sqlx::query_as(
        "SELECT id, greatest(0, extract(epoch FROM now() - created_at))::float8 \
         FROM outbox WHERE id >= $1 ORDER BY id LIMIT 1",
    )
    .bind(from)
    .fetch_optional(pool)
    .await
}

/// Seconds the oldest row in the outbox has waited, 0 when it is empty.
pub async fn oldest_age(pool: &PgPool) -> sqlx::Result<f64> {
    Ok(oldest_since(pool, 0).await?.map_or(0.0, |(_, age)| age))
}

/// Samples the oldest row's age into `salesync_outbox_oldest_age_seconds`
/// every `every`, off the publishing path: lag that grows means the relays
/// do not keep up or cannot reach the broker.
async fn watch_lag(pool: PgPool, metrics: Metrics, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut from = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match oldest_since(&pool, from).await {
            Ok(Some((id, age))) => {
                from = id;
                metrics.outbox_oldest_age(age);
            }
            Ok(None) => metrics.outbox_oldest_age(0.0),
            Err(e) => tracing::debug!(error = %e, "outbox lag sample failed"),
        }
    }
}

impl Relay {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut handoff = self.handoff.take();
        let lag = tokio::spawn(watch_lag(
            self.pool.clone(),
            self.metrics.clone(),
            LAG_SAMPLE,
            shutdown.clone(),
        ));
        // The relay only deletes rows, and a deletion lost in a crash means
        // a message published again, which consumers dedupe anyway (as after
        // a crash between confirm and commit): its commits need not wait for
        // their WAL flush. The state changes that wrote the rows were
        // committed durably by their writers.
        self.pool = db::async_commit_pool(&self.pool, RELAY_CONNECTIONS);
        let (deleter, deleting) = Deleter::spawn(self.pool.clone());
        self.relay(handoff.as_mut(), &deleter, &shutdown).await;
        // Every batch has settled; let the deletions it queued finish.
        drop(deleter);
        let _ = deleting.await;
        lag.abort();
    }

    async fn relay(
        &self,
        mut handoff: Option<&mut HandoffQueue>,
        deleter: &Deleter,
        shutdown: &CancellationToken,
    ) {
        let mut reconnect = reconnect_backoff();
        loop {
            let Some(conn) =
                connect_with_retry(&self.amqp_url, &self.connection_name, shutdown).await
            else {
                return;
            };
            let publisher = match within_setup("opening the relay's channel", Self::open(&conn))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay cannot open a channel");
                    close_quietly(&conn).await;
                    tokio::time::sleep(reconnect.next().unwrap_or(Duration::from_secs(1))).await;
                    continue;
                }
            };
            self.ready.set(true);
            let stop = self
                .publish_until_broken(&publisher, handoff.as_deref_mut(), deleter, shutdown)
                .await;
            self.ready.set(false);
            close_quietly(&conn).await;
            if stop {
                return;
            }
            let wait = reconnect.next().unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn open(conn: &lapin::Connection) -> anyhow::Result<Publisher> {
        let ch = conn.create_channel().await?;
        topology::declare(&ch).await?;
        Ok(Publisher::open(conn).await?)
    }

    /// Publishes until the broker link breaks (`false`) or shutdown (`true`,
    /// after a last flush so nothing committed waits for the next start).
    ///
    /// Passes overlap: once a pass has sent its messages, the next one may
    /// take and send newer rows while the first awaits its confirms and
    /// commits (up to [`PASSES_IN_FLIGHT`]), so a row committed meanwhile
    /// does not wait out the broker's fsync of the rows before it. Each pass
    /// is its own transaction and `SKIP LOCKED` keeps their rows apart; the
    /// sends are made one pass after the other, so rows reach the broker in
    /// the order the passes took them.
    ///
    /// Handed-off rows are sent as they arrive, between passes (up to
    /// [`HANDED_OFF_IN_FLIGHT`] batches awaiting confirms); a batch that
    /// waited past half its lease (the broker link was down) is left to the
    /// sweep, which may take it once the lease ends.
    async fn publish_until_broken(
        &self,
        publisher: &Publisher,
        mut handoff: Option<&mut HandoffQueue>,
        deleter: &Deleter,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut db_backoff = reconnect_backoff();
        let mut confirming = FuturesUnordered::new();
        // Rows may be pending: look before waiting (at start, after a wake,
        // after a full pass, after a failed one).
        let mut look = true;
        // At once (rows a crashed process left), then every lease.
        let mut lapsed = tokio::time::interval(LEASE);
        lapsed.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if shutdown.is_cancelled() {
                // Rows handed off already are sent now rather than left to
                // wait out their lease.
                while let Some(batch) = handoff.as_mut().and_then(|q| q.rx.try_recv().ok()) {
                    if batch.is_stale() {
                        continue;
                    }
                    match self.send_handed_off(publisher, batch.rows, deleter).await {
                        Ok(sent) => confirming.push(sent),
                        Err(_) => break,
                    }
                }
                if settle_all(&mut confirming).await {
                    let _ = self.drain(publisher).await;
                }
                return true;
            }
            if look && confirming.len() < PASSES_IN_FLIGHT {
                match self.take_and_send(publisher).await {
                    Ok(Some(sent)) => {
                        look = sent.count as i64 >= self.batch_size;
                        confirming.push(sent.settle(self.metrics.clone()));
                        continue;
                    }
                    Ok(None) => look = false,
                    Err(PassError::Broker(e)) => {
                        tracing::warn!(error = %e, "outbox relay: publish failed; will reconnect");
                        settle_all(&mut confirming).await;
                        return false;
                    }
                    Err(PassError::Db(e)) => {
                        let wait = db_backoff.next().unwrap_or(Duration::from_secs(1));
                        tracing::warn!(error = %e, retry_in = ?wait, "outbox relay: database error");
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = tokio::time::sleep(wait) => {}
                        }
                        continue;
                    }
                }
            }
            tokio::select! {
                Some(batch) = next_handed_off(&mut handoff),
                    if confirming.len() < HANDED_OFF_IN_FLIGHT =>
                {
                    if batch.is_stale() {
                        tracing::debug!(rows = batch.rows.len(), "stale hand-off left to the sweep");
                        continue;
                    }
                    match self.send_handed_off(publisher, batch.rows, deleter).await {
                        Ok(sent) => confirming.push(sent),
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox relay: publish failed; will reconnect");
                            settle_all(&mut confirming).await;
                            return false;
                        }
                    }
                }
                _ = lapsed.tick(), if confirming.len() < HANDED_OFF_IN_FLIGHT => {
                    confirming.push(self.lapsed_pass(publisher));
                }
                Some(settled) = confirming.next() => match settled {
                    Ok(()) => db_backoff = reconnect_backoff(),
                    Err(PassError::Broker(e)) => {
                        tracing::warn!(error = %e, "outbox relay: publish failed; will reconnect");
                        settle_all(&mut confirming).await;
                        return false;
                    }
                    Err(PassError::Db(e)) => {
                        // The commit failed: the rows are pending again.
                        tracing::warn!(error = %e, "outbox relay: database error");
                        look = true;
                    }
                },
                _ = self.wake.notified() => look = true,
                _ = tokio::time::sleep(IDLE_POLL), if confirming.is_empty() => {
                    // An idle relay publishes nothing, so nothing else would
                    // tell it the broker dropped its connection: reconnect
                    // now, not at the next row (and stop reporting ready).
                    if !publisher.channel().status().connected() {
                        tracing::warn!("outbox relay: broker connection lost; will reconnect");
                        return false;
                    }
                    look = true;
                }
                _ = shutdown.cancelled() => {}
            }
        }
    }

    async fn drain(&self, publisher: &Publisher) -> Result<(), PassError> {
        while let Some(sent) = self.take_and_send(publisher).await? {
            let full = sent.count as i64 >= self.batch_size;
            sent.settle(self.metrics.clone()).await?;
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Sends rows a writer handed off; the returned future awaits their
    /// confirms and then queues their deletion.
    async fn send_handed_off(
        &self,
        publisher: &Publisher,
        rows: Vec<Committed>,
        deleter: &Deleter,
    ) -> Result<BoxFuture<'static, Result<(), PassError>>, PublishError> {
        let ids: Vec<i64> = rows.iter().map(|c| c.outbox_id).collect();
        let routing_keys: Vec<String> =
            rows.iter().map(|c| c.message.routing_key.clone()).collect();
        // A writer's commit group is one hand-off: its sale events (or
        // forward commands) go as one broker message — the broker's cost is
        // per message.
        let outgoing = bundle::bundle(
            rows.into_iter()
                .map(|c| c.message.into_outgoing())
                .collect(),
            |m| messages::travels_bundled(&m.message_type),
        );
        let confirms = publisher.send_all(&outgoing).await?;
        let (deleter, metrics) = (deleter.clone(), self.metrics.clone());
        Ok(Box::pin(async move {
            confirms
                .confirmed()
                .await
                .map_err(|e| PassError::Broker(e.to_string()))?;
            for key in &routing_keys {
                metrics.published(key, 1);
            }
            deleter.delete(ids).await;
            Ok(())
        }))
    }

    /// The first half of a pass over rows without a lease.
    async fn take_and_send(&self, publisher: &Publisher) -> Result<Option<Sent>, PassError> {
        let sent = take_and_send(&self.pool, publisher, self.batch_size, Sweep::Unleased).await?;
        self.metrics
            .outbox_pending(sent.as_ref().map_or(0, |s| s.count) as i64);
        Ok(sent)
    }

    /// A whole pass over rows whose lease lapsed, to run beside the others.
    fn lapsed_pass(&self, publisher: &Publisher) -> BoxFuture<'static, Result<(), PassError>> {
        let (pool, publisher) = (self.pool.clone(), publisher.clone());
        let (batch_size, metrics) = (self.batch_size, self.metrics.clone());
        Box::pin(async move {
            match take_and_send(&pool, &publisher, batch_size, Sweep::Lapsed).await? {
                Some(sent) => {
                    tracing::info!(
                        rows = sent.count,
                        "outbox relay: publishing rows whose lease lapsed"
                    );
                    sent.settle(metrics).await
                }
                None => Ok(()),
            }
        })
    }
}

/// Deletes published handed-off rows: one task on one held connection, every
/// batch of ids waiting taken in one statement. A pooled connection per
/// delete would cost a round trip more each (sqlx tests connections given
/// back); under load the deletions of several batches also share a commit.
/// A failed delete only means the rows are published again once their lease
/// ends (consumers dedupe).
#[derive(Clone)]
struct Deleter(mpsc::Sender<Vec<i64>>);

impl Deleter {
    /// Starts the task; it ends once every `Deleter` is dropped and what
    /// they queued is deleted.
    fn spawn(pool: PgPool) -> (Self, tokio::task::JoinHandle<()>) {
        // Bounded: a slow database holds back the confirmed batches, and
        // through them the relay's next sends.
        let (tx, rx) = mpsc::channel(HANDED_OFF_IN_FLIGHT);
        (Self(tx), tokio::spawn(delete_published(pool, rx)))
    }

    async fn delete(&self, ids: Vec<i64>) {
        if self.0.send(ids).await.is_err() {
            tracing::warn!(
                "outbox relay: deleter stopped; rows are published again when their lease ends"
            );
        }
    }
}

async fn delete_published(pool: PgPool, mut queued: mpsc::Receiver<Vec<i64>>) {
    let mut db = db::HeldConnection::new(pool);
    while let Some(mut ids) = queued.recv().await {
        while let Ok(more) = queued.try_recv() {
            ids.extend(more);
        }
        let deleted = db
            .run(async |conn| {
                sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(conn)
                    .await
            })
            .await;
        if let Err(e) = deleted {
            tracing::warn!(error = %e, rows = ids.len(),
                "outbox relay: published rows not deleted; they are published again when their lease ends");
        }
    }
}

/// Which rows a pass takes.
#[derive(Clone, Copy, Debug)]
enum Sweep {
    /// Rows written without a lease (`enqueue`): found through the partial
    /// index that holds only them, so a pass costs the same however many
    /// handed-off rows come and go.
    Unleased,
    /// Rows whose lease ended without their hand-off deleting them (the
    /// writer or the relay died, the relay was disconnected or behind, a
    /// delete failed). Walks the primary key past every leased row and the
    /// dead entries the hand-offs leave, so it runs only every [`LEASE`], as
    /// a pass of its own beside the hand-offs.
    Lapsed,
}

/// The first half of a pass: take pending rows (deleted, but only once this
/// transaction commits) and send them. `None` if there were none. Other
/// relays skip the rows a pass holds.
async fn take_and_send(
    pool: &PgPool,
    publisher: &Publisher,
    batch_size: i64,
    sweep: Sweep,
) -> Result<Option<Sent>, PassError> {
    let mut tx = pool.begin().await?;
    let sql = match sweep {
        Sweep::Unleased => {
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox WHERE leased_until IS NULL
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, message_id, routing_key, message_type, headers, body"
        }
        Sweep::Lapsed => {
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox WHERE leased_until < now()
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, message_id, routing_key, message_type, headers, body"
        }
    };
    let mut rows: Vec<Row> = sqlx::query_as(sql)
        .bind(batch_size)
        .fetch_all(&mut *tx)
        .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(None);
    }
    // RETURNING has no order; publish in the order the rows were written.
    rows.sort_unstable_by_key(|r| r.id);
    let messages: Vec<OutgoingMessage> = rows
        .into_iter()
        .map(|r| {
            OutboxMessage {
                message_id: r.message_id,
                routing_key: r.routing_key,
                message_type: r.message_type,
                headers: serde_json::from_value(r.headers).unwrap_or_default(),
                body: r.body,
            }
            .into_outgoing()
        })
        .collect();
    let confirms = publisher
        .send_all(&messages)
        .await
        .map_err(|e| PassError::Broker(e.to_string()))?;
    Ok(Some(Sent {
        tx,
        confirms,
        count: messages.len(),
        routing_keys: messages.into_iter().map(|m| m.routing_key).collect(),
    }))
}

/// Most passes whose confirms are awaited at once.
const PASSES_IN_FLIGHT: usize = 2;

/// The relay's own connections: one per pass in flight (each holds its
/// transaction until confirmed: [`PASSES_IN_FLIGHT`] and the lapsed-lease
/// sweep), and the one the deleter of handed-off rows holds.
const RELAY_CONNECTIONS: u32 = PASSES_IN_FLIGHT as u32 + 2;

/// Most batches (passes and handed-off ones together) awaiting confirms
/// before a handed-off batch waits: hand-offs carry the latency-critical
/// rows, so they may overlap more than the sweep's passes.
const HANDED_OFF_IN_FLIGHT: usize = 4;

/// The next handed-off batch; never ready without a hand-off queue.
async fn next_handed_off(queue: &mut Option<&mut HandoffQueue>) -> Option<HandedOff> {
    match queue {
        Some(q) => q.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A pass whose messages are sent: its transaction still holds their rows.
struct Sent {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    confirms: Confirms,
    count: usize,
    routing_keys: Vec<String>,
}

impl Sent {
    /// The second half of a pass: await every confirm, then commit the
    /// deletion. A failed publish drops the transaction, which rolls back:
    /// the rows are pending again.
    fn settle(self, metrics: Metrics) -> BoxFuture<'static, Result<(), PassError>> {
        Box::pin(async move {
            self.confirms
                .confirmed()
                .await
                .map_err(|e| PassError::Broker(e.to_string()))?;
            self.tx.commit().await?;
            for key in &self.routing_keys {
                metrics.published(key, 1);
            }
            Ok(())
        })
    }
}

/// Waits for every pass in flight to commit or roll back; `false` if any
/// failed on the broker.
async fn settle_all(
    confirming: &mut FuturesUnordered<BoxFuture<'static, Result<(), PassError>>>,
) -> bool {
    let mut ok = true;
    while let Some(settled) = confirming.next().await {
        if let Err(e) = settled {
            tracing::warn!(error = %e, "outbox relay: a pass in flight failed");
            ok = ok && !matches!(e, PassError::Broker(_));
        }
    }
    ok
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Broker(String),
}
