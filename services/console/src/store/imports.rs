//! SQL of the reseller's side of a tenant-to-tenant integration (migration
//! 0016): the provider link of an integration, A's copies of B's products,
//! the mappings and the last mapping check. Every query is scoped by
//! `tenant_id`.

use chrono::{DateTime, Utc};
use salesync_core::catalogue::{
    Change, Flow, FlowMapping, ImportedProduct, Mismatch, ProductVersion, QuestionMapping,
    RemovalPolicy, SourceState,
};
use salesync_core::domain::{IntegrationId, TenantId};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

/// What A needs of an integration to talk to its provider and keep its copy.
#[derive(Debug, Clone)]
pub struct ProviderLink {
    pub id: IntegrationId,
    pub tenant_id: TenantId,
    pub target_kind: String,
    /// Where B's partner routes answer.
    pub base_url: String,
    pub credentials_enc: Option<Vec<u8>>,
    pub callback_secret_enc: Option<Vec<u8>>,
    pub policy: RemovalPolicy,
    pub provider_flows: Vec<Flow>,
    pub flow_mapping: FlowMapping,
    pub question_mapping: QuestionMapping,
    pub mismatches: Vec<Mismatch>,
    pub mapping_checked_at: Option<DateTime<Utc>>,
    pub mapping_flagged_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub checked_at: Option<DateTime<Utc>>,
    pub last_changes: Vec<Change>,
}

const LINK: &str =
    "SELECT id, tenant_id, target_kind, coalesce(provider_url, target_url) AS base_url,
        credentials_enc, callback_secret_enc, removed_product_policy, provider_flows,
        flow_mapping, question_mapping, mapping_mismatches, mapping_checked_at,
        mapping_flagged_at, last_synced_at, catalogue_checked_at, last_sync_changes
     FROM integrations WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL";

fn link_of(row: &sqlx::postgres::PgRow) -> sqlx::Result<ProviderLink> {
    let policy: String = row.try_get("removed_product_policy")?;
    let Json(provider_flows) = row.try_get("provider_flows")?;
    let Json(flow_mapping) = row.try_get("flow_mapping")?;
    let Json(question_mapping) = row.try_get("question_mapping")?;
    let Json(mismatches) = row.try_get("mapping_mismatches")?;
    let Json(last_changes) = row.try_get("last_sync_changes")?;
    Ok(ProviderLink {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        target_kind: row.try_get("target_kind")?,
        base_url: row.try_get("base_url")?,
        credentials_enc: row.try_get("credentials_enc")?,
        callback_secret_enc: row.try_get("callback_secret_enc")?,
        policy: RemovalPolicy::parse(&policy).unwrap_or_default(),
        provider_flows,
        flow_mapping,
        question_mapping,
        mismatches,
        mapping_checked_at: row.try_get("mapping_checked_at")?,
        mapping_flagged_at: row.try_get("mapping_flagged_at")?,
        last_synced_at: row.try_get("last_synced_at")?,
        checked_at: row.try_get("catalogue_checked_at")?,
        last_changes,
    })
}

/// The integration's provider link; with `lock`, locked until the
/// transaction ends (one sync or import of an integration at a time).
pub async fn link(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IntegrationId,
    lock: bool,
) -> sqlx::Result<Option<ProviderLink>> {
    let sql = if lock {
        sqlx::AssertSqlSafe(format!("{LINK} FOR UPDATE"))
    } else {
        sqlx::AssertSqlSafe(LINK.to_string())
    };
    let row = sqlx::query(sql)
        .bind(id)
        .bind(tenant)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(link_of).transpose()
}

