//! The SQL condition-filter runs, each one statement for a whole batch
//! (`= ANY` / `UNNEST` arrays): which sales exist, the new deliveries, the
//! decisions. Called inside the handler's one transaction per batch.

use std::collections::{HashMap, HashSet};

use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::messages::Purpose;
use sqlx::PgConnection;

use crate::plan::{DecisionRow, NewDelivery};

/// Each of these sales that exists, with its tenant.
pub async fn existing_sales(
    conn: &mut PgConnection,
    ids: &[SaleId],
) -> sqlx::Result<HashMap<SaleId, TenantId>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(SaleId, TenantId)> =
        sqlx::query_as("SELECT id, tenant_id FROM sales WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The (event, integration) pairs already decided for these events.
pub async fn decided(
    conn: &mut PgConnection,
    event_ids: &[uuid::Uuid],
) -> sqlx::Result<HashSet<(uuid::Uuid, IntegrationId)>> {
    if event_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(uuid::Uuid, IntegrationId)> = sqlx::query_as(
        "SELECT event_id, integration_id FROM sale_decisions WHERE event_id = ANY($1)",
    )
    .bind(event_ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Inserts the deliveries that do not exist yet (by `(tenant_id, dedupe_key)`)
/// and returns the ids of those it created. A delivery that already existed
/// belongs to an earlier event and already has its forward command.
pub async fn insert_deliveries(
    conn: &mut PgConnection,
    deliveries: &[&NewDelivery],
) -> sqlx::Result<HashSet<DeliveryId>> {
    if deliveries.is_empty() {
        return Ok(HashSet::new());
    }
    // A fixed order keeps two replicas inserting overlapping keys from
    // deadlocking on each other's unique-index locks.
    let mut sorted = deliveries.to_vec();
    sorted.sort_by(|a, b| (a.tenant_id, &a.dedupe_key).cmp(&(b.tenant_id, &b.dedupe_key)));
    let n = sorted.len();
    let mut ids = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut sales = Vec::with_capacity(n);
    let mut integrations: Vec<IntegrationId> = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut urls = Vec::with_capacity(n);
    let mut refs = Vec::with_capacity(n);
    // Kept so a dead delivery can be replayed exactly as first sent.
    let mut bodies = Vec::with_capacity(n);
    for d in sorted {
        ids.push(d.id);
        tenants.push(d.tenant_id);
        sales.push(d.sale_id);
        integrations.push(d.integration_id);
        keys.push(d.dedupe_key.clone());
        urls.push(d.request.url.clone());
        refs.push(d.id.to_string());
        bodies.push(d.request.body.clone());
    }
    let created: Vec<(DeliveryId,)> = sqlx::query_as(
        "INSERT INTO deliveries
             (id, tenant_id, sale_id, integration_id, purpose, dedupe_key, target_url, target_ref, body)
         SELECT id, tenant_id, sale_id, integration_id, $8, dedupe_key, target_url, target_ref, body
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                     $9::jsonb[])
              AS t(id, tenant_id, sale_id, integration_id, dedupe_key, target_url, target_ref, body)
         ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(ids)
    .bind(tenants)
    .bind(sales)
    .bind(integrations)
    .bind(keys)
    .bind(urls)
    .bind(refs)
    .bind(Purpose::Forward.as_str())
    .bind(bodies)
    .fetch_all(conn)
    .await?;
    Ok(created.into_iter().map(|(id,)| id).collect())
}

/// Records decisions; one already recorded for the same (event, integration)
/// — a redelivered event — is left as it was. Returns the (event id,
/// integration) of each decision it recorded.
pub async fn insert_decisions(
    conn: &mut PgConnection,
    rows: &[DecisionRow],
) -> sqlx::Result<HashSet<(uuid::Uuid, IntegrationId)>> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let n = rows.len();
    let mut sales = Vec::with_capacity(n);
    let mut integrations = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n);
    let mut triggers = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut forwarded = Vec::with_capacity(n);
    let mut reasons = Vec::with_capacity(n);
    for r in rows {
        sales.push(r.sale_id);
        integrations.push(r.integration_id);
        events.push(r.event_id);
        triggers.push(r.trigger);
        statuses.push(r.status.clone());
        forwarded.push(r.forwarded);
        reasons.push(r.reason.clone());
    }
    let recorded: Vec<(uuid::Uuid, IntegrationId)> = sqlx::query_as(
        "INSERT INTO sale_decisions
             (sale_id, integration_id, event_id, trigger, status, forwarded, reason)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bool[], $7::text[])
         ON CONFLICT (event_id, integration_id) DO NOTHING
         RETURNING event_id, integration_id",
    )
    .bind(sales)
    .bind(integrations)
    .bind(events)
    .bind(triggers)
    .bind(statuses)
    .bind(forwarded)
    .bind(reasons)
    .fetch_all(conn)
    .await?;
    Ok(recorded.into_iter().collect())
}
