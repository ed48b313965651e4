//! Sales: accept one or many (idempotent by external id), change a status,
//! ask for a manual forward, look sales up, show one with its whole history.
//! Every state change and the message announcing it commit together through
//! the outbox; the relay is woken right after the commit.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use salesync_core::db::HeldConnection;
use salesync_core::domain::{IntegrationId, SaleId, SaleInput, validate_sale};

use crate::openapi::SaleInputSchema;
use salesync_core::messages::Trigger;
use salesync_core::outbox;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::accept::{Incoming, TenantItems, store_sales};
use crate::app::AppState;
use crate::events::{sale_event, sale_with_status};
use crate::intake::Outcome;
use crate::order_check::Granted;
use crate::routes::parse_id;
use crate::store;
use crate::store::sales::{LookupRow, SaleDetail};
use salesync_core::api::auth::Caller;
use salesync_core::api::error::{ApiError, ErrorBody};
use salesync_core::api::field_checks::{MAX_NOTE_CHARS, StatusName, is_valid_status};
use salesync_core::api::json::{JsonBody, from_value};

/// Most sales in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Most external ids in one lookup.
pub const MAX_LOOKUP: usize = 500;

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Accepted {
    pub id: SaleId,
    pub external_id: String,
    pub status: String,
    pub duplicate: bool,
}

