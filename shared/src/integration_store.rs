//! Loading integrations from PostgreSQL into `IntegrationConfig`, and their
//! secrets (decrypted) for the services that talk to targets. Writes live in
//! ingest, which owns the management API.

use sqlx::{PgExecutor, Row};

use crate::crypto::SecretBox;
use crate::domain::ids::{IntegrationId, TenantId};
use crate::integration::{ForwardingMode, IntegrationConfig, TargetCredentials, TargetKind};

/// Columns `from_row` reads; select them (optionally table-qualified) in queries.
pub const COLUMNS: &str = "id, tenant_id, name, target_kind, target_url, enabled, mode, \
     trigger_statuses, conditions, mapping, send_opt_in, poll_status, status_url, status_map, final_statuses";

/// Builds a config from a row holding `COLUMNS`.
pub fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<IntegrationConfig> {
    let kind: String = row.try_get("target_kind")?;
    let mode: String = row.try_get("mode")?;
    let json = |col: &str| -> sqlx::Result<serde_json::Value> { row.try_get(col) };
    let decode = |col: &str, e: serde_json::Error| sqlx::Error::ColumnDecode {
        index: col.to_string(),
        source: Box::new(e),
    };
    Ok(IntegrationConfig {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        target_kind: TargetKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown target_kind '{kind}'").into()))?,
        target_url: row.try_get("target_url")?,
        enabled: row.try_get("enabled")?,
        mode: ForwardingMode::parse(&mode)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown mode '{mode}'").into()))?,
        trigger_statuses: row.try_get("trigger_statuses")?,
        conditions: serde_json::from_value(json("conditions")?)
            .map_err(|e| decode("conditions", e))?,
        mapping: serde_json::from_value(json("mapping")?).map_err(|e| decode("mapping", e))?,
        send_opt_in: row.try_get("send_opt_in")?,
        poll_status: row.try_get("poll_status")?,
        status_url: row.try_get("status_url")?,
        status_map: serde_json::from_value(json("status_map")?)
            .map_err(|e| decode("status_map", e))?,
        final_statuses: row.try_get("final_statuses")?,
    })
}

/// Every live (not deleted) integration of these tenants.
pub async fn load_for_tenants<'e>(
    db: impl PgExecutor<'e>,
    tenants: &[TenantId],
) -> sqlx::Result<Vec<IntegrationConfig>> {
    let ids: Vec<uuid::Uuid> = tenants.iter().map(|t| *t.as_uuid()).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM integrations WHERE tenant_id = ANY($1) AND deleted_at IS NULL"
    )))
    .bind(ids)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// One live integration, scoped to its tenant.
pub async fn load_one<'e>(
    db: impl PgExecutor<'e>,
    tenant: TenantId,
    id: IntegrationId,
) -> sqlx::Result<Option<IntegrationConfig>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM integrations WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL"
    )))
    .bind(id)
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Decrypted secrets of an integration: what the forwarder signs and authenticates with.
#[derive(Clone, Debug, Default)]
pub struct IntegrationSecrets {
    pub credentials: TargetCredentials,
    /// Standard Webhooks secrets, newest first.
    pub signing_secrets: Vec<String>,
}

pub fn decrypt_secrets(
    secret_box: &SecretBox,
    credentials_enc: Option<&[u8]>,
    signing_secrets_enc: &[u8],
) -> Result<IntegrationSecrets, crate::crypto::CryptoError> {
    Ok(IntegrationSecrets {
        credentials: match credentials_enc {
            Some(c) => secret_box.decrypt_json(c)?,
            None => TargetCredentials::default(),
        },
        signing_secrets: secret_box.decrypt_json(signing_secrets_enc)?,
    })
}
