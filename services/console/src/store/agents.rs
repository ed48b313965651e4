//! SQL of the provider's Agent users (migration 0014) and their tokens.
//! Every query is scoped by `tenant_id`.

use chrono::{DateTime, Utc};
use salesync_core::domain::{AgentId, OrganizationId, TenantId, TokenId};
use sqlx::PgConnection;

#[derive(sqlx::FromRow, Debug, Clone)]
pub struct AgentRow {
    pub id: AgentId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub token_id: Option<TokenId>,
    pub token_prefix: Option<String>,
    pub token_created_at: Option<DateTime<Utc>>,
    pub token_last_used_at: Option<DateTime<Utc>>,
}

/// An agent with its active token, if it has one.
const SELECT: &str = "SELECT a.id, a.organization_id, a.name, a.created_at,
        t.id AS token_id, t.token_prefix, t.created_at AS token_created_at,
        t.last_used_at AS token_last_used_at
     FROM agents a
     LEFT JOIN api_tokens t ON t.agent_id = a.id AND t.revoked_at IS NULL";

/// `None`: the organization has an agent of that name already.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    organization: OrganizationId,
    id: AgentId,
    name: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO agents (id, tenant_id, organization_id, name) VALUES ($1, $2, $3, $4)
         ON CONFLICT (organization_id, name) DO NOTHING",
    )
    .bind(id)
    .bind(tenant)
    .bind(organization)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    organization: OrganizationId,
) -> sqlx::Result<Vec<AgentRow>> {
    // `SELECT` is a constant; the values are bound.
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE a.tenant_id = $1 AND a.organization_id = $2 ORDER BY a.name"
    )))
    .bind(tenant)
    .bind(organization)
    .fetch_all(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: AgentId,
) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE a.tenant_id = $1 AND a.id = $2"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Locks the agent until the transaction ends (token changes of one agent
/// are serialised); `false` when the tenant has no such agent.
pub async fn lock(conn: &mut PgConnection, tenant: TenantId, id: AgentId) -> sqlx::Result<bool> {
    let found: Option<(AgentId,)> =
        sqlx::query_as("SELECT id FROM agents WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Revokes the agent's active token, if any. Every API process drops it
/// from its cache (trigger `api_tokens_revoked`).
pub async fn revoke_tokens(conn: &mut PgConnection, id: AgentId) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE agent_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
