//! Integrations CRUD and signing-secret rotation. Credentials and signing
//! secrets are encrypted at rest; a view never contains them (only
//! `has_credentials`), and a signing secret is shown exactly once — in the
//! response that created it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use salesync_core::catalogue::{RemovalPolicy, SystemStatusMapping, system_status_mappings};
use salesync_core::domain::{IntegrationId, TenantId};
use salesync_core::integration::{Conditions, ForwardingMode, Mapping, TargetKind};
use salesync_core::signing;
use serde::Serialize;
use serde_json::Value;

use crate::app::AppState;
use crate::integration_input::{
    CredentialsChange, IntegrationInput, IntegrationPatch, Valid, validate, validate_credentials,
};
use crate::pause::{self, PauseInput, PausedBy, Resumed};
use crate::routes::parse_id;
use crate::store;
use crate::store::integrations::{CredentialsWrite, IntegrationRow, PauseState};
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::json::JsonBody;

/// How many signing secrets are kept: the new one and the one before, so a
/// receiver can switch over without rejecting anything in between.
pub const MAX_SIGNING_SECRETS: usize = 2;

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct IntegrationView {
    pub id: IntegrationId,
    pub name: String,
    pub target_kind: TargetKind,
    pub target_url: String,
    pub enabled: bool,
    pub mode: ForwardingMode,
    pub trigger_statuses: Vec<String>,
    pub conditions: Conditions,
    pub mapping: Mapping,
    pub send_opt_in: bool,
    pub poll_status: bool,
    pub status_url: Option<String>,
    /// The target's status → ours. For a `salesync` target: B's custom
    /// statuses (each must be mapped to be synchronised) and overrides of
    /// system statuses.
    pub status_map: BTreeMap<String, String>,
    /// For a `salesync` target, salesync's system statuses, which both sides
    /// know: each maps to itself unless `status_map` overrides it. Empty for
    /// other targets, whose statuses map only through `status_map`.
    pub system_statuses: Vec<SystemStatusMapping>,
    pub final_statuses: Vec<String>,
    /// Where the provider's partner routes answer (`null`: at `target_url`).
    pub provider_url: Option<String>,
    pub removed_product_policy: RemovalPolicy,
    pub has_credentials: bool,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who paused it, when and why; `null` while not paused.
    pub pause: Option<PauseState>,
    pub failing_since: Option<DateTime<Utc>>,
}

impl From<IntegrationRow> for IntegrationView {
    fn from(r: IntegrationRow) -> Self {
        let c = r.config;
        Self {
            id: c.id,
            name: c.name,
            target_kind: c.target_kind,
            target_url: c.target_url,
            enabled: c.enabled,
            mode: c.mode,
            trigger_statuses: c.trigger_statuses,
            conditions: c.conditions,
            mapping: c.mapping,
            send_opt_in: c.send_opt_in,
            poll_status: c.poll_status,
            status_url: c.status_url,
            system_statuses: match c.target_kind {
                TargetKind::Salesync => system_status_mappings(&c.status_map),
                TargetKind::Webhook => Vec::new(),
            },
            status_map: c.status_map,
            final_statuses: c.final_statuses,
            provider_url: r.provider.provider_url,
            removed_product_policy: r.provider.removed_product_policy,
            has_credentials: r.has_credentials,
            last_synced_at: r.last_synced_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            pause: r.pause,
            failing_since: r.failing_since,
        }
    }
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct CreatedIntegration {
    #[serde(flatten)]
    pub view: IntegrationView,
    /// Shown once; store it at the receiver to verify `webhook-signature`.
    pub signing_secret: String,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct IntegrationList {
    pub integrations: Vec<IntegrationView>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct RotatedSecret {
    pub id: IntegrationId,
    /// Shown once. The previous secret keeps signing alongside until the next rotation.
    pub signing_secret: String,
}

/// The URLs of `valid` salesync will call, as (field, URL) — on an update only
/// those that change (an unchanged one was checked when it was set).
fn callable_urls<'a>(
    valid: &'a Valid,
    current: Option<&IntegrationRow>,
) -> Vec<(&'static str, &'a str)> {
    let provider_url = current.and_then(|c| c.provider.provider_url.as_deref());
    let current = current.map(|c| &c.config);
    let mut urls = Vec::new();
    if current.is_none_or(|c| c.target_url != valid.target_url) {
        urls.push(("target_url", valid.target_url.as_str()));
    }
    if let Some(status_url) = valid.status_url.as_deref()
        && current.is_none_or(|c| c.status_url.as_deref() != Some(status_url))
    {
        urls.push(("status_url", status_url));
    }
    if let Some(url) = valid.provider_url.as_deref()
        && provider_url != Some(url)
    {
        urls.push(("provider_url", url));
    }
    urls
}

/// Encrypts validated credentials; `None` when there are none to store.
fn encrypt_credentials(state: &AppState, v: Value) -> Result<Option<Vec<u8>>, ApiError> {
    let creds = validate_credentials(v).map_err(ApiError::Validation)?;
    Ok(creds.map(|c| state.secrets.encrypt_json(&c)))
}

/// `POST /v1/integrations`
#[utoipa::path(
    post, path = "/v1/integrations", tag = "integrations", operation_id = "createIntegration",
    summary = "Create an integration",
    description = "Target and status URLs must not resolve to a private or loopback address unless the operator allowed it (TARGET_ALLOW_NETS).",
    request_body = IntegrationInput,
    responses(
        (status = 201, description = "Created; the signing secret is shown once", body = CreatedIntegration),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<IntegrationInput>,
) -> Result<(StatusCode, Json<CreatedIntegration>), ApiError> {
    let (draft, credentials) = input.into_draft();
    let valid = validate(draft).map_err(ApiError::Validation)?;
    state.check_callable(&callable_urls(&valid, None)).await?;
    let credentials_enc = match credentials {
        CredentialsChange::Set(v) => encrypt_credentials(&state, v)?,
        CredentialsChange::Keep | CredentialsChange::Clear => None,
    };
    let secret = signing::generate_secret();
    let secrets_enc = state.secrets.encrypt_json(&vec![secret.clone()]);
    let mut conn = state.pool.acquire().await?;
    let row = store::integrations::insert(
        &mut conn,
        IntegrationId::new(),
        caller.tenant_id,
        &valid,
        credentials_enc,
        secrets_enc,
    )
    .await?;
    tracing::info!(integration_id = %row.config.id, "integration created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedIntegration {
            view: row.into(),
            signing_secret: secret,
        }),
    ))
}

