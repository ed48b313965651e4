//! SQL of the provider's organizations and their grants (migration 0013).
//! Every query is scoped by `tenant_id` (grants through their organization).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use salesync_core::domain::{OrganizationId, TenantId};
use serde::Serialize;
use sqlx::PgConnection;

#[derive(sqlx::FromRow, Serialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct OrganizationRow {
    pub id: OrganizationId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// `Ok(false)`: the tenant has an organization of that name already.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrganizationId,
    name: &str,
) -> sqlx::Result<Option<OrganizationRow>> {
    sqlx::query_as(
        "INSERT INTO organizations (id, tenant_id, name) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, name) DO NOTHING
         RETURNING id, name, created_at",
    )
    .bind(id)
    .bind(tenant)
    .bind(name)
    .fetch_optional(conn)
    .await
}

pub async fn list(conn: &mut PgConnection, tenant: TenantId) -> sqlx::Result<Vec<OrganizationRow>> {
    sqlx::query_as(
        "SELECT id, name, created_at FROM organizations WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// The organization, locked until the transaction ends (grant changes of
/// one organization are serialised).
pub async fn lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrganizationId,
) -> sqlx::Result<Option<OrganizationRow>> {
    sqlx::query_as(
        "SELECT id, name, created_at FROM organizations
         WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrganizationId,
) -> sqlx::Result<Option<OrganizationRow>> {
    sqlx::query_as(
        "SELECT id, name, created_at FROM organizations WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// What one organization is granted now (not revoked), each list sorted.
#[derive(Debug, Default)]
pub struct Granted {
    pub products: Vec<String>,
    pub flows: Vec<String>,
}

/// The grants of `organizations`, in one query.
pub async fn granted(
    conn: &mut PgConnection,
    organizations: &[OrganizationId],
) -> sqlx::Result<HashMap<OrganizationId, Granted>> {
    let rows: Vec<(OrganizationId, String, String)> = sqlx::query_as(
        "SELECT organization_id, kind, key FROM grants
         WHERE organization_id = ANY($1) AND revoked_at IS NULL ORDER BY key",
    )
    .bind(organizations)
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<OrganizationId, Granted> = HashMap::new();
    for (organization, kind, key) in rows {
        let entry = out.entry(organization).or_default();
        match kind.as_str() {
            "product" => entry.products.push(key),
            _ => entry.flows.push(key),
        }
    }
    Ok(out)
}

/// What `set_grants` changed: keys granted that were not, keys revoked;
/// each sorted.
#[derive(Debug, Default, PartialEq)]
pub struct GrantChanges {
    pub granted: Vec<String>,
    pub revoked: Vec<String>,
}

/// Grants exactly `keys` of `kind`: new ones (or revoked ones) granted now,
/// the others revoked now, those granted already left as they are.
pub async fn set_grants(
    conn: &mut PgConnection,
    organization: OrganizationId,
    kind: &str,
    keys: &[String],
) -> sqlx::Result<GrantChanges> {
    let mut revoked: Vec<String> = sqlx::query_scalar(
        "UPDATE grants SET revoked_at = now()
         WHERE organization_id = $1 AND kind = $2 AND revoked_at IS NULL
           AND NOT (key = ANY($3))
         RETURNING key",
    )
    .bind(organization)
    .bind(kind)
    .bind(keys)
    .fetch_all(&mut *conn)
    .await?;
    let mut granted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO grants (organization_id, kind, key)
         SELECT $1, $2, k FROM UNNEST($3::text[]) AS k
         ON CONFLICT (organization_id, kind, key) DO UPDATE
           SET granted_at = now(), revoked_at = NULL
           WHERE grants.revoked_at IS NOT NULL
         RETURNING key",
    )
    .bind(organization)
    .bind(kind)
    .bind(keys)
    .fetch_all(conn)
    .await?;
    granted.sort();
    revoked.sort();
    Ok(GrantChanges { granted, revoked })
}
