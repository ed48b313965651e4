//! The topology as RabbitMQ *definitions* (the JSON `rabbitmqctl
//! import_definitions`, `POST /api/definitions` and `load_definitions` at
//! boot read), made from the same queue list and argument builders
//! [`topology::declare`] uses, so a cluster pre-loaded with them and the
//! services' own declarations can never disagree (a queue redeclared with
//! other arguments is refused by the broker: `PRECONDITION_FAILED`).
//!
//! `deploy/rabbitmq/definitions.json` is `console topology-definitions` with
//! the forwarder's default `RETRY_DELAYS`; a test keeps it current and shows
//! a real broker agrees with it.

use std::time::Duration;

use lapin::ExchangeKind;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Map, Value, json};

use super::topology;
use crate::messages::EXCHANGE;

/// The vhost the services use unless their `AMQP_URL` names another.
pub const DEFAULT_VHOST: &str = "/";

/// Definitions for `vhost`: the vhost, the exchange, the work, dead-letter
/// and delay queues (one per retry delay) and the bindings. No users or
/// permissions: those hold secrets and belong to each deployment.
pub fn definitions(vhost: &str, retry_delays: &[Duration]) -> Value {
    let mut queues: Vec<(String, FieldTable)> = topology::queues()
        .into_iter()
        .map(|(name, args)| (name.to_string(), args))
        .collect();
    queues.extend(
        retry_delays
            .iter()
            .map(|d| (topology::retry_queue(*d), topology::retry_queue_args(*d))),
    );
    json!({
        "vhosts": [{"name": vhost}],
        "exchanges": [{
            "name": EXCHANGE,
            "vhost": vhost,
            "type": exchange_type(&topology::exchange_kind()),
            "durable": true,
            "auto_delete": false,
            "internal": false,
            "arguments": {},
        }],
        "queues": queues
            .iter()
            .map(|(name, args)| json!({
                "name": name,
                "vhost": vhost,
                "durable": true,
                "auto_delete": false,
                "arguments": arguments(args),
            }))
            .collect::<Vec<_>>(),
        "bindings": topology::bindings()
            .iter()
            .map(|(queue, key)| json!({
                "source": EXCHANGE,
                "vhost": vhost,
                "destination": queue,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }))
            .collect::<Vec<_>>(),
    })
}

/// The definitions as the checked-in file holds them: pretty, one trailing
/// newline.
pub fn definitions_file(vhost: &str, retry_delays: &[Duration]) -> String {
    let mut text = serde_json::to_string_pretty(&definitions(vhost, retry_delays))
        .unwrap_or_else(|e| unreachable!("a JSON value always serialises: {e}"));
    text.push('\n');
    text
}

fn exchange_type(kind: &ExchangeKind) -> &str {
    match kind {
        ExchangeKind::Custom(c) => c,
        ExchangeKind::Direct => "direct",
        ExchangeKind::Fanout => "fanout",
        ExchangeKind::Headers => "headers",
        ExchangeKind::Topic => "topic",
    }
}

/// Queue arguments as JSON, the way RabbitMQ's definitions write them:
/// every AMQP field value has a JSON form (nested tables and arrays too).
fn arguments(args: &FieldTable) -> Value {
    let mut out = Map::new();
    for (key, value) in args.inner() {
        out.insert(key.to_string(), argument(value));
    }
    Value::Object(out)
}

fn argument(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::LongString(s) => Value::String(s.to_string()),
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::DecimalValue(d) => {
            json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b.as_slice()).into()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(argument).collect()),
        AMQPValue::FieldTable(t) => arguments(t),
        AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_duration_list;

    fn default_delays() -> Vec<Duration> {
        parse_duration_list(topology::DEFAULT_RETRY_DELAYS).unwrap()
    }

    fn queue<'a>(defs: &'a Value, name: &str) -> &'a Value {
        defs["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .unwrap_or_else(|| panic!("no queue {name}"))
    }

    #[test]
    fn every_queue_and_delay_queue_is_there_with_its_arguments() {
        let defs = definitions("/", &default_delays());
        assert_eq!(defs["queues"].as_array().unwrap().len(), 4 + 7);
        let forward = queue(&defs, topology::Q_FORWARD);
        assert_eq!(forward["arguments"]["x-queue-type"], "quorum");
        assert_eq!(forward["arguments"]["x-delivery-limit"], 50);
        assert_eq!(
            forward["arguments"]["x-dead-letter-routing-key"],
            "sale.dead"
        );
        let retry = queue(&defs, "salesync.forward.retry.120000ms");
        assert_eq!(retry["arguments"]["x-message-ttl"], 120_000);
        assert_eq!(
            retry["arguments"]["x-dead-letter-strategy"],
            "at-least-once"
        );
        assert_eq!(
            queue(&defs, topology::Q_DEAD)["arguments"],
            json!({"x-queue-type": "quorum"})
        );
        assert_eq!(defs["exchanges"][0]["type"], "topic");
        assert_eq!(
            defs["bindings"].as_array().unwrap().len(),
            topology::bindings().len()
        );
        assert!(
            defs["queues"]
                .as_array()
                .unwrap()
                .iter()
                .all(|q| q["vhost"] == "/")
        );
    }

    #[test]
    fn every_argument_kind_has_a_json_form() {
        use lapin::types::{DecimalValue, FieldArray};
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongInt(3));
        let mut t = FieldTable::default();
        t.insert("s".into(), AMQPValue::LongString("quorum".into()));
        t.insert("b".into(), AMQPValue::Boolean(true));
        t.insert("i".into(), AMQPValue::ShortShortInt(-2));
        t.insert("d".into(), AMQPValue::Double(0.5));
        t.insert(
            "dec".into(),
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 150,
            }),
        );
        t.insert(
            "a".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::LongUInt(1),
                AMQPValue::Void,
            ])),
        );
        t.insert("t".into(), AMQPValue::FieldTable(inner));
        assert_eq!(
            arguments(&t),
            json!({"s": "quorum", "b": true, "i": -2, "d": 0.5, "dec": 1.5, "a": [1, null], "t": {"n": 3}})
        );
    }
}
