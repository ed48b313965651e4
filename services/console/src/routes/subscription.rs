//! A partner's subscription to the provider's catalogue changes (issue 17):
//! an Agent's token (only) sets where the provider POSTs `catalogue.changed`
//! callbacks for its organization (`PUT /v1/integration/subscription`),
//! reads it, and removes it. One subscription per Agent. A PUT replaces
//! the URL and keeps the signing secret, which every PUT answer shows (the
//! partner needs it, and subscribes again at each import): a callback
//! already signed or on its way stays valid. DELETE, then PUT, rotates it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::field_checks::check_http_url;
use salesync_core::api::json::JsonBody;
use salesync_core::domain::{AgentId, OrganizationId};
use salesync_core::signing;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::app::AppState;
use crate::store;
use crate::store::subscriptions::SubscriptionRow;

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Where the callbacks go: an absolute http(s) URL.
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
}

/// A subscription as `PUT` answers it: with the secret.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct SubscriptionSet {
    pub url: String,
    /// Verify each callback's `webhook-signature` with it (Standard
    /// Webhooks). The same in every answer until the subscription is
    /// deleted.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A subscription as `GET` answers it: without the secret.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The calling Agent and its organization; 403 `agent_token_required` for
/// any other token.
async fn agent(
    conn: &mut PgConnection,
    caller: &Caller,
) -> Result<(AgentId, OrganizationId), ApiError> {
    let organization = caller.organization_id.ok_or(ApiError::AgentTokenRequired)?;
    let agent = store::subscriptions::agent_of_token(conn, caller.tenant_id, caller.token_id)
        .await?
        .ok_or(ApiError::AgentTokenRequired)?;
    Ok((agent, organization))
}

/// `PUT /v1/integration/subscription`
#[utoipa::path(
    put, path = "/v1/integration/subscription", tag = "integration",
    operation_id = "putCatalogueSubscription",
    summary = "Subscribe to the granted catalogue's changes",
    description = "For an Agent's token only (403 `agent_token_required` otherwise). From now on, each change to what the Agent's organization is granted (a product or flow written, deactivated or withdrawn; a grant given or revoked) is POSTed to `url` as a `catalogue.changed` callback, signed (Standard Webhooks) with the returned secret and retried like any delivery (docs/contracts.md, \"Catalogue change callbacks\"). One subscription per Agent: a first PUT creates it (201), a later one replaces the URL and keeps the secret (200); every answer shows the secret. The URL must not resolve to a private or loopback address unless the operator allowed it (TARGET_ALLOW_NETS; 422 naming `url`).",
    request_body = SubscriptionInput,
    responses(
        (status = 201, description = "Subscribed", body = SubscriptionSet),
        (status = 200, description = "URL replaced, secret kept", body = SubscriptionSet),
        (status = 401, description = "Missing, unknown or revoked token (`unauthorized`)"),
        (status = 403, description = "Not an Agent's token (`agent_token_required`)"),
        (status = 422, description = "Invalid or forbidden URL (`validation_failed`)"),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<SubscriptionInput>,
) -> Result<(StatusCode, Json<SubscriptionSet>), ApiError> {
    let mut conn = state.pool.acquire().await?;
    let (agent, organization) = agent(&mut conn, &caller).await?;
    check_http_url(&input.url).map_err(|p| ApiError::invalid_field("url", p))?;
    state.check_callable(&[("url", &input.url)]).await?;
    // Used only if the subscription is new; an existing one keeps its own.
    let fresh = state.secrets.encrypt_json(&signing::generate_secret());
    let (row, created) = store::subscriptions::upsert(
        &mut conn,
        caller.tenant_id,
        organization,
        agent,
        &input.url,
        &fresh,
    )
    .await?;
    let secret: String = decrypt(&state, &row)?;
    tracing::info!(tenant_id = %caller.tenant_id, agent_id = %agent, created, "catalogue subscription set");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SubscriptionSet {
            url: row.url,
            secret,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }),
    ))
}

fn decrypt(state: &AppState, row: &SubscriptionRow) -> Result<String, ApiError> {
    state.secrets.decrypt_json(&row.secret_enc).map_err(|e| {
        tracing::error!(subscription_id = %row.id, error = %e, "subscription secret undecryptable");
        ApiError::Internal
    })
}

/// `GET /v1/integration/subscription`
#[utoipa::path(
    get, path = "/v1/integration/subscription", tag = "integration",
    operation_id = "getCatalogueSubscription",
    summary = "The Agent's catalogue subscription (without its secret)",
    description = "For an Agent's token only (403 `agent_token_required` otherwise).",
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 401, description = "Missing, unknown or revoked token (`unauthorized`)"),
        (status = 403, description = "Not an Agent's token (`agent_token_required`)"),
        (status = 404, description = "The Agent has no subscription (`not_found`)"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SubscriptionView>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let (agent, _) = agent(&mut conn, &caller).await?;
    let row = store::subscriptions::get(&mut conn, caller.tenant_id, agent)
        .await?
        .ok_or(ApiError::NotFound("subscription"))?;
    Ok(Json(SubscriptionView {
        url: row.url,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}

/// `DELETE /v1/integration/subscription`
#[utoipa::path(
    delete, path = "/v1/integration/subscription", tag = "integration",
    operation_id = "deleteCatalogueSubscription",
    summary = "Stop the catalogue callbacks",
    description = "For an Agent's token only (403 `agent_token_required` otherwise). Callbacks not yet delivered are not sent (they are dead-lettered as `catalogue subscription not found`). A later PUT subscribes anew, with a new secret.",
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, unknown or revoked token (`unauthorized`)"),
        (status = 403, description = "Not an Agent's token (`agent_token_required`)"),
        (status = 404, description = "The Agent has no subscription (`not_found`)"),
    )
)]
pub async fn delete(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let (agent, _) = agent(&mut conn, &caller).await?;
    if store::subscriptions::delete(&mut conn, caller.tenant_id, agent).await? {
        tracing::info!(tenant_id = %caller.tenant_id, agent_id = %agent, "catalogue subscription deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("subscription"))
    }
}
