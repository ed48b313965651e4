//! Operator routes (`ADMIN_TOKEN`): create tenants and issue tokens. The work
//! is in `tenancy`, shared with the `ingest admin` command.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::app::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::routes::parse_id;
use crate::tenancy::{self, CreatedTenant, CreatedToken, NewTenant, NewToken};

/// `POST /admin/tenants`
pub async fn create_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(req): JsonBody<NewTenant>,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    let created = tenancy::create_tenant(&state.pool, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `POST /admin/tenants/{tenant_id}/tokens`
pub async fn create_token(
    State(state): State<AppState>,
    _admin: Admin,
    Path(tenant_id): Path<String>,
    JsonBody(req): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let tenant_id = parse_id(&tenant_id, "tenant")?;
    let created = tenancy::create_token(&state.pool, tenant_id, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}
