//! Sales and their status history: batched inserts (one statement for any
//! number of sales, with their history rows and events), the status-change
//! lock, lookups, and the full detail view.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, SaleInput, TenantId};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

use salesync_core::outbox::{Handoff, OutboxColumns, OutboxMessage};

use crate::intake::Stored;
pub use salesync_core::api::attempts::AttemptEntry;

/// A sale to insert, with the id it gets if it is new.
pub struct NewSale<'a> {
    pub id: SaleId,
    pub sale: &'a SaleInput,
    /// An Agent's order: the version of each product it was checked against.
    pub versions: Option<&'a BTreeMap<String, u32>>,
    pub hash: [u8; 32],
}

/// A tenant's new sale and the `sale.ingested` event to send if it is created.
pub struct TenantSale<'a> {
    pub tenant: TenantId,
    pub new: &'a NewSale<'a>,
    pub event: OutboxMessage,
}

/// The row the database holds for a (tenant, external id) after the insert.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct HeldSale {
    /// Inserted by this statement (else it was there before).
    pub created: bool,
    pub id: SaleId,
    pub tenant_id: TenantId,
    pub external_id: String,
    pub status: String,
    pub payload_hash: Vec<u8>,
    /// The outbox row of its `sale.ingested` event, if this statement created
    /// the sale (committed under a lease, for the relay hand-off).
    pub outbox_id: Option<i64>,
}

impl HeldSale {
    /// What it means for the new sale `new_id` that asked for this row: it
    /// created it, or (an earlier request's, or an earlier item's of the same
    /// statement) it was there already.
    pub fn stored_for(&self, new_id: SaleId) -> Stored {
        if self.created && self.id == new_id {
            Stored::Created {
                id: self.id,
                status: self.status.clone(),
            }
        } else {
            Stored::Existing {
                id: self.id,
                status: self.status.clone(),
                payload_hash: self.payload_hash.clone(),
            }
        }
    }
}

