//! The consume loops every service runs, with manual acks sent only after the
//! outcome is durable. Transient failures keep deliveries unacked and retry
//! them with backoff; a broken connection is re-established and the topology
//! re-declared. A batch the database refuses (a constraint, a trigger, data
//! it will not hold) is bisected until the message that causes it is found
//! and dead-lettered, so one bad message never holds a queue (`isolate`).
//! Two modes share that machinery:
//!
//! - [`run`] (batch): take up to `prefetch` messages at once (bundles opened
//!   into their parts, each counted — see `bundle`), let a [`BatchHandler`]
//!   decide them together (one DB transaction per batch), then ack.
//!   Simple, but the batch is a barrier: its slowest message holds back the
//!   rest and the next batch.
//! - [`run_pipelined`] (no barrier): every message is prepared on its own as
//!   soon as it arrives (at most `prefetch` messages in flight, a bundle's
//!   parts each counted); prepared messages are made durable in group
//!   commits — whatever is ready, up to [`GroupCommit::max`], after at most
//!   [`GroupCommit::linger`] — and a delivery is acked once every message it
//!   carried is. For handlers whose per-message work takes long (HTTP).

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, OptionFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::acks::{AckTracker, Unsettled};
use super::bundle;
use super::isolate::{Failure, Isolation, MAX_REFUSALS, Refusal, classify};
use super::publisher::{OutgoingMessage, Publisher};
use super::{
    close_quietly, connect_with_retry, headers_to_map, reconnect_backoff, topology, within_setup,
};
use crate::messages::ROUTING_DEAD;
use crate::metrics::Metrics;
use crate::ops::ReadyFlag;

/// What to do with one delivery after the handler ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done (or a redelivered duplicate): ack.
    Ack,
    /// Poison or permanently failed: publish to the dead-letter queue with
    /// this reason, then ack.
    Dead(String),
}

/// Decides a batch of messages (one outcome each, in order). `Err` means
/// nothing of the batch took effect. A transient failure (database down …)
/// retries the whole batch; a refusal by the database (`isolate::classify`)
/// retries it in halves until the message it is about is found, and
/// dead-letters that one — so a handler must keep the `sqlx::Error` in the
/// chain (`?` or `context`, not a formatted string).
pub trait BatchHandler: Send + Sync + 'static {
    fn handle(
        &self,
        batch: &[Message],
        publisher: &Publisher,
    ) -> impl Future<Output = anyhow::Result<Vec<Outcome>>> + Send;
}

/// One message as a batch handler sees it: a delivery, or one part of a
/// bundled delivery (`bundle`) — the handler cannot tell them apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub data: Vec<u8>,
    /// AMQP headers as strings (trace context …).
    pub headers: BTreeMap<String, String>,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub message_type: Option<String>,
    /// The broker delivered it (or the bundle it is part of) before: it may
    /// have taken effect already.
    pub redelivered: bool,
}

impl Message {
    /// The delivery's message, its body moved out of the delivery.
    fn of_taken(d: &mut Delivery) -> Self {
        Self {
            data: std::mem::take(&mut d.data),
            ..Self::head_of(d)
        }
    }

    /// Everything but the body.
    fn head_of(d: &Delivery) -> Self {
        Self {
            data: Vec::new(),
            headers: headers(d),
            routing_key: d.routing_key.to_string(),
            message_id: d.properties.message_id().as_ref().map(|m| m.to_string()),
            message_type: d.properties.kind().as_ref().map(|m| m.to_string()),
            redelivered: d.redelivered,
        }
    }

    /// The messages a delivery carries — itself, or a bundle's parts — its
    /// body moved out (the delivery is kept only to ack it).
    fn open(d: &mut Delivery) -> Carried {
        let whole = Message::of_taken(d);
        if whole.message_type.as_deref() != Some(bundle::BUNDLE_TYPE) {
            return Carried::Messages(vec![whole]);
        }
        match bundle::unbundle(&whole.data) {
            Ok(parts) => Carried::Messages(
                parts
                    .into_iter()
                    .map(|p| Message {
                        data: p.body,
                        headers: p.headers,
                        routing_key: whole.routing_key.clone(),
                        message_id: Some(p.message_id),
                        message_type: Some(p.message_type),
                        redelivered: whole.redelivered,
                    })
                    .collect(),
            ),
            Err(reason) => Carried::Broken { whole, reason },
        }
    }
}

