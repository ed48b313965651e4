//! The tenant's own status webhook: where ingest reports status changes of
//! the tenant's sales that came back from targets. Setting it issues a new
//! signing secret, shown once and stored encrypted (`tenants.webhook_secret_enc`
//! holds the JSON string the forwarder decrypts to sign with).

use axum::Json;
use axum::extract::State;
use salesync_core::signing;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::store;
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::field_checks::check_http_url;
use salesync_core::api::json::JsonBody;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// An absolute http(s) URL.
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct WebhookSet {
    pub url: String,
    /// Shown once: verify `webhook-signature` with it.
    pub secret: String,
}

/// `PUT /v1/webhook`
#[utoipa::path(
    put, path = "/v1/webhook", tag = "webhook", operation_id = "putWebhook",
    summary = "Set the tenant's status webhook",
    description = "Status changes of the tenant's sales reported back by targets are POSTed here as `sale.status_changed`, signed (Standard Webhooks) with the returned secret. The URL must not resolve to a private or loopback address unless the operator allowed it (TARGET_ALLOW_NETS).",
    request_body = WebhookInput,
    responses(
        (status = 200, description = "Set; the secret is shown once", body = WebhookSet),
        (status = 422, description = "Invalid or forbidden URL (`validation_failed`)"),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<WebhookInput>,
) -> Result<Json<WebhookSet>, ApiError> {
    check_http_url(&input.url).map_err(|p| ApiError::invalid_field("url", p))?;
    state.check_callable(&[("url", &input.url)]).await?;
    let secret = signing::generate_secret();
    let enc = state.secrets.encrypt_json(&secret);
    let mut conn = state.pool.acquire().await?;
    if !store::tenants::set_webhook(&mut conn, caller.tenant_id, &input.url, &enc).await? {
        return Err(ApiError::NotFound("tenant"));
    }
    tracing::info!(tenant_id = %caller.tenant_id, "status webhook set");
    Ok(Json(WebhookSet {
        url: input.url,
        secret,
    }))
}
