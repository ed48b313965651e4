//! Bundles: several messages for the same routing key carried as one broker
//! message. RabbitMQ's cost is per message — a quorum queue logs every
//! enqueue and every settle, and every message is a delivery and an ack for
//! the consumer — so a commit group's messages are cheaper as one. Each part
//! keeps everything a message of its own would have (id, type, headers with
//! its trace context, body), and the consumer loop hands parts to the
//! handler exactly as if they had come one by one: redelivery, dedupe and
//! dead-lettering stay per part (see `consumer`).
//!
//! Wire form (AMQP `type` = [`BUNDLE_TYPE`], `content-type` JSON):
//! `{"parts": [{"message_id", "type", "headers": {…}, "body": <the part's
//! JSON body, embedded as is>}, …]}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::publisher::OutgoingMessage;

/// The AMQP `type` of a bundle.
pub const BUNDLE_TYPE: &str = "salesync.bundle";

/// Largest body a bundle is allowed to grow to; more parts start another.
/// ~20 sale events: past ~10 per message the broker's saving is mostly
/// had, and a consumer's prefetch (counted in messages) holds at most this
/// much per unacked message.
pub const MAX_BUNDLE_BYTES: usize = 32 * 1024;

#[derive(Serialize)]
struct WireOut<'a> {
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize)]
struct PartOut<'a> {
    message_id: &'a str,
    #[serde(rename = "type")]
    message_type: &'a str,
    headers: &'a BTreeMap<String, String>,
    body: &'a RawValue,
}

#[derive(Deserialize)]
struct WireIn<'a> {
    #[serde(borrow)]
    parts: Vec<PartIn<'a>>,
}

#[derive(Deserialize)]
struct PartIn<'a> {
    message_id: String,
    #[serde(rename = "type")]
    message_type: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// One message out of a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub message_id: String,
    pub message_type: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Packs runs of consecutive messages that `bundled` allows and that share
/// exchange and routing key into bundles of at most [`MAX_BUNDLE_BYTES`].
/// Any other message — not allowed, a body that is not JSON, a run of one —
/// is sent as it is. The order of the messages is kept.
pub fn bundle(
    messages: Vec<OutgoingMessage>,
    bundled: impl Fn(&OutgoingMessage) -> bool,
) -> Vec<OutgoingMessage> {
    let mut out = Vec::new();
    // Each body is parsed once, here; `pack` embeds what this kept.
    let mut run: Vec<(OutgoingMessage, Box<RawValue>)> = Vec::new();
    let mut run_bytes = 0;
    for m in messages {
        let body = bundled(&m)
            .then(|| serde_json::from_slice::<Box<RawValue>>(&m.body).ok())
            .flatten();
        let Some(body) = body else {
            out.extend(pack(std::mem::take(&mut run)));
            run_bytes = 0;
            out.push(m);
            continue;
        };
        let joins = run.first().is_some_and(|(f, _)| {
            f.exchange == m.exchange
                && f.routing_key == m.routing_key
                && run_bytes + m.body.len() <= MAX_BUNDLE_BYTES
        });
        if !joins {
            out.extend(pack(std::mem::take(&mut run)));
            run_bytes = 0;
        }
        run_bytes += m.body.len();
        run.push((m, body));
    }
    out.extend(pack(run));
    out
}

/// One bundle of `run`, or its only message, or nothing for an empty run.
fn pack(mut run: Vec<(OutgoingMessage, Box<RawValue>)>) -> Option<OutgoingMessage> {
    if run.len() <= 1 {
        return run.pop().map(|(m, _)| m);
    }
    let parts = run
        .iter()
        .map(|(m, body)| PartOut {
            message_id: &m.message_id,
            message_type: &m.message_type,
            headers: &m.headers,
            body,
        })
        .collect();
    // Serialising plain data cannot fail.
    let body = serde_json::to_vec(&WireOut { parts }).unwrap_or_default();
    let first = &run[0].0;
    Some(OutgoingMessage {
        exchange: first.exchange.clone(),
        routing_key: first.routing_key.clone(),
        message_id: uuid::Uuid::now_v7().to_string(),
        message_type: BUNDLE_TYPE.into(),
        headers: BTreeMap::new(),
        body,
        expiration_ms: None,
    })
}