/// What one delivery carried.
enum Carried {
    Messages(Vec<Message>),
    /// A bundle that does not decode: dead-lettered whole, with the reason.
    Broken {
        whole: Message,
        reason: String,
    },
}

/// A batch's deliveries opened into the messages its handler sees.
#[derive(Default)]
struct Opened {
    messages: Vec<Message>,
    /// Bundles that do not decode: dead-lettered whole, with the reason.
    broken: Vec<(Message, String)>,
}

impl Opened {
    /// Adds a delivery's messages (a bundle's parts), moving its body out:
    /// the delivery is kept only to ack it.
    fn take(&mut self, d: &mut Delivery) {
        match Message::open(d) {
            Carried::Messages(messages) => self.messages.extend(messages),
            Carried::Broken { whole, reason } => self.broken.push((whole, reason)),
        }
    }

    fn len(&self) -> usize {
        self.messages.len() + self.broken.len()
    }
}

/// Handles messages one by one, durably in groups (see [`run_pipelined`]).
pub trait PipelineHandler: Send + Sync + 'static {
    /// Everything one message's outcome needs to become durable.
    type Prepared: Send + Sync + 'static;

    /// The per-message work, run concurrently with every other message in
    /// flight (a delivery, or one part of a bundle — the handler cannot tell
    /// them apart). `Err` means a transient failure before anything took
    /// effect: the loop calls `prepare` again after a backoff (or, once
    /// shutdown has begun, leaves the delivery unacked for redelivery).
    fn prepare(
        &self,
        message: &Message,
    ) -> impl Future<Output = anyhow::Result<Self::Prepared>> + Send;

    /// Makes a group of prepared messages durable (one transaction, retry
    /// copies confirmed first …) and returns one outcome per element, in
    /// order. `Err` means nothing of the group took effect: the same group is
    /// committed again after a backoff — or, if the database refused it
    /// (`isolate::classify`), in halves, until the message it is about is
    /// found and dead-lettered.
    fn commit(
        &self,
        group: &[Self::Prepared],
        publisher: &Publisher,
    ) -> impl Future<Output = anyhow::Result<Vec<Outcome>>> + Send;
}

/// How prepared messages are grouped into commits.
#[derive(Clone, Copy, Debug)]
pub struct GroupCommit {
    /// Most messages per commit.
    pub max: usize,
    /// How long the first ready message waits for company before its group
    /// is committed, when no commit is running (under load, deliveries pile
    /// up behind the running commit anyway).
    pub linger: Duration,
}

#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub amqp_url: String,
    pub queue: &'static str,
    pub prefetch: u16,
    /// Connection name shown in the RabbitMQ management UI.
    pub connection_name: String,
    /// Delay queues to declare (forwarder only).
    pub retry_delays: Vec<Duration>,
}

/// The delivery's AMQP headers as strings (trace context, dead-letter reason …).
pub fn headers(d: &Delivery) -> BTreeMap<String, String> {
    headers_to_map(d.properties.headers().as_ref())
}

/// Runs until `shutdown` in batch mode: connect, consume, reconnect on failure.
/// After `shutdown` the batch in flight is finished before this returns.
pub async fn run<H: BatchHandler>(
    cfg: ConsumerConfig,
    handler: Arc<H>,
    ready: ReadyFlag,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mode = Batched(handler.as_ref());
    reconnecting(&cfg, &mode, &ready, &metrics, &shutdown).await;
}

