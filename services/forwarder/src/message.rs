//! One `sale.forward` message as the forwarder handles it: decoded from the
//! delivery, with the tracing span that continues its trace, and the copies
//! of it that wait in a delay queue (a retry, or a delivery put back unsent).

use std::collections::BTreeMap;
use std::time::Duration;

use salesync_core::amqp::consumer;
use salesync_core::amqp::publisher::OutgoingMessage;
use salesync_core::amqp::topology;
use salesync_core::messages::{Envelope, ForwardCommand, Payload};
use salesync_core::telemetry;
use tracing::field::Empty;

/// A decoded message.
pub struct Message {
    pub envelope: Envelope<ForwardCommand>,
    pub headers: BTreeMap<String, String>,
    pub redelivered: bool,
    pub span: tracing::Span,
}

/// Decodes a message (a delivery or a bundle's part) and opens its span (a
/// child of the trace in its headers). Poison comes back as `Err` with the
/// dead-letter reason; the span is returned either way so the caller can log
/// inside it.
pub fn decode(delivered: &consumer::Message) -> (tracing::Span, Result<Message, String>) {
    let headers = delivered.headers.clone();
    let span = tracing::info_span!(
        "forward",
        delivery_id = Empty,
        attempt = Empty,
        purpose = Empty,
        tenant_id = Empty,
        sale_id = Empty,
        target = Empty,
    );
    telemetry::set_parent_from_headers(&span, &headers);
    let envelope = match Envelope::<ForwardCommand>::decode(&delivered.data) {
        Ok(e) => e,
        Err(e) => return (span, Err(format!("poison: {e}"))),
    };
    span.record(
        "delivery_id",
        tracing::field::display(envelope.payload.delivery_id),
    );
    span.record("attempt", envelope.attempt);
    span.record("purpose", envelope.payload.purpose.as_str());
    span.record("tenant_id", tracing::field::display(envelope.tenant_id));
    span.record("sale_id", tracing::field::display(envelope.sale_id));
    let message = Message {
        envelope,
        headers,
        redelivered: delivered.redelivered,
        span: span.clone(),
    };
    (span, Ok(message))
}

impl Message {
    /// A copy of this message as attempt number `attempt`, to wait in the
    /// delay queue of `queue_delay` for `expiration_ms` and then come back
    /// to `sale.forward`.
    pub fn delayed_copy(
        &self,
        attempt: u32,
        queue_delay: Duration,
        expiration_ms: u64,
    ) -> OutgoingMessage {
        let mut next = self.envelope.clone();
        next.attempt = attempt;
        OutgoingMessage {
            exchange: String::new(),
            routing_key: topology::retry_queue(queue_delay),
            message_id: self.envelope.id.to_string(),
            message_type: ForwardCommand::TYPE.to_string(),
            headers: retry_headers(&self.headers),
            body: next.to_bytes(),
            expiration_ms: Some(expiration_ms),
        }
    }
}

/// The headers a delayed copy carries: the trace context and other application
/// headers, without what the broker added on the way (`x-death`, `x-first-death-*` …).
fn retry_headers(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| !k.starts_with("x-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_copies_keep_trace_context_only() {
        let headers: BTreeMap<String, String> = [
            ("traceparent", "00-abc-def-01"),
            ("tracestate", "x=1"),
            ("x-first-death-queue", "salesync.forward.retry.1000ms"),
            ("x-delivery-count", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept: Vec<&str> = retry_headers(&headers)
            .into_keys()
            .map(|k| match k.as_str() {
                "traceparent" => "traceparent",
                "tracestate" => "tracestate",
                _ => "other",
            })
            .collect();
        assert_eq!(kept, ["traceparent", "tracestate"]);
    }
}