/// In ONE statement (so one round trip, committed as a whole): inserts the
/// sales that are new for their tenant (`ON CONFLICT DO NOTHING`), the first
/// status-history row and the outbox event of each one created (leased for
/// the relay hand-off, see `outbox::Handoff`). Returns the
/// row held for every (tenant, external id) asked about. Items must be
/// distinct per tenant within one tenant's batch (see `intake::plan`); the
/// same (tenant, external id) twice — a tenant listed twice in a group —
/// creates once, as if the two were sequential.
pub async fn insert_new(
    conn: &mut PgConnection,
    sales: &[TenantSale<'_>],
) -> sqlx::Result<HashMap<(TenantId, String), HeldSale>> {
    if sales.is_empty() {
        return Ok(HashMap::new());
    }
    // Rows in (tenant, external id) order, so concurrent statements take the
    // unique-index locks in the same order and cannot deadlock each other.
    let mut order: Vec<&TenantSale> = sales.iter().collect();
    order.sort_by(|a, b| {
        (a.tenant, &a.new.sale.external_id).cmp(&(b.tenant, &b.new.sale.external_id))
    });
    let n = order.len();
    let mut tenants = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut external_ids = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    let mut docs = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut currencies = Vec::with_capacity(n);
    let mut gross = Vec::with_capacity(n);
    let mut occurred = Vec::with_capacity(n);
    let mut dates = Vec::<NaiveDate>::with_capacity(n);
    let mut versions = Vec::<Option<Value>>::with_capacity(n);
    for s in &order {
        let sale = s.new.sale;
        tenants.push(s.tenant);
        ids.push(s.new.id);
        external_ids.push(sale.external_id.as_str());
        hashes.push(s.new.hash.to_vec());
        docs.push(serde_json::to_value(sale).unwrap_or_default());
        statuses.push(sale.status.as_str());
        currencies.push(sale.currency.code());
        gross.push(sale.totals.gross);
        occurred.push(sale.occurred_at);
        dates.push(sale.business_date);
        versions.push(s.new.versions.map(|v| serde_json::json!(v)));
    }
    let events = OutboxColumns::new(order.iter().map(|s| &s.event));
    // The existing rows come from the statement's snapshot; a row another
    // transaction committed meanwhile (the conflict saw it, the snapshot
    // cannot) is looked up afterwards. An item repeated within the statement
    // finds the row its first occurrence created (same key).
    let rows: Vec<HeldSale> = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::bytea[], $5::jsonb[],
                                  $6::text[], $7::text[], $8::int8[], $9::timestamptz[],
                                  $10::date[], $17::jsonb[]) WITH ORDINALITY
                  AS u(tenant_id, id, external_id, payload_hash, sale, status, currency, gross,
                       occurred_at, business_date, catalogue_versions, n)),
         created AS (
             INSERT INTO sales (id, tenant_id, external_id, payload_hash, sale, status, currency,
                                gross, occurred_at, business_date, catalogue_versions)
             SELECT id, tenant_id, external_id, payload_hash, sale, status, currency, gross,
                    occurred_at, business_date, catalogue_versions
             FROM input ORDER BY n
             ON CONFLICT (tenant_id, external_id) DO NOTHING
             RETURNING id, tenant_id, external_id, status, payload_hash),
         history AS (
             INSERT INTO sale_status_history (sale_id, status, origin, dedupe_key)
             SELECT id, status, 'source', 'source:initial' FROM created
             ON CONFLICT (sale_id, dedupe_key) DO NOTHING),
         events AS (
             INSERT INTO outbox (message_id, routing_key, message_type, headers, body,
                                 leased_until)
             SELECT e.message_id, e.routing_key, e.message_type, e.headers, e.body,
                    now() + make_interval(secs => $16)
             FROM UNNEST($2::uuid[], $11::uuid[], $12::text[], $13::text[], $14::jsonb[],
                         $15::bytea[]) WITH ORDINALITY
                  AS e(sale_id, message_id, routing_key, message_type, headers, body, n)
             WHERE e.sale_id IN (SELECT id FROM created)
             ORDER BY e.n
             RETURNING id, message_id)
         SELECT true AS created, c.id, c.tenant_id, c.external_id, c.status, c.payload_hash,
                ev.id AS outbox_id
         FROM created c
         LEFT JOIN UNNEST($2::uuid[], $11::uuid[]) AS m(sale_id, message_id) ON m.sale_id = c.id
         LEFT JOIN events ev ON ev.message_id = m.message_id
         UNION ALL
         SELECT false, s.id, s.tenant_id, s.external_id, s.status, s.payload_hash, NULL::int8
         FROM input u JOIN sales s ON s.tenant_id = u.tenant_id AND s.external_id = u.external_id",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&external_ids)
    .bind(&hashes)
    .bind(&docs)
    .bind(&statuses)
    .bind(&currencies)
    .bind(&gross)
    .bind(&occurred)
    .bind(&dates)
    .bind(events.message_ids)
    .bind(events.routing_keys)
    .bind(events.message_types)
    .bind(events.headers)
    .bind(events.bodies)
    .bind(Handoff::lease_secs())
    .bind(&versions)
    .fetch_all(&mut *conn)
    .await?;
    let mut held: HashMap<(TenantId, String), HeldSale> = rows
        .into_iter()
        .map(|r| ((r.tenant_id, r.external_id.clone()), r))
        .collect();

    let missing: Vec<(TenantId, &str)> = order
        .iter()
        .map(|s| (s.tenant, s.new.sale.external_id.as_str()))
        .filter(|(t, e)| !held.contains_key(&(*t, (*e).to_string())))
        .collect();
    if !missing.is_empty() {
        let found: Vec<HeldSale> = sqlx::query_as(
            "SELECT false AS created, s.id, s.tenant_id, s.external_id, s.status, s.payload_hash,
                    NULL::int8 AS outbox_id
             FROM UNNEST($1::uuid[], $2::text[]) AS m(tenant_id, external_id)
             JOIN sales s ON s.tenant_id = m.tenant_id AND s.external_id = m.external_id",
        )
        .bind(missing.iter().map(|m| m.0).collect::<Vec<_>>())
        .bind(missing.iter().map(|m| m.1).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        for r in found {
            held.insert((r.tenant_id, r.external_id.clone()), r);
        }
    }
    Ok(held)
}

/// A sale locked for a status change or a manual forward.
#[derive(sqlx::FromRow)]
pub struct LockedSale {
    pub id: SaleId,
    pub external_id: String,
    pub status: String,
    pub sale: serde_json::Value,
}