/// A's copy of one product, with when it was made and last changed.
#[derive(Debug, Clone)]
pub struct CopyRow {
    pub copy: ImportedProduct,
    pub imported_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The integration's copies, by key.
pub async fn copies(conn: &mut PgConnection, id: IntegrationId) -> sqlx::Result<Vec<CopyRow>> {
    let rows = sqlx::query(
        "SELECT body, active, source_state, imported_at, updated_at
             FROM imported_products WHERE integration_id = $1 ORDER BY key",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let Json(product): Json<ProductVersion> = row.try_get("body")?;
            let state: String = row.try_get("source_state")?;
            Ok(CopyRow {
                copy: ImportedProduct {
                    product,
                    active: row.try_get("active")?,
                    source_state: SourceState::parse(&state).unwrap_or(SourceState::Granted),
                },
                imported_at: row.try_get("imported_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Writes copies (new or changed) as they are to be.
pub async fn upsert_copies(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: IntegrationId,
    copies: &[&ImportedProduct],
) -> sqlx::Result<()> {
    if copies.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = copies.iter().map(|c| c.product.key.as_str()).collect();
    let bodies: Vec<Json<&ProductVersion>> = copies.iter().map(|c| Json(&c.product)).collect();
    let versions: Vec<i32> = copies
        .iter()
        .map(|c| i32::try_from(c.product.version).unwrap_or(i32::MAX))
        .collect();
    let active: Vec<bool> = copies.iter().map(|c| c.active).collect();
    let states: Vec<&str> = copies.iter().map(|c| c.source_state.as_str()).collect();
    sqlx::query(
        "INSERT INTO imported_products (integration_id, tenant_id, key, body, source_version,
                                        active, source_state)
         SELECT $1, $2, k, b, v, a, s
         FROM UNNEST($3::text[], $4::jsonb[], $5::int4[], $6::bool[], $7::text[]) AS u(k, b, v, a, s)
         ON CONFLICT (integration_id, key) DO UPDATE
           SET body = EXCLUDED.body, source_version = EXCLUDED.source_version,
               active = EXCLUDED.active, source_state = EXCLUDED.source_state, updated_at = now()
           WHERE (imported_products.body, imported_products.active, imported_products.source_state)
                 IS DISTINCT FROM (EXCLUDED.body, EXCLUDED.active, EXCLUDED.source_state)",
    )
    .bind(id)
    .bind(tenant)
    .bind(&keys)
    .bind(&bodies)
    .bind(&versions)
    .bind(&active)
    .bind(&states)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn delete_copies(
    conn: &mut PgConnection,
    id: IntegrationId,
    keys: &[String],
) -> sqlx::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM imported_products WHERE integration_id = $1 AND key = ANY($2)")
        .bind(id)
        .bind(keys)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records a sync: B was asked now; when something changed, when and what.
/// A pending callback request made before `started` is answered by it.
pub async fn record_sync(
    conn: &mut PgConnection,
    id: IntegrationId,
    flows: &[Flow],
    changes: &[Change],
    started: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE integrations SET
           catalogue_checked_at = now(),
           provider_flows = $2,
           last_synced_at = CASE WHEN $3 THEN now() ELSE last_synced_at END,
           last_sync_changes = CASE WHEN $3 THEN $4 ELSE last_sync_changes END,
           catalogue_sync_requested_at = CASE WHEN catalogue_sync_requested_at <= $5 THEN NULL
                                              ELSE catalogue_sync_requested_at END
         WHERE id = $1",
    )
    .bind(id)
    .bind(Json(flows))
    .bind(!changes.is_empty())
    .bind(Json(changes))
    .bind(started)
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn set_callback_secret(
    conn: &mut PgConnection,
    id: IntegrationId,
    secret_enc: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("UPDATE integrations SET callback_secret_enc = $2 WHERE id = $1")
        .bind(id)
        .bind(secret_enc)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn set_mappings(
    conn: &mut PgConnection,
    id: IntegrationId,
    flows: &FlowMapping,
    questions: &QuestionMapping,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE integrations SET flow_mapping = $2, question_mapping = $3, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(Json(flows))
    .bind(Json(questions))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records a mapping check; `flagged` says whether it found a mismatch the
/// previous check did not (the flag stays until a check finds none).
pub async fn record_check(
    conn: &mut PgConnection,
    id: IntegrationId,
    mismatches: &[Mismatch],
    flagged: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE integrations SET
           mapping_mismatches = $2,
           mapping_checked_at = now(),
           mapping_flagged_at = CASE
             WHEN $3 THEN coalesce(mapping_flagged_at, now())
             WHEN jsonb_array_length($2) = 0 THEN NULL
             ELSE mapping_flagged_at END
         WHERE id = $1",
    )
    .bind(id)
    .bind(Json(mismatches))
    .bind(flagged)
    .execute(conn)
    .await
    .map(|_| ())
}

/// A callback from B said the catalogue changed: the sync worker picks the
/// integration up. `false` when there is no such integration.
pub async fn request_sync(conn: &mut PgConnection, id: IntegrationId) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE integrations SET catalogue_sync_requested_at = coalesce(catalogue_sync_requested_at, now())
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// B's callback secret of an integration (any tenant: the callback carries
/// no token, its signature is the proof).
pub async fn callback_secret(
    conn: &mut PgConnection,
    id: IntegrationId,
) -> sqlx::Result<Option<Vec<u8>>> {
    let found: Option<(Option<Vec<u8>>,)> = sqlx::query_as(
        "SELECT callback_secret_enc FROM integrations WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(found.and_then(|(s,)| s))
}

/// Integrations with imports whose sync is due: a callback asked for one
/// (and B was not asked in the last `pace_secs`: a provider that cannot be
/// reached is not called in a tight loop), or B was last asked longer ago
/// than `interval_secs`. Claimed by pushing their check time forward, so
/// two console processes do not sync one twice.
pub async fn claim_due(
    conn: &mut PgConnection,
    interval_secs: f64,
    pace_secs: f64,
    limit: i64,
) -> sqlx::Result<Vec<(TenantId, IntegrationId)>> {
    let rows = sqlx::query(
        "WITH due AS (
             SELECT id FROM integrations
             WHERE deleted_at IS NULL AND catalogue_checked_at IS NOT NULL
               AND ((catalogue_sync_requested_at IS NOT NULL
                     AND catalogue_checked_at < now() - make_interval(secs => $3))
                    OR catalogue_checked_at < now() - make_interval(secs => $1))
             ORDER BY catalogue_sync_requested_at NULLS LAST, catalogue_checked_at
             LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE integrations i SET catalogue_checked_at = now()
         FROM due WHERE i.id = due.id
         RETURNING i.tenant_id, i.id",
    )
    .bind(interval_secs)
    .bind(limit)
    .bind(pace_secs)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("id")?)))
        .collect()
}
