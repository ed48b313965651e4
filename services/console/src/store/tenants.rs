//! Tenants, their API tokens (stored as hash + display prefix only) and
//! their status webhook.

use salesync_core::domain::{AgentId, TenantId, TokenId};
use sqlx::PgConnection;

pub async fn insert_tenant(conn: &mut PgConnection, id: TenantId, name: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn tenant_exists(conn: &mut PgConnection, id: TenantId) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await
}

pub struct NewTokenRow<'a> {
    pub id: TokenId,
    pub tenant_id: TenantId,
    pub name: &'a str,
    pub hash: &'a [u8],
    pub prefix: &'a str,
    pub integration_only: bool,
    /// Set for an Agent's token (which must be integration-only).
    pub agent_id: Option<AgentId>,
}

pub async fn insert_token(conn: &mut PgConnection, t: &NewTokenRow<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, tenant_id, name, token_hash, token_prefix, integration_only,
                                 agent_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.id)
    .bind(t.tenant_id)
    .bind(t.name)
    .bind(t.hash)
    .bind(t.prefix)
    .bind(t.integration_only)
    .bind(t.agent_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the tenant's status webhook URL and its (encrypted) signing secret.
pub async fn set_webhook(
    conn: &mut PgConnection,
    tenant: TenantId,
    url: &str,
    secret_enc: &[u8],
) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE tenants SET webhook_url = $2, webhook_secret_enc = $3 WHERE id = $1")
            .bind(tenant)
            .bind(url)
            .bind(secret_enc)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The tenant's display name.
pub async fn name(conn: &mut PgConnection, id: TenantId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}
