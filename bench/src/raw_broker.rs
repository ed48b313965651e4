//! The raw broker baseline: what RabbitMQ alone carries on this machine with
//! the guarantees salesync keeps — persistent messages on a durable quorum
//! queue, publisher confirms (pipelined: up to a window of unconfirmed
//! publishes), one consumer with manual acks (bounded prefetch, multiple-acks).
//! Runs on a vhost of its own, deleted afterwards. Publishing stops at the
//! end of the phase; the rate that counts is the consumer's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::PublisherConfirm;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use salesync_e2e::TestVhost;
use tokio_util::sync::CancellationToken;

use crate::load::{LoadOutcome, LoadPlan, due, measured_window};
use crate::timeline::Timeline;

/// Bytes at the start of each body that carry its sequence number.
pub const HEADER_BYTES: usize = 16;

const QUEUE: &str = "bench.raw";

#[derive(Clone, Copy, Debug)]
pub struct RawSettings {
    pub plan: LoadPlan,
    /// Publish at this many messages per second (open loop); `None`: as
    /// fast as the confirm window allows.
    pub rate: Option<u32>,
    pub confirm_window: usize,
    pub prefetch: u16,
    pub message_bytes: usize,
    pub max_in_flight: u64,
    pub drain_timeout: Duration,
}

/// A body of `size` bytes (at least `HEADER_BYTES`) carrying sequence number `i`.
pub fn message(i: u64, size: usize) -> Vec<u8> {
    let mut body = vec![b'x'; size.max(HEADER_BYTES)];
    body[..8].copy_from_slice(&i.to_le_bytes());
    body[8..HEADER_BYTES].copy_from_slice(b"salesync");
    body
}

/// The sequence number of a `message` body.
pub fn index_of(body: &[u8]) -> Option<usize> {
    if body.len() < HEADER_BYTES || &body[8..HEADER_BYTES] != b"salesync" {
        return None;
    }
    let n = u64::from_le_bytes(body[..8].try_into().ok()?);
    usize::try_from(n).ok()
}

/// Acks go out in groups of this many (`multiple`), or when the queue idles.
fn ack_every(prefetch: u16) -> u64 {
    u64::from(prefetch / 10).max(1)
}

/// Runs the baseline and returns the load outcome (its window is where the
/// consumer's rate is read); arrivals are in `timeline`.
pub async fn run(settings: RawSettings, timeline: Arc<Timeline>) -> anyhow::Result<LoadOutcome> {
    let vhost = TestVhost::create().await?;
    let result = run_on(vhost.amqp_url(), settings, timeline).await;
    if let Err(e) = vhost.cleanup().await {
        eprintln!("salesync-bench: could not delete the baseline vhost: {e}");
    }
    result
}

async fn run_on(
    url: &str,
    settings: RawSettings,
    timeline: Arc<Timeline>,
) -> anyhow::Result<LoadOutcome> {
    let publisher_conn = salesync_core::amqp::connect(url, "bench-raw-publisher").await?;
    let consumer_conn = salesync_core::amqp::connect(url, "bench-raw-consumer").await?;
    let channel = publisher_conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let stop = CancellationToken::new();
    let consumer = tokio::spawn(consume(
        consumer_conn.create_channel().await?,
        settings.prefetch,
        timeline.clone(),
        stop.clone(),
    ));
    let published = publish(&channel, &settings, &timeline).await;
    // Let the consumer catch up with what was confirmed, within bounds.
    let deadline = Instant::now() + settings.drain_timeout;
    while timeline.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let consumed = consumer.await;
    close(&publisher_conn).await;
    close(&consumer_conn).await;
    let outcome = published?;
    consumed??;
    Ok(outcome)
}

async fn close(conn: &Connection) {
    let _ = conn.close(200, "benchmark done".into()).await;
}