/// The parts of a bundle's body, in order; `Err` names what is wrong with
/// it (the whole bundle is then poison).
pub fn unbundle(body: &[u8]) -> Result<Vec<Part>, String> {
    let wire: WireIn<'_> =
        serde_json::from_slice(body).map_err(|e| format!("poison: undecodable bundle: {e}"))?;
    if wire.parts.is_empty() {
        return Err("poison: empty bundle".into());
    }
    Ok(wire
        .parts
        .into_iter()
        .map(|p| Part {
            message_id: p.message_id,
            message_type: p.message_type,
            headers: p.headers,
            body: p.body.get().as_bytes().to_vec(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize, body: &str) -> OutgoingMessage {
        let mut headers = BTreeMap::new();
        headers.insert("traceparent".into(), format!("00-{n:032x}-{n:016x}-01"));
        OutgoingMessage::new(
            "sale.ingested",
            format!("m{n}"),
            "sale.event",
            headers,
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn parts_come_out_as_they_went_in() {
        let messages: Vec<_> = (0..3)
            .map(|n| message(n, &format!(r#"{{"n": {n}, "s": "x\"y"}}"#)))
            .collect();
        let bundled = bundle(messages.clone(), |_| true);
        assert_eq!(bundled.len(), 1);
        let b = &bundled[0];
        assert_eq!(b.message_type, BUNDLE_TYPE);
        assert_eq!(b.routing_key, "sale.ingested");
        let parts = unbundle(&b.body).expect("a bundle");
        assert_eq!(parts.len(), 3);
        for (p, m) in parts.iter().zip(&messages) {
            assert_eq!(p.message_id, m.message_id);
            assert_eq!(p.message_type, m.message_type);
            assert_eq!(p.headers, m.headers);
            // The body is carried byte for byte, not re-serialised.
            assert_eq!(p.body, m.body);
        }
    }

    /// What `bundle` made of the messages: a bundle as the ids of its
    /// parts joined by `+`, anything else as its own id.
    fn shape(out: &[OutgoingMessage]) -> Vec<String> {
        out.iter()
            .map(|m| match unbundle(&m.body) {
                Ok(parts) if m.message_type == BUNDLE_TYPE => parts
                    .iter()
                    .map(|p| p.message_id.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
                _ => m.message_id.clone(),
            })
            .collect()
    }

    #[test]
    fn only_runs_of_allowed_json_messages_for_one_routing_key_are_bundled() {
        let one = bundle(vec![message(1, "{}")], |_| true);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].message_type, "sale.event");
        assert_eq!(one[0].body, b"{}");

        let mut other_key = message(5, "{}");
        other_key.routing_key = "sale.status_changed".into();
        let mut not_allowed = message(8, "{}");
        not_allowed.message_type = "sale.forward".into();
        let messages = vec![
            message(1, "{}"),
            message(2, "[1]"),
            message(3, "not json"),
            message(4, "{}"),
            other_key,
            message(6, "{}"),
            message(7, "{}"),
            not_allowed,
            message(9, "{}"),
        ];
        let out = bundle(messages, |m| m.message_type == "sale.event");
        // Order is kept: a run ends at anything that cannot join it.
        assert_eq!(
            shape(&out),
            ["m1+m2", "m3", "m4", "m5", "m6+m7", "m8", "m9"]
        );
        assert_eq!(unbundle(&out[0].body).expect("bundle")[1].body, b"[1]");
    }

    #[test]
    fn bundles_stay_under_the_size_limit() {
        let big = format!(r#""{}""#, "x".repeat(MAX_BUNDLE_BYTES / 3));
        let bundled = bundle((0..7).map(|n| message(n, &big)).collect(), |_| true);
        // Two parts fit under the limit, a third does not: 2 + 2 + 2 + 1.
        let sizes: Vec<usize> = bundled
            .iter()
            .map(|m| unbundle(&m.body).map_or(1, |p| p.len()))
            .collect();
        assert_eq!(sizes, [2, 2, 2, 1]);
        assert_eq!(bundled[3].message_type, "sale.event");
    }

    #[test]
    fn a_broken_bundle_is_poison() {
        for body in [
            &b"{"[..],
            b"{\"parts\": []}",
            b"{\"parts\": [{\"message_id\": \"a\"}]}",
            b"[]",
        ] {
            let e = unbundle(body).expect_err("poison");
            assert!(e.starts_with("poison: "), "{e}");
        }
    }
}
