//! SQL of the dead-letter operations: dead deliveries listed and shown with
//! their attempt log and the actions taken on them; locked for a replay or a
//! discard; reset, marked and recorded. `tenant` is `Some` for the API (every
//! query is then scoped by it) and `None` only for the operator's CLI.
//! A dead letter's `dead_at` is the delivery's own column (migration 0005):
//! set by the forwarder when the delivery dies, cleared by a replay, and
//! non-NULL exactly while `state = 'dead'` (a CHECK holds that). The list and
//! the bulk selection filter on `dead_at IS NOT NULL` rather than on `state`
//! so PostgreSQL can use the partial index `deliveries_dead`, which keys on
//! it.

use chrono::{DateTime, Utc};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId, TokenId};
use serde::Serialize;
use sqlx::PgConnection;

use crate::dead_letters::query::{Filter, ListQuery};
use salesync_core::api::attempts::AttemptEntry;

/// One dead letter as listed.
#[derive(sqlx::FromRow, Serialize, Debug, Clone, utoipa::ToSchema)]
#[schema(as = DeadLetter)]
pub struct DeadLetterRow {
    /// The delivery id.
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    /// `None` for a catalogue callback, which is about no sale.
    pub sale_id: Option<SaleId>,
    pub sale_external_id: Option<String>,
    /// `None` for status webhooks to the tenant's own webhook and for
    /// catalogue callbacks.
    pub integration_id: Option<IntegrationId>,
    /// `forward`, `status_webhook` or `catalogue_callback` (a catalogue
    /// change to a partner's subscription).
    pub purpose: String,
    pub target_url: String,
    /// Why it died.
    pub reason: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub dead_at: DateTime<Utc>,
    pub discarded_at: Option<DateTime<Utc>>,
    pub discard_reason: Option<String>,
    /// The original request was recorded, so a replay can re-send it.
    pub replayable: bool,
}

const ROW_COLUMNS: &str = "d.id, d.tenant_id, d.sale_id, s.external_id AS sale_external_id,
    d.integration_id, d.purpose, d.target_url, d.dead_reason AS reason, d.attempts, d.last_error,
    d.dead_at, d.discarded_at,
    (SELECT a.reason FROM dead_letter_actions a
      WHERE a.delivery_id = d.id AND a.action = 'discard' ORDER BY a.id DESC LIMIT 1) AS discard_reason,
    d.body IS NOT NULL AS replayable";

/// Up to `limit + 1` dead letters after the cursor, newest first (the extra
/// row tells the caller there is a next page).
pub async fn list(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    q: &ListQuery,
) -> sqlx::Result<Vec<DeadLetterRow>> {
    let f = &q.filter;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS}
         FROM deliveries d LEFT JOIN sales s ON s.id = d.sale_id
         WHERE d.dead_at IS NOT NULL
           AND ($1::uuid IS NULL OR d.tenant_id = $1)
           AND ($2::uuid IS NULL OR d.integration_id = $2)
           AND ($3::timestamptz IS NULL OR d.dead_at >= $3)
           AND ($4::timestamptz IS NULL OR d.dead_at < $4)
           AND ($5 OR d.discarded_at IS NULL)
           AND ($6::timestamptz IS NULL OR (d.dead_at, d.id) < ($6, $7::uuid))
           AND ($9::text IS NULL OR strpos(lower(d.dead_reason), lower($9)) > 0)
         ORDER BY d.dead_at DESC, d.id DESC
         LIMIT $8"
    )))
    .bind(tenant)
    .bind(f.integration_id)
    .bind(f.from)
    .bind(f.to)
    .bind(f.include_discarded)
    .bind(q.after.map(|c| c.dead_at))
    .bind(q.after.map(|c| c.id))
    .bind(i64::from(q.limit) + 1)
    .bind(f.reason.as_deref())
    .fetch_all(conn)
    .await
}

