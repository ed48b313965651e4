//! The consume loop every service runs: take up to `prefetch` deliveries at
//! once, let the handler decide them as a batch (one DB transaction per
//! batch), then ack — only after the outcome is durable. Transient failures
//! keep the batch unacked and retry it with backoff; a broken connection is
//! re-established and the topology re-declared.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use super::publisher::{OutgoingMessage, Publisher};
use super::{connect_with_retry, headers_to_map, reconnect_backoff, topology};
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

/// Decides a batch of deliveries. `Err` means a transient failure (database
/// down …): nothing of the batch may have taken effect, and the whole batch
/// is tried again.
pub trait BatchHandler: Send + Sync + 'static {
    fn handle(
        &self,
        batch: &[Delivery],
        publisher: &Publisher,
    ) -> impl Future<Output = anyhow::Result<Vec<Outcome>>> + Send;
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

/// Runs until `shutdown`: connect, consume, reconnect on failure.
pub async fn run<H: BatchHandler>(
    cfg: ConsumerConfig,
    handler: Arc<H>,
    ready: ReadyFlag,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut backoff = reconnect_backoff();
    loop {
        let Some(conn) = connect_with_retry(&cfg.amqp_url, &cfg.connection_name, &shutdown).await
        else {
            return;
        };
        let result = consume(&conn, &cfg, handler.as_ref(), &ready, &metrics, &shutdown).await;
        ready.set(false);
        let _ = conn.close(200, "bye".into()).await;
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

async fn consume<H: BatchHandler>(
    conn: &lapin::Connection,
    cfg: &ConsumerConfig,
    handler: &H,
    ready: &ReadyFlag,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let ch = conn.create_channel().await?;
    topology::declare(&ch).await?;
    topology::declare_retry_queues(&ch, &cfg.retry_delays).await?;
    ch.basic_qos(cfg.prefetch, BasicQosOptions::default())
        .await?;
    let publisher = Publisher::open(conn).await?;
    let tag = format!("{}-{}", cfg.connection_name, uuid::Uuid::new_v4());
    let mut consumer = ch
        .basic_consume(
            cfg.queue.into(),
            tag.clone().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    ready.set(true);
    tracing::info!(queue = cfg.queue, prefetch = cfg.prefetch, "consuming");

    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => {
                // Stop taking new work; unacked messages return to the queue on close.
                let _ = ch.basic_cancel(tag.clone().into(), BasicCancelOptions::default()).await;
                let _ = ch.close(200, "shutdown".into()).await;
                let _ = publisher.channel().close(200, "shutdown".into()).await;
                return Ok(());
            }
            next = consumer.next() => next,
        };
        let mut batch = match first {
            Some(Ok(d)) => vec![d],
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("the broker cancelled the consumer"),
        };
        // Take whatever else is already buffered, without waiting.
        while batch.len() < cfg.prefetch as usize {
            match consumer.next().now_or_never() {
                Some(Some(Ok(d))) => batch.push(d),
                Some(Some(Err(e))) => return Err(e.into()),
                _ => break,
            }
        }

        let outcomes = handle_with_retry(handler, &batch, &publisher, cfg.queue, shutdown).await;
        let Some(outcomes) = outcomes else {
            // Shutdown while the batch kept failing: leave it unacked for redelivery.
            return Ok(());
        };
        settle(&batch, outcomes, &publisher, cfg.queue, metrics).await?;
    }
}

/// Runs the handler until it succeeds; `None` if shutdown came first.
async fn handle_with_retry<H: BatchHandler>(
    handler: &H,
    batch: &[Delivery],
    publisher: &Publisher,
    queue: &str,
    shutdown: &CancellationToken,
) -> Option<Vec<Outcome>> {
    let mut backoff = reconnect_backoff();
    loop {
        match handler.handle(batch, publisher).await {
            Ok(outcomes) if outcomes.len() == batch.len() => return Some(outcomes),
            Ok(outcomes) => {
                // A handler bug; treat as transient rather than ack blindly.
                tracing::error!(
                    queue,
                    expected = batch.len(),
                    got = outcomes.len(),
                    "handler returned a wrong number of outcomes"
                );
            }
            Err(e) => {
                tracing::warn!(
                    queue,
                    size = batch.len(),
                    error = format!("{e:#}"),
                    "batch failed, will retry"
                );
            }
        }
        let wait = backoff.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn settle(
    batch: &[Delivery],
    outcomes: Vec<Outcome>,
    publisher: &Publisher,
    queue: &str,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let mut dead = Vec::new();
    for (d, o) in batch.iter().zip(&outcomes) {
        if let Outcome::Dead(reason) = o {
            dead.push(dead_letter(d, queue, reason));
        }
    }
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
    for (d, o) in batch.iter().zip(&outcomes) {
        d.acker.ack(BasicAckOptions::default()).await?;
        match o {
            Outcome::Ack => metrics.consumed(queue, "ack", 1),
            Outcome::Dead(reason) => {
                tracing::warn!(queue, reason, "dead-lettered");
                metrics.consumed(queue, "dead", 1);
                metrics.dead_lettered(reason_kind(reason));
            }
        }
    }
    Ok(())
}

/// The coarse class of a reason (text before the first ':'), as a metric label.
fn reason_kind(reason: &str) -> &str {
    reason.split(':').next().unwrap_or("other").trim()
}

/// The dead-letter copy of a delivery: same body, reason and origin in headers.
pub fn dead_letter(d: &Delivery, queue: &str, reason: &str) -> OutgoingMessage {
    let mut headers = headers(d);
    headers.insert("x-dead-reason".into(), reason.to_string());
    headers.insert("x-original-queue".into(), queue.to_string());
    headers.insert("x-original-routing-key".into(), d.routing_key.to_string());
    headers.insert("x-dead-at".into(), chrono::Utc::now().to_rfc3339());
    let message_id = d
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let message_type = d
        .properties
        .kind()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    OutgoingMessage::new(
        ROUTING_DEAD,
        message_id,
        &message_type,
        headers,
        d.data.clone(),
    )
}
