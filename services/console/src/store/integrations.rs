//! Integration rows: the management API's writes, and reads that add what
//! the view shows beyond `IntegrationConfig` (whether credentials are set,
//! timestamps). Reading the config reuses `salesync_core::integration_store`.

use chrono::{DateTime, Utc};
use salesync_core::domain::{IntegrationId, TenantId};
use salesync_core::integration::IntegrationConfig;
use salesync_core::integration_store::{COLUMNS, from_row};
use serde::Serialize;
use sqlx::{PgConnection, Row};

use crate::integration_input::{ProviderSettings, Valid};
use salesync_core::catalogue::RemovalPolicy;

/// An integration as stored, minus its secrets.
#[derive(Debug, Clone)]
pub struct IntegrationRow {
    pub config: IntegrationConfig,
    pub has_credentials: bool,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `None` while not paused.
    pub pause: Option<PauseState>,
    /// Since when every request to the target has failed (`None`: the last
    /// one succeeded, or none failed yet).
    pub failing_since: Option<DateTime<Utc>>,
    pub provider: ProviderSettings,
}

/// Who paused an integration, when and why.
#[derive(Serialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct PauseState {
    pub paused_at: DateTime<Utc>,
    /// `tenant`, `operator` or `auto`.
    pub paused_by: String,
    pub reason: String,
}

fn pause_of(row: &sqlx::postgres::PgRow) -> sqlx::Result<Option<PauseState>> {
    let at: Option<DateTime<Utc>> = row.try_get("paused_at")?;
    let by: Option<String> = row.try_get("paused_by")?;
    let reason: Option<String> = row.try_get("pause_reason")?;
    // A CHECK keeps the three set together.
    Ok(match (at, by, reason) {
        (Some(paused_at), Some(paused_by), Some(reason)) => Some(PauseState {
            paused_at,
            paused_by,
            reason,
        }),
        _ => None,
    })
}

fn row_of(row: &sqlx::postgres::PgRow) -> sqlx::Result<IntegrationRow> {
    Ok(IntegrationRow {
        config: from_row(row)?,
        has_credentials: row.try_get("has_credentials")?,
        last_synced_at: row.try_get("last_synced_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        pause: pause_of(row)?,
        failing_since: row.try_get("failing_since")?,
        provider: ProviderSettings {
            provider_url: row.try_get("provider_url")?,
            removed_product_policy: RemovalPolicy::parse(
                row.try_get::<&str, _>("removed_product_policy")?,
            )
            .unwrap_or_default(),
        },
    })
}

const EXTRA: &str = "credentials_enc IS NOT NULL AS has_credentials, last_synced_at, created_at,
    updated_at, paused_at, paused_by, pause_reason, failing_since, provider_url,
    removed_product_policy";

/// What to do with `credentials_enc` on update.
pub enum CredentialsWrite {
    Keep,
    Clear,
    Set(Vec<u8>),
}

pub async fn insert(
    conn: &mut PgConnection,
    id: IntegrationId,
    tenant: TenantId,
    v: &Valid,
    credentials_enc: Option<Vec<u8>>,
    signing_secrets_enc: Vec<u8>,
) -> sqlx::Result<IntegrationRow> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO integrations (id, tenant_id, name, target_kind, target_url, credentials_enc,
             signing_secrets_enc, enabled, mode, trigger_statuses, conditions, mapping,
             send_opt_in, poll_status, status_url, status_map, final_statuses, provider_url,
             removed_product_policy)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19)
         RETURNING {COLUMNS}, {EXTRA}"
    )))
    .bind(id)
    .bind(tenant)
    .bind(&v.name)
    .bind(v.target_kind.as_str())
    .bind(&v.target_url)
    .bind(credentials_enc)
    .bind(signing_secrets_enc)
    .bind(v.enabled)
    .bind(v.mode.as_str())
    .bind(&v.trigger_statuses)
    .bind(serde_json::to_value(&v.conditions).unwrap_or_default())
    .bind(serde_json::to_value(&v.mapping).unwrap_or_default())
    .bind(v.send_opt_in)
    .bind(v.poll_status)
    .bind(&v.status_url)
    .bind(serde_json::to_value(&v.status_map).unwrap_or_default())
    .bind(&v.final_statuses)
    .bind(&v.provider_url)
    .bind(v.removed_product_policy.as_str())
    .fetch_one(conn)
    .await?;
    row_of(&row)
}

