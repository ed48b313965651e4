//! Rows the API cannot make on its own: dead deliveries (normally the work of
//! condition-filter and the forwarder) with an attempt log, written straight
//! to the database so dead-letter tests need no broker.

use chrono::{DateTime, Utc};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId};
use serde_json::{Value, json};
use sqlx::PgPool;

/// A dead delivery to seed.
pub struct Dead {
    pub tenant: TenantId,
    pub sale: SaleId,
    /// `None`: a status webhook to the tenant's own webhook.
    pub integration: Option<IntegrationId>,
    pub dead_at: DateTime<Utc>,
    /// `None`: a row from before request bodies were recorded.
    pub body: Option<Value>,
    /// The state to leave it in (`dead` unless testing refusals).
    pub state: &'static str,
}

impl Dead {
    pub fn new(tenant: TenantId, sale: SaleId, integration: Option<IntegrationId>) -> Self {
        Self {
            tenant,
            sale,
            integration,
            dead_at: Utc::now(),
            body: Some(json!({"type": "sale.forwarded", "data": {"sale_id": sale}})),
            state: "dead",
        }
    }
}

pub const TARGET_URL: &str = "https://target.example/in";
pub const DEAD_REASON: &str = "target answered 400 Bad Request: unknown product";

/// Inserts the delivery with two attempts (a retry, then the fatal one).
pub async fn dead_delivery(pool: &PgPool, d: Dead) -> DeliveryId {
    let id = DeliveryId::new();
    let purpose = if d.integration.is_some() {
        "forward"
    } else {
        "status_webhook"
    };
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, sale_id, integration_id, purpose, dedupe_key,
                                 target_url, target_ref, state, attempts, last_error, dead_reason,
                                 body, updated_at, delivered_at, dead_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $1::text, $8, 2, $9, $10, $11, $12,
                 CASE WHEN $8 = 'delivered' THEN now() END,
                 CASE WHEN $8 = 'dead' THEN $12 END)",
    )
    .bind(id)
    .bind(d.tenant)
    .bind(d.sale)
    .bind(d.integration)
    .bind(purpose)
    .bind(format!("seed:{id}"))
    .bind(TARGET_URL)
    .bind(d.state)
    .bind(DEAD_REASON)
    .bind((d.state == "dead").then_some(DEAD_REASON))
    .bind(d.body)
    .bind(d.dead_at)
    .execute(pool)
    .await
    .expect("seed delivery");
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                                        error, outcome)
         VALUES ($1, 1, $2, 12, 503, 'target answered 503', 'retry'),
                ($1, 2, $2, 15, 400, $3, 'dead')",
    )
    .bind(id)
    .bind(d.dead_at)
    .bind(DEAD_REASON)
    .execute(pool)
    .await
    .expect("seed attempts");
    id
}
