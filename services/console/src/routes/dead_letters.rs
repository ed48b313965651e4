//! The tenant's dead letters: list, show, replay one, replay all matching,
//! discard. Always scoped to the caller's tenant — another tenant's dead
//! letter is a 404 like an unknown one. The work is in `dead_letters`,
//! shared with the `console dlq` command.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use salesync_core::domain::{DeliveryId, FieldError};
use serde::Deserialize;

use crate::app::AppState;
use crate::dead_letters::query::{self, BulkReplayParams, ListParams, ReplayParams};
use crate::dead_letters::{
    self, Actor, BulkReplayed, DeadLetterDetail, DeadLetterPage, Discarded, Replayed,
};
use crate::routes::parse_id;
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::json::{JsonBody, OptionalJsonBody};

/// A query string that does not even parse (unknown or repeated
/// parameters, bad encoding) is a 422 naming the problem.
pub fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::Validation(vec![FieldError::new("query", rejection.body_text())])
}

/// `GET /v1/dead-letters`
#[utoipa::path(
    get, path = "/v1/dead-letters", tag = "dead-letters", operation_id = "listDeadLetters",
    summary = "List dead letters (dead deliveries), newest first",
    params(ListParams),
    responses(
        (status = 200, description = "A page", body = DeadLetterPage),
        (status = 404, description = "The integration is not the tenant's"),
        (status = 422, description = "Invalid query (`validation_failed`)"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let q = query::list_query(&params).map_err(ApiError::Validation)?;
    Ok(Json(
        dead_letters::list(&state.pool, Some(caller.tenant_id), &q).await?,
    ))
}

/// `GET /v1/dead-letters/{delivery_id}`
#[utoipa::path(
    get, path = "/v1/dead-letters/{delivery_id}", tag = "dead-letters", operation_id = "getDeadLetter",
    summary = "One dead letter with its attempt log and the actions taken on it",
    params(("delivery_id" = Uuid, Path, description = "Delivery id of the dead letter")),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetterDetail),
        (status = 404, description = "No such dead letter of the tenant"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterDetail>, ApiError> {
    let id: DeliveryId = parse_id(&id, "dead letter")?;
    Ok(Json(
        dead_letters::show(&state.pool, Some(caller.tenant_id), id).await?,
    ))
}

/// `POST /v1/dead-letters/{delivery_id}/replay` (body optional:
/// `{"target": "current"|"recorded"}`)
#[utoipa::path(
    post, path = "/v1/dead-letters/{delivery_id}/replay", tag = "dead-letters", operation_id = "replayDeadLetter",
    summary = "Replay one dead letter",
    description = "In one transaction: the delivery goes back to `pending` (attempts restart at 1), the replay is recorded with its target, and the stored request is queued for the forwarder again with the same Idempotency-Key / webhook-id. By default it goes to where the integration points now (its current URL; the forwarder always signs with the integration's current secrets and credentials) — for a status webhook, the tenant's current webhook; `target: recorded` keeps the URL stored with the delivery. The body is optional. 409 `not_dead`, `not_replayable` or `target_unavailable`.",
    params(("delivery_id" = Uuid, Path, description = "Delivery id of the dead letter")),
    request_body(content = Option<ReplayParams>, description = "Optional: without a body the replay goes to the current target", content_type = "application/json"),
    responses(
        (status = 202, description = "Queued", body = Replayed),
        (status = 404, description = "No such dead letter of the tenant"),
        (status = 409, description = "Not dead, not replayable or its target is gone"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJsonBody(params): OptionalJsonBody<ReplayParams>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let id: DeliveryId = parse_id(&id, "dead letter")?;
    let target = query::replay_options(&params).map_err(ApiError::Validation)?;
    let replayed = dead_letters::replay(
        &state.pool,
        Some(caller.tenant_id),
        id,
        target,
        Actor::Token(caller.token_id),
    )
    .await?;
    state.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(replayed)))
}

/// `POST /v1/dead-letters/replay`
#[utoipa::path(
    post, path = "/v1/dead-letters/replay", tag = "dead-letters", operation_id = "replayDeadLetters",
    summary = "Replay the dead letters that match (not discarded ones), or count them (dry run)",
    description = "Oldest first, each matching delivery goes back to `pending`, the replay is recorded (one audit row each, with its target), and the stored request is queued for the forwarder again (same Idempotency-Key), to the integration's current URL unless `target` is `recorded`. At most `limit` (default and maximum 1000) are replayed per request; `remaining` counts the matched ones not looked at — ask again.",
    request_body = BulkReplayParams,
    responses(
        (status = 200, description = "Dry run: what would be replayed; nothing changed", body = BulkReplayed),
        (status = 202, description = "Queued", body = BulkReplayed),
        (status = 404, description = "The integration is not the tenant's"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn replay_matching(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(params): JsonBody<BulkReplayParams>,
) -> Result<(StatusCode, Json<BulkReplayed>), ApiError> {
    let req = query::bulk_replay(&params).map_err(ApiError::Validation)?;
    let done = dead_letters::replay_matching(
        &state.pool,
        Some(caller.tenant_id),
        &req,
        Actor::Token(caller.token_id),
    )
    .await?;
    if done.dry_run {
        // Nothing was queued: a plain answer, not "accepted".
        return Ok((StatusCode::OK, Json(done)));
    }
    if done.replayed > 0 {
        state.wake.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(done)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    /// Why it is given up on; kept with the discard.
    #[schema(min_length = 1, max_length = 1000, pattern = "^[^\\x00]*\\S[^\\x00]*$")]
    pub reason: String,
}

/// `POST /v1/dead-letters/{delivery_id}/discard`
#[utoipa::path(
    post, path = "/v1/dead-letters/{delivery_id}/discard", tag = "dead-letters", operation_id = "discardDeadLetter",
    summary = "Discard a dead letter with a reason",
    description = "The delivery stays dead; the discard and its reason are recorded and it is hidden from the default list.",
    params(("delivery_id" = Uuid, Path, description = "Delivery id of the dead letter")),
    request_body = DiscardRequest,
    responses(
        (status = 200, description = "Discarded", body = Discarded),
        (status = 404, description = "No such dead letter of the tenant"),
        (status = 409, description = "Not dead (`not_dead`) or already discarded (`already_discarded`)"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn discard(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DiscardRequest>,
) -> Result<Json<Discarded>, ApiError> {
    let id: DeliveryId = parse_id(&id, "dead letter")?;
    Ok(Json(
        dead_letters::discard(
            &state.pool,
            Some(caller.tenant_id),
            id,
            &req.reason,
            Actor::Token(caller.token_id),
        )
        .await?,
    ))
}
