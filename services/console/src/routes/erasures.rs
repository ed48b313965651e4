//! Erasure of a customer's personal data: the tenant erases from its own
//! sales (`POST /v1/erasures`) and lists what it erased (`GET
//! /v1/erasures`); an operator erases on a tenant's behalf (`POST
//! /admin/tenants/{tenant_id}/erasures`). The work is in `erasure`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::app::AppState;
use crate::erasure::{self, Erased, ErasureRequest};
use crate::routes::parse_id;
use crate::store::erasures::{self, ErasureRecord, Requester};
use salesync_core::api::ApiError;
use salesync_core::api::auth::{Admin, Caller};
use salesync_core::api::json::JsonBody;

/// Most erasures `GET /v1/erasures` lists.
const LIST_LIMIT: i64 = 100;

/// `POST /v1/erasures`
#[utoipa::path(
    post, path = "/v1/erasures", tag = "erasure", operation_id = "eraseCustomer",
    summary = "Erase a customer's personal data",
    description = "Erases one customer's personal data from the tenant's sales matching any of the given e-mail (ignoring case), VAT number (ignoring case and spaces) or external ids, in one transaction: each sale keeps its amounts, VAT, lines, status and payload hash and loses the customer's name, e-mail, VAT number and opt-ins (the country stays); the same values are scrubbed from the deliveries' stored requests and attempt excerpts. The erasure is recorded (who, when, which sales) without the personal data itself. Erasing again finds nothing more and records that too.",
    request_body = ErasureRequest,
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
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

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ErasureList {
    pub erasures: Vec<ErasureRecord>,
}

/// `GET /v1/erasures` — the tenant's latest erasures, newest first.
#[utoipa::path(
    get, path = "/v1/erasures", tag = "erasure", operation_id = "listErasures",
    summary = "The tenant's latest erasures (at most 100), newest first",
    responses((status = 200, description = "Erasures", body = ErasureList))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ErasureList>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let erasures = erasures::list(&mut conn, caller.tenant_id, LIST_LIMIT).await?;
    Ok(Json(ErasureList { erasures }))
}

/// `POST /admin/tenants/{tenant_id}/erasures`
#[utoipa::path(
    post, path = "/admin/tenants/{tenant_id}/erasures", tag = "admin", operation_id = "adminEraseCustomer",
    summary = "Erase a customer's personal data for a tenant (operator)",
    description = "As `POST /v1/erasures`, on the operator's authority; recorded with `via: admin`.",
    params(("tenant_id" = Uuid, Path, description = "Tenant id")),
    request_body = ErasureRequest,
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = 404, description = "No such tenant"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
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
