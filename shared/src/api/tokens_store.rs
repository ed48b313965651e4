//! API token lookups for authentication, and revocation.

use crate::domain::{OrganizationId, TenantId, TokenId};
use sqlx::PgPool;

/// An active (not revoked) token.
#[derive(sqlx::FromRow, Debug)]
pub struct ActiveToken {
    pub id: TokenId,
    pub tenant_id: TenantId,
    pub integration_only: bool,
    /// The partner organization, when the token is an Agent's.
    pub organization_id: Option<OrganizationId>,
    /// `last_used_at` is unset or older than a minute: worth refreshing.
    pub stale_last_used: bool,
}

/// The active token with this SHA-256, if any.
pub async fn find_active(pool: &PgPool, hash: &[u8]) -> sqlx::Result<Option<ActiveToken>> {
    sqlx::query_as(
        "SELECT t.id, t.tenant_id, t.integration_only, a.organization_id,
                (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')
                  AS stale_last_used
         FROM api_tokens t LEFT JOIN agents a ON a.id = t.agent_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await
}

/// Records that the token was used. Throttled to once a minute per token so
/// a busy integration does not turn every request into a write.
pub async fn touch(pool: &PgPool, id: TokenId) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = now()
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Revokes the tenant's token; `false` when the tenant has no such token.
/// Revoking twice is a no-op that still answers `true`. The database tells
/// every ingest process (trigger `api_tokens_revoked`, see `revocations`).
pub async fn revoke(pool: &PgPool, tenant: TenantId, id: TokenId) -> sqlx::Result<bool> {
    let found: Option<(TokenId,)> = sqlx::query_as(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND tenant_id = $2 RETURNING id",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}
