//! The provider's Agent users (issue 17, tenant B's side): an Agent belongs
//! to one partner organization and exists only for its integration. Its
//! token is integration-only by construction — it reaches the integration
//! endpoints (the granted catalogue, orders, status lookups) and nothing
//! else — is shown once, stored hashed, and can be rotated (the old one
//! stops working at once) or revoked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::field_checks::check_name;
use salesync_core::api::json::JsonBody;
use salesync_core::domain::{AgentId, OrganizationId, TenantId, TokenId};
use salesync_core::tokens;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::app::AppState;
use crate::routes::parse_id;
use crate::store;
use crate::store::agents::AgentRow;
use crate::store::tenants::NewTokenRow;

#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// A display name, unique among the organization's agents.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
}

/// An agent's active token, as a list shows it (never the token itself).
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct AgentTokenView {
    pub id: TokenId,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct AgentView {
    pub id: AgentId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The active token; `null` once revoked (rotate to issue a new one).
    pub token: Option<AgentTokenView>,
}

#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

/// An agent with a token just issued: the only time the token is shown.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct AgentWithToken {
    pub agent: AgentView,
    /// Give it to the partner; it is stored only as a hash.
    pub token: String,
}

fn view(row: AgentRow) -> AgentView {
    let token = match (row.token_id, row.token_prefix, row.token_created_at) {
        (Some(id), Some(prefix), Some(created_at)) => Some(AgentTokenView {
            id,
            prefix,
            created_at,
            last_used_at: row.token_last_used_at,
        }),
        _ => None,
    };
    AgentView {
        id: row.id,
        organization_id: row.organization_id,
        name: row.name,
        created_at: row.created_at,
        token,
    }
}

/// Issues the agent a new integration-only token (its only active one: the
/// caller revoked any other in the same transaction) and answers the agent
/// with it.
async fn issue_token(
    conn: &mut PgConnection,
    tenant: TenantId,
    agent: AgentId,
) -> Result<AgentWithToken, ApiError> {
    let token = tokens::generate();
    let token_id = TokenId::new();
    let row = NewTokenRow {
        id: token_id,
        tenant_id: tenant,
        name: &format!("agent {agent}"),
        hash: &token.hash,
        prefix: &token.display_prefix,
        integration_only: true,
        agent_id: Some(agent),
    };
    store::tenants::insert_token(conn, &row).await?;
    let agent = store::agents::get(conn, tenant, agent)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    tracing::info!(tenant_id = %tenant, agent_id = %agent.id, %token_id, "agent token issued");
    Ok(AgentWithToken {
        agent: view(agent),
        token: token.token,
    })
}

/// `POST /v1/organizations/{id}/agents`
#[utoipa::path(
    post, path = "/v1/organizations/{id}/agents", tag = "organizations", operation_id = "createAgent",
    summary = "Create an Agent user for the organization, with its token",
    description = "The Agent exists only for the partner's integration. Its token is integration-only: it reaches the integration endpoints (`GET /v1/integration`, `GET /v1/integration/catalogue`, and the sales routes open to integration tokens) and is refused (403) everywhere else. Orders it places are checked against what the organization is granted. The token is shown once.",
    params(("id" = String, Path, description = "Organization id")),
    request_body = NewAgent,
    responses(
        (status = 201, description = "Created; the token is shown once", body = AgentWithToken),
        (status = 404, description = "Unknown, or another tenant's organization (`not_found`)"),
        (status = 409, description = "The organization has an agent of that name (`agent_exists`)"),
        (status = 422, description = "Invalid name (`validation_failed`)"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<NewAgent>,
) -> Result<(StatusCode, Json<AgentWithToken>), ApiError> {
    let organization: OrganizationId = parse_id(&id, "organization")?;
    check_name(&input.name).map_err(|p| ApiError::invalid_field("name", p))?;
    let name = input.name.trim();
    let mut tx = state.pool.begin().await?;
    store::organizations::lock(&mut tx, caller.tenant_id, organization)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    let agent = AgentId::new();
    if !store::agents::insert(&mut tx, caller.tenant_id, organization, agent, name).await? {
        return Err(ApiError::Conflict {
            code: "agent_exists",
            message: format!("the organization has an agent named '{name}' already"),
        });
    }
    let created = issue_token(&mut tx, caller.tenant_id, agent).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/organizations/{id}/agents`
#[utoipa::path(
    get, path = "/v1/organizations/{id}/agents", tag = "organizations", operation_id = "listAgents",
    summary = "The organization's Agent users and their active tokens",
    params(("id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "By name", body = AgentList),
        (status = 404, description = "Unknown, or another tenant's organization (`not_found`)"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AgentList>, ApiError> {
    let organization: OrganizationId = parse_id(&id, "organization")?;
    let mut conn = state.pool.acquire().await?;
    store::organizations::get(&mut conn, caller.tenant_id, organization)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    let rows = store::agents::list(&mut conn, caller.tenant_id, organization).await?;
    Ok(Json(AgentList {
        agents: rows.into_iter().map(view).collect(),
    }))
}

/// `POST /v1/agents/{id}/token`
#[utoipa::path(
    post, path = "/v1/agents/{id}/token", tag = "organizations", operation_id = "rotateAgentToken",
    summary = "Issue the Agent a new token; the old one stops working at once",
    description = "Revokes the Agent's active token (every API process drops it at once) and issues a new integration-only token, shown once. Also issues a token to an Agent whose token was revoked.",
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 201, description = "Issued; the token is shown once", body = AgentWithToken),
        (status = 404, description = "Unknown, or another tenant's agent (`not_found`)"),
    )
)]
pub async fn rotate_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AgentWithToken>), ApiError> {
    let agent: AgentId = parse_id(&id, "agent")?;
    let mut tx = state.pool.begin().await?;
    if !store::agents::lock(&mut tx, caller.tenant_id, agent).await? {
        return Err(ApiError::NotFound("agent"));
    }
    store::agents::revoke_tokens(&mut tx, agent).await?;
    let issued = issue_token(&mut tx, caller.tenant_id, agent).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// `DELETE /v1/agents/{id}/token`
#[utoipa::path(
    delete, path = "/v1/agents/{id}/token", tag = "organizations", operation_id = "revokeAgentToken",
    summary = "Revoke the Agent's token",
    description = "The token stops working at once on every API process. Revoking when there is no active token is a no-op (204). Rotate to issue a new one.",
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "Unknown, or another tenant's agent (`not_found`)"),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let agent: AgentId = parse_id(&id, "agent")?;
    let mut tx = state.pool.begin().await?;
    if !store::agents::lock(&mut tx, caller.tenant_id, agent).await? {
        return Err(ApiError::NotFound("agent"));
    }
    let revoked = store::agents::revoke_tokens(&mut tx, agent).await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %caller.tenant_id, agent_id = %agent, revoked, "agent token revoked");
    Ok(StatusCode::NO_CONTENT)
}
