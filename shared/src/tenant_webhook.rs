//! The tenant's own webhook (`PUT /v1/webhook`): salesync tells the tenant
//! about its sales' status changes (ingest's status consumer) and about
//! paused integrations (console's pause). Both file a delivery row and a
//! forwarder command in one transaction, through these two.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::{DeliveryId, SaleId, TenantId};
use crate::messages::{Envelope, ForwardCommand, Purpose, ROUTING_FORWARD};
use crate::outbox::OutboxMessage;

pub struct NewWebhookDelivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub sale_id: SaleId,
    pub dedupe_key: String,
    pub target_url: String,
    /// The webhook body as it will be sent (kept for replays).
    pub body: serde_json::Value,
}

/// Inserts status-webhook deliveries; returns the ids actually inserted
/// (a dedupe key already present means the webhook was already queued).
pub async fn insert_webhook_deliveries(
    conn: &mut PgConnection,
    rows: &[NewWebhookDelivery],
) -> sqlx::Result<Vec<DeliveryId>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        "INSERT INTO deliveries (id, tenant_id, sale_id, integration_id, purpose, dedupe_key,
                                 target_url, target_ref, body)
         SELECT u.id, u.tenant_id, u.sale_id, NULL, 'status_webhook', u.dedupe_key,
                u.target_url, u.id::text, u.body
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[])
              AS u(id, tenant_id, sale_id, dedupe_key, target_url, body)
         ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.sale_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.dedupe_key.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.target_url.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.body.clone()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

/// The forwarder command that delivers one event to the tenant's own
/// webhook (signed with the tenant's webhook secret), filed under `sale_id`;
/// the body is stored with the delivery. `delivery_id`'s string form is the
/// `target_ref` (Idempotency-Key / webhook-id).
pub fn tenant_webhook_command(
    tenant_id: TenantId,
    sale_id: SaleId,
    delivery_id: DeliveryId,
    target_url: &str,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let envelope = Envelope::new(
        tenant_id,
        sale_id,
        ForwardCommand {
            delivery_id,
            purpose: Purpose::StatusWebhook,
            integration_id: None,
            target_url: target_url.to_string(),
            target_ref: delivery_id.to_string(),
            accepted_at: now,
            body: None,
        },
    );
    OutboxMessage::from_envelope(ROUTING_FORWARD, &envelope)
}
