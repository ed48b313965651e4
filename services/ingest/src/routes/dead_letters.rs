//! The tenant's dead letters: list, show, replay one, replay all matching,
//! discard. Always scoped to the caller's tenant — another tenant's dead
//! letter is a 404 like an unknown one. The work is in `dead_letters`,
//! shared with the `ingest dlq` command.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use salesync_core::domain::{DeliveryId, FieldError};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Caller;
use crate::dead_letters::query::{self, BulkReplayParams, ListParams, ReplayParams};
use crate::dead_letters::{
    self, Actor, BulkReplayed, DeadLetterDetail, DeadLetterPage, Discarded, Replayed,
};
use crate::error::ApiError;
use crate::json::{JsonBody, OptionalJsonBody};
use crate::routes::parse_id;

/// A query string that does not even parse (unknown or repeated
/// parameters, bad encoding) is a 422 naming the problem.
pub fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::Validation(vec![FieldError::new("query", rejection.body_text())])
}

/// `GET /v1/dead-letters`
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardRequest {
    pub reason: String,
}

/// `POST /v1/dead-letters/{delivery_id}/discard`
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
