//! SQL of the provider's catalogue (migration 0012): products and their
//! versions, flows. Every query is scoped by `tenant_id`.

use std::collections::HashSet;

use salesync_core::catalogue::{Flow, ProductVersion};
use salesync_core::domain::TenantId;
use sqlx::PgConnection;
use sqlx::types::Json;

/// A product's current version and whether the product is withdrawn.
pub struct Current {
    pub product: ProductVersion,
    pub withdrawn: bool,
}

/// Serialises writers of one product (or flow) key of the tenant until the
/// transaction ends, so two first writes cannot both make version 1.
pub async fn lock_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: &str,
    key: &str,
) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("catalogue:{tenant}:{kind}:{key}"))
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn current_product(
    conn: &mut PgConnection,
    tenant: TenantId,
    key: &str,
) -> sqlx::Result<Option<Current>> {
    let row: Option<(Json<ProductVersion>, bool)> = sqlx::query_as(
        "SELECT v.body, p.deleted_at IS NOT NULL
         FROM products p
         JOIN product_versions v
           ON v.tenant_id = p.tenant_id AND v.key = p.key AND v.version = p.current_version
         WHERE p.tenant_id = $1 AND p.key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(Json(product), withdrawn)| Current { product, withdrawn }))
}

/// Stores `product` as a new version and makes it the current one (a
/// withdrawn product comes back).
pub async fn write_version(
    conn: &mut PgConnection,
    tenant: TenantId,
    product: &ProductVersion,
) -> sqlx::Result<()> {
    let version = i32::try_from(product.version).unwrap_or(i32::MAX);
    sqlx::query(
        "INSERT INTO products (tenant_id, key, current_version) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, key) DO UPDATE
           SET current_version = EXCLUDED.current_version, updated_at = now(), deleted_at = NULL",
    )
    .bind(tenant)
    .bind(&product.key)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO product_versions (tenant_id, key, version, body) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(&product.key)
    .bind(version)
    .bind(Json(product))
    .execute(conn)
    .await
    .map(|_| ())
}

/// What a catalogue key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Product,
    Flow,
}

/// Those of `keys` that name a product (or flow) of the catalogue not
/// withdrawn.
pub async fn live_keys(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: Kind,
    keys: &[String],
) -> sqlx::Result<HashSet<String>> {
    let sql = match kind {
        Kind::Product => {
            "SELECT key FROM products WHERE tenant_id = $1 AND key = ANY($2) AND deleted_at IS NULL"
        }
        Kind::Flow => {
            "SELECT key FROM flows WHERE tenant_id = $1 AND key = ANY($2) AND deleted_at IS NULL"
        }
    };
    let found: Vec<String> = sqlx::query_scalar(sql)
        .bind(tenant)
        .bind(keys)
        .fetch_all(conn)
        .await?;
    Ok(found.into_iter().collect())
}

pub async fn product_version(
    conn: &mut PgConnection,
    tenant: TenantId,
    key: &str,
    version: i32,
) -> sqlx::Result<Option<ProductVersion>> {
    let row: Option<(Json<ProductVersion>,)> = sqlx::query_as(
        "SELECT body FROM product_versions WHERE tenant_id = $1 AND key = $2 AND version = $3",
    )
    .bind(tenant)
    .bind(key)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(Json(p),)| p))
}

/// Withdraws the product; `false` when there is none, or it is withdrawn.
pub async fn withdraw_product(
    conn: &mut PgConnection,
    tenant: TenantId,
    key: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE products SET deleted_at = now(), updated_at = now()
         WHERE tenant_id = $1 AND key = $2 AND deleted_at IS NULL",
    )
    .bind(tenant)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes the flow; `true` when it is new (or was withdrawn).
pub async fn write_flow(
    conn: &mut PgConnection,
    tenant: TenantId,
    flow: &Flow,
) -> sqlx::Result<bool> {
    // xmax = 0: the row was inserted, not updated.
    let (inserted, was_withdrawn): (bool, bool) = sqlx::query_as(
        "WITH before AS (
             SELECT deleted_at IS NOT NULL AS withdrawn FROM flows WHERE tenant_id = $1 AND key = $2
         )
         INSERT INTO flows (tenant_id, key, name, products) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, key) DO UPDATE
           SET name = EXCLUDED.name, products = EXCLUDED.products, updated_at = now(), deleted_at = NULL
         RETURNING (xmax = 0), coalesce((SELECT withdrawn FROM before), false)",
    )
    .bind(tenant)
    .bind(&flow.key)
    .bind(&flow.name)
    .bind(&flow.products)
    .fetch_one(conn)
    .await?;
    Ok(inserted || was_withdrawn)
}

/// Withdraws the flow; `false` when there is none, or it is withdrawn.
pub async fn withdraw_flow(
    conn: &mut PgConnection,
    tenant: TenantId,
    key: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE flows SET deleted_at = now(), updated_at = now()
         WHERE tenant_id = $1 AND key = $2 AND deleted_at IS NULL",
    )
    .bind(tenant)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