/// Every live integration of the tenant, oldest first.
pub async fn list(conn: &mut PgConnection, tenant: TenantId) -> sqlx::Result<Vec<IntegrationRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, {EXTRA} FROM integrations
         WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
    )))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.iter().map(row_of).collect()
}

/// One live integration of the tenant; `lock` takes a row lock for a
/// read-modify-write (PATCH), so concurrent patches do not lose each other.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IntegrationId,
    lock: bool,
) -> sqlx::Result<Option<IntegrationRow>> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, {EXTRA} FROM integrations
         WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL{suffix}"
    )))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(row_of).transpose()
}

pub async fn update(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IntegrationId,
    v: &Valid,
    credentials: CredentialsWrite,
) -> sqlx::Result<Option<IntegrationRow>> {
    let (set_credentials, credentials_enc) = match credentials {
        CredentialsWrite::Keep => (false, None),
        CredentialsWrite::Clear => (true, None),
        CredentialsWrite::Set(enc) => (true, Some(enc)),
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE integrations SET name = $3, target_kind = $4, target_url = $5, enabled = $6,
             mode = $7, trigger_statuses = $8, conditions = $9, mapping = $10, send_opt_in = $11,
             poll_status = $12, status_url = $13, status_map = $14, final_statuses = $15,
             credentials_enc = CASE WHEN $16 THEN $17 ELSE credentials_enc END,
             provider_url = $18, removed_product_policy = $19,
             updated_at = now()
         WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
         RETURNING {COLUMNS}, {EXTRA}"
    )))
    .bind(id)
    .bind(tenant)
    .bind(&v.name)
    .bind(v.target_kind.as_str())
    .bind(&v.target_url)
    .bind(v.enabled)
    .bind(v.mode.as_str())
    .bind(&v.trigger_statuses)
    .bind(serde_json::to_value(&v.conditions).unwrap_or_default())
    .bind(serde_json::to_value(&v.mapping).unwrap_or_default())
    .bind(v.send_opt_in)
    .bind(v.poll_status)
    .bind(&v.status_url)
    .bind(serde_json::to_value(&v.status_map).unwrap_or_default())
    .bind(&v.final_statuses)
    .bind(set_credentials)
    .bind(credentials_enc)
    .bind(&v.provider_url)
    .bind(v.removed_product_policy.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(row_of).transpose()
}

/// Puts the integration's delivered, not-yet-final deliveries back in the
/// status-poller's queue. The poller retires deliveries of integrations that
/// don't poll; when polling is switched on (or a status URL set) they resume.
pub async fn resume_polling(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IntegrationId,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE deliveries SET poll_after = now()
         WHERE integration_id = $1 AND tenant_id = $2 AND purpose = 'forward'
           AND state = 'delivered' AND NOT target_status_final AND poll_after IS NULL",
    )
    .bind(id)
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Soft delete: the row stays for the delivery history that points at it,
/// and disabled, so nothing is forwarded to it any more.
pub async fn soft_delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IntegrationId,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE integrations SET deleted_at = now(), enabled = false, updated_at = now()
         WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The encrypted signing secrets, locked for rotation.
pub async fn lock_signing_secrets(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IntegrationId,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar(
        "SELECT signing_secrets_enc FROM integrations
         WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

pub async fn set_signing_secrets(
    conn: &mut PgConnection,
    id: IntegrationId,
    signing_secrets_enc: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE integrations SET signing_secrets_enc = $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(signing_secrets_enc)
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant of a live integration (operators name integrations by id only).
pub async fn tenant_of(
    conn: &mut PgConnection,
    id: IntegrationId,
) -> sqlx::Result<Option<TenantId>> {
    sqlx::query_scalar("SELECT tenant_id FROM integrations WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(conn)
        .await
}
