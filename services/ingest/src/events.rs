//! The messages ingest produces, built in one place so their shape matches
//! docs/contracts.md: `SaleEvent`s for condition-filter and the status
//! webhook `ForwardCommand` for the forwarder. Build them inside the span of
//! the request or message that caused them: `OutboxMessage::from_envelope`
//! captures the current trace context, so the trace continues downstream.

use chrono::{DateTime, SecondsFormat, Utc};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, SaleInput, TenantId};
use salesync_core::messages::{Envelope, SaleEvent, Trigger};
use salesync_core::outbox::OutboxMessage;
use serde_json::json;

/// A `SaleEvent` envelope, routed by its trigger.
pub fn sale_event(
    tenant_id: TenantId,
    sale_id: SaleId,
    trigger: Trigger,
    sale: SaleInput,
) -> OutboxMessage {
    let routing_key = trigger.routing_key();
    let envelope = Envelope::new(
        tenant_id,
        sale_id,
        SaleEvent {
            trigger,
            status: sale.status.clone(),
            accepted_at: Utc::now(),
            sale,
        },
    );
    OutboxMessage::from_envelope(routing_key, &envelope)
}

/// The stored sale (as received) with its `status` replaced by the current one,
/// so an event always carries the sale as it stands now.
pub fn sale_with_status(
    stored: serde_json::Value,
    status: &str,
) -> Result<SaleInput, serde_json::Error> {
    let mut sale: SaleInput = serde_json::from_value(stored)?;
    sale.status = status.to_string();
    Ok(sale)
}

/// One status change to tell the sale's own tenant about.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusNotice {
    pub sale_id: SaleId,
    pub external_id: String,
    pub status: String,
    pub previous_status: String,
    /// `source` or `integration`.
    pub origin: &'static str,
    pub integration_id: Option<IntegrationId>,
    pub target_status: Option<String>,
}

/// The body POSTed to a tenant's status webhook (docs/contracts.md).
pub fn status_webhook_body(n: &StatusNotice, timestamp: DateTime<Utc>) -> serde_json::Value {
    json!({
        "type": "sale.status_changed",
        "timestamp": timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {
            "sale_id": n.sale_id,
            "external_id": n.external_id,
            "status": n.status,
            "previous_status": n.previous_status,
            "origin": n.origin,
            "integration_id": n.integration_id,
            "target_status": n.target_status,
        }
    })
}

/// The forwarder command that delivers one status webhook, whose body
/// (`status_webhook_body`) is stored with the delivery. `now` is when the
/// change was accepted (for end-to-end latency).
pub fn status_webhook_command(
    tenant_id: TenantId,
    delivery_id: DeliveryId,
    target_url: &str,
    notice: &StatusNotice,
    now: DateTime<Utc>,
) -> OutboxMessage {
    salesync_core::tenant_webhook::tenant_webhook_command(
        tenant_id,
        notice.sale_id,
        delivery_id,
        target_url,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::domain::sample_sale;
    use salesync_core::messages::{ForwardCommand, Purpose};

    fn notice() -> StatusNotice {
        StatusNotice {
            sale_id: SaleId::new(),
            external_id: "pos-1".into(),
            status: "paid".into(),
            previous_status: "completed".into(),
            origin: "integration",
            integration_id: Some(IntegrationId::new()),
            target_status: Some("settled".into()),
        }
    }

    #[test]
    fn sale_events_are_routed_by_trigger() {
        let cases = [
            (Trigger::Created, "sale.ingested"),
            (Trigger::StatusChanged, "sale.status_changed"),
            (
                Trigger::Manual {
                    integration_id: IntegrationId::new(),
                },
                "sale.forward_requested",
            ),
        ];
        for (trigger, key) in cases {
            let m = sale_event(
                TenantId::new(),
                SaleId::new(),
                trigger.clone(),
                sample_sale("s"),
            );
            assert_eq!(m.routing_key, key);
            assert_eq!(m.message_type, "sale.event");
            let env = Envelope::<SaleEvent>::decode(&m.body).unwrap();
            assert_eq!(env.payload.trigger, trigger);
            assert_eq!(env.payload.status, "completed");
        }
    }

    #[test]
    fn stored_sale_gets_the_current_status() {
        let stored = serde_json::to_value(sample_sale("s")).unwrap();
        let sale = sale_with_status(stored, "paid").unwrap();
        assert_eq!(sale.status, "paid");
        assert!(sale_with_status(json!({"nope": 1}), "paid").is_err());
    }

    #[test]
    fn webhook_body_follows_the_contract() {
        let n = notice();
        let ts = DateTime::parse_from_rfc3339("2025-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = status_webhook_body(&n, ts);
        assert_eq!(body["type"], "sale.status_changed");
        assert_eq!(body["timestamp"], "2025-03-01T12:00:00.000Z");
        let data = body["data"].as_object().unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "external_id",
                "integration_id",
                "origin",
                "previous_status",
                "sale_id",
                "status",
                "target_status"
            ]
        );
        assert_eq!(data["previous_status"], "completed");
    }

    #[test]
    fn webhook_command_targets_the_forwarder() {
        let n = notice();
        let tenant = TenantId::new();
        let delivery = DeliveryId::new();
        let now = Utc::now();
        let m = status_webhook_command(tenant, delivery, "https://hook.example/x", &n, now);
        assert_eq!(m.routing_key, "sale.forward");
        let env = Envelope::<ForwardCommand>::decode(&m.body).unwrap();
        assert_eq!(env.tenant_id, tenant);
        assert_eq!(env.sale_id, n.sale_id);
        assert_eq!(env.payload.purpose, Purpose::StatusWebhook);
        assert_eq!(env.payload.integration_id, None);
        assert_eq!(env.payload.target_ref, delivery.to_string());
        assert_eq!(env.payload.accepted_at, now);
        assert_eq!(
            env.payload.body, None,
            "the body is stored with the delivery"
        );
    }
}
