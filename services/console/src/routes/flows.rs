//! The provider's flows (issue 17): the sales scripts or checkouts its
//! products are sold through. `PUT /v1/flows/{key}` writes one (every
//! product it names must be in the catalogue), `GET /v1/flows` lists them,
//! `DELETE` withdraws one. Each change is told to the partners granted the
//! flow, in its own transaction (`catalogue_events`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::json::JsonBody;
use salesync_core::catalogue::{Flow, check_flow};
use salesync_core::domain::FieldError;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::catalogue_events::{self, Audience, CatalogueChange, ChangeKind};
use crate::routes::products::wake_if;
use crate::store;
use crate::store::catalogue::Kind;
use salesync_core::catalogue_store;

/// A flow as its provider writes it; the key is the path's.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowInput {
    pub name: String,
    /// Keys of the products sold through the flow, each in the catalogue.
    #[serde(default)]
    pub products: Vec<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct FlowList {
    /// Flows not withdrawn, by key.
    pub flows: Vec<Flow>,
}

/// `PUT /v1/flows/{key}`
#[utoipa::path(
    put, path = "/v1/flows/{key}", tag = "catalogue", operation_id = "putFlow",
    summary = "Create or change a flow",
    description = "Writes the flow `key` (`[a-z0-9_-]{1,64}`): 201 when new (or withdrawn before), 200 otherwise. Every product it names must be in the catalogue and not withdrawn (422 naming `products[i]`).",
    params(("key" = String, Path, description = "The flow's key")),
    request_body = FlowInput,
    responses(
        (status = 201, description = "Created", body = Flow),
        (status = 200, description = "Written", body = Flow),
        (status = 422, description = "Not a valid flow (`validation_failed`)"),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(input): JsonBody<FlowInput>,
) -> Result<(StatusCode, Json<Flow>), ApiError> {
    let flow = Flow {
        key,
        name: input.name,
        products: input.products,
    };
    let mut problems = check_flow(&flow);
    let mut tx = state.pool.begin().await?;
    if problems.is_empty() {
        let known =
            store::catalogue::live_keys(&mut tx, caller.tenant_id, Kind::Product, &flow.products)
                .await?;
        problems.extend(
            flow.products
                .iter()
                .enumerate()
                .filter(|(_, p)| !known.contains(*p))
                .map(|(i, p)| {
                    FieldError::new(
                        format!("products[{i}]"),
                        format!("no product '{p}' in the catalogue"),
                    )
                }),
        );
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let live = catalogue_store::flows(
        &mut tx,
        caller.tenant_id,
        Some(std::slice::from_ref(&flow.key)),
    )
    .await?;
    let created = store::catalogue::write_flow(&mut tx, caller.tenant_id, &flow).await?;
    // The same flow again tells nobody anything.
    let change = match (created, live.first() == Some(&flow)) {
        (true, _) => Some(ChangeKind::Created),
        (false, false) => Some(ChangeKind::Updated),
        (false, true) => None,
    };
    let changes: Vec<CatalogueChange> = change
        .map(|c| CatalogueChange::of(Kind::Flow, &flow.key, c))
        .into_iter()
        .collect();
    let audience = Audience::Granted(Kind::Flow, &flow.key);
    let filed = catalogue_events::file(&mut tx, caller.tenant_id, audience, &changes).await?;
    tx.commit().await?;
    wake_if(&state, filed);
    tracing::info!(tenant_id = %caller.tenant_id, key = flow.key, callbacks = filed, "flow written");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(flow)))
}

/// `GET /v1/flows`
#[utoipa::path(
    get, path = "/v1/flows", tag = "catalogue", operation_id = "listFlows",
    summary = "The flows",
    responses((status = 200, description = "Flows not withdrawn, by key", body = FlowList))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<FlowList>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let flows = salesync_core::catalogue_store::flows(&mut conn, caller.tenant_id, None).await?;
    Ok(Json(FlowList { flows }))
}

/// `DELETE /v1/flows/{key}`
#[utoipa::path(
    delete, path = "/v1/flows/{key}", tag = "catalogue", operation_id = "deleteFlow",
    summary = "Withdraw a flow",
    params(("key" = String, Path, description = "The flow's key")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "No such flow, or withdrawn already (`not_found`)"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    if !store::catalogue::withdraw_flow(&mut tx, caller.tenant_id, &key).await? {
        return Err(ApiError::NotFound("flow"));
    }
    let change = CatalogueChange::of(Kind::Flow, &key, ChangeKind::Deleted);
    let audience = Audience::Granted(Kind::Flow, &key);
    let filed = catalogue_events::file(&mut tx, caller.tenant_id, audience, &[change]).await?;
    tx.commit().await?;
    wake_if(&state, filed);
    tracing::info!(tenant_id = %caller.tenant_id, key, callbacks = filed, "flow withdrawn");
    Ok(StatusCode::NO_CONTENT)
}
