//! Retention's SQL. Every statement touches at most `batch` rows, so a pass
//! is a series of short transactions that never hold many locks or a long
//! snapshot, and the hot path's statements interleave with them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// The advisory lock a runner holds for its whole pass: replicas of the
/// status-poller skip a pass while another one runs (`pg_try_advisory_lock`;
/// released at the pass's end, or when its connection dies).
pub const LOCK_KEY: i64 = 0x0005_a1e5_c0de_0008;

pub async fn try_lock(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(conn)
        .await
}

pub async fn unlock(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .fetch_one(conn)
        .await
}

/// What one batch of settled deliveries came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryBatch {
    /// The highest id looked at; the next batch starts after it.
    pub last: Option<Uuid>,
    /// Settled deliveries found (at most the batch size).
    pub found: i64,
    pub removed: i64,
    /// Forward deliveries whose sale now remembers the integration
    /// (`sales.settled_forwards`); removed by the next pass.
    pub marked: i64,
}

/// One batch of settled deliveries older than `cutoff`, taken in id order
/// after `after` and below `below` (ids are UUIDv7: those of deliveries
/// created after `below`'s moment cannot have settled before `cutoff`, so
/// the walk reads only the old end of the primary key). Settled means
/// delivered and no longer watched by the poller, or dead and discarded by a
/// person; pending, retrying, watched and dead-awaiting-a-person deliveries
/// are never touched. A forward delivery is removed only once its sale
/// records the integration in `settled_forwards` (marked by an earlier
/// pass), so condition-filter, which reads that array with the sale, never
/// sees neither the row nor the mark. Attempts and dead-letter actions go
/// with their delivery (`ON DELETE CASCADE`). Rows another transaction holds
/// (the delivery, or its sale: a status change, an erasure) are skipped
/// rather than waited for, so retention never waits on the hot path nor
/// deadlocks with it; the next pass takes them.
pub async fn settle_deliveries(
    conn: &mut PgConnection,
    after: Uuid,
    below: Uuid,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> sqlx::Result<DeliveryBatch> {
    let (last, found, removed, marked): (Option<Uuid>, i64, i64, i64) = sqlx::query_as(
        "WITH cand AS (
             SELECT d.id, d.sale_id, d.integration_id,
                    (d.purpose <> 'forward'
                     OR coalesce(d.integration_id = ANY(s.settled_forwards), false)) AS ready
             FROM deliveries d JOIN sales s ON s.id = d.sale_id
             WHERE d.id > $1 AND d.id < $2
               AND ((d.state = 'delivered' AND d.poll_after IS NULL)
                    OR (d.state = 'dead' AND d.discarded_at IS NOT NULL))
               AND greatest(d.updated_at, d.discarded_at) < $3
             ORDER BY d.id LIMIT $4
             FOR UPDATE OF d SKIP LOCKED FOR NO KEY UPDATE OF s SKIP LOCKED),
         marked AS (
             UPDATE sales s SET settled_forwards = coalesce(s.settled_forwards, '{}') || m.integrations
             FROM (SELECT sale_id, array_agg(DISTINCT integration_id) AS integrations
                   FROM cand WHERE NOT ready GROUP BY sale_id) m
             WHERE s.id = m.sale_id
             RETURNING s.id),
         gone AS (
             DELETE FROM deliveries d USING cand c WHERE d.id = c.id AND c.ready
             RETURNING d.id)
         SELECT (SELECT id FROM cand ORDER BY id DESC LIMIT 1),
                (SELECT count(*) FROM cand),
                (SELECT count(*) FROM gone),
                (SELECT count(*) FROM cand WHERE NOT ready)",
    )
    .bind(after)
    .bind(below)
    .bind(cutoff)
    .bind(batch)
    .fetch_one(conn)
    .await?;
    Ok(DeliveryBatch {
        last,
        found,
        removed,
        marked,
    })
}

