//! The provider's partners (issue 17, tenant B's side): one organization per
//! reseller (`POST /v1/organizations`), and what each is granted of the
//! catalogue (`PUT /v1/organizations/{id}/grants`: the products and flows it
//! may sell, replacing what it had — a key left out is revoked, its grant
//! kept on record). Each grant given or revoked is told to the
//! organization's subscriptions, in the same transaction
//! (`catalogue_events`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::field_checks::check_name;
use salesync_core::api::json::JsonBody;
use salesync_core::domain::{FieldError, OrganizationId};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::app::AppState;
use crate::catalogue_events::{self, Audience, grant_changes};
use crate::routes::parse_id;
use crate::routes::products::wake_if;
use crate::store;
use crate::store::catalogue::Kind;
use crate::store::organizations::{Granted, OrganizationRow};

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// A display name, unique among the tenant's organizations.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
}

/// What an organization may sell: product and flow keys of the catalogue.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantSet {
    #[serde(default)]
    pub products: Vec<String>,
    #[serde(default)]
    pub flows: Vec<String>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct OrganizationView {
    pub id: OrganizationId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Granted now (revoked grants are not listed).
    pub grants: GrantSet,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct OrganizationList {
    pub organizations: Vec<OrganizationView>,
}

async fn view(conn: &mut PgConnection, row: OrganizationRow) -> sqlx::Result<OrganizationView> {
    let mut grants = store::organizations::granted(conn, &[row.id]).await?;
    Ok(with_grants(row, &mut grants))
}

/// `row` with its entry of `grants` (taken out of the map).
fn with_grants(
    row: OrganizationRow,
    grants: &mut HashMap<OrganizationId, Granted>,
) -> OrganizationView {
    let Granted { products, flows } = grants.remove(&row.id).unwrap_or_default();
    OrganizationView {
        id: row.id,
        name: row.name,
        created_at: row.created_at,
        grants: GrantSet { products, flows },
    }
}

/// `POST /v1/organizations`
#[utoipa::path(
    post, path = "/v1/organizations", tag = "organizations", operation_id = "createOrganization",
    summary = "Create an organization for a partner",
    request_body = NewOrganization,
    responses(
        (status = 201, description = "Created, with no grants", body = OrganizationView),
        (status = 409, description = "The name is taken (`organization_exists`)"),
        (status = 422, description = "Invalid name (`validation_failed`)"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<NewOrganization>,
) -> Result<(StatusCode, Json<OrganizationView>), ApiError> {
    check_name(&input.name).map_err(|p| ApiError::invalid_field("name", p))?;
    let name = input.name.trim();
    let mut conn = state.pool.acquire().await?;
    let row =
        store::organizations::insert(&mut conn, caller.tenant_id, OrganizationId::new(), name)
            .await?
            .ok_or_else(|| ApiError::Conflict {
                code: "organization_exists",
                message: format!("an organization named '{name}' exists already"),
            })?;
    tracing::info!(tenant_id = %caller.tenant_id, organization_id = %row.id, "organization created");
    Ok((StatusCode::CREATED, Json(view(&mut conn, row).await?)))
}

/// `GET /v1/organizations`
#[utoipa::path(
    get, path = "/v1/organizations", tag = "organizations", operation_id = "listOrganizations",
    summary = "The tenant's organizations and their grants",
    responses((status = 200, description = "By name", body = OrganizationList))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OrganizationList>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let rows = store::organizations::list(&mut conn, caller.tenant_id).await?;
    let ids: Vec<OrganizationId> = rows.iter().map(|r| r.id).collect();
    let mut grants = store::organizations::granted(&mut conn, &ids).await?;
    let organizations = rows
        .into_iter()
        .map(|row| with_grants(row, &mut grants))
        .collect();
    Ok(Json(OrganizationList { organizations }))
}

/// `GET /v1/organizations/{id}`
#[utoipa::path(
    get, path = "/v1/organizations/{id}", tag = "organizations", operation_id = "getOrganization",
    summary = "One organization and its grants",
    params(("id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization", body = OrganizationView),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    let id: OrganizationId = parse_id(&id, "organization")?;
    let mut conn = state.pool.acquire().await?;
    let row = store::organizations::get(&mut conn, caller.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    Ok(Json(view(&mut conn, row).await?))
}

/// `PUT /v1/organizations/{id}/grants`
#[utoipa::path(
    put, path = "/v1/organizations/{id}/grants", tag = "organizations",
    operation_id = "putOrganizationGrants",
    summary = "Set what the organization may sell",
    description = "Replaces the organization's grants: every product and flow listed is granted (from now, if it was not), every one left out is revoked (its grant stays on record). Each key must be a product or flow of the catalogue that is not withdrawn (422 naming `products[i]` / `flows[i]`).",
    params(("id" = String, Path, description = "Organization id")),
    request_body = GrantSet,
    responses(
        (status = 200, description = "The organization with its grants", body = OrganizationView),
        (status = 404, description = "Unknown, or another tenant's (`not_found`)"),
        (status = 422, description = "A key not in the catalogue (`validation_failed`)"),
    )
)]
pub async fn put_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(mut grants): JsonBody<GrantSet>,
) -> Result<Json<OrganizationView>, ApiError> {
    let id: OrganizationId = parse_id(&id, "organization")?;
    let mut tx = state.pool.begin().await?;
    let row = store::organizations::lock(&mut tx, caller.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    let products =
        store::catalogue::live_keys(&mut tx, caller.tenant_id, Kind::Product, &grants.products)
            .await?;
    let flows =
        store::catalogue::live_keys(&mut tx, caller.tenant_id, Kind::Flow, &grants.flows).await?;
    let mut problems = unknown_keys("products", &grants.products, |k| products.contains(k));
    problems.extend(unknown_keys("flows", &grants.flows, |k| flows.contains(k)));
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    for keys in [&mut grants.products, &mut grants.flows] {
        keys.sort();
        keys.dedup();
    }
    let products =
        store::organizations::set_grants(&mut tx, id, "product", &grants.products).await?;
    let flows = store::organizations::set_grants(&mut tx, id, "flow", &grants.flows).await?;
    let mut changes = grant_changes(Kind::Product, &products.granted, &products.revoked);
    changes.extend(grant_changes(Kind::Flow, &flows.granted, &flows.revoked));
    let filed = catalogue_events::file(
        &mut tx,
        caller.tenant_id,
        Audience::Organization(id),
        &changes,
    )
    .await?;
    let view = view(&mut tx, row).await?;
    tx.commit().await?;
    wake_if(&state, filed);
    tracing::info!(
        tenant_id = %caller.tenant_id,
        organization_id = %id,
        products = grants.products.len(),
        flows = grants.flows.len(),
        callbacks = filed,
        "grants set"
    );
    Ok(Json(view))
}

/// A problem for each of `keys` that `known` refuses, named `field[i]`.
fn unknown_keys(field: &str, keys: &[String], known: impl Fn(&str) -> bool) -> Vec<FieldError> {
    keys.iter()
        .enumerate()
        .filter(|(_, k)| !known(k))
        .map(|(i, k)| {
            FieldError::new(
                format!("{field}[{i}]"),
                format!("'{}' is not in the catalogue (or withdrawn)", clip(k)),
            )
        })
        .collect()
}

/// At most 64 characters of a caller's key, for a message.
fn clip(key: &str) -> String {
    key.chars().take(64).collect()
}