/// `POST /v1/sales`
#[utoipa::path(
    post, path = "/v1/sales", tag = "sales", operation_id = "createSale",
    summary = "Submit a sale (idempotent by external_id)",
    description = "Allowed for integration-only tokens. Emits `sale.ingested` when created. The figures must add up (lines, VAT, totals, payments); every problem is named in `fields`. From a partner's Agent token the sale is an order and is also checked against the provider's catalogue as the Agent's organization is granted it: `flow` must be a granted flow, each line's `product_ref` a granted, active product sold through it, and each line's `answers` must satisfy the product's questions (required, type, options, validations, conditions); the sale then records the version of each product (`catalogue_versions`).",
    request_body = SaleInputSchema,
    responses(
        (status = 201, description = "Created", body = Accepted),
        (status = 200, description = "Same payload sent again: nothing emitted", body = Accepted),
        (status = 409, description = "A different sale with this external_id exists (`sale_conflict`)"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(sale): JsonBody<SaleInput>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    validate_sale(&sale).map_err(ApiError::Validation)?;
    let external_id = sale.external_id.clone();
    let versions = match caller.organization_id {
        Some(org) => Some(
            Granted::load(&state.pool, caller.tenant_id, org, &[&sale])
                .await?
                .check(&sale)
                .map_err(ApiError::Validation)?,
        ),
        None => None,
    };
    // Stored together with the other single sales waiting (group commit).
    let outcome = state
        .committer
        .submit(caller.tenant_id, Incoming { sale, versions })
        .await?;
    let (code, id, status, duplicate) = match outcome {
        Outcome::Created { id, status } => (StatusCode::CREATED, id, status, false),
        Outcome::Duplicate { id, status } => (StatusCode::OK, id, status, true),
        Outcome::Conflict => return Err(ApiError::SaleConflict { external_id }),
        Outcome::Invalid(_) => return Err(ApiError::Internal),
    };
    Ok((
        code,
        Json(Accepted {
            id,
            external_id,
            status,
            duplicate,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Each item should be a `SaleInput`. Each is parsed and validated on
    /// its own (hence any JSON here): an item that is not a valid sale is
    /// answered `invalid` in its result and does not fail the batch.
    #[schema(value_type = Vec<Value>, min_items = 1, max_items = 1000)]
    pub sales: Vec<Value>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct BatchItem {
    /// The item's place in the request.
    pub index: usize,
    pub external_id: Option<String>,
    #[schema(value_type = String, pattern = "^(created|duplicate|conflict|invalid)$")]
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<SaleId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct BatchResponse {
    pub results: Vec<BatchItem>,
}

/// `POST /v1/sales/batch`
#[utoipa::path(
    post, path = "/v1/sales/batch", tag = "sales", operation_id = "createSaleBatch",
    summary = "Submit up to 1000 sales in one transaction",
    description = "Allowed for integration-only tokens. Each item is parsed and validated on its own; invalid items do not fail the batch. Repeated external_ids inside one batch: the first wins, later ones are `duplicate` (same payload) or `conflict`.",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "Per-item results, in input order", body = BatchResponse),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    if req.sales.is_empty() || req.sales.len() > MAX_BATCH {
        return Err(ApiError::invalid_field(
            "sales",
            format!("must hold 1 to {MAX_BATCH} sales, got {}", req.sales.len()),
        ));
    }
    // The request itself was charged one token on authentication.
    let extra = u32::try_from(req.sales.len() - 1).unwrap_or(u32::MAX);
    state.auth.charge(caller.tenant_id, extra).await?;
    let external_ids: Vec<Option<String>> = req
        .sales
        .iter()
        .map(|v| {
            v.get("external_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let sales: Vec<Result<SaleInput, ErrorBody>> = req
        .sales
        .into_iter()
        .map(|v| {
            let sale: SaleInput = from_value(v).map_err(|e| e.body())?;
            validate_sale(&sale).map_err(|f| ApiError::Validation(f).body())?;
            Ok(sale)
        })
        .collect();
    let granted = match caller.organization_id {
        Some(org) => {
            let valid: Vec<&SaleInput> = sales.iter().filter_map(|s| s.as_ref().ok()).collect();
            Some(Granted::load(&state.pool, caller.tenant_id, org, &valid).await?)
        }
        None => None,
    };
    let items: Vec<Result<Incoming, ErrorBody>> = sales
        .into_iter()
        .map(|sale| {
            let sale = sale?;
            let versions = match &granted {
                Some(g) => Some(g.check(&sale).map_err(|f| ApiError::Validation(f).body())?),
                None => None,
            };
            Ok(Incoming { sale, versions })
        })
        .collect();
    let tenant = [TenantItems {
        tenant: caller.tenant_id,
        items,
        spans: Vec::new(),
    }];
    let mut db = HeldConnection::new(state.pool.clone());
    let outcomes = store_sales(&mut db, &state.handoff, &tenant)
        .await?
        .pop()
        .ok_or(ApiError::Internal)?;
    let results = outcomes
        .into_iter()
        .zip(external_ids)
        .enumerate()
        .map(|(index, (o, external_id))| BatchItem {
            index,
            outcome: o.name(),
            id: o.id(),
            error: o.error(external_id.as_deref()),
            external_id,
        })
        .collect();
    Ok(Json(BatchResponse { results }))
}

/// `GET /v1/sales/{id}`
#[utoipa::path(
    get, path = "/v1/sales/{id}", tag = "sales", operation_id = "getSale",
    summary = "A sale with its status history, forwarding decisions and deliveries",
    description = "Allowed for integration-only tokens.",
    params(("id" = Uuid, Path, description = "Sale id")),
    responses(
        (status = 200, description = "The sale", body = SaleDetail),
        (status = 404, description = "No such sale of the tenant"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SaleDetail>, ApiError> {
    let id: SaleId = parse_id(&id, "sale")?;
    let mut conn = state.pool.acquire().await?;
    store::sales::detail(&mut conn, caller.tenant_id, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("sale"))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    #[schema(value_type = StatusName)]
    pub status: String,
    /// Kept in the status history.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct StatusChanged {
    pub id: SaleId,
    pub status: String,
    pub changed: bool,
}

/// `POST /v1/sales/{id}/status`
#[utoipa::path(
    post, path = "/v1/sales/{id}/status", tag = "sales", operation_id = "changeSaleStatus",
    summary = "Change a sale's status (source side)",
    description = "Emits `sale.status_changed` when the status changed.",
    params(("id" = Uuid, Path, description = "Sale id")),
    request_body = StatusChange,
    responses(
        (status = 200, description = "Applied (or already the status: changed=false)", body = StatusChanged),
        (status = 404, description = "No such sale of the tenant"),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<StatusChange>,
) -> Result<Json<StatusChanged>, ApiError> {
    let id: SaleId = parse_id(&id, "sale")?;
    if !is_valid_status(&req.status) {
        return Err(ApiError::invalid_field(
            "status",
            "must match ^[a-z0-9_-]{1,64}$",
        ));
    }
    if req
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ApiError::invalid_field(
            "note",
            format!("must be at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let sale = store::sales::lock(&mut tx, caller.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("sale"))?;
    if sale.status == req.status {
        tx.rollback().await?;
        return Ok(Json(StatusChanged {
            id,
            status: req.status,
            changed: false,
        }));
    }
    let full = stored_sale(sale.sale, &req.status)?;
    let event = sale_event(caller.tenant_id, id, Trigger::StatusChanged, full);
    // The event id makes the history key unique per change.
    let dedupe_key = format!("source:{}:{}", req.status, event.message_id);
    store::sales::change_status(&mut tx, id, &req.status, req.note.as_deref(), &dedupe_key).await?;
    outbox::enqueue(&mut tx, std::slice::from_ref(&event)).await?;
    tx.commit().await?;
    state.wake.notify_one();
    Ok(Json(StatusChanged {
        id,
        status: req.status,
        changed: true,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    pub integration_id: IntegrationId,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct Queued {
    pub queued: bool,
}

/// `POST /v1/sales/{id}/forward` — a person sends one sale through one
/// integration; condition-filter still applies the integration's conditions.
#[utoipa::path(
    post, path = "/v1/sales/{id}/forward", tag = "sales", operation_id = "forwardSale",
    summary = "Send one sale through one integration (manual; conditions still apply)",
    description = "Emits `sale.forward_requested`.",
    params(("id" = Uuid, Path, description = "Sale id")),
    request_body = ForwardRequest,
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 404, description = "No such sale or integration of the tenant"),
    )
)]
pub async fn forward(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ForwardRequest>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let id: SaleId = parse_id(&id, "sale")?;
    let mut tx = state.pool.begin().await?;
    if !store::sales::integration_exists(&mut tx, caller.tenant_id, req.integration_id).await? {
        return Err(ApiError::NotFound("integration"));
    }
    let sale = store::sales::lock(&mut tx, caller.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("sale"))?;
    let full = stored_sale(sale.sale, &sale.status)?;
    let trigger = Trigger::Manual {
        integration_id: req.integration_id,
    };
    let event = sale_event(caller.tenant_id, id, trigger, full);
    outbox::enqueue(&mut tx, std::slice::from_ref(&event)).await?;
    tx.commit().await?;
    state.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(Queued { queued: true })))
}

/// The stored sale as it stands now; a stored document that no longer
/// parses is our fault, not the caller's.
fn stored_sale(stored: Value, status: &str) -> Result<SaleInput, ApiError> {
    sale_with_status(stored, status).map_err(|e| {
        tracing::error!(error = %e, "stored sale does not parse");
        ApiError::Internal
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    #[schema(max_items = 500)]
    pub external_ids: Vec<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct LookupResponse {
    pub sales: Vec<LookupRow>,
}

/// `POST /v1/sales/lookup` — the sales found, in the order asked; unknown
/// external ids are left out.
#[utoipa::path(
    post, path = "/v1/sales/lookup", tag = "sales", operation_id = "lookupSales",
    summary = "Look sales up by external id (used by another salesync's status-poller)",
    description = "Allowed for integration-only tokens.",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "Found sales", body = LookupResponse),
        (status = 422, description = "Invalid (`validation_failed`)"),
    )
)]
pub async fn lookup(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<LookupRequest>,
) -> Result<Json<LookupResponse>, ApiError> {
    if req.external_ids.len() > MAX_LOOKUP {
        return Err(ApiError::invalid_field(
            "external_ids",
            format!(
                "at most {MAX_LOOKUP} per request, got {}",
                req.external_ids.len()
            ),
        ));
    }
    if req.external_ids.is_empty() {
        return Ok(Json(LookupResponse { sales: vec![] }));
    }
    let mut conn = state.pool.acquire().await?;
    let rows = store::sales::lookup(&mut conn, caller.tenant_id, &req.external_ids).await?;
    let mut by_id: HashMap<String, LookupRow> = rows
        .into_iter()
        .map(|r| (r.external_id.clone(), r))
        .collect();
    let sales = req
        .external_ids
        .iter()
        .filter_map(|e| by_id.remove(e))
        .collect();
    Ok(Json(LookupResponse { sales }))
}
