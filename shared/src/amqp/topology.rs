//! Exchanges, queues and bindings. Every service declares all of it on every
//! connect (declarations are idempotent), so no start-up order can leave a
//! message unroutable.
//!
//! ```text
//! salesync (topic) ─ sale.ingested|status_changed|forward_requested ─▶ salesync.sale-events ─▶ condition-filter
//!                  ─ sale.forward ─▶ salesync.forward ─▶ forwarder
//!                  ─ sale.status  ─▶ salesync.status  ─▶ ingest
//!                  ─ sale.dead    ─▶ salesync.dead    (inspect, replay)
//! "" ─ salesync.forward.retry.<ms>ms (TTL, dead-letters back to sale.forward) ◀─ forwarder
//! ```

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::messages::{EXCHANGE, ROUTING_DEAD, ROUTING_FORWARD, ROUTING_STATUS};

/// The forwarder's `RETRY_DELAYS` when unset; also the delay queues of the
/// checked-in deployment definitions (deploy/rabbitmq/definitions.json).
pub const DEFAULT_RETRY_DELAYS: &str = "1s,5s,30s,2m,10m,30m,1h";

pub const Q_SALE_EVENTS: &str = "salesync.sale-events";
pub const Q_FORWARD: &str = "salesync.forward";
pub const Q_STATUS: &str = "salesync.status";
pub const Q_DEAD: &str = "salesync.dead";

/// A message redelivered this often (consumer crashes while holding it) is
/// poison: the broker dead-letters it instead of looping forever.
const DELIVERY_LIMIT: i64 = 50;

const BINDINGS: &[(&str, &str)] = &[
    (Q_SALE_EVENTS, "sale.ingested"),
    (Q_SALE_EVENTS, "sale.status_changed"),
    (Q_SALE_EVENTS, "sale.forward_requested"),
    (Q_FORWARD, ROUTING_FORWARD),
    (Q_STATUS, ROUTING_STATUS),
    (Q_DEAD, ROUTING_DEAD),
];

fn work_queue_args() -> FieldTable {
    let mut a = FieldTable::default();
    a.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    a.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT),
    );
    a.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(EXCHANGE.into()),
    );
    a.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(ROUTING_DEAD.into()),
    );
    a
}

fn dead_queue_args() -> FieldTable {
    let mut a = FieldTable::default();
    a.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    a
}

/// The kind of [`EXCHANGE`]: a topic exchange, so a queue can take a family
/// of routing keys.
pub fn exchange_kind() -> ExchangeKind {
    ExchangeKind::Topic
}

/// Every queue [`declare`] makes (all durable), with its arguments: the one
/// description `declare` and the deployment definitions
/// (`super::definitions`) are both made from.
pub fn queues() -> Vec<(&'static str, FieldTable)> {
    vec![
        (Q_SALE_EVENTS, work_queue_args()),
        (Q_FORWARD, work_queue_args()),
        (Q_STATUS, work_queue_args()),
        (Q_DEAD, dead_queue_args()),
    ]
}

/// Every binding of [`EXCHANGE`] [`declare`] makes: (queue, routing key).
pub fn bindings() -> &'static [(&'static str, &'static str)] {
    BINDINGS
}

/// Declares the exchange, the work queues, the dead-letter queue and their bindings.
pub async fn declare(ch: &Channel) -> lapin::Result<()> {
    ch.exchange_declare(
        EXCHANGE.into(),
        exchange_kind(),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    for (queue, args) in queues() {
        ch.queue_declare(queue.into(), QueueDeclareOptions::durable(), args)
            .await?;
    }
    for (queue, key) in bindings() {
        ch.queue_bind(
            (*queue).into(),
            EXCHANGE.into(),
            (*key).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

/// The delay queue that holds a forward message for `delay` before it
/// returns to `salesync.forward`. Named by its delay because a queue's TTL
/// cannot change once declared.
pub fn retry_queue(delay: Duration) -> String {
    format!("salesync.forward.retry.{}ms", delay.as_millis())
}

/// The arguments of the delay queue for `delay`: expire into `sale.forward`.
///
/// A quorum queue with at-least-once dead-lettering, because expiry IS the
/// delivery path here. Plain (at-most-once) dead-lettering — the only kind a
/// classic queue has — drops what expires while the broker restarts: the
/// chaos campaign lost every retry that came due during a `stop_app` (the
/// delay queue was empty after `start_app`, `salesync.forward` never got
/// them). At-least-once keeps each message until `salesync.forward`
/// confirmed it; it requires `reject-publish` overflow (no length limit is
/// set, so nothing is ever rejected). The forwarder dedupes any repeat.
pub fn retry_queue_args(delay: Duration) -> FieldTable {
    let mut a = FieldTable::default();
    a.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    a.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
    );
    a.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(EXCHANGE.into()),
    );
    a.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(ROUTING_FORWARD.into()),
    );
    a.insert(
        "x-dead-letter-strategy".into(),
        AMQPValue::LongString("at-least-once".into()),
    );
    a.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    a
}

/// Declares one delay queue per retry step. A waiting retry sits here, holding
/// no consumer, and survives restarts (durable queue, persistent message).
pub async fn declare_retry_queues(ch: &Channel, delays: &[Duration]) -> lapin::Result<()> {
    for d in delays {
        ch.queue_declare(
            retry_queue(*d).into(),
            QueueDeclareOptions::durable(),
            retry_queue_args(*d),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_queues_dead_letter_at_least_once_back_to_the_work_queue() {
        let a = retry_queue_args(Duration::from_millis(2500));
        let text = |k: &str| match a.inner().get(k) {
            Some(AMQPValue::LongString(s)) => s.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(text("x-queue-type"), "quorum");
        assert_eq!(text("x-dead-letter-strategy"), "at-least-once");
        assert_eq!(text("x-overflow"), "reject-publish");
        assert_eq!(text("x-dead-letter-exchange"), EXCHANGE);
        assert_eq!(text("x-dead-letter-routing-key"), ROUTING_FORWARD);
        assert_eq!(
            a.inner().get("x-message-ttl"),
            Some(&AMQPValue::LongLongInt(2500))
        );
        assert_eq!(
            retry_queue(Duration::from_millis(2500)),
            "salesync.forward.retry.2500ms"
        );
    }
}