/// Locks the tenant's sale (`FOR UPDATE`), so concurrent status changes of
/// one sale are applied one after the other.
pub async fn lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SaleId,
) -> sqlx::Result<Option<LockedSale>> {
    sqlx::query_as(
        "SELECT id, external_id, status, sale FROM sales
         WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

/// Sets a source-side status change and records it in the history.
pub async fn change_status(
    conn: &mut PgConnection,
    id: SaleId,
    status: &str,
    note: Option<&str>,
    dedupe_key: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE sales SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO sale_status_history (sale_id, status, origin, dedupe_key, note)
         VALUES ($1, $2, 'source', $3, $4)",
    )
    .bind(id)
    .bind(status)
    .bind(dedupe_key)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

/// One row of `POST /v1/sales/lookup`.
#[derive(sqlx::FromRow, Serialize, Debug, utoipa::ToSchema)]
pub struct LookupRow {
    pub external_id: String,
    pub id: SaleId,
    pub status: String,
    pub updated_at: DateTime<Utc>,
}

pub async fn lookup(
    conn: &mut PgConnection,
    tenant: TenantId,
    external_ids: &[String],
) -> sqlx::Result<Vec<LookupRow>> {
    sqlx::query_as(
        "SELECT external_id, id, status, updated_at FROM sales
         WHERE tenant_id = $1 AND external_id = ANY($2)",
    )
    .bind(tenant)
    .bind(external_ids)
    .fetch_all(conn)
    .await
}

#[derive(sqlx::FromRow, Serialize, Debug, utoipa::ToSchema)]
#[schema(as = StatusHistoryEntry)]
pub struct HistoryEntry {
    pub status: String,
    pub origin: String,
    pub integration_id: Option<IntegrationId>,
    pub target_status: Option<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Serialize, Debug, utoipa::ToSchema)]
#[schema(as = Decision)]
pub struct DecisionEntry {
    pub integration_id: IntegrationId,
    pub trigger: String,
    pub status: String,
    pub forwarded: bool,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Serialize, Debug, utoipa::ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryEntry {
    pub id: DeliveryId,
    pub integration_id: Option<IntegrationId>,
    pub purpose: String,
    pub state: String,
    pub attempts: i32,
    pub target_status: Option<String>,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub attempt_log: Vec<AttemptEntry>,
}

/// `GET /v1/sales/{id}`.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct SaleDetail {
    pub id: SaleId,
    pub external_id: String,
    pub status: String,
    pub sale: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the customer's personal data was erased (absent: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal_data_erased_at: Option<DateTime<Utc>>,
    /// An order a partner's Agent placed: the version of each product of
    /// the catalogue it was checked against, by product key (absent for
    /// other sales).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, u32>>)]
    pub catalogue_versions: Option<serde_json::Value>,
    pub status_history: Vec<HistoryEntry>,
    pub decisions: Vec<DecisionEntry>,
    pub deliveries: Vec<DeliveryEntry>,
}

#[derive(sqlx::FromRow)]
struct SaleRow {
    id: SaleId,
    external_id: String,
    status: String,
    sale: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    personal_data_erased_at: Option<DateTime<Utc>>,
    catalogue_versions: Option<serde_json::Value>,
}

/// The tenant's sale with its history, forwarding decisions and deliveries
/// (each with its attempt log). Every query joins on the tenant.
pub async fn detail(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SaleId,
) -> sqlx::Result<Option<SaleDetail>> {
    let Some(sale) = sqlx::query_as::<_, SaleRow>(
        "SELECT id, external_id, status, sale, created_at, updated_at, personal_data_erased_at,
                catalogue_versions
         FROM sales WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let status_history: Vec<HistoryEntry> = sqlx::query_as(
        "SELECT h.status, h.origin, h.integration_id, h.target_status, h.note, h.created_at
         FROM sale_status_history h JOIN sales s ON s.id = h.sale_id
         WHERE h.sale_id = $1 AND s.tenant_id = $2 ORDER BY h.id",
    )
    .bind(id)
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    let decisions: Vec<DecisionEntry> = sqlx::query_as(
        "SELECT d.integration_id, d.trigger, d.status, d.forwarded, d.reason, d.created_at
         FROM sale_decisions d JOIN sales s ON s.id = d.sale_id
         WHERE d.sale_id = $1 AND s.tenant_id = $2 ORDER BY d.id",
    )
    .bind(id)
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    let mut deliveries: Vec<DeliveryEntry> = sqlx::query_as(
        "SELECT id, integration_id, purpose, state, attempts, target_status, last_error,
                dead_reason, delivered_at
         FROM deliveries WHERE sale_id = $1 AND tenant_id = $2 ORDER BY created_at, id",
    )
    .bind(id)
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    let delivery_ids: Vec<DeliveryId> = deliveries.iter().map(|d| d.id).collect();
    if !delivery_ids.is_empty() {
        let attempts: Vec<AttemptEntry> = sqlx::query_as(
            "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code,
                    a.error, a.outcome
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE a.delivery_id = ANY($1) AND d.tenant_id = $2 ORDER BY a.id",
        )
        .bind(&delivery_ids)
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?;
        let mut by_delivery: HashMap<DeliveryId, Vec<AttemptEntry>> = HashMap::new();
        for a in attempts {
            by_delivery.entry(a.delivery_id).or_default().push(a);
        }
        for d in &mut deliveries {
            d.attempt_log = by_delivery.remove(&d.id).unwrap_or_default();
        }
    }
    Ok(Some(SaleDetail {
        id: sale.id,
        external_id: sale.external_id,
        status: sale.status,
        sale: sale.sale,
        created_at: sale.created_at,
        updated_at: sale.updated_at,
        catalogue_versions: sale.catalogue_versions,
        personal_data_erased_at: sale.personal_data_erased_at,
        status_history,
        decisions,
        deliveries,
    }))
}

/// Whether the tenant has this live integration.
pub async fn integration_exists(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IntegrationId,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM integrations
                        WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL)",
    )
    .bind(id)
    .bind(tenant)
    .fetch_one(conn)
    .await
}