/// Publishes until the phase ends: at `settings.rate`, or as fast as
/// confirms allow.
async fn publish(
    channel: &Channel,
    settings: &RawSettings,
    timeline: &Timeline,
) -> anyhow::Result<LoadOutcome> {
    let props = BasicProperties::default().with_delivery_mode(2);
    let plan = settings.plan;
    let cap = plan.max_sales.unwrap_or(u64::MAX);
    let started = Instant::now();
    let end = started + plan.warmup + plan.duration;
    let mut window: VecDeque<(usize, PublisherConfirm)> =
        VecDeque::with_capacity(settings.confirm_window);
    let mut next: u64 = 0;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < end && next < cap {
        if let Some(rate) = settings.rate
            && next >= due(rate, started.elapsed())
        {
            ticker.tick().await;
            continue;
        }
        if timeline.in_flight() >= settings.max_in_flight {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        if window.len() >= settings.confirm_window
            && let Some((i, confirm)) = window.pop_front()
        {
            settle(i, confirm, timeline).await?;
        }
        let i = next as usize;
        timeline.sent(i, timeline.now());
        let confirm = channel
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &message(next, settings.message_bytes),
                props.clone(),
            )
            .await?;
        window.push_back((i, confirm));
        next += 1;
    }
    let stopped = Instant::now();
    while let Some((i, confirm)) = window.pop_front() {
        settle(i, confirm, timeline).await?;
    }
    Ok(LoadOutcome {
        window: Some(measured_window(timeline, started, stopped, &plan)),
        errors: 0,
        first_error: None,
        requests: next,
    })
}

async fn settle(i: usize, confirm: PublisherConfirm, timeline: &Timeline) -> anyhow::Result<()> {
    let confirmation = confirm.await?;
    if confirmation.is_nack() {
        timeline.withdrawn(i);
        anyhow::bail!("the broker nacked message {i}");
    }
    timeline.accepted(i, timeline.now());
    Ok(())
}

/// One consumer, manual acks grouped with `multiple`, until `stop`.
async fn consume(
    channel: Channel,
    prefetch: u16,
    timeline: Arc<Timeline>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            QUEUE.into(),
            "bench-raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let multiple = BasicAckOptions { multiple: true };
    let every = ack_every(prefetch);
    let mut unacked: Option<lapin::message::Delivery> = None;
    let mut pending = 0u64;
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            n = tokio::time::timeout(Duration::from_millis(5), consumer.next()) => n,
        };
        match next {
            Ok(Some(delivery)) => {
                let delivery = delivery?;
                let now = timeline.now();
                match index_of(&delivery.data) {
                    Some(i) => timeline.arrived(i, now),
                    None => timeline.unknown(),
                }
                pending += 1;
                if pending >= every {
                    delivery.ack(multiple).await?;
                    pending = 0;
                    unacked = None;
                } else {
                    unacked = Some(delivery);
                }
            }
            Ok(None) => break,
            // Idle for a moment: ack what is held so the broker sends more.
            Err(_) => {
                if let Some(d) = unacked.take() {
                    d.ack(multiple).await?;
                    pending = 0;
                }
            }
        }
    }
    if let Some(d) = unacked.take() {
        d.ack(multiple).await?;
    }
    let _ = channel.close(200, "benchmark done".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_sequence_number() {
        for (i, size) in [
            (0u64, 500),
            (42, 16),
            (u64::from(u32::MAX) + 7, 1000),
            (3, 4),
        ] {
            let body = message(i, size);
            assert_eq!(body.len(), size.max(HEADER_BYTES));
            assert_eq!(index_of(&body), usize::try_from(i).ok());
        }
        for bad in [&b""[..], &b"0123456789abcdef"[..], &[0u8; 8][..]] {
            assert_eq!(index_of(bad), None);
        }
    }

    #[test]
    fn ack_groups() {
        for (prefetch, want) in [(500, 50), (64, 6), (9, 1), (1, 1)] {
            assert_eq!(ack_every(prefetch), want, "{prefetch}");
        }
    }
}