/// Runs until `shutdown` in pipelined mode: connect, consume, reconnect on
/// failure. After `shutdown` no new delivery is taken; those in flight are
/// prepared, committed and acked (or left for redelivery if their work keeps
/// failing) before this returns.
pub async fn run_pipelined<H: PipelineHandler>(
    cfg: ConsumerConfig,
    group: GroupCommit,
    handler: Arc<H>,
    ready: ReadyFlag,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mode = Pipelined {
        handler: handler.as_ref(),
        group,
    };
    reconnecting(&cfg, &mode, &ready, &metrics, &shutdown).await;
}

/// One way of consuming over an open connection; `Ok` means shutdown.
trait Session: Sync {
    fn consume<'a>(
        &'a self,
        conn: &'a lapin::Connection,
        cfg: &'a ConsumerConfig,
        ready: &'a ReadyFlag,
        metrics: &'a Metrics,
        shutdown: &'a CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a;
}

/// The connect → consume → reconnect loop both modes share.
async fn reconnecting<S: Session>(
    cfg: &ConsumerConfig,
    session: &S,
    ready: &ReadyFlag,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    let mut backoff = reconnect_backoff();
    loop {
        let Some(conn) = connect_with_retry(&cfg.amqp_url, &cfg.connection_name, shutdown).await
        else {
            return;
        };
        let result = session.consume(&conn, cfg, ready, metrics, shutdown).await;
        ready.set(false);
        close_quietly(&conn).await;
        match result {
            Ok(()) => return,
            Err(e) => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(queue = cfg.queue, error = %e, retry_in = ?wait, "consumer lost its connection");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// A consuming channel with its topology declared, and a confirming publisher.
struct Channels {
    channel: lapin::Channel,
    publisher: Publisher,
    consumer: lapin::Consumer,
    tag: String,
}

impl Channels {
    async fn open(
        conn: &lapin::Connection,
        cfg: &ConsumerConfig,
        ready: &ReadyFlag,
    ) -> anyhow::Result<Self> {
        within_setup(
            "opening the consumer's channels",
            Self::setup(conn, cfg, ready),
        )
        .await
    }

    async fn setup(
        conn: &lapin::Connection,
        cfg: &ConsumerConfig,
        ready: &ReadyFlag,
    ) -> anyhow::Result<Self> {
        let channel = conn.create_channel().await?;
        topology::declare(&channel).await?;
        topology::declare_retry_queues(&channel, &cfg.retry_delays).await?;
        channel
            .basic_qos(cfg.prefetch, BasicQosOptions::default())
            .await?;
        let publisher = Publisher::open(conn).await?;
        let tag = format!("{}-{}", cfg.connection_name, uuid::Uuid::new_v4());
        let consumer = channel
            .basic_consume(
                cfg.queue.into(),
                tag.clone().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        ready.set(true);
        tracing::info!(queue = cfg.queue, prefetch = cfg.prefetch, "consuming");
        Ok(Self {
            channel,
            publisher,
            consumer,
            tag,
        })
    }

    /// Stops taking new work; what is unacked returns to the queue on close.
    async fn stop_consuming(channel: &lapin::Channel, tag: &str) {
        let cancel = channel.basic_cancel(tag.to_string().into(), BasicCancelOptions::default());
        let _ = within_setup("cancelling the consumer", async { Ok(cancel.await?) }).await;
    }

    /// Closes both channels before the connection (no spurious lapin error).
    async fn close(channel: &lapin::Channel, publisher: &Publisher) {
        let _ = within_setup("closing the consumer's channels", async {
            let _ = channel.close(200, "shutdown".into()).await;
            let _ = publisher.channel().close(200, "shutdown".into()).await;
            Ok(())
        })
        .await;
    }
}

// ---------------------------------------------------------------- batch mode

struct Batched<'h, H>(&'h H);

impl<H: BatchHandler> Session for Batched<'_, H> {
    fn consume<'a>(
        &'a self,
        conn: &'a lapin::Connection,
        cfg: &'a ConsumerConfig,
        ready: &'a ReadyFlag,
        metrics: &'a Metrics,
        shutdown: &'a CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        consume_batches(conn, cfg, self.0, ready, metrics, shutdown)
    }
}

async fn consume_batches<H: BatchHandler>(
    conn: &lapin::Connection,
    cfg: &ConsumerConfig,
    handler: &H,
    ready: &ReadyFlag,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let Channels {
        channel,
        publisher,
        mut consumer,
        tag,
    } = Channels::open(conn, cfg, ready).await?;
    let acks = Mutex::new(AckTracker::default());

    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => {
                Channels::stop_consuming(&channel, &tag).await;
                Channels::close(&channel, &publisher).await;
                return Ok(());
            }
            next = consumer.next() => next,
        };
        let mut opened = Opened::default();
        let mut batch = match first {
            Some(Ok(mut d)) => {
                opened.take(&mut d);
                vec![d]
            }
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("the broker cancelled the consumer"),
        };
        // Take whatever else is already buffered, without waiting — up to
        // `prefetch` messages, counting a bundle's parts, so a handler's
        // batch is as large with bundles as without.
        while opened.len() < cfg.prefetch as usize {
            match consumer.next().now_or_never() {
                Some(Some(Ok(mut d))) => {
                    opened.take(&mut d);
                    batch.push(d);
                }
                Some(Some(Err(e))) => return Err(e.into()),
                _ => break,
            }
        }

        let Opened { messages, broken } = opened;
        let outcomes = handle_isolating(cfg.queue, messages.len(), &publisher, shutdown, |piece| {
            handler.handle(&messages[piece], &publisher)
        })
        .await?;
        let Some(mut outcomes) = outcomes else {
            // Shutdown while the batch kept failing: leave it unacked for
            // redelivery (pieces already handled are redelivered duplicates).
            return Ok(());
        };
        let mut dead = dead_letters(&messages, &outcomes, cfg.queue);
        for (m, reason) in broken {
            dead.push(dead_letter(&m, cfg.queue, &reason));
            outcomes.push(Outcome::Dead(reason));
        }
        settle(
            &batch, &outcomes, dead, &acks, &publisher, cfg.queue, metrics,
        )
        .await?;
    }
}