/// One dead letter (only while the delivery is dead).
pub async fn get(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    id: DeliveryId,
) -> sqlx::Result<Option<(DeadLetterRow, Option<serde_json::Value>)>> {
    #[derive(sqlx::FromRow)]
    struct WithBody {
        #[sqlx(flatten)]
        row: DeadLetterRow,
        body: Option<serde_json::Value>,
    }
    let found: Option<WithBody> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS}, d.body
         FROM deliveries d LEFT JOIN sales s ON s.id = d.sale_id
         WHERE d.id = $1 AND d.state = 'dead' AND ($2::uuid IS NULL OR d.tenant_id = $2)"
    )))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    Ok(found.map(|w| (w.row, w.body)))
}

/// The delivery's attempt log, oldest first.
pub async fn attempts(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
) -> sqlx::Result<Vec<AttemptEntry>> {
    sqlx::query_as(
        "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code,
                a.error, a.outcome
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE a.delivery_id = $1 AND d.tenant_id = $2 ORDER BY a.id",
    )
    .bind(id)
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// A replay or discard, as recorded.
#[derive(sqlx::FromRow, Serialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
#[schema(as = DeadLetterAction)]
pub struct ActionEntry {
    pub action: String,
    pub reason: Option<String>,
    pub actor_token_id: Option<TokenId>,
    /// `api`, `cli` or `console`.
    pub via: String,
    /// Where a replay was sent; `None` for discards (and older replays).
    pub target_url: Option<String>,
    pub at: DateTime<Utc>,
}

/// Every action taken on the delivery, oldest first.
pub async fn actions(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: DeliveryId,
) -> sqlx::Result<Vec<ActionEntry>> {
    sqlx::query_as(
        "SELECT action, reason, actor_token_id, via, target_url, at FROM dead_letter_actions
         WHERE delivery_id = $1 AND tenant_id = $2 ORDER BY id",
    )
    .bind(id)
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// A delivery locked for a replay or a discard: what the decision needs,
/// what the forward command is rebuilt from, and where its target points now.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct LockedDelivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    /// `None` for a catalogue callback.
    pub sale_id: Option<SaleId>,
    pub integration_id: Option<IntegrationId>,
    pub purpose: String,
    pub state: String,
    /// Where it was last sent (recorded with the delivery).
    pub target_url: String,
    pub target_ref: String,
    pub body: Option<serde_json::Value>,
    pub dead_reason: Option<String>,
    pub discarded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub now: CurrentTarget,
}

/// What the delivery's target is now: its integration as it stands (for
/// `forward`), the tenant's webhook (for `status_webhook`), or the
/// partner's subscription (for `catalogue_callback`).
#[derive(sqlx::FromRow, Debug, Clone, PartialEq, Default)]
pub struct CurrentTarget {
    /// `None`: no such integration in the tenant (or a status webhook).
    pub integration_kind: Option<String>,
    pub integration_url: Option<String>,
    pub integration_enabled: bool,
    pub integration_deleted: bool,
    /// The tenant's webhook URL; `None` when it has none.
    pub webhook_url: Option<String>,
    /// The subscription's URL; `None` when it was deleted.
    pub subscription_url: Option<String>,
}

/// The delivery `d` with its current target: the integration joined within
/// the delivery's tenant (as the forwarder joins it), the tenant for status
/// webhooks, the subscription for catalogue callbacks. Only `d` is locked: a replay must not block integration edits.
const LOCKED_FROM: &str = "SELECT d.id, d.tenant_id, d.sale_id, d.integration_id, d.purpose,
        d.state, d.target_url, d.target_ref, d.body, d.dead_reason, d.discarded_at, d.created_at,
        i.target_kind AS integration_kind, i.target_url AS integration_url,
        COALESCE(i.enabled, false) AS integration_enabled,
        i.deleted_at IS NOT NULL AS integration_deleted,
        t.webhook_url, cs.url AS subscription_url
    FROM deliveries d
    LEFT JOIN integrations i
           ON d.purpose = 'forward' AND i.id = d.integration_id AND i.tenant_id = d.tenant_id
    LEFT JOIN tenants t ON d.purpose = 'status_webhook' AND t.id = d.tenant_id
    LEFT JOIN catalogue_subscriptions cs
           ON d.purpose = 'catalogue_callback' AND cs.id = d.subscription_id
          AND cs.tenant_id = d.tenant_id";

/// The delivery, whatever its state, locked (`FOR UPDATE`) so a replay and
/// the forwarder, or two replays, cannot interleave.
pub async fn lock(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    id: DeliveryId,
) -> sqlx::Result<Option<LockedDelivery>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{LOCKED_FROM}
         WHERE d.id = $1 AND ($2::uuid IS NULL OR d.tenant_id = $2) FOR UPDATE OF d"
    )))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

