//! Erasure of a customer's personal data: the tenant erases from its own
//! sales (`POST /v1/erasures`) and lists what it erased (`GET
//! /v1/erasures`); an operator erases on a tenant's behalf (`POST
//! /admin/tenants/{tenant_id}/erasures`). The work is in `erasure`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::{Admin, Caller};
use crate::erasure::{self, Erased, ErasureRequest};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::routes::parse_id;
use crate::store::erasures::{self, ErasureRecord, Requester};

/// Most erasures `GET /v1/erasures` lists.
const LIST_LIMIT: i64 = 100;

/// `POST /v1/erasures`
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<ErasureRequest>,
) -> Result<Json<Erased>, ApiError> {
    let by = Requester::Token(caller.token_id);
    Ok(Json(
        erasure::erase(&state.pool, caller.tenant_id, &req, by).await?,
    ))
}

#[derive(Serialize, Debug)]
pub struct ErasureList {
    pub erasures: Vec<ErasureRecord>,
}

/// `GET /v1/erasures` — the tenant's latest erasures, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ErasureList>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let erasures = erasures::list(&mut conn, caller.tenant_id, LIST_LIMIT).await?;
    Ok(Json(ErasureList { erasures }))
}

/// `POST /admin/tenants/{tenant_id}/erasures`
pub async fn admin_erase(
    State(state): State<AppState>,
    _admin: Admin,
    Path(tenant_id): Path<String>,
    JsonBody(req): JsonBody<ErasureRequest>,
) -> Result<Json<Erased>, ApiError> {
    let tenant = parse_id(&tenant_id, "tenant")?;
    let mut conn = state.pool.acquire().await?;
    if !crate::store::tenants::tenant_exists(&mut conn, tenant).await? {
        return Err(ApiError::NotFound("tenant"));
    }
    drop(conn);
    Ok(Json(
        erasure::erase(&state.pool, tenant, &req, Requester::Admin).await?,
    ))
}
