//! Operator accounts of the web console: a name, a token (stored as its
//! SHA-256, shown once) and the tenants the operator may see (`None`: all).

use salesync_core::domain::TenantId;
use salesync_core::tokens;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Serialize, Debug)]
pub struct CreatedOperator {
    pub id: Uuid,
    pub name: String,
    /// Shown once; sign in to the console with it.
    pub token: String,
    /// `null`: every tenant.
    pub tenants: Option<Vec<TenantId>>,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("an operator named '{0}' already exists")]
    NameTaken(String),
    #[error("no tenant {0}")]
    UnknownTenant(TenantId),
    #[error("the name must not be blank")]
    BlankName,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Creates an operator seeing `tenants` (empty: every tenant).
pub async fn create(
    pool: &PgPool,
    name: &str,
    tenants: &[TenantId],
) -> Result<CreatedOperator, OperatorError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(OperatorError::BlankName);
    }
    // One query for all: the first listed tenant that does not exist.
    let unknown: Option<TenantId> = sqlx::query_scalar(
        "SELECT t FROM unnest($1::uuid[]) WITH ORDINALITY AS u(t, n)
         WHERE NOT EXISTS (SELECT 1 FROM tenants WHERE id = u.t) ORDER BY n LIMIT 1",
    )
    .bind(tenants)
    .fetch_optional(pool)
    .await?;
    if let Some(t) = unknown {
        return Err(OperatorError::UnknownTenant(t));
    }
    let scope = (!tenants.is_empty()).then(|| tenants.to_vec());
    let token = tokens::generate();
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO operators (id, name, token_hash, tenant_ids) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(id)
    .bind(name)
    .bind(&token.hash)
    .bind(&scope)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(OperatorError::NameTaken(name.to_string()));
    }
    Ok(CreatedOperator {
        id,
        name: name.to_string(),
        token: token.token,
        tenants: scope,
    })
}

/// Revokes the operator's token (and so its sessions); `false` when there
/// is no such active operator.
pub async fn revoke(pool: &PgPool, name: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE operators SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name.trim())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
