//! Creating tenants and API tokens — one code path for the admin endpoints
//! and the `console admin create-tenant` command. A token is returned once and
//! only its SHA-256 and a short display prefix are stored.

use salesync_core::domain::{FieldError, TenantId, TokenId};
use salesync_core::tokens;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::store;
use crate::store::tenants::NewTokenRow;
use salesync_core::api::ApiError;
use salesync_core::api::field_checks::check_name;

/// Token name used when none is given.
pub const DEFAULT_TOKEN_NAME: &str = "default";

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// A display name, unique among tenants.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// The first token's name; `default` when absent.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub token_name: Option<String>,
    #[serde(default)]
    pub integration_only: bool,
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct CreatedTenant {
    pub tenant_id: TenantId,
    pub name: String,
    pub token: String,
    pub token_id: TokenId,
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    #[serde(default)]
    pub integration_only: bool,
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct CreatedToken {
    pub token_id: TokenId,
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("invalid input: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("a tenant named '{0}' already exists")]
    NameTaken(String),
    #[error("tenant not found")]
    TenantNotFound,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<TenancyError> for ApiError {
    fn from(e: TenancyError) -> Self {
        match e {
            TenancyError::Invalid(f) => ApiError::Validation(f),
            e @ TenancyError::NameTaken(_) => ApiError::Conflict {
                code: "tenant_exists",
                message: e.to_string(),
            },
            TenancyError::TenantNotFound => ApiError::NotFound("tenant"),
            TenancyError::Db(e) => e.into(),
        }
    }
}

fn check_names(names: &[(&str, &str)]) -> Result<(), TenancyError> {
    let errors: Vec<FieldError> = names
        .iter()
        .filter_map(|(field, v)| check_name(v).err().map(|p| FieldError::new(*field, p)))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(TenancyError::Invalid(errors))
    }
}

/// Creates a tenant and its first token in one transaction.
pub async fn create_tenant(pool: &PgPool, req: NewTenant) -> Result<CreatedTenant, TenancyError> {
    let name = req.name.trim().to_string();
    let token_name = req
        .token_name
        .unwrap_or_else(|| DEFAULT_TOKEN_NAME.to_string());
    check_names(&[("name", &name), ("token_name", &token_name)])?;
    let tenant_id = TenantId::new();
    let token_id = TokenId::new();
    let token = tokens::generate();
    let mut tx = pool.begin().await?;
    match store::tenants::insert_tenant(&mut tx, tenant_id, &name).await {
        Err(e) if store::is_unique_violation(&e) => return Err(TenancyError::NameTaken(name)),
        other => other?,
    }
    store::tenants::insert_token(
        &mut tx,
        &NewTokenRow {
            id: token_id,
            tenant_id,
            name: &token_name,
            hash: &token.hash,
            prefix: &token.display_prefix,
            integration_only: req.integration_only,
            agent_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%tenant_id, %token_id, "tenant created");
    Ok(CreatedTenant {
        tenant_id,
        name,
        token: token.token,
        token_id,
    })
}

/// Issues another token for an existing tenant.
pub async fn create_token(
    pool: &PgPool,
    tenant_id: TenantId,
    req: NewToken,
) -> Result<CreatedToken, TenancyError> {
    check_names(&[("name", &req.name)])?;
    let token_id = TokenId::new();
    let token = tokens::generate();
    let mut conn = pool.acquire().await?;
    if !store::tenants::tenant_exists(&mut conn, tenant_id).await? {
        return Err(TenancyError::TenantNotFound);
    }
    let inserted = store::tenants::insert_token(
        &mut conn,
        &NewTokenRow {
            id: token_id,
            tenant_id,
            name: req.name.trim(),
            hash: &token.hash,
            prefix: &token.display_prefix,
            integration_only: req.integration_only,
            agent_id: None,
        },
    )
    .await;
    match inserted {
        // The tenant was deleted between the check and the insert.
        Err(e) if store::is_foreign_key_violation(&e) => return Err(TenancyError::TenantNotFound),
        other => other?,
    }
    tracing::info!(%tenant_id, %token_id, "token created");
    Ok(CreatedToken {
        token_id,
        token: token.token,
    })
}