/// One batch of settled catalogue callbacks (deliveries about no sale,
/// `sale_id` NULL, which `settle_deliveries` does not see) older than
/// `cutoff` and below `below`: removed with their attempts, oldest first;
/// how many. Settled as in `settle_deliveries`; rows another transaction
/// holds are skipped. Found through the partial index of sale-less
/// deliveries (migration 0015), so a pass reads no sale's delivery.
pub async fn settle_callbacks(
    conn: &mut PgConnection,
    below: Uuid,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM deliveries d WHERE d.id IN (
                 SELECT id FROM deliveries
                 WHERE sale_id IS NULL AND id < $1
                   AND (state = 'delivered' OR (state = 'dead' AND discarded_at IS NOT NULL))
                   AND greatest(updated_at, discarded_at) < $2
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING d.id)
         SELECT count(*) FROM gone",
    )
    .bind(below)
    .bind(cutoff)
    .bind(batch)
    .fetch_one(conn)
    .await
}

/// An append-only table walked in id order (its ids grow with time), with
/// a cursor kept in `retention_cursors` so no pass re-reads what an earlier
/// one dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// `delivery_attempts.response_excerpt` cleared (the attempt stays).
    Excerpts,
    /// `sale_decisions` rows removed.
    Decisions,
    /// `sale_status_history` rows removed.
    StatusHistory,
}

/// Generates a walk's statement: take the next batch of rows after the cursor;
/// the leading run of them older than the cutoff is acted on and the
/// cursor moves past it; the first younger row ends the walk for this pass.
/// `$1` is the cutoff, `$2` the batch size.
macro_rules! walk_sql {
    ($job:literal, $table:literal, $ts:literal, $action:literal) => {
        concat!(
            "WITH cur AS (SELECT coalesce((SELECT after_id FROM retention_cursors
                                           WHERE job = '",
            $job,
            "'), 0) AS after_id),
                  win AS (SELECT id, ",
            $ts,
            " AS ts FROM ",
            $table,
            " WHERE id > (SELECT after_id FROM cur) ORDER BY id LIMIT $2),
                  young AS (SELECT min(id) AS id FROM win WHERE ts >= $1),
                  old AS (SELECT id FROM win
                          WHERE id < coalesce((SELECT id FROM young), 9223372036854775807)),
                  acted AS (",
            $action,
            " RETURNING 1),
                  moved AS (INSERT INTO retention_cursors (job, after_id)
                            SELECT '",
            $job,
            "', max(id) FROM old HAVING count(*) > 0
                            ON CONFLICT (job) DO UPDATE SET after_id = excluded.after_id)
             SELECT (SELECT count(*) FROM acted),
                    (SELECT count(*) FROM win) < $2 OR (SELECT id FROM young) IS NOT NULL",
        )
    };
}

const EXCERPTS_SQL: &str = walk_sql!(
    "excerpts",
    "delivery_attempts",
    "started_at",
    "UPDATE delivery_attempts a SET response_excerpt = NULL
     WHERE a.id IN (SELECT id FROM old) AND a.response_excerpt IS NOT NULL"
);
const DECISIONS_SQL: &str = walk_sql!(
    "decisions",
    "sale_decisions",
    "created_at",
    "DELETE FROM sale_decisions x WHERE x.id IN (SELECT id FROM old)"
);
const HISTORY_SQL: &str = walk_sql!(
    "status_history",
    "sale_status_history",
    "created_at",
    "DELETE FROM sale_status_history x WHERE x.id IN (SELECT id FROM old)"
);

impl Walk {
    pub const ALL: [Walk; 3] = [Walk::Excerpts, Walk::Decisions, Walk::StatusHistory];

    /// Label for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Walk::Excerpts => "excerpts",
            Walk::Decisions => "decisions",
            Walk::StatusHistory => "status_history",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Walk::Excerpts => EXCERPTS_SQL,
            Walk::Decisions => DECISIONS_SQL,
            Walk::StatusHistory => HISTORY_SQL,
        }
    }
}

/// One step of a walk: (rows acted on, whether the walk is done for now).
pub async fn walk_step(
    conn: &mut PgConnection,
    walk: Walk,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> sqlx::Result<(i64, bool)> {
    sqlx::query_as(walk.sql())
        .bind(cutoff)
        .bind(batch)
        .fetch_one(conn)
        .await
}
