//! Sales and their status history: batched inserts (one statement for any
//! number of sales), the status-change lock, lookups, and the full detail view.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, SaleInput, TenantId};
use serde::Serialize;
use sqlx::PgConnection;

use crate::intake::Stored;

/// A sale to insert, with the id it gets if it is new.
pub struct NewSale<'a> {
    pub id: SaleId,
    pub sale: &'a SaleInput,
    pub hash: [u8; 32],
}

#[derive(sqlx::FromRow)]
struct ExistingRow {
    id: SaleId,
    external_id: String,
    payload_hash: Vec<u8>,
    status: String,
}

/// Inserts the sales that are new for this tenant (one multi-row statement,
/// `ON CONFLICT DO NOTHING`) and returns, in input order, whether each was
/// created or already there. External ids must be distinct (see `intake::plan`).
pub async fn insert_new(
    conn: &mut PgConnection,
    tenant: TenantId,
    sales: &[NewSale<'_>],
) -> sqlx::Result<Vec<Stored>> {
    if sales.is_empty() {
        return Ok(Vec::new());
    }
    // Rows in external-id order, so concurrent batches take the unique-index
    // locks in the same order and cannot deadlock each other.
    let mut order: Vec<&NewSale> = sales.iter().collect();
    order.sort_by(|a, b| a.sale.external_id.cmp(&b.sale.external_id));
    let n = order.len();
    let (mut ids, mut external_ids, mut hashes, mut docs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut statuses, mut currencies, mut gross, mut occurred, mut dates) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::<NaiveDate>::with_capacity(n),
    );
    for s in &order {
        ids.push(s.id);
        external_ids.push(s.sale.external_id.clone());
        hashes.push(s.hash.to_vec());
        docs.push(serde_json::to_value(s.sale).unwrap_or_default());
        statuses.push(s.sale.status.clone());
        currencies.push(s.sale.currency.code().to_string());
        gross.push(s.sale.totals.gross);
        occurred.push(s.sale.occurred_at);
        dates.push(s.sale.business_date);
    }
    let inserted: Vec<(SaleId, String)> = sqlx::query_as(
        "INSERT INTO sales (id, tenant_id, external_id, payload_hash, sale, status, currency,
                            gross, occurred_at, business_date)
         SELECT u.id, $1, u.external_id, u.payload_hash, u.sale, u.status, u.currency,
                u.gross, u.occurred_at, u.business_date
         FROM UNNEST($2::uuid[], $3::text[], $4::bytea[], $5::jsonb[], $6::text[], $7::text[],
                     $8::int8[], $9::timestamptz[], $10::date[])
              AS u(id, external_id, payload_hash, sale, status, currency, gross, occurred_at, business_date)
         ON CONFLICT (tenant_id, external_id) DO NOTHING
         RETURNING id, external_id",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&external_ids)
    .bind(&hashes)
    .bind(&docs)
    .bind(&statuses)
    .bind(&currencies)
    .bind(&gross)
    .bind(&occurred)
    .bind(&dates)
    .fetch_all(&mut *conn)
    .await?;
    let created: HashMap<String, SaleId> = inserted.into_iter().map(|(id, e)| (e, id)).collect();

    let missing: Vec<&str> = sales
        .iter()
        .map(|s| s.sale.external_id.as_str())
        .filter(|e| !created.contains_key(*e))
        .collect();
    let mut existing: HashMap<String, ExistingRow> = HashMap::new();
    if !missing.is_empty() {
        let rows: Vec<ExistingRow> = sqlx::query_as(
            "SELECT id, external_id, payload_hash, status FROM sales
             WHERE tenant_id = $1 AND external_id = ANY($2)",
        )
        .bind(tenant)
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await?;
        existing = rows
            .into_iter()
            .map(|r| (r.external_id.clone(), r))
            .collect();
    }

    sales
        .iter()
        .map(|s| {
            let e = &s.sale.external_id;
            if let Some(id) = created.get(e) {
                return Ok(Stored::Created {
                    id: *id,
                    status: s.sale.status.clone(),
                });
            }
            // Absent from both only if a conflicting insert vanished between
            // the two statements; the caller's transaction is retried.
            let row = existing.remove(e).ok_or(sqlx::Error::RowNotFound)?;
            Ok(Stored::Existing {
                id: row.id,
                status: row.status,
                payload_hash: row.payload_hash,
            })
        })
        .collect()
}

/// The first status-history row of newly created sales.
pub async fn insert_initial_history(
    conn: &mut PgConnection,
    created: &[(SaleId, String)],
) -> sqlx::Result<()> {
    if created.is_empty() {
        return Ok(());
    }
    let ids: Vec<SaleId> = created.iter().map(|c| c.0).collect();
    let statuses: Vec<&str> = created.iter().map(|c| c.1.as_str()).collect();
    sqlx::query(
        "INSERT INTO sale_status_history (sale_id, status, origin, dedupe_key)
         SELECT u.id, u.status, 'source', 'source:initial'
         FROM UNNEST($1::uuid[], $2::text[]) AS u(id, status)
         ON CONFLICT (sale_id, dedupe_key) DO NOTHING",
    )
    .bind(&ids)
    .bind(&statuses)
    .execute(conn)
    .await?;
    Ok(())
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
#[derive(sqlx::FromRow, Serialize, Debug)]
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

#[derive(sqlx::FromRow, Serialize, Debug)]
pub struct HistoryEntry {
    pub status: String,
    pub origin: String,
    pub integration_id: Option<IntegrationId>,
    pub target_status: Option<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Serialize, Debug)]
pub struct DecisionEntry {
    pub integration_id: IntegrationId,
    pub trigger: String,
    pub status: String,
    pub forwarded: bool,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow, Serialize, Debug)]
pub struct AttemptEntry {
    #[serde(skip)]
    pub delivery_id: DeliveryId,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub outcome: String,
}

#[derive(sqlx::FromRow, Serialize, Debug)]
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
#[derive(Serialize, Debug)]
pub struct SaleDetail {
    pub id: SaleId,
    pub external_id: String,
    pub status: String,
    pub sale: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
}

/// The tenant's sale with its history, forwarding decisions and deliveries
/// (each with its attempt log). Every query joins on the tenant.
pub async fn detail(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SaleId,
) -> sqlx::Result<Option<SaleDetail>> {
    let Some(sale) = sqlx::query_as::<_, SaleRow>(
        "SELECT id, external_id, status, sale, created_at, updated_at FROM sales
         WHERE id = $1 AND tenant_id = $2",
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
        status_history,
        decisions,
        deliveries,
    }))
}
