//! The wire contract of every queue message: one envelope (id, type, schema
//! version, tenant, sale, attempt, occurred_at) around a typed payload. JSON
//! Schemas for each live in `proto/schemas/` and a test holds them together.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{DeliveryId, IntegrationId, MessageId, SaleId, TenantId};
use crate::domain::sale::SaleInput;

/// Exchange every salesync message is published to.
pub const EXCHANGE: &str = "salesync";

/// A payload type knows its message type name and schema version.
pub trait Payload: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    const SCHEMA_VERSION: u32;
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Envelope<T> {
    pub id: MessageId,
    #[serde(rename = "type")]
    pub kind: String,
    pub schema_version: u32,
    pub tenant_id: TenantId,
    pub sale_id: SaleId,
    pub attempt: u32,
    pub occurred_at: DateTime<Utc>,
    pub payload: T,
}

impl<T: Payload> Envelope<T> {
    pub fn new(tenant_id: TenantId, sale_id: SaleId, payload: T) -> Self {
        Self {
            id: MessageId::new(),
            kind: T::TYPE.to_string(),
            schema_version: T::SCHEMA_VERSION,
            tenant_id,
            sale_id,
            attempt: 1,
            occurred_at: Utc::now(),
            payload,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data structures to JSON cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a message body, refusing other types and unknown schema versions —
    /// such a message is poison for this consumer and must be dead-lettered.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "type")]
            kind: String,
            schema_version: u32,
        }
        let head: Head =
            serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if head.kind != T::TYPE {
            return Err(DecodeError::WrongType(head.kind));
        }
        if head.schema_version != T::SCHEMA_VERSION {
            return Err(DecodeError::UnknownVersion(head.schema_version));
        }
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("undecodable message: {0}")]
    Malformed(String),
    #[error("unexpected message type '{0}'")]
    WrongType(String),
    #[error("unknown schema version {0}")]
    UnknownVersion(u32),
}

/// What made ingest announce a sale.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// The sale was accepted for the first time.
    Created,
    /// The source changed the sale's status.
    StatusChanged,
    /// A person asked to send this sale through one (manual-mode) integration.
    Manual { integration_id: IntegrationId },
}

impl Trigger {
    pub fn routing_key(&self) -> &'static str {
        match self {
            Trigger::Created => "sale.ingested",
            Trigger::StatusChanged => "sale.status_changed",
            Trigger::Manual { .. } => "sale.forward_requested",
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Created => "created",
            Trigger::StatusChanged => "status_changed",
            Trigger::Manual { .. } => "manual",
        }
    }
}

/// ingest → condition-filter: a sale to be checked against the tenant's integrations.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SaleEvent {
    pub trigger: Trigger,
    /// The sale's status at the time of the event.
    pub status: String,
    /// When ingest accepted the sale (for end-to-end latency).
    pub accepted_at: DateTime<Utc>,
    pub sale: SaleInput,
}

impl Payload for SaleEvent {
    const TYPE: &'static str = "sale.event";
    const SCHEMA_VERSION: u32 = 1;
}

/// Whether messages of this type may travel bundled (`amqp::bundle`): the
/// two per-sale hops. Both consume loops open bundles (the pipelined one
/// hands each part to the forwarder on its own). Status updates, a few per
/// watched sale, go one by one: not measured to be worth it.
pub fn travels_bundled(message_type: &str) -> bool {
    message_type == SaleEvent::TYPE || message_type == ForwardCommand::TYPE
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A sale sent to an integration's target.
    Forward,
    /// A status change reported to the sale's own tenant's webhook.
    StatusWebhook,
    /// A provider's catalogue change, to a partner's subscribed URL. About
    /// no sale: its envelope's `sale_id` is [`NO_SALE`].
    CatalogueCallback,
}

