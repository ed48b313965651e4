//! Operator routes (`ADMIN_TOKEN`): create tenants, issue and revoke tokens (the
//! work is in `tenancy`, shared with the `console admin` command); peek at and
//! purge the raw dead-letter queue (`dead_letter_queue`); pause and resume
//! any tenant's integration (`pause`; an operator's pause only an operator
//! lifts).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::dead_letter_queue::{self, DEFAULT_PEEK, MAX_PEEK, Peek};
use crate::pause::{self, PauseInput, PausedBy};
use crate::routes::dead_letters::query_error;
use crate::routes::integrations::{IntegrationView, ResumedView, view};
use crate::routes::parse_id;
use crate::store;
use crate::tenancy::{self, CreatedTenant, CreatedToken, NewTenant, NewToken};
use salesync_core::api::ApiError;
use salesync_core::api::auth::Admin;
use salesync_core::api::json::JsonBody;

/// `POST /admin/tenants`
#[utoipa::path(
    post, path = "/admin/tenants", tag = "admin", operation_id = "adminCreateTenant",
    summary = "Create a tenant and its first token",
    request_body = NewTenant,
    responses(
        (status = 201, description = "Created; the token is shown once", body = CreatedTenant),
        (status = 409, description = "A tenant of that name exists (`tenant_exists`)"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn create_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(req): JsonBody<NewTenant>,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    let created = tenancy::create_tenant(&state.pool, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `POST /admin/tenants/{tenant_id}/tokens`
#[utoipa::path(
    post, path = "/admin/tenants/{tenant_id}/tokens", tag = "admin", operation_id = "adminCreateToken",
    summary = "Issue another token for a tenant",
    params(("tenant_id" = Uuid, Path, description = "Tenant id")),
    request_body = NewToken,
    responses(
        (status = 201, description = "Created; the token is shown once", body = CreatedToken),
        (status = 404, description = "No such tenant"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
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

/// `DELETE /admin/tenants/{tenant_id}/tokens/{token_id}` — the token stops
/// working on every ingest and console process at once.
#[utoipa::path(
    delete, path = "/admin/tenants/{tenant_id}/tokens/{token_id}", tag = "admin", operation_id = "adminRevokeToken",
    summary = "Revoke a tenant's token",
    description = "The token stops working at once on every API process, ingest and console (the database notifies each process, which drops it from its token cache). Revoking a revoked token again is a no-op (204).",
    params(
        ("tenant_id" = Uuid, Path, description = "Tenant id"),
        ("token_id" = Uuid, Path, description = "Token id (as returned when it was issued)"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token of that tenant"),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    _admin: Admin,
    Path((tenant_id, token_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant_id = parse_id(&tenant_id, "tenant")?;
    let token_id = parse_id(&token_id, "token")?;
    if !salesync_core::api::tokens_store::revoke(&state.pool, tenant_id, token_id).await? {
        return Err(ApiError::NotFound("token"));
    }
    tracing::info!(%tenant_id, %token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Debug, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeekParams {
    /// How many messages (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The broker is an ops dependency here: unreachable is a 503, with the
/// detail in the log.
fn broker_error(e: anyhow::Error) -> ApiError {
    tracing::error!(error = format!("{e:#}"), "dead-letter queue unavailable");
    ApiError::Unavailable
}

/// `GET /admin/dlq?limit=N` — the first N messages of `salesync.dead`, left in place.
#[utoipa::path(
    get, path = "/admin/dlq", tag = "admin", operation_id = "adminPeekDeadLetterQueue",
    summary = "Peek at the raw dead-letter queue salesync.dead (messages stay there)",
    description = "Poison messages (undecodable, unknown schema version, missing sale or integration) and copies of dead deliveries, with their dead-letter headers. Not tenant-scoped.",
    params(PeekParams),
    responses(
        (status = 200, description = "The first messages", body = Peek),
        (status = 422, description = "Invalid query (`validation_failed`)"),
    )
)]
pub async fn peek_dlq(
    State(state): State<AppState>,
    _admin: Admin,
    params: Result<Query<PeekParams>, QueryRejection>,
) -> Result<Json<Peek>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let limit = params.limit.unwrap_or(DEFAULT_PEEK);
    if !(1..=MAX_PEEK).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be from 1 to {MAX_PEEK}"),
        ));
    }
    let peek = dead_letter_queue::peek(&state.amqp_url, limit)
        .await
        .map_err(broker_error)?;
    Ok(Json(peek))
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
#[schema(as = DlqPurged)]
pub struct Purged {
    pub purged: u64,
}

/// `POST /admin/dlq/purge` — empties `salesync.dead`. Dead deliveries stay
/// in the database (and replayable from there); only the queue copies go.
#[utoipa::path(
    post, path = "/admin/dlq/purge", tag = "admin", operation_id = "adminPurgeDeadLetterQueue",
    summary = "Empty the raw dead-letter queue salesync.dead",
    description = "Dead deliveries stay in the database and remain replayable through /v1/dead-letters.",
    responses((status = 200, description = "Purged", body = Purged))
)]
pub async fn purge_dlq(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Purged>, ApiError> {
    let purged = dead_letter_queue::purge(&state.amqp_url)
        .await
        .map_err(broker_error)?;
    tracing::warn!(purged, "dead-letter queue purged by an operator");
    Ok(Json(Purged { purged }))
}

/// The tenant of the live integration the path names, or 404.
async fn integration_tenant(
    state: &AppState,
    id: &str,
) -> Result<
    (
        salesync_core::domain::TenantId,
        salesync_core::domain::IntegrationId,
    ),
    ApiError,
> {
    let id = parse_id(id, "integration")?;
    let mut conn = state.pool.acquire().await?;
    let tenant = store::integrations::tenant_of(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    Ok((tenant, id))
}

/// `POST /admin/integrations/{id}/pause`
#[utoipa::path(
    post, path = "/admin/integrations/{id}/pause", tag = "admin", operation_id = "adminPauseIntegration",
    summary = "Pause any tenant's integration (recorded as paused by an operator)",
    description = "As the tenant's pause; only an operator can resume it.",
    params(("id" = Uuid, Path, description = "Integration id")),
    request_body = PauseInput,
    responses(
        (status = 200, description = "The integration, paused (pausing a paused one changes nothing: the first pause stands)", body = IntegrationView),
        (status = 404, description = "No such integration"),
        (status = 422, description = "Invalid reason (`validation_failed`)"),
    )
)]
pub async fn pause_integration(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<PauseInput>,
) -> Result<Json<IntegrationView>, ApiError> {
    let (tenant, id) = integration_tenant(&state, &id).await?;
    pause::pause(&state.pool, None, id, PausedBy::Operator, &input.reason).await?;
    Ok(Json(view(&state, tenant, id).await?))
}

/// `POST /admin/integrations/{id}/resume`
#[utoipa::path(
    post, path = "/admin/integrations/{id}/resume", tag = "admin", operation_id = "adminResumeIntegration",
    summary = "Resume any tenant's integration, whoever paused it",
    description = "As the tenant's resume.",
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 200, description = "The integration, resumed, and how many held deliveries were released", body = ResumedView),
        (status = 404, description = "No such integration"),
    )
)]
pub async fn resume_integration(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<ResumedView>, ApiError> {
    let (tenant, id) = integration_tenant(&state, &id).await?;
    let resumed = pause::resume(&state.pool, &state.wake, None, id).await?;
    Ok(Json(ResumedView {
        view: view(&state, tenant, id).await?,
        resumed,
    }))
}