// ---------------------------------------------------------------- pipelined mode

struct Pipelined<'h, H> {
    handler: &'h H,
    group: GroupCommit,
}

impl<H: PipelineHandler> Session for Pipelined<'_, H> {
    fn consume<'a>(
        &'a self,
        conn: &'a lapin::Connection,
        cfg: &'a ConsumerConfig,
        ready: &'a ReadyFlag,
        metrics: &'a Metrics,
        shutdown: &'a CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        consume_pipelined(conn, cfg, self, ready, metrics, shutdown)
    }
}

/// One message of a delivery in flight.
struct Part {
    /// The delivery that carried it.
    tag: u64,
    message: Message,
}

/// A message ready to be committed.
enum Ready<P> {
    /// What the handler prepared.
    Prepared(P),
    /// A bundle that does not decode: dead-lettered whole, without the
    /// handler, with this reason.
    Broken(String),
}

/// One loop drives three kinds of work concurrently: taking deliveries from
/// the broker (opening bundles), the per-message `prepare` futures, and at
/// most one group commit (commits run one at a time, so their acks never
/// race). A delivery is acked when the last of its messages is committed.
async fn consume_pipelined<H: PipelineHandler>(
    conn: &lapin::Connection,
    cfg: &ConsumerConfig,
    mode: &Pipelined<'_, H>,
    ready: &ReadyFlag,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let handler = mode.handler;
    let max_group = mode.group.max.max(1);
    let Channels {
        channel,
        publisher,
        mut consumer,
        tag,
    } = Channels::open(conn, cfg, ready).await?;
    let acks = Mutex::new(AckTracker::default());
    let unsettled = Mutex::new(Unsettled::default());

    let mut preparing = FuturesUnordered::new();
    let mut prepared: Vec<(Part, Ready<H::Prepared>)> = Vec::new();
    // When the oldest prepared message's group is due at the latest.
    let mut due_at: Option<Instant> = None;
    let mut committing: Option<BoxFuture<'_, anyhow::Result<()>>> = None;
    let mut committing_len = 0;
    let mut consuming = true;

    loop {
        if committing.is_none()
            && group_due(prepared.len(), max_group, consuming, due_at, Instant::now())
        {
            let take = prepared.len().min(max_group);
            let group: Vec<_> = prepared.drain(..take).collect();
            // Leftovers (a full group was cut off) are due at once.
            due_at = (!prepared.is_empty()).then(Instant::now);
            committing_len = group.len();
            committing = Some(
                commit_group(
                    handler, group, &unsettled, &acks, &publisher, cfg.queue, metrics, shutdown,
                )
                .boxed(),
            );
        }
        if !consuming && preparing.is_empty() && prepared.is_empty() && committing.is_none() {
            // Deliveries with a message left unprepared stay unacked and
            // return to the queue when the channel closes.
            Channels::close(&channel, &publisher).await;
            return Ok(());
        }
        // Counted in messages, so a window of bundles is no more work in
        // flight than a window of single messages (RabbitMQ's prefetch
        // counts deliveries and bounds only the memory).
        let in_flight = preparing.len() + prepared.len() + committing_len;
        let linger = due_at.filter(|_| committing.is_none());
        tokio::select! {
            _ = shutdown.cancelled(), if consuming => {
                consuming = false;
                Channels::stop_consuming(&channel, &tag).await;
            }
            next = consumer.next(), if consuming && in_flight < usize::from(cfg.prefetch) => {
                let mut d = match next {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => return Err(e.into()),
                    None => anyhow::bail!("the broker cancelled the consumer"),
                };
                let tag = d.delivery_tag;
                let mut waiting = unsettled.lock().expect("unsettled lock");
                match Message::open(&mut d) {
                    Carried::Messages(messages) => {
                        waiting.insert(tag, d, messages.len());
                        for message in messages {
                            let part = Part { tag, message };
                            preparing.push(prepare_with_retry(handler, part, cfg.queue, shutdown));
                        }
                    }
                    Carried::Broken { whole, reason } => {
                        waiting.insert(tag, d, 1);
                        let part = Part { tag, message: whole };
                        let item = (part, Ready::Broken(reason));
                        push_ready(&mut prepared, &mut due_at, mode.group.linger, item);
                    }
                }
            }
            Some(done) = preparing.next(), if !preparing.is_empty() => {
                // `None`: shutdown came while its work kept failing; its
                // delivery stays unacked and returns to the queue when the
                // channel closes.
                if let Some(item) = done {
                    push_ready(&mut prepared, &mut due_at, mode.group.linger, item);
                }
            }
            Some(result) = OptionFuture::from(committing.as_mut()), if committing.is_some() => {
                committing = None;
                committing_len = 0;
                result?;
            }
            _ = sleep_until_some(linger), if linger.is_some() => {}
        }
    }
}