impl Purpose {
    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::Forward => "forward",
            Purpose::StatusWebhook => "status_webhook",
            Purpose::CatalogueCallback => "catalogue_callback",
        }
    }

    /// Every purpose, for parsing the stored name back.
    pub const ALL: [Purpose; 3] = [
        Purpose::Forward,
        Purpose::StatusWebhook,
        Purpose::CatalogueCallback,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The envelope's `sale_id` of a message about no sale (a catalogue
/// callback's forward command): the nil UUID.
pub const NO_SALE: SaleId = SaleId::from_uuid(uuid::Uuid::nil());

/// condition-filter / ingest → forwarder: send one delivery. The body to send
/// is stored with the delivery (already in the target's shape), so the
/// command only names it: a sale crosses the broker and the outbox once in
/// full, not twice.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ForwardCommand {
    pub delivery_id: DeliveryId,
    pub purpose: Purpose,
    pub integration_id: Option<IntegrationId>,
    pub target_url: String,
    /// Sent as `Idempotency-Key` and `webhook-id` on every attempt.
    pub target_ref: String,
    pub accepted_at: DateTime<Utc>,
    /// Only in commands from producers older than the body-less contract;
    /// the forwarder uses it when the delivery row has no body (rows made
    /// before bodies were stored). New producers leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

impl Payload for ForwardCommand {
    const TYPE: &'static str = "sale.forward";
    const SCHEMA_VERSION: u32 = 1;
}

pub const ROUTING_FORWARD: &str = "sale.forward";

/// status-poller → ingest: a target reported a (new) status for a forwarded sale.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub delivery_id: DeliveryId,
    pub integration_id: IntegrationId,
    /// The status as the target names it.
    pub target_status: String,
    /// The source's status it maps to; `None` when unmapped (recorded, not applied).
    pub mapped_status: Option<String>,
    pub observed_at: DateTime<Utc>,
    /// Why the status is not synchronised, in words for the sale's history
    /// (set with `mapped_status: None` by a poller that knows; absent in
    /// older messages, whose readers fall back on a generic note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped_reason: Option<String>,
}

impl Payload for StatusUpdate {
    const TYPE: &'static str = "sale.status";
    const SCHEMA_VERSION: u32 = 1;
}

pub const ROUTING_STATUS: &str = "sale.status";
pub const ROUTING_DEAD: &str = "sale.dead";

/// Peeks at the type, tenant and sale of any envelope, for dead-letter records.
pub fn peek_envelope(body: &[u8]) -> Option<(String, TenantId, SaleId)> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: String,
        tenant_id: TenantId,
        sale_id: SaleId,
    }
    let h: Head = serde_json::from_slice(body).ok()?;
    Some((h.kind, h.tenant_id, h.sale_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update() -> StatusUpdate {
        StatusUpdate {
            delivery_id: DeliveryId::new(),
            integration_id: IntegrationId::new(),
            target_status: "processed".into(),
            mapped_status: Some("completed".into()),
            observed_at: Utc::now(),
            unmapped_reason: None,
        }
    }

    #[test]
    fn envelope_round_trips() {
        let e = Envelope::new(TenantId::new(), SaleId::new(), update());
        let back = Envelope::<StatusUpdate>::decode(&e.to_bytes()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn status_update_unmapped_reason_is_optional() {
        let mut u = update();
        u.mapped_status = None;
        u.unmapped_reason = Some("not mapped".into());
        let e = Envelope::new(TenantId::new(), SaleId::new(), u);
        assert_eq!(
            Envelope::<StatusUpdate>::decode(&e.to_bytes()).unwrap(),
            e,
            "a reason round-trips"
        );
        // A message from before the field existed still decodes, without one;
        // and a message without a reason does not carry the key.
        let mut v: serde_json::Value = serde_json::from_slice(&e.to_bytes()).unwrap();
        v["payload"]
            .as_object_mut()
            .unwrap()
            .remove("unmapped_reason");
        let old = Envelope::<StatusUpdate>::decode(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(old.payload.unmapped_reason, None);
        let none = serde_json::to_value(update()).unwrap();
        assert!(none.get("unmapped_reason").is_none(), "{none}");
    }

    #[test]
    fn decode_refuses_poison() {
        let e = Envelope::new(TenantId::new(), SaleId::new(), update());
        assert!(matches!(
            Envelope::<ForwardCommand>::decode(&e.to_bytes()),
            Err(DecodeError::WrongType(t)) if t == "sale.status"
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&e.to_bytes()).unwrap();
        v["schema_version"] = 99.into();
        assert_eq!(
            Envelope::<StatusUpdate>::decode(&serde_json::to_vec(&v).unwrap()),
            Err(DecodeError::UnknownVersion(99))
        );
        assert!(matches!(
            Envelope::<StatusUpdate>::decode(b"\xff not json"),
            Err(DecodeError::Malformed(_))
        ));
    }
}
