//! SQL of the status consumer: one statement per step for a whole batch of
//! `StatusUpdate`s, all inside the caller's transaction.

use std::collections::{BTreeMap, HashMap};

use salesync_core::domain::{SaleId, TenantId};
use sqlx::PgConnection;

use crate::status_plan::HistoryRow;

#[derive(sqlx::FromRow, Debug)]
pub struct SaleStateRow {
    pub id: SaleId,
    pub tenant_id: TenantId,
    pub external_id: String,
    pub status: String,
}

/// Locks the sales (in id order, so concurrent batches cannot deadlock).
/// Every path that writes integration history locks the sale first, which
/// makes the dedupe check that follows race-free.
pub async fn lock_sales(
    conn: &mut PgConnection,
    ids: &[SaleId],
) -> sqlx::Result<Vec<SaleStateRow>> {
    sqlx::query_as(
        "SELECT id, tenant_id, external_id, status FROM sales
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Which of these `(sale, dedupe_key)` pairs are already in the history.
pub async fn existing_keys(
    conn: &mut PgConnection,
    pairs: &[(SaleId, String)],
) -> sqlx::Result<Vec<(SaleId, String)>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let sale_ids: Vec<SaleId> = pairs.iter().map(|p| p.0).collect();
    let keys: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    sqlx::query_as(
        "SELECT h.sale_id, h.dedupe_key FROM sale_status_history h
         JOIN UNNEST($1::uuid[], $2::text[]) AS k(sale_id, dedupe_key)
           ON h.sale_id = k.sale_id AND h.dedupe_key = k.dedupe_key",
    )
    .bind(&sale_ids)
    .bind(&keys)
    .fetch_all(conn)
    .await
}

/// Inserts history rows; returns `(id, sale_id, dedupe_key)` of the rows
/// actually inserted.
pub async fn insert_history(
    conn: &mut PgConnection,
    rows: &[HistoryRow],
) -> sqlx::Result<Vec<(i64, SaleId, String)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "INSERT INTO sale_status_history
             (sale_id, status, origin, integration_id, target_status, dedupe_key, note)
         SELECT u.sale_id, u.status, 'integration', u.integration_id, u.target_status,
                u.dedupe_key, u.note
         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[])
              AS u(sale_id, status, integration_id, target_status, dedupe_key, note)
         ON CONFLICT (sale_id, dedupe_key) DO NOTHING
         RETURNING id, sale_id, dedupe_key",
    )
    .bind(rows.iter().map(|r| r.sale_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.integration_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.target_status.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.dedupe_key.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.note.as_deref()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

pub async fn set_statuses(
    conn: &mut PgConnection,
    statuses: &BTreeMap<SaleId, String>,
) -> sqlx::Result<()> {
    if statuses.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE sales SET status = u.status, updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[]) AS u(id, status)
         WHERE sales.id = u.id",
    )
    .bind(statuses.keys().copied().collect::<Vec<_>>())
    .bind(statuses.values().map(String::as_str).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The status webhook URL of each of these tenants that has one.
pub async fn webhook_urls(
    conn: &mut PgConnection,
    tenants: &[TenantId],
) -> sqlx::Result<HashMap<TenantId, String>> {
    if tenants.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(TenantId, String)> = sqlx::query_as(
        "SELECT id, webhook_url FROM tenants WHERE id = ANY($1) AND webhook_url IS NOT NULL",
    )
    .bind(tenants)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}
