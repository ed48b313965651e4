//! What a partner's token reaches of the provider's control plane (issue 17):
//! who the token is (`GET /v1/integration`, what A's "Test connection" asks)
//! and, for an Agent's token, the catalogue its organization is granted
//! (`GET /v1/integration/catalogue`, what A imports and syncs). Orders and
//! status lookups are the data plane's sales routes.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::catalogue::{Flow, ProductVersion};
use salesync_core::catalogue_store;
use salesync_core::domain::{OrganizationId, TenantId};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::store;

/// The provider's account the token belongs to.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct Account {
    pub tenant_id: TenantId,
    pub name: String,
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct OrganizationRef {
    pub id: OrganizationId,
    pub name: String,
}

/// What the calling token is.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct TokenKind {
    /// Limited to the integration endpoints.
    pub integration_only: bool,
    /// The partner organization, when the token is an Agent's.
    pub organization: Option<OrganizationRef>,
}

/// How much of the catalogue the token's organization is granted.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct GrantedCounts {
    pub products: usize,
    pub flows: usize,
}

#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct IntegrationAccess {
    pub account: Account,
    pub token: TokenKind,
    /// `null` unless the token is an Agent's.
    pub granted: Option<GrantedCounts>,
}

/// `GET /v1/integration`
#[utoipa::path(
    get, path = "/v1/integration", tag = "integration", operation_id = "getIntegrationAccess",
    summary = "Who the calling token is: account, token kind, what it is granted",
    description = "Open to every tenant token, integration-only ones included, so that a partner can test a connection: the provider's account name, whether the token is integration-only and an Agent's, and how many products and flows its organization is granted.",
    responses(
        (status = 200, description = "The token's account and kind", body = IntegrationAccess),
        (status = 401, description = "Missing, unknown or revoked token (`unauthorized`)"),
    )
)]
pub async fn access(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<IntegrationAccess>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let name = store::tenants::name(&mut conn, caller.tenant_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let (organization, granted) = match caller.organization_id {
        Some(id) => {
            let org = store::organizations::get(&mut conn, caller.tenant_id, id)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            let grants = catalogue_store::grants(&mut conn, caller.tenant_id, id).await?;
            let catalogue =
                catalogue_store::granted(&mut conn, caller.tenant_id, &grants, None, None).await?;
            let counts = GrantedCounts {
                products: catalogue.products.len(),
                flows: catalogue.flows.len(),
            };
            let org = OrganizationRef { id, name: org.name };
            (Some(org), Some(counts))
        }
        None => (None, None),
    };
    Ok(Json(IntegrationAccess {
        account: Account {
            tenant_id: caller.tenant_id,
            name,
        },
        token: TokenKind {
            integration_only: caller.integration_only,
            organization,
        },
        granted,
    }))
}

/// The catalogue as a partner's organization is granted it.
#[derive(Serialize, Deserialize, Debug, utoipa::ToSchema)]
pub struct GrantedCatalogue {
    pub organization: OrganizationRef,
    /// Each granted product in its current version, with its questions.
    /// A product B withdrew, or stopped granting, is not listed.
    pub products: Vec<ProductVersion>,
    /// Each granted flow, listing only granted products.
    pub flows: Vec<Flow>,
    pub read_at: DateTime<Utc>,
}

/// `GET /v1/integration/catalogue`
#[utoipa::path(
    get, path = "/v1/integration/catalogue", tag = "integration",
    operation_id = "getGrantedCatalogue",
    summary = "The products and flows the Agent's organization is granted",
    description = "For an Agent's token only (403 `agent_token_required` otherwise). Products come in their current version with every question, flows with the granted products they sell. Orders (`POST /v1/sales`) may name only these, and are checked against them.",
    responses(
        (status = 200, description = "The granted catalogue", body = GrantedCatalogue),
        (status = 401, description = "Missing, unknown or revoked token (`unauthorized`)"),
        (status = 403, description = "Not an Agent's token (`agent_token_required`)"),
    )
)]
pub async fn catalogue(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<GrantedCatalogue>, ApiError> {
    let id = caller.organization_id.ok_or(ApiError::AgentTokenRequired)?;
    let mut tx = state.pool.begin().await?;
    let org = store::organizations::get(&mut tx, caller.tenant_id, id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let grants = catalogue_store::grants(&mut tx, caller.tenant_id, id).await?;
    let catalogue =
        catalogue_store::granted(&mut tx, caller.tenant_id, &grants, None, None).await?;
    tx.commit().await?;
    Ok(Json(GrantedCatalogue {
        organization: OrganizationRef { id, name: org.name },
        products: catalogue.products,
        flows: catalogue.flows,
        read_at: Utc::now(),
    }))
}