/// Adds a message ready to commit; the first one starts the linger.
fn push_ready<P>(
    prepared: &mut Vec<(Part, Ready<P>)>,
    due_at: &mut Option<Instant>,
    linger: Duration,
    item: (Part, Ready<P>),
) {
    if prepared.is_empty() {
        *due_at = Some(Instant::now() + linger);
    }
    prepared.push(item);
}

/// Whether the prepared messages should be committed now (no commit running).
fn group_due(
    ready: usize,
    max_group: usize,
    consuming: bool,
    due_at: Option<Instant>,
    now: Instant,
) -> bool {
    ready > 0 && (ready >= max_group || !consuming || due_at.is_none_or(|t| t <= now))
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Prepares one message, retrying transient failures; `None` if shutdown
/// came first.
async fn prepare_with_retry<H: PipelineHandler>(
    handler: &H,
    part: Part,
    queue: &str,
    shutdown: &CancellationToken,
) -> Option<(Part, Ready<H::Prepared>)> {
    let mut backoff = reconnect_backoff();
    loop {
        let err = match handler.prepare(&part.message).await {
            Ok(p) => return Some((part, Ready::Prepared(p))),
            Err(e) => e,
        };
        if shutdown.is_cancelled() {
            return None;
        }
        let wait = backoff.next().unwrap_or(Duration::from_secs(5));
        tracing::warn!(queue, error = format!("{err:#}"), retry_in = ?wait, "message failed, will retry");
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Commits one group until it succeeds, then dead-letters and acks the
/// deliveries it completed (a bundle's dead parts wait for the bundle). If shutdown comes while the commit
/// keeps failing, nothing of the group is acked. The prepared values are
/// dropped only after the acks (a handler may hold per-message claims in
/// them until the outcome is settled).
#[allow(clippy::too_many_arguments)]
async fn commit_group<H: PipelineHandler>(
    handler: &H,
    group: Vec<(Part, Ready<H::Prepared>)>,
    unsettled: &Mutex<Unsettled<Delivery, OutgoingMessage>>,
    acks: &Mutex<AckTracker>,
    publisher: &Publisher,
    queue: &str,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut tags = Vec::with_capacity(group.len());
    let mut messages = Vec::with_capacity(group.len());
    let mut prepared = Vec::with_capacity(group.len());
    // One slot per message: broken bundles' outcomes are known already,
    // the handler fills the rest.
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(group.len());
    for (part, ready) in group {
        tags.push(part.tag);
        messages.push(part.message);
        match ready {
            Ready::Prepared(p) => {
                prepared.push(p);
                outcomes.push(None);
            }
            Ready::Broken(reason) => outcomes.push(Some(Outcome::Dead(reason))),
        }
    }
    let handled = handle_isolating(queue, prepared.len(), publisher, shutdown, |piece| {
        handler.commit(&prepared[piece], publisher)
    })
    .await?;
    let result = match handled {
        Some(handled) => {
            let mut handled = handled.into_iter();
            // `handle_isolating` checked the counts: every slot is filled.
            let outcomes: Vec<Outcome> = outcomes
                .into_iter()
                .map(|o| o.or_else(|| handled.next()))
                .collect::<Option<_>>()
                .ok_or_else(|| anyhow::anyhow!("a group's outcomes do not match its messages"))?;
            let parts = tags
                .into_iter()
                .zip(&messages)
                .zip(&outcomes)
                .map(|((tag, m), o)| (tag, dead_copy(m, o, queue)));
            let done = unsettled.lock().expect("unsettled lock").committed(parts);
            settle(
                &done.deliveries,
                &outcomes,
                done.dead,
                acks,
                publisher,
                queue,
                metrics,
            )
            .await
        }
        None => Ok(()),
    };
    drop(prepared);
    result
}

// ---------------------------------------------------------------- shared steps

/// Runs `attempt` over the `len` messages of a batch until each has an
/// outcome; `None` if shutdown came first. `attempt(piece)` handles the
/// messages at those indexes in one go. A refusal by the store isolates the
/// message that caused it (see `isolate`) and dead-letters it; any other
/// `Err` (or a wrong count — a handler bug, treated as transient rather than
/// acked blindly) retries the same piece with backoff, for as long as
/// `publisher`'s channel is open. Once it is closed (the connection was
/// lost or forced shut) no retry can succeed and no ack can be sent: `Err`,
/// so the session reconnects and the broker redelivers the unacked
/// messages, which the handlers take idempotently.
async fn handle_isolating<F, Fut>(
    queue: &str,
    len: usize,
    publisher: &Publisher,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> anyhow::Result<Option<Vec<Outcome>>>
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Outcome>>>,
{
    let mut outcomes: Vec<Option<Outcome>> = vec![None; len];
    let mut isolation = Isolation::new(len, MAX_REFUSALS);
    let mut backoff = reconnect_backoff();
    while let Some(piece) = isolation.current() {
        let size = piece.len();
        let failure = match attempt(piece.clone()).await {
            Ok(got) if got.len() == size => {
                for (slot, outcome) in outcomes[piece].iter_mut().zip(got) {
                    *slot = Some(outcome);
                }
                isolation.handled();
                backoff = reconnect_backoff();
                continue;
            }
            Ok(got) => {
                tracing::error!(
                    queue,
                    expected = size,
                    got = got.len(),
                    "handler returned a wrong number of outcomes"
                );
                Failure::Transient
            }
            Err(e) => {
                let failure = classify(&e);
                tracing::warn!(
                    queue,
                    size,
                    error = format!("{e:#}"),
                    refused = matches!(failure, Failure::Refused(_)),
                    "batch failed, will retry"
                );
                failure
            }
        };
        if !publisher.channel().status().connected() {
            anyhow::bail!(
                "the publishing channel is closed; {} unsettled message(s) of {queue} return to the queue",
                len
            );
        }
        if let Failure::Refused(reason) = failure {
            match isolation.refused() {
                // The database answered: no reason to wait before the halves.
                Refusal::Split => continue,
                Refusal::RetryAlone => {}
                Refusal::Dead(index) => {
                    tracing::warn!(queue, reason, "message refused by the store, isolated");
                    outcomes[index] = Some(Outcome::Dead(reason));
                    // The next poison message of the batch waits no longer.
                    backoff = reconnect_backoff();
                    continue;
                }
            }
        }
        let wait = backoff.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Every piece ends handled or dead, so every slot is filled.
    Ok(outcomes.into_iter().collect())
}

/// The dead-letter copies of the messages whose outcome is `Dead`.
fn dead_letters(messages: &[Message], outcomes: &[Outcome], queue: &str) -> Vec<OutgoingMessage> {
    messages
        .iter()
        .zip(outcomes)
        .filter_map(|(m, o)| dead_copy(m, o, queue))
        .collect()
}

/// The dead-letter copy of `m` if its outcome is `Dead`.
fn dead_copy(m: &Message, outcome: &Outcome, queue: &str) -> Option<OutgoingMessage> {
    match outcome {
        Outcome::Dead(reason) => Some(dead_letter(m, queue, reason)),
        Outcome::Ack => None,
    }
}

/// Dead letters first (confirmed in the DLQ, so never dropped), then the
/// acks of every delivery in `batch` (those whose every message is settled).
/// `outcomes` (one per message committed) count the acked messages; the
/// dead ones are counted as their letters go out (a bundle's wait for it).
async fn settle(
    batch: &[Delivery],
    outcomes: &[Outcome],
    dead: Vec<OutgoingMessage>,
    acks: &Mutex<AckTracker>,
    publisher: &Publisher,
    queue: &str,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    if !dead.is_empty() {
        // Confirmed in the DLQ before the original is acked: never dropped.
        if let Err(e) = publisher.publish_all(&dead).await {
            for d in batch {
                let _ = d
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await;
            }
            return Err(e.into());
        }
    }
    let tags: Vec<u64> = batch.iter().map(|d| d.delivery_tag).collect();
    let plan = acks.lock().expect("ack tracker lock").settle(&tags);
    let acker = |tag: u64| {
        batch
            .iter()
            .find(|d| d.delivery_tag == tag)
            .map(|d| &d.acker)
    };
    if let Some(acker) = plan.multiple.and_then(acker) {
        acker.ack(BasicAckOptions { multiple: true }).await?;
    }
    for acker in plan.single.into_iter().filter_map(acker) {
        acker.ack(BasicAckOptions::default()).await?;
    }
    let acked = outcomes.iter().filter(|o| **o == Outcome::Ack).count();
    if acked > 0 {
        metrics.consumed(queue, "ack", acked as u64);
    }
    for letter in &dead {
        let reason = letter
            .headers
            .get("x-dead-reason")
            .map_or("", String::as_str);
        tracing::warn!(queue, reason, "dead-lettered");
        metrics.consumed(queue, "dead", 1);
        metrics.dead_lettered(reason_kind(reason));
    }
    Ok(())
}

/// The coarse class of a reason (text before the first ':'), as a metric label.
fn reason_kind(reason: &str) -> &str {
    reason.split(':').next().unwrap_or("other").trim()
}

/// The dead-letter copy of a message (a part of a bundle goes alone): same
/// body, reason and origin in headers.
pub fn dead_letter(m: &Message, queue: &str, reason: &str) -> OutgoingMessage {
    let mut headers = m.headers.clone();
    headers.insert("x-dead-reason".into(), reason.to_string());
    headers.insert("x-original-queue".into(), queue.to_string());
    headers.insert("x-original-routing-key".into(), m.routing_key.clone());
    headers.insert("x-dead-at".into(), chrono::Utc::now().to_rfc3339());
    let message_id = m
        .message_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    OutgoingMessage::new(
        ROUTING_DEAD,
        message_id,
        m.message_type.as_deref().unwrap_or_default(),
        headers,
        m.data.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_when_a_group_is_due() {
        let now = Instant::now();
        let later = now + Duration::from_millis(5);
        let earlier = now - Duration::from_millis(5);
        // (name, ready, max, consuming, due_at, expected)
        type Case = (&'static str, usize, usize, bool, Option<Instant>, bool);
        let cases: &[Case] = &[
            ("nothing ready", 0, 8, true, Some(earlier), false),
            ("nothing ready at shutdown", 0, 8, false, None, false),
            ("lingering", 3, 8, true, Some(later), false),
            ("linger over", 3, 8, true, Some(earlier), true),
            ("linger ends now", 3, 8, true, Some(now), true),
            ("group full", 8, 8, true, Some(later), true),
            ("more than full", 9, 8, true, Some(later), true),
            ("shutdown does not wait", 1, 8, false, Some(later), true),
            ("no deadline set", 1, 8, true, None, true),
        ];
        for (name, ready, max, consuming, due_at, want) in cases {
            assert_eq!(
                group_due(*ready, *max, *consuming, *due_at, now),
                *want,
                "case {name}"
            );
        }
    }

    #[test]
    fn reason_kinds_are_the_text_before_the_colon() {
        assert_eq!(reason_kind("poison: bad json"), "poison");
        assert_eq!(
            reason_kind("gave up after 3 attempts: x"),
            "gave up after 3 attempts"
        );
        assert_eq!(reason_kind("plain"), "plain");
    }
}

/// `handle_isolating` against a real broker channel.
#[cfg(test)]
mod channel_loss_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn publisher() -> (lapin::Connection, Publisher) {
        let url = std::env::var("AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let conn = crate::amqp::connect(&url, "channel-loss-test")
            .await
            .expect("broker");
        let publisher = Publisher::open(&conn).await.expect("publisher");
        (conn, publisher)
    }

    #[tokio::test]
    async fn a_failing_batch_on_a_closed_channel_gives_up_for_a_reconnect() {
        let (conn, publisher) = publisher().await;
        publisher
            .channel()
            .close(200, "gone".into())
            .await
            .expect("close");
        let calls = AtomicUsize::new(0);
        let shutdown = CancellationToken::new();
        let result = handle_isolating("q", 3, &publisher, &shutdown, |_| {
            // A second call would be a retry on the dead channel: stop there
            // (as shutdown) rather than retry for ever.
            if calls.fetch_add(1, Ordering::SeqCst) >= 1 {
                shutdown.cancel();
            }
            async { anyhow::bail!("publishing retries: invalid channel state") }
        })
        .await;
        let err = result.expect_err("a closed channel ends the retries");
        assert!(err.to_string().contains("channel is closed"), "{err:#}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "no retry on a dead channel"
        );
        let _ = conn.close(200, "bye".into()).await;
    }

    #[tokio::test]
    async fn a_failing_batch_on_an_open_channel_is_retried() {
        let (conn, publisher) = publisher().await;
        let calls = AtomicUsize::new(0);
        let shutdown = CancellationToken::new();
        let result = handle_isolating("q", 3, &publisher, &shutdown, |_| {
            // The third failure asks for shutdown, which ends the retries.
            if calls.fetch_add(1, Ordering::SeqCst) == 2 {
                shutdown.cancel();
            }
            async { anyhow::bail!("recording attempts: database is down") }
        })
        .await;
        assert!(matches!(result, Ok(None)), "{result:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let _ = conn.close(200, "bye".into()).await;
    }
}
