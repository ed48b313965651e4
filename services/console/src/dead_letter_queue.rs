//! The raw dead-letter queue `salesync.dead`, for operators: peek at the
//! messages waiting there (poison that never became a delivery — undecodable,
//! unknown schema version, missing sale or integration — and copies of dead
//! deliveries) and purge it. Not tenant-scoped, so only the admin routes use
//! it. Dead *deliveries* are replayed from the database (`dead_letters`);
//! the queue is for inspection.
//!
//! A peek takes messages with `basic.get` and hands them all back with one
//! `nack(requeue, multiple)`: nothing is removed. Nothing else consumes this
//! queue, so no one else sees them while they are out.

use std::collections::BTreeMap;

use lapin::options::{BasicGetOptions, BasicNackOptions, QueuePurgeOptions};
use salesync_core::amqp::{self, headers_to_map, topology};
use salesync_core::messages::peek_envelope;
use serde::Serialize;

/// Largest peek.
pub const MAX_PEEK: u32 = 100;
/// Peek size when none is asked for.
pub const DEFAULT_PEEK: u32 = 10;

/// One message in the dead-letter queue, as an operator needs to see it.
#[derive(Serialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
#[schema(as = DlqMessage)]
pub struct PeekedMessage {
    pub message_id: Option<String>,
    /// The envelope `type` the message claims (AMQP `type` property).
    pub message_type: Option<String>,
    /// `x-dead-reason`
    pub reason: Option<String>,
    /// `x-original-queue`
    pub original_queue: Option<String>,
    /// `x-original-routing-key`
    pub original_routing_key: Option<String>,
    /// `x-dead-at`
    pub dead_at: Option<String>,
    /// From the envelope, when it has one.
    pub tenant_id: Option<String>,
    pub sale_id: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// The body as JSON when it is JSON, else as (lossy) text.
    pub body: serde_json::Value,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
#[schema(as = DlqPeek)]
pub struct Peek {
    /// Messages in the queue when the peek began.
    pub depth: u64,
    pub messages: Vec<PeekedMessage>,
}

/// Describes one dead-lettered message from its headers and body.
pub fn describe(
    message_id: Option<String>,
    message_type: Option<String>,
    headers: BTreeMap<String, String>,
    body: &[u8],
) -> PeekedMessage {
    let envelope = peek_envelope(body);
    let body = serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()));
    let get = |k: &str| headers.get(k).cloned();
    PeekedMessage {
        message_id,
        message_type,
        reason: get("x-dead-reason"),
        original_queue: get("x-original-queue"),
        original_routing_key: get("x-original-routing-key"),
        dead_at: get("x-dead-at"),
        tenant_id: envelope.as_ref().map(|(_, t, _)| t.to_string()),
        sale_id: envelope.as_ref().map(|(_, _, s)| s.to_string()),
        headers,
        body,
    }
}

async fn open(amqp_url: &str) -> anyhow::Result<(lapin::Connection, lapin::Channel)> {
    let conn = amqp::connect(amqp_url, "console-admin-dlq").await?;
    let ch = conn.create_channel().await?;
    // Idempotent; makes sure the queue exists on a fresh broker.
    topology::declare(&ch).await?;
    Ok((conn, ch))
}

/// Up to `limit` messages from the head of the queue, left in place.
pub async fn peek(amqp_url: &str, limit: u32) -> anyhow::Result<Peek> {
    let (conn, ch) = open(amqp_url).await?;
    let result = async {
        let mut messages = Vec::new();
        let mut depth = 0u64;
        let mut last = None;
        while messages.len() < limit as usize {
            let Some(got) = ch
                .basic_get(topology::Q_DEAD.into(), BasicGetOptions { no_ack: false })
                .await?
            else {
                break;
            };
            if messages.is_empty() {
                depth = u64::from(got.message_count) + 1;
            }
            let d = got.delivery;
            let props = &d.properties;
            messages.push(describe(
                props.message_id().as_ref().map(ToString::to_string),
                props.kind().as_ref().map(ToString::to_string),
                headers_to_map(props.headers().as_ref()),
                &d.data,
            ));
            last = Some(d.acker);
        }
        if let Some(acker) = last {
            acker
                .nack(BasicNackOptions {
                    multiple: true,
                    requeue: true,
                })
                .await?;
        }
        anyhow::Ok(Peek { depth, messages })
    }
    .await;
    // Closing also returns anything still unacked (if the nack failed).
    let _ = ch.close(200, "peeked".into()).await;
    let _ = conn.close(200, "bye".into()).await;
    result
}

/// Deletes every message in the queue; returns how many.
pub async fn purge(amqp_url: &str) -> anyhow::Result<u64> {
    let (conn, ch) = open(amqp_url).await?;
    let purged = ch
        .queue_purge(topology::Q_DEAD.into(), QueuePurgeOptions::default())
        .await;
    let _ = ch.close(200, "purged".into()).await;
    let _ = conn.close(200, "bye".into()).await;
    Ok(u64::from(purged?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::domain::{DeliveryId, SaleId, TenantId};
    use salesync_core::messages::{Envelope, StatusUpdate};

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn describes_envelopes_and_garbage() {
        let (tenant, sale) = (TenantId::new(), SaleId::new());
        let env = Envelope::new(
            tenant,
            sale,
            StatusUpdate {
                delivery_id: DeliveryId::new(),
                integration_id: salesync_core::domain::IntegrationId::new(),
                target_status: "x".into(),
                mapped_status: None,
                observed_at: chrono::Utc::now(),
                unmapped_reason: None,
            },
        );
        let h = headers(&[
            ("x-dead-reason", "poison: unknown schema version 9"),
            ("x-original-queue", "salesync.status"),
            ("x-original-routing-key", "sale.status"),
            ("x-dead-at", "2025-03-01T12:00:00Z"),
            ("traceparent", "00-a-b-01"),
        ]);
        let m = describe(
            Some("m1".into()),
            Some("sale.status".into()),
            h,
            &env.to_bytes(),
        );
        assert_eq!(
            m.reason.as_deref(),
            Some("poison: unknown schema version 9")
        );
        assert_eq!(m.original_queue.as_deref(), Some("salesync.status"));
        assert_eq!(m.original_routing_key.as_deref(), Some("sale.status"));
        assert_eq!(m.dead_at.as_deref(), Some("2025-03-01T12:00:00Z"));
        assert_eq!(m.tenant_id, Some(tenant.to_string()));
        assert_eq!(m.sale_id, Some(sale.to_string()));
        assert_eq!(m.body["type"], "sale.status");
        assert_eq!(m.headers.len(), 5);

        // (body, expected body value) — nothing a producer sends can break a peek.
        let cases: [(&[u8], serde_json::Value); 3] = [
            (b"not json", "not json".into()),
            (b"\xff\xfe", "\u{fffd}\u{fffd}".into()),
            (b"{\"a\": 1}", serde_json::json!({"a": 1})),
        ];
        for (body, want) in cases {
            let m = describe(None, None, BTreeMap::new(), body);
            assert_eq!(m.body, want);
            assert_eq!((m.reason, m.tenant_id), (None, None));
        }
    }
}