/// `GET /v1/integrations`
#[utoipa::path(
    get, path = "/v1/integrations", tag = "integrations", operation_id = "listIntegrations",
    summary = "List the tenant's integrations",
    responses((status = 200, description = "Integrations", body = IntegrationList))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<IntegrationList>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let rows = store::integrations::list(&mut conn, caller.tenant_id).await?;
    Ok(Json(IntegrationList {
        integrations: rows.into_iter().map(Into::into).collect(),
    }))
}

/// `GET /v1/integrations/{id}`
#[utoipa::path(
    get, path = "/v1/integrations/{id}", tag = "integrations", operation_id = "getIntegration",
    summary = "One integration",
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 200, description = "The integration", body = IntegrationView),
        (status = 404, description = "No such integration of the tenant"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IntegrationView>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let mut conn = state.pool.acquire().await?;
    store::integrations::get(&mut conn, caller.tenant_id, id, false)
        .await?
        .map(|r| Json(r.into()))
        .ok_or(ApiError::NotFound("integration"))
}

/// `PATCH /v1/integrations/{id}` — the merged result is validated as a whole.
#[utoipa::path(
    patch, path = "/v1/integrations/{id}", tag = "integrations", operation_id = "patchIntegration",
    summary = "Change an integration",
    description = "Any subset of the fields of IntegrationInput; absent fields stay, null clears credentials or status_url. The merged result is validated as a whole.",
    params(("id" = Uuid, Path, description = "Integration id")),
    request_body = IntegrationPatch,
    responses(
        (status = 200, description = "The changed integration", body = IntegrationView),
        (status = 404, description = "No such integration of the tenant"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<IntegrationPatch>,
) -> Result<Json<IntegrationView>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let mut tx = state.pool.begin().await?;
    let current = store::integrations::get(&mut tx, caller.tenant_id, id, true)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    let (draft, credentials) = patch.apply(&current.config, &current.provider);
    let valid = validate(draft).map_err(ApiError::Validation)?;
    state
        .check_callable(&callable_urls(&valid, Some(&current)))
        .await?;
    let credentials = match credentials {
        CredentialsChange::Keep => CredentialsWrite::Keep,
        CredentialsChange::Clear => CredentialsWrite::Clear,
        CredentialsChange::Set(v) => match encrypt_credentials(&state, v)? {
            Some(enc) => CredentialsWrite::Set(enc),
            None => CredentialsWrite::Clear,
        },
    };
    let row = store::integrations::update(&mut tx, caller.tenant_id, id, &valid, credentials)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    if valid.poll_status {
        store::integrations::resume_polling(&mut tx, caller.tenant_id, id).await?;
    }
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// `DELETE /v1/integrations/{id}`
#[utoipa::path(
    delete, path = "/v1/integrations/{id}", tag = "integrations", operation_id = "deleteIntegration",
    summary = "Delete an integration (soft)",
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such integration of the tenant"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let mut conn = state.pool.acquire().await?;
    if store::integrations::soft_delete(&mut conn, caller.tenant_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("integration"))
    }
}

