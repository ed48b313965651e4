//! The reseller's (A's) side of a tenant-to-tenant integration (issue 17):
//! test the connection to the provider, see what it grants, import a
//! selection, sync now, map flows and questions and check the mapping, and
//! the provider's signed change callback. The procedures are
//! `catalogue_sync`'s; these are their HTTP faces.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::json::JsonBody;
use salesync_core::catalogue::key::{check_question_key, check_slug};
use salesync_core::catalogue::{
    AnswerSource, Change, Flow, FlowMapping, ImportedProduct, Mismatch, ProductVersion,
    QuestionMapping, RemovalPolicy,
};
use salesync_core::domain::{FieldError, IntegrationId};
use salesync_core::signing;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::catalogue_sync::{self, SyncContext, SyncReport};
use crate::provider::client::{Provider, http_client};
use crate::provider::connection::{ConnectionTest, judge};
use crate::routes::parse_id;
use crate::store;
use crate::store::imports::ProviderLink;

/// How far a callback's timestamp may be from now (replay protection).
const CALLBACK_TOLERANCE_SECS: i64 = 300;

fn http(state: &AppState) -> Result<salesync_core::egress::EgressClient, ApiError> {
    http_client(&state.egress).map_err(|e| {
        tracing::error!(error = %e, "cannot build the provider client");
        ApiError::Internal
    })
}

/// Runs `f` with a sync context for this state.
async fn with_context<T>(
    state: &AppState,
    f: impl AsyncFnOnce(SyncContext<'_>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let client = http(state)?;
    let ctx = SyncContext {
        pool: &state.pool,
        secrets: &state.secrets,
        http: &client,
        public_url: state.public_url.as_deref(),
    };
    f(ctx).await
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    /// The provider's address (its partner routes).
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    /// The token the provider issued (an Agent's).
    #[schema(min_length = 1, max_length = 4096)]
    pub token: String,
}

/// `POST /v1/integrations/test-connection`
#[utoipa::path(
    post, path = "/v1/integrations/test-connection", tag = "imports",
    operation_id = "testProviderConnection",
    summary = "Test a provider's address and token before saving an integration",
    description = "Calls the provider's `GET /v1/integration` with the token and says in plain words what is wrong: unreachable (DNS, refused, timeout, an address salesync does not call), TLS or HTTP error, token rejected, token valid but not integration-only (or not an Agent's), or OK with the provider's account name and how many products it grants. Always 200 once the input is valid: `ok` and `outcome` carry the verdict.",
    request_body = ConnectionInput,
    responses(
        (status = 200, description = "The verdict", body = ConnectionTest),
        (status = 422, description = "Invalid input (`validation_failed`)"),
    )
)]
pub async fn test_new_connection(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(input): JsonBody<ConnectionInput>,
) -> Result<Json<ConnectionTest>, ApiError> {
    let mut problems = Vec::new();
    if let Err(p) = salesync_core::api::field_checks::check_http_url(&input.url) {
        problems.push(FieldError::new("url", p));
    }
    let token = input.token.trim();
    if token.is_empty() || token.chars().count() > 4096 {
        problems.push(FieldError::new("token", "must be 1..=4096 characters"));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let client = http(&state)?;
    let provider = Provider {
        http: &client,
        base_url: &input.url,
        token,
    };
    Ok(Json(judge(provider.access().await)))
}

/// `POST /v1/integrations/{id}/test-connection`
#[utoipa::path(
    post, path = "/v1/integrations/{id}/test-connection", tag = "imports",
    operation_id = "testIntegrationConnection",
    summary = "Test the integration's connection to its provider",
    description = "As `testProviderConnection`, with the integration's own address (`provider_url`, else `target_url`) and token.",
    params(("id" = String, Path, description = "Integration id")),
    responses(
        (status = 200, description = "The verdict", body = ConnectionTest),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
        (status = 409, description = "Not a salesync target, or no token (`not_a_provider`)"),
    )
)]
pub async fn test_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConnectionTest>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let link = link(&state, &caller, id).await?;
    let token = catalogue_sync::agent_token(&state.secrets, &link)?;
    let client = http(&state)?;
    let provider = Provider {
        http: &client,
        base_url: &link.base_url,
        token: &token,
    };
    Ok(Json(judge(provider.access().await)))
}

