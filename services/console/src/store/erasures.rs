//! The SQL of erasure: find and lock a tenant's sales of one customer, read
//! and rewrite every stored copy of their personal data, record the erasure.
//! Every query is scoped by the tenant.

use chrono::{DateTime, Utc};
use salesync_core::domain::{SaleId, TenantId, TokenId};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// A sale found for erasure, locked until the transaction ends.
#[derive(sqlx::FromRow)]
pub struct FoundSale {
    pub id: SaleId,
    pub external_id: String,
    pub sale: serde_json::Value,
}

/// How to find the customer's sales; any of them matches (absent = unused).
pub struct Match<'a> {
    pub email: Option<&'a str>,
    pub vat_number: Option<&'a str>,
    pub external_ids: &'a [String],
}

/// The tenant's sales of this customer, locked (`FOR UPDATE`) in id order.
/// E-mail matches ignoring case, the VAT number ignoring case and spaces.
/// This reads the tenant's sales without an index on the customer (erasure
/// is rare; an index would cost every sale's insert).
pub async fn find_and_lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    m: &Match<'_>,
) -> sqlx::Result<Vec<FoundSale>> {
    sqlx::query_as(
        "SELECT id, external_id, sale FROM sales
         WHERE tenant_id = $1
           AND (lower(sale->'customer'->>'email') = lower($2)
                OR upper(replace(sale->'customer'->>'vat_number', ' ', ''))
                   = upper(replace($3, ' ', ''))
                OR external_id = ANY($4))
         ORDER BY id FOR UPDATE",
    )
    .bind(tenant)
    .bind(m.email)
    .bind(m.vat_number)
    .bind(m.external_ids)
    .fetch_all(conn)
    .await
}

/// Text columns of one row that may quote the customer.
#[derive(sqlx::FromRow)]
pub struct TextRow {
    pub id: String,
    pub json: Option<serde_json::Value>,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// The sales' deliveries: (id, body, last_error, dead_reason).
pub async fn deliveries(
    conn: &mut PgConnection,
    tenant: TenantId,
    sales: &[SaleId],
) -> sqlx::Result<Vec<TextRow>> {
    sqlx::query_as(
        "SELECT id::text AS id, body AS json, last_error AS a, dead_reason AS b FROM deliveries
         WHERE tenant_id = $1 AND sale_id = ANY($2) ORDER BY id FOR UPDATE",
    )
    .bind(tenant)
    .bind(sales)
    .fetch_all(conn)
    .await
}

pub async fn update_delivery(conn: &mut PgConnection, row: &TextRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deliveries SET body = $2, last_error = $3, dead_reason = $4 WHERE id = $1::uuid",
    )
    .bind(&row.id)
    .bind(&row.json)
    .bind(&row.a)
    .bind(&row.b)
    .execute(conn)
    .await
    .map(drop)
}

/// The attempts of the sales' deliveries: (id, -, response_excerpt, error).
pub async fn attempts(
    conn: &mut PgConnection,
    tenant: TenantId,
    sales: &[SaleId],
) -> sqlx::Result<Vec<TextRow>> {
    sqlx::query_as(
        "SELECT a.id::text AS id, NULL::jsonb AS json, a.response_excerpt AS a, a.error AS b
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.tenant_id = $1 AND d.sale_id = ANY($2)
           AND (a.response_excerpt IS NOT NULL OR a.error IS NOT NULL)
         ORDER BY a.id",
    )
    .bind(tenant)
    .bind(sales)
    .fetch_all(conn)
    .await
}

pub async fn update_attempt(conn: &mut PgConnection, row: &TextRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE delivery_attempts SET response_excerpt = $2, error = $3 WHERE id = $1::bigint",
    )
    .bind(&row.id)
    .bind(&row.a)
    .bind(&row.b)
    .execute(conn)
    .await
    .map(drop)
}

/// The sales' status-history notes: (id, -, note, -).
pub async fn notes(conn: &mut PgConnection, sales: &[SaleId]) -> sqlx::Result<Vec<TextRow>> {
    sqlx::query_as(
        "SELECT id::text AS id, NULL::jsonb AS json, note AS a, NULL::text AS b
         FROM sale_status_history WHERE sale_id = ANY($1) AND note IS NOT NULL ORDER BY id",
    )
    .bind(sales)
    .fetch_all(conn)
    .await
}

pub async fn update_note(conn: &mut PgConnection, row: &TextRow) -> sqlx::Result<()> {
    sqlx::query("UPDATE sale_status_history SET note = $2 WHERE id = $1::bigint")
        .bind(&row.id)
        .bind(&row.a)
        .execute(conn)
        .await
        .map(drop)
}

/// Outbox rows not yet published whose body mentions one of `patterns`
/// (the sales' ids, the customer's values): (id, body).
pub async fn outbox_rows(
    conn: &mut PgConnection,
    patterns: &[Vec<u8>],
) -> sqlx::Result<Vec<(i64, Vec<u8>)>> {
    sqlx::query_as(
        "SELECT id, body FROM outbox o
         WHERE EXISTS (SELECT 1 FROM unnest($1::bytea[]) p WHERE position(p IN o.body) > 0)
         ORDER BY id FOR UPDATE",
    )
    .bind(patterns)
    .fetch_all(conn)
    .await
}

pub async fn update_outbox(conn: &mut PgConnection, id: i64, body: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE outbox SET body = $2 WHERE id = $1")
        .bind(id)
        .bind(body)
        .execute(conn)
        .await
        .map(drop)
}

pub async fn update_sale(
    conn: &mut PgConnection,
    id: SaleId,
    sale: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sales SET sale = $2, personal_data_erased_at = now(), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(sale)
    .execute(conn)
    .await
    .map(drop)
}

/// Who asked for an erasure.
#[derive(Debug, Clone, Copy)]
pub enum Requester {
    Token(TokenId),
    Admin,
}

/// The record of one erasure (never the personal data itself).
#[derive(sqlx::FromRow, Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct ErasureRecord {
    pub id: Uuid,
    pub matched_by: String,
    pub sale_ids: Vec<SaleId>,
    pub actor_token_id: Option<TokenId>,
    pub via: String,
    pub at: DateTime<Utc>,
}

pub async fn record(
    conn: &mut PgConnection,
    tenant: TenantId,
    matched_by: &str,
    sales: &[SaleId],
    by: Requester,
) -> sqlx::Result<ErasureRecord> {
    let (token, via) = match by {
        Requester::Token(t) => (Some(t), "api"),
        Requester::Admin => (None, "admin"),
    };
    sqlx::query_as(
        "INSERT INTO personal_data_erasures (id, tenant_id, matched_by, sale_ids, actor_token_id, via)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, matched_by, sale_ids, actor_token_id, via, at",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(matched_by)
    .bind(sales)
    .bind(token)
    .bind(via)
    .fetch_one(conn)
    .await
}

/// The tenant's erasures, newest first.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    limit: i64,
) -> sqlx::Result<Vec<ErasureRecord>> {
    sqlx::query_as(
        "SELECT id, matched_by, sale_ids, actor_token_id, via, at FROM personal_data_erasures
         WHERE tenant_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(conn)
    .await
}
