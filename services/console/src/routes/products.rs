//! The provider's products (issue 17, tenant B's side). `PUT
//! /v1/products/{key}` writes one: a change makes a new version, the same
//! content again changes nothing, so the call can be repeated safely.
//! `GET /v1/products` lists the current versions, `GET
//! /v1/products/{key}/versions/{version}` reads any version (a sale keeps
//! the version it was made with), `DELETE` withdraws a product (its versions
//! stay readable). What makes a product valid is `salesync_core::catalogue`.
//! Each change is told to the partners granted the product, in its own
//! transaction (`catalogue_events`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::json::JsonBody;
use salesync_core::catalogue::{ProductInput, ProductVersion, Revision, check_product, revise};
use serde::Serialize;

use crate::app::AppState;
use crate::catalogue_events::{self, Audience, CatalogueChange, ChangeKind};
use crate::store;
use crate::store::catalogue::Kind;

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct ProductList {
    /// The current version of every product not withdrawn, by key.
    pub products: Vec<ProductVersion>,
}

/// `PUT /v1/products/{key}`
#[utoipa::path(
    put, path = "/v1/products/{key}", tag = "catalogue", operation_id = "putProduct",
    summary = "Create or change a product",
    description = "Writes the product `key` (`[a-z0-9_-]{1,64}`). A first write is version 1 (201); a write that changes anything is the next version (200); the same content again changes nothing (200, same version). A withdrawn product written again comes back as a new version. Besides the schema, a product must hold together: unique question keys, options for choice questions, validations that fit the question's type and compile, conditions that name another question and form no cycle (422 naming each field).",
    params(("key" = String, Path, description = "The product's key")),
    request_body = ProductInput,
    responses(
        (status = 201, description = "Created: version 1", body = ProductVersion),
        (status = 200, description = "Changed (a new version) or unchanged", body = ProductVersion),
        (status = 422, description = "Not a valid product (`validation_failed`)"),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    JsonBody(input): JsonBody<ProductInput>,
) -> Result<(StatusCode, Json<ProductVersion>), ApiError> {
    let mut tx = state.pool.begin().await?;
    store::catalogue::lock_key(&mut tx, caller.tenant_id, "product", &key).await?;
    let current = store::catalogue::current_product(&mut tx, caller.tenant_id, &key).await?;
    let before = current.as_ref().map(|c| (&c.product, c.withdrawn));
    let (product, revision) = revise(before, &key, input);
    let problems = check_product(&product);
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    if revision != Revision::Unchanged {
        store::catalogue::write_version(&mut tx, caller.tenant_id, &product).await?;
        let change = catalogue_events::product_change(before, &product, revision);
        let audience = Audience::Granted(Kind::Product, &key);
        let filed =
            catalogue_events::file(&mut tx, caller.tenant_id, audience, change.as_slice()).await?;
        tx.commit().await?;
        wake_if(&state, filed);
        tracing::info!(tenant_id = %caller.tenant_id, key, version = product.version, callbacks = filed, "product written");
    }
    let status = match revision {
        Revision::Created => StatusCode::CREATED,
        Revision::Changed | Revision::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(product)))
}

/// `GET /v1/products`
#[utoipa::path(
    get, path = "/v1/products", tag = "catalogue", operation_id = "listProducts",
    summary = "The current version of each product",
    responses((status = 200, description = "Products not withdrawn, by key", body = ProductList))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProductList>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let products =
        salesync_core::catalogue_store::products(&mut conn, caller.tenant_id, None).await?;
    Ok(Json(ProductList { products }))
}

/// `GET /v1/products/{key}/versions/{version}`
#[utoipa::path(
    get, path = "/v1/products/{key}/versions/{version}", tag = "catalogue",
    operation_id = "getProductVersion",
    summary = "One version of a product (also of a withdrawn one)",
    params(
        ("key" = String, Path, description = "The product's key"),
        ("version" = u32, Path, description = "The version, from 1"),
    ),
    responses(
        (status = 200, description = "The version", body = ProductVersion),
        (status = 404, description = "No such product or version (`not_found`)"),
    )
)]
pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, version)): Path<(String, String)>,
) -> Result<Json<ProductVersion>, ApiError> {
    let version: i32 = crate::routes::parse_id(&version, "product version")?;
    let mut conn = state.pool.acquire().await?;
    store::catalogue::product_version(&mut conn, caller.tenant_id, &key, version)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("product version"))
}

/// `DELETE /v1/products/{key}`
#[utoipa::path(
    delete, path = "/v1/products/{key}", tag = "catalogue", operation_id = "deleteProduct",
    summary = "Withdraw a product",
    description = "The product leaves the catalogue and takes no new orders; its versions stay readable. Writing it again brings it back as a new version.",
    params(("key" = String, Path, description = "The product's key")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "No such product, or withdrawn already (`not_found`)"),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    if !store::catalogue::withdraw_product(&mut tx, caller.tenant_id, &key).await? {
        return Err(ApiError::NotFound("product"));
    }
    let change = CatalogueChange::of(Kind::Product, &key, ChangeKind::Deleted);
    let audience = Audience::Granted(Kind::Product, &key);
    let filed = catalogue_events::file(&mut tx, caller.tenant_id, audience, &[change]).await?;
    tx.commit().await?;
    wake_if(&state, filed);
    tracing::info!(tenant_id = %caller.tenant_id, key, callbacks = filed, "product withdrawn");
    Ok(StatusCode::NO_CONTENT)
}

/// Wakes the outbox relay when callbacks were filed (after the commit).
pub(crate) fn wake_if(state: &AppState, filed: usize) {
    if filed > 0 {
        state.wake.notify_one();
    }
}