/// The ids of the dead, not discarded deliveries the filter matches, oldest
/// first. Taken once, before replaying: a replayed delivery that dies again
/// during a long bulk replay must not be replayed a second time.
pub async fn matching_ids(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    f: &Filter,
) -> sqlx::Result<Vec<DeliveryId>> {
    sqlx::query_scalar(
        "SELECT d.id FROM deliveries d
         WHERE d.dead_at IS NOT NULL AND d.discarded_at IS NULL
           AND ($1::uuid IS NULL OR d.tenant_id = $1)
           AND ($2::uuid IS NULL OR d.integration_id = $2)
           AND ($3::timestamptz IS NULL OR d.dead_at >= $3)
           AND ($4::timestamptz IS NULL OR d.dead_at < $4)
           AND ($5::text IS NULL OR strpos(lower(d.dead_reason), lower($5)) > 0)
         ORDER BY d.dead_at, d.id",
    )
    .bind(tenant)
    .bind(f.integration_id)
    .bind(f.from)
    .bind(f.to)
    .bind(f.reason.as_deref())
    .fetch_all(conn)
    .await
}

/// Of these deliveries, the ones still dead and not discarded, locked in id
/// order (so concurrent bulk replays cannot deadlock each other).
pub async fn lock_still_dead(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    ids: &[DeliveryId],
) -> sqlx::Result<Vec<LockedDelivery>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{LOCKED_FROM}
         WHERE d.id = ANY($1) AND d.state = 'dead' AND d.discarded_at IS NULL
           AND ($2::uuid IS NULL OR d.tenant_id = $2)
         ORDER BY d.id FOR UPDATE OF d"
    )))
    .bind(ids)
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// Puts dead deliveries back to `pending` for a fresh round of attempts,
/// each to its replay's target (`(id, url)`), which becomes the delivery's
/// recorded `target_url`: where its attempts now go.
/// `attempts` restarts at 0 because the forwarder numbers attempts from the
/// message (a replay's is 1) and treats a `retrying` delivery's message with
/// `attempt <= attempts` as a stale copy: a kept count would make it drop
/// the replay's own retries. The attempt log keeps every earlier attempt;
/// the replay action marks where the new round starts.
pub async fn reset_for_replay(
    conn: &mut PgConnection,
    targets: &[(DeliveryId, String)],
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE deliveries d SET state = 'pending', attempts = 0, dead_reason = NULL,
                dead_at = NULL, discarded_at = NULL, target_url = u.url, updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[]) AS u(id, url)
         WHERE d.id = u.id AND d.state = 'dead'",
    )
    .bind(targets.iter().map(|t| t.0).collect::<Vec<_>>())
    .bind(targets.iter().map(|t| t.1.as_str()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Marks a dead delivery discarded; returns when it happened.
pub async fn mark_discarded(
    conn: &mut PgConnection,
    id: DeliveryId,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "UPDATE deliveries SET discarded_at = now()
         WHERE id = $1 AND state = 'dead' AND discarded_at IS NULL
         RETURNING discarded_at",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// An action to record.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub delivery_id: DeliveryId,
    pub tenant_id: TenantId,
    pub action: &'static str,
    pub reason: Option<String>,
    pub actor_token_id: Option<TokenId>,
    pub via: &'static str,
    /// Where a replay sends it.
    pub target_url: Option<String>,
}

pub async fn record_actions(conn: &mut PgConnection, rows: &[NewAction]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dead_letter_actions
             (delivery_id, tenant_id, action, reason, actor_token_id, via, target_url)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[],
                              $6::text[], $7::text[])",
    )
    .bind(rows.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.action).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.actor_token_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.via).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.target_url.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the integration belongs to the tenant — deleted ones included,
/// since their dead letters outlive them.
pub async fn integration_known(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    id: IntegrationId,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM integrations
                        WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2))",
    )
    .bind(id)
    .bind(tenant)
    .fetch_one(conn)
    .await
}
