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

/// Declares the exchange, the work queues, the dead-letter queue and their bindings.
pub async fn declare(ch: &Channel) -> lapin::Result<()> {
    ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    let durable = QueueDeclareOptions::durable();
    for q in [Q_SALE_EVENTS, Q_FORWARD, Q_STATUS] {
        ch.queue_declare(q.into(), durable, work_queue_args())
            .await?;
    }
    ch.queue_declare(Q_DEAD.into(), durable, dead_queue_args())
        .await?;
    for (queue, key) in BINDINGS {
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

/// Declares one delay queue per retry step. A waiting retry sits here, holding
/// no consumer, and survives restarts (durable queue, persistent message).
pub async fn declare_retry_queues(ch: &Channel, delays: &[Duration]) -> lapin::Result<()> {
    for d in delays {
        let mut a = FieldTable::default();
        a.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(d.as_millis() as i64),
        );
        a.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(EXCHANGE.into()),
        );
        a.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(ROUTING_FORWARD.into()),
        );
        ch.queue_declare(retry_queue(*d).into(), QueueDeclareOptions::durable(), a)
            .await?;
    }
    Ok(())
}
