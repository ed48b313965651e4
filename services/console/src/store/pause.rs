//! SQL of pausing: mark an integration paused or resumed, release its held
//! deliveries, and find the integrations due for an auto-pause. `tenant` is
//! `Some` for the tenant API (every query is then scoped by it) and `None`
//! for operators.

use chrono::{DateTime, Utc};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId};
use sqlx::PgConnection;

/// Pauses a live integration that is not paused yet; `false` when there is
/// none such (unknown, deleted, or already paused — the first pause stands).
pub async fn pause(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    id: IntegrationId,
    by: &str,
    reason: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE integrations SET paused_at = now(), paused_by = $3, pause_reason = $4
         WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)
           AND deleted_at IS NULL AND paused_at IS NULL",
    )
    .bind(id)
    .bind(tenant)
    .bind(by)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Who paused the live integration (`None`: not paused), locked for a
/// resume; outer `None` when there is no such integration.
pub async fn lock_paused_by(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    id: IntegrationId,
) -> sqlx::Result<Option<Option<String>>> {
    sqlx::query_scalar(
        "SELECT paused_by FROM integrations
         WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) AND deleted_at IS NULL
         FOR UPDATE",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

/// Clears the pause, and the failure streak with it: auto-pause counts
/// afresh from the next failure.
pub async fn unpause(conn: &mut PgConnection, id: IntegrationId) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE integrations SET paused_at = NULL, paused_by = NULL, pause_reason = NULL,
             failing_since = NULL, failing_delivery_id = NULL
         WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A held delivery as released: what its fresh command is built from.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct Released {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub sale_id: SaleId,
    pub integration_id: IntegrationId,
    /// The integration's current target URL (the row now records it too).
    pub target_url: String,
    pub target_ref: String,
    /// Attempts made before it was held; the command carries the next one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Takes up to `limit` held deliveries of `integration` — if it is no
/// longer paused, or was deleted — out of `held`, back to `pending` (no
/// attempt made yet) or `retrying`, and returns them for their commands.
/// Rows another transaction holds locked are skipped (the next pass takes
/// them), so a release never waits on the forwarder.
pub async fn release_held(
    conn: &mut PgConnection,
    integration: IntegrationId,
    limit: i64,
) -> sqlx::Result<Vec<Released>> {
    sqlx::query_as(
        "WITH picked AS (
             SELECT d.id FROM deliveries d JOIN integrations i ON i.id = d.integration_id
             WHERE d.integration_id = $1 AND d.held_at IS NOT NULL
               AND (i.paused_at IS NULL OR i.deleted_at IS NOT NULL)
             ORDER BY d.held_at, d.id
             LIMIT $2
             FOR UPDATE OF d SKIP LOCKED)
         UPDATE deliveries d SET
             state = CASE WHEN d.attempts = 0 THEN 'pending' ELSE 'retrying' END,
             held_at = NULL, target_url = i.target_url, updated_at = now()
         FROM picked p, integrations i
         WHERE d.id = p.id AND i.id = d.integration_id AND d.held_at IS NOT NULL
         RETURNING d.id, d.tenant_id, d.sale_id, d.integration_id, d.target_url, d.target_ref,
                   d.attempts, d.created_at",
    )
    .bind(integration)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Integrations that are not paused (or were deleted) but still have held
/// deliveries: one probe of `deliveries_held` per integration, so
/// deliveries held for integrations that stay paused cost a pass nothing.
pub async fn released_with_held(
    conn: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<IntegrationId>> {
    sqlx::query_scalar(
        "SELECT i.id FROM integrations i
         WHERE (i.paused_at IS NULL OR i.deleted_at IS NOT NULL)
           AND EXISTS (SELECT 1 FROM deliveries d
                       WHERE d.integration_id = i.id AND d.held_at IS NOT NULL)
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Live integrations paused now, at most `limit`: (id, tenant, paused_by).
pub async fn paused_now(
    conn: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<(IntegrationId, TenantId, String)>> {
    sqlx::query_as(
        "SELECT id, tenant_id, paused_by FROM integrations
         WHERE paused_at IS NOT NULL AND deleted_at IS NULL
         ORDER BY paused_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// An integration the auto-pause just paused.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct AutoPaused {
    pub id: IntegrationId,
    pub tenant_id: TenantId,
    pub name: String,
    pub paused_at: DateTime<Utc>,
    pub reason: String,
    pub failing_since: DateTime<Utc>,
    pub failing_delivery_id: Option<DeliveryId>,
    /// The sale of that delivery, which the tenant's notification is filed
    /// under (a delivery belongs to a sale); `None` if it is gone.
    pub failing_sale_id: Option<SaleId>,
    /// The tenant's webhook; `None`: nobody to tell.
    pub webhook_url: Option<String>,
}

/// Pauses up to `limit` live integrations whose target has failed every
/// request since at least `after` ago, oldest streak first, and returns them.
/// Rows locked elsewhere are skipped (a tenant's PATCH or pause, another
/// replica's pass).
pub async fn auto_pause_due(
    conn: &mut PgConnection,
    after: std::time::Duration,
    reason: &str,
    limit: i64,
) -> sqlx::Result<Vec<AutoPaused>> {
    let after_secs = after.as_secs_f64();
    sqlx::query_as(
        "WITH due AS (
             SELECT id FROM integrations
             WHERE paused_at IS NULL AND deleted_at IS NULL
               AND failing_since <= now() - make_interval(secs => $1)
             ORDER BY failing_since, id
             LIMIT $3
             FOR UPDATE SKIP LOCKED),
         paused AS (
             UPDATE integrations i SET paused_at = now(), paused_by = 'auto', pause_reason = $2
             FROM due WHERE i.id = due.id
             RETURNING i.id, i.tenant_id, i.name, i.paused_at, i.pause_reason AS reason,
                       i.failing_since, i.failing_delivery_id)
         SELECT p.*, d.sale_id AS failing_sale_id, t.webhook_url
         FROM paused p
         JOIN tenants t ON t.id = p.tenant_id
         LEFT JOIN deliveries d ON d.id = p.failing_delivery_id AND d.tenant_id = p.tenant_id",
    )
    .bind(after_secs)
    .bind(reason)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Takes the auto-pause pass's lock for this transaction; `false` when
/// another replica holds it (that one does the pass).
pub async fn try_lock_pass(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('salesync.pause_pass'))")
        .fetch_one(conn)
        .await
}