async fn link(
    state: &AppState,
    caller: &Caller,
    id: IntegrationId,
) -> Result<ProviderLink, ApiError> {
    let mut conn = state.pool.acquire().await?;
    store::imports::link(&mut conn, caller.tenant_id, id, false)
        .await?
        .ok_or(ApiError::NotFound("integration"))
}

/// One of the provider's granted products, and whether A imported it.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct OfferedProduct {
    #[serde(flatten)]
    pub product: ProductVersion,
    /// The version A's copy holds (`null`: not imported).
    pub imported_version: Option<u32>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ProviderCatalogue {
    /// The provider's account, as it names itself.
    pub organization: String,
    pub products: Vec<OfferedProduct>,
    pub flows: Vec<Flow>,
}

/// `GET /v1/integrations/{id}/provider-catalogue`
#[utoipa::path(
    get, path = "/v1/integrations/{id}/provider-catalogue", tag = "imports",
    operation_id = "getProviderCatalogue",
    summary = "What the provider grants now, and what of it is imported",
    description = "Reads the provider's `GET /v1/integration/catalogue` with the integration's token: every granted product with its questions, and the version A's copy holds.",
    params(("id" = String, Path, description = "Integration id")),
    responses(
        (status = 200, description = "The provider's granted catalogue", body = ProviderCatalogue),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
        (status = 409, description = "Not a salesync target, no token (`not_a_provider`), or the provider could not be read (`provider_unavailable`)"),
    )
)]
pub async fn provider_catalogue(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProviderCatalogue>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let (_, listing) = with_context(&state, async |ctx| {
        Ok(catalogue_sync::read_provider(ctx, caller.tenant_id, id).await?)
    })
    .await?;
    let mut conn = state.pool.acquire().await?;
    let copies = store::imports::copies(&mut conn, id).await?;
    let products = listing
        .products
        .into_iter()
        .map(|product| {
            let imported_version = copies
                .iter()
                .find(|c| c.copy.product.key == product.key)
                .map(|c| c.copy.product.version);
            OfferedProduct {
                product,
                imported_version,
            }
        })
        .collect();
    Ok(Json(ProviderCatalogue {
        organization: listing.organization.name,
        products,
        flows: listing.flows,
    }))
}

#[derive(Deserialize, Serialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportSelection {
    /// The provider's product keys to import; imported ones left out are
    /// no longer imported (their copy is deleted; sales keep their history).
    #[schema(max_items = 1000)]
    pub products: Vec<String>,
}

/// `PUT /v1/integrations/{id}/imports`
#[utoipa::path(
    put, path = "/v1/integrations/{id}/imports", tag = "imports",
    operation_id = "putImports",
    summary = "Choose which of the provider's products to import",
    description = "Copies each selected product from the provider now (with its source version), deletes the copies of those left out, syncs the rest, subscribes to the provider's change callbacks (when this console has a `PUBLIC_URL`), and runs the mapping check: its new questions show up as unmapped.",
    params(("id" = String, Path, description = "Integration id")),
    request_body = ImportSelection,
    responses(
        (status = 200, description = "What changed, and the mapping check", body = SyncReport),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
        (status = 409, description = "Not a salesync target, no token (`not_a_provider`), or the provider could not be read (`provider_unavailable`)"),
        (status = 422, description = "A key the provider does not grant (`validation_failed`, `products[i]`)"),
    )
)]
pub async fn put_imports(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(selection): JsonBody<ImportSelection>,
) -> Result<Json<SyncReport>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    if selection.products.len() > 1000 {
        return Err(ApiError::invalid_field("products", "at most 1000 products"));
    }
    let keys: Vec<String> = selection
        .products
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let report = with_context(&state, async |ctx| {
        Ok(catalogue_sync::import(ctx, caller.tenant_id, id, &keys).await?)
    })
    .await?;
    Ok(Json(report))
}