/// The integration as it stands, for a pause or resume's answer.
pub async fn view(
    state: &AppState,
    tenant: TenantId,
    id: IntegrationId,
) -> Result<IntegrationView, ApiError> {
    let mut conn = state.pool.acquire().await?;
    store::integrations::get(&mut conn, tenant, id, false)
        .await?
        .map(Into::into)
        .ok_or(ApiError::NotFound("integration"))
}

/// `POST /v1/integrations/{id}/pause` — its deliveries are held until resumed.
#[utoipa::path(
    post, path = "/v1/integrations/{id}/pause", tag = "integrations", operation_id = "pauseIntegration",
    summary = "Pause an integration: its deliveries are held until it is resumed",
    description = "Unlike `enabled: false` (sales are not forwarded at all), a pause loses nothing: every delivery is recorded `held` and sent when the integration is resumed.",
    params(("id" = Uuid, Path, description = "Integration id")),
    request_body = PauseInput,
    responses(
        (status = 200, description = "The integration, paused (pausing a paused one changes nothing: the first pause stands)", body = IntegrationView),
        (status = 404, description = "No such integration of the tenant"),
        (status = 422, description = "Invalid reason (`validation_failed`)"),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<PauseInput>,
) -> Result<Json<IntegrationView>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    pause::pause(
        &state.pool,
        Some(caller.tenant_id),
        id,
        PausedBy::Tenant,
        &input.reason,
    )
    .await?;
    Ok(Json(view(&state, caller.tenant_id, id).await?))
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
#[schema(as = ResumedIntegration)]
pub struct ResumedView {
    #[serde(flatten)]
    pub view: IntegrationView,
    #[serde(flatten)]
    pub resumed: Resumed,
}

/// `POST /v1/integrations/{id}/resume` — held deliveries are sent again.
#[utoipa::path(
    post, path = "/v1/integrations/{id}/resume", tag = "integrations", operation_id = "resumeIntegration",
    summary = "Resume an integration: its held deliveries are sent",
    description = "Clears the pause and, in the same transaction, re-queues every held delivery (same delivery id and Idempotency-Key). A pause by an operator can only be lifted by an operator (409 `paused_by_operator`). Resuming an integration that is not paused changes nothing.",
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 200, description = "The integration, resumed, and how many held deliveries were released", body = ResumedView),
        (status = 404, description = "No such integration of the tenant"),
        (status = 409, description = "Paused by an operator (`paused_by_operator`)"),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ResumedView>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let resumed = pause::resume(&state.pool, &state.wake, Some(caller.tenant_id), id).await?;
    Ok(Json(ResumedView {
        view: view(&state, caller.tenant_id, id).await?,
        resumed,
    }))
}

/// The secrets after a rotation: the new one first, then the most recent
/// previous ones, `MAX_SIGNING_SECRETS` in all.
pub fn rotated(new: String, previous: Vec<String>) -> Vec<String> {
    std::iter::once(new)
        .chain(previous)
        .take(MAX_SIGNING_SECRETS)
        .collect()
}

/// `POST /v1/integrations/{id}/rotate-secret`
#[utoipa::path(
    post, path = "/v1/integrations/{id}/rotate-secret", tag = "integrations", operation_id = "rotateIntegrationSecret",
    summary = "Rotate the signing secret (the previous one keeps signing alongside)",
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 200, description = "The new secret, shown once", body = RotatedSecret),
        (status = 404, description = "No such integration of the tenant"),
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let mut tx = state.pool.begin().await?;
    let enc = store::integrations::lock_signing_secrets(&mut tx, caller.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    let previous: Vec<String> = state.secrets.decrypt_json(&enc).unwrap_or_else(|e| {
        // Unreadable (key rotated out?): start afresh rather than lock the tenant out.
        tracing::warn!(integration_id = %id, error = %e, "previous signing secrets undecryptable; dropping them");
        Vec::new()
    });
    let secret = signing::generate_secret();
    let secrets = rotated(secret.clone(), previous);
    store::integrations::set_signing_secrets(&mut tx, id, &state.secrets.encrypt_json(&secrets))
        .await?;
    tx.commit().await?;
    tracing::info!(integration_id = %id, "signing secret rotated");
    Ok(Json(RotatedSecret {
        id,
        signing_secret: secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::rotated;

    #[test]
    fn rotation_keeps_the_newest_two() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases = [
            (s(&[]), s(&["n"])),
            (s(&["a"]), s(&["n", "a"])),
            (s(&["a", "b"]), s(&["n", "a"])),
            (s(&["a", "b", "c"]), s(&["n", "a"])),
        ];
        for (previous, want) in cases {
            assert_eq!(rotated("n".into(), previous.clone()), want, "{previous:?}");
        }
    }
}