/// An imported product as A holds it.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ImportedView {
    #[serde(flatten)]
    pub copy: ImportedProduct,
    pub imported_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The mapping and its last check.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct MappingView {
    pub flows: BTreeMap<String, String>,
    pub questions: BTreeMap<String, AnswerSource>,
    pub mismatches: Vec<Mismatch>,
    pub checked_at: Option<DateTime<Utc>>,
    /// Since when checks have found mismatches an earlier check did not
    /// (`null`: none new, or the last check was clean).
    pub flagged_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ImportsView {
    pub products: Vec<ImportedView>,
    /// The provider's granted flows as of the last sync.
    pub provider_flows: Vec<Flow>,
    pub removed_product_policy: RemovalPolicy,
    /// When a sync last changed something.
    pub last_synchronised_at: Option<DateTime<Utc>>,
    /// When the provider was last asked.
    pub checked_at: Option<DateTime<Utc>>,
    /// What the last sync that changed something changed.
    pub last_changes: Vec<Change>,
    /// Whether the provider calls back on changes.
    pub subscribed: bool,
    pub mapping: MappingView,
}

fn mapping_view(link: &ProviderLink) -> MappingView {
    MappingView {
        flows: link.flow_mapping.flows.clone(),
        questions: link.question_mapping.questions.clone(),
        mismatches: link.mismatches.clone(),
        checked_at: link.mapping_checked_at,
        flagged_at: link.mapping_flagged_at,
    }
}

/// `GET /v1/integrations/{id}/imports`
#[utoipa::path(
    get, path = "/v1/integrations/{id}/imports", tag = "imports",
    operation_id = "getImports",
    summary = "A's copy of the provider's products, sync state and mapping",
    params(("id" = String, Path, description = "Integration id")),
    responses(
        (status = 200, description = "The imports", body = ImportsView),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
    )
)]
pub async fn get_imports(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportsView>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let mut conn = state.pool.acquire().await?;
    let link = store::imports::link(&mut conn, caller.tenant_id, id, false)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    let copies = store::imports::copies(&mut conn, id).await?;
    Ok(Json(ImportsView {
        products: copies
            .into_iter()
            .map(|r| ImportedView {
                copy: r.copy,
                imported_at: r.imported_at,
                updated_at: r.updated_at,
            })
            .collect(),
        provider_flows: link.provider_flows.clone(),
        removed_product_policy: link.policy,
        last_synchronised_at: link.last_synced_at,
        checked_at: link.checked_at,
        last_changes: link.last_changes.clone(),
        subscribed: link.callback_secret_enc.is_some(),
        mapping: mapping_view(&link),
    }))
}

/// `POST /v1/integrations/{id}/sync`
#[utoipa::path(
    post, path = "/v1/integrations/{id}/sync", tag = "imports",
    operation_id = "syncImports",
    summary = "Sync now: ask the provider at once and report what changed",
    description = "Applies the provider's changes to A's copies (new versions; deactivated, withdrawn or no longer granted products under the removal policy) and runs the mapping check. `last_synchronised_at` changes only when something changed.",
    params(("id" = String, Path, description = "Integration id")),
    responses(
        (status = 200, description = "What changed, and the mapping check", body = SyncReport),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
        (status = 409, description = "Not a salesync target, no token (`not_a_provider`), or the provider could not be read (`provider_unavailable`)"),
    )
)]
pub async fn sync_now(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SyncReport>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let report = with_context(&state, async |ctx| {
        Ok(catalogue_sync::sync(ctx, caller.tenant_id, id).await?)
    })
    .await?;
    Ok(Json(report))
}

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingInput {
    /// A's flow key → the provider's flow key. A sale in a flow not listed
    /// is not forwarded.
    #[serde(default)]
    pub flows: BTreeMap<String, String>,
    /// The provider's question key → where its answer comes from: one of
    /// A's questions (`{"from_question": {"question", "options"?}}`, options
    /// renaming A's values to the provider's) or a constant
    /// (`{"constant": value}`).
    #[serde(default)]
    pub questions: BTreeMap<String, AnswerSource>,
}

/// `PUT /v1/integrations/{id}/mappings`
#[utoipa::path(
    put, path = "/v1/integrations/{id}/mappings", tag = "imports",
    operation_id = "putMappings",
    summary = "Map A's flows and questions onto the provider's, and check",
    description = "Replaces the flow and question mappings and runs the mapping check at once: every place an order could be refused by the provider (unmapped required question, incompatible type, optional on A but required on the provider, options without counterpart, stricter validations, invalid constant, unknown question of A, unmapped flow).",
    params(("id" = String, Path, description = "Integration id")),
    request_body = MappingInput,
    responses(
        (status = 200, description = "The mapping and its check", body = MappingView),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
        (status = 422, description = "Invalid keys (`validation_failed`)"),
    )
)]
pub async fn put_mappings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<MappingInput>,
) -> Result<Json<MappingView>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let problems = check_mapping_keys(&input);
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let mut tx = state.pool.begin().await?;
    store::imports::link(&mut tx, caller.tenant_id, id, true)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    let flows = FlowMapping { flows: input.flows };
    let questions = QuestionMapping {
        questions: input.questions,
    };
    store::imports::set_mappings(&mut tx, id, &flows, &questions).await?;
    let view = check(&mut tx, caller, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// `POST /v1/integrations/{id}/mapping-check`
#[utoipa::path(
    post, path = "/v1/integrations/{id}/mapping-check", tag = "imports",
    operation_id = "checkMappings",
    summary = "Run the mapping check now",
    description = "Checks the mapping against A's copies and A's own questions as they are now (it also runs after every sync and mapping change). Mismatches a previous check did not find set `flagged_at`.",
    params(("id" = String, Path, description = "Integration id")),
    responses(
        (status = 200, description = "The mapping and its check", body = MappingView),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
    )
)]
pub async fn check_mappings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MappingView>, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let mut tx = state.pool.begin().await?;
    store::imports::link(&mut tx, caller.tenant_id, id, true)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    let view = check(&mut tx, caller, id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Runs and records the check on the locked integration; its view after.
async fn check(
    conn: &mut sqlx::PgConnection,
    caller: Caller,
    id: IntegrationId,
) -> Result<MappingView, ApiError> {
    let link = store::imports::link(conn, caller.tenant_id, id, false)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    let copies: Vec<ImportedProduct> = store::imports::copies(conn, id)
        .await?
        .into_iter()
        .map(|r| r.copy)
        .collect();
    catalogue_sync::run_check(conn, &link, &copies, &link.provider_flows).await?;
    let after = store::imports::link(conn, caller.tenant_id, id, false)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    Ok(mapping_view(&after))
}

/// Keys on both sides must look like catalogue keys.
fn check_mapping_keys(input: &MappingInput) -> Vec<FieldError> {
    let mut problems = Vec::new();
    for (a, b) in &input.flows {
        check_slug(&mut problems, &format!("flows.{a}"), a);
        check_slug(&mut problems, &format!("flows.{a}"), b);
    }
    for (b, source) in &input.questions {
        let field = format!("questions.{b}");
        check_question_key(&mut problems, &field, b);
        if let AnswerSource::FromQuestion { question, .. } = source {
            check_question_key(
                &mut problems,
                &format!("{field}.from_question.question"),
                question,
            );
        }
    }
    problems
}

/// `POST /v1/callbacks/catalogue/{id}`
#[utoipa::path(
    post, path = "/v1/callbacks/catalogue/{id}", tag = "imports",
    operation_id = "receiveCatalogueCallback",
    summary = "The provider's signed notice that its granted catalogue changed",
    description = "No token: the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`, with the secret the provider gave at subscription) is the proof. A valid notice asks for a sync, which the sync worker runs within `CATALOGUE_SYNC_POLL`; the body is a hint only, the sync re-reads the provider. 401 for a bad or stale signature; 404 for an unknown integration or one without a subscription.",
    params(("id" = String, Path, description = "Integration id (from the subscription URL)")),
    responses(
        (status = 202, description = "A sync is requested"),
        (status = 401, description = "Missing, stale or wrong signature (`unauthorized`)"),
        (status = 404, description = "No such integration with a subscription (`not_found`)"),
    )
)]
pub async fn receive_callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let id: IntegrationId = parse_id(&id, "integration")?;
    let mut conn = state.pool.acquire().await?;
    let enc = store::imports::callback_secret(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    let secret: String = state.secrets.decrypt_json(&enc).map_err(|e| {
        tracing::error!(integration_id = %id, error = %e, "callback secret undecryptable");
        ApiError::Internal
    })?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    signing::verify(
        &secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        Utc::now().timestamp(),
        CALLBACK_TOLERANCE_SECS,
    )
    .map_err(|e| {
        tracing::warn!(integration_id = %id, error = %e, "catalogue callback refused");
        ApiError::Unauthorized
    })?;
    store::imports::request_sync(&mut conn, id).await?;
    tracing::info!(integration_id = %id, "catalogue callback: sync requested");
    Ok(StatusCode::ACCEPTED)
}
