//! Which forwarder replicas are live, and this one's share of every target's
//! concurrency limit (table `forwarder_replicas`, migration 0011).
//!
//! Every `REPLICA_HEARTBEAT` a replica, in one transaction serialised by an
//! advisory lock: deletes rows not heartbeaten for `REPLICA_TTL`, reads the
//! others' `held`, computes its share from its rank among the live ids
//! (`replicas::share`), shrinks its slots at once if that is less, writes
//! its heartbeat and `held` (share plus slots of a shrunk share still in
//! use), and only after the commit grows its slots — as far as the others'
//! `held` leave room (`replicas::grant`). So the replicas' requests in
//! flight to a target never add up to more than `TARGET_CONCURRENCY`, also
//! while one joins or leaves: a joining replica starts with no slots and
//! gets them as the others' requests above their new shares finish.
//!
//! Failures: a replica that cannot heartbeat keeps its last share, but once
//! its last successful heartbeat is `REPLICA_TTL` old (when the others may
//! delete its row and take its slots) it stops sending (share 0) until it
//! gets through again; it could not record a delivery without the database
//! anyway. Requests it already sent may still run up to `REQUEST_TIMEOUT`.
//! A replica killed outright frees its share when its row expires: the
//! survivors get it back within `REPLICA_TTL` plus a heartbeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use salesync_core::metrics::Metrics;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::replicas::{View, grant, share};
use crate::targets::Targets;

/// Serialises the replicas' heartbeats (any constant unique to this use).
const LOCK_KEY: i64 = 0x5a1e_5f0d_0011;

#[derive(Debug, Clone, Copy)]
pub struct MembershipConfig {
    pub replica: Uuid,
    pub heartbeat: Duration,
    pub ttl: Duration,
}

/// What one heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beat {
    pub view: View,
    pub due: usize,
    pub cap: usize,
    pub held: usize,
}

/// One heartbeat (see the module comment).
pub async fn beat(pool: &PgPool, targets: &Targets, cfg: MembershipConfig) -> sqlx::Result<Beat> {
    let limit = targets.limit();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM forwarder_replicas WHERE heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(cfg.ttl.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    let rows: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT id, held FROM forwarder_replicas ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
    let live: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let others_held: usize = rows
        .iter()
        .filter(|r| r.0 != cfg.replica)
        .map(|r| usize::try_from(r.1).unwrap_or(0))
        .sum();
    let view = View::of(&live, cfg.replica);
    let due = share(limit, view.rank, view.count);
    let current = targets.cap();
    let cap = grant(due, current, others_held, limit);
    // Shrink before `held` is written, grow only once it is committed.
    if cap < current {
        targets.set_cap(cap);
    }
    let held = cap.max(targets.held());
    sqlx::query(
        "INSERT INTO forwarder_replicas (id, heartbeat_at, held) VALUES ($1, now(), $2) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), held = EXCLUDED.held",
    )
    .bind(cfg.replica)
    .bind(i32::try_from(held).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if cap > current {
        targets.set_cap(cap);
    }
    Ok(Beat {
        view,
        due,
        cap,
        held,
    })
}

/// Removes this replica's row (clean shutdown, once nothing is in flight).
pub async fn leave(pool: &PgPool, replica: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM forwarder_replicas WHERE id = $1")
        .bind(replica)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Heartbeats until `shutdown`. `last_ok`: when the last successful
/// heartbeat started (the first one is done before the loop).
pub async fn run(
    pool: PgPool,
    targets: Arc<Targets>,
    metrics: Metrics,
    cfg: MembershipConfig,
    mut last_ok: Instant,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut isolated = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Our row may be deleted (and our slots taken) once our last
        // heartbeat is TTL old: stop a heartbeat before that (this loop
        // looks once a heartbeat, and no heartbeat may run past it).
        let deadline = last_ok + cfg.ttl.saturating_sub(cfg.heartbeat);
        if !isolated && Instant::now() >= deadline {
            tracing::warn!(
                "no heartbeat for about REPLICA_TTL: sending nothing until the database answers"
            );
            targets.set_cap(0);
            isolated = true;
        }
        let budget = if isolated {
            cfg.ttl / 2
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        let started = Instant::now();
        match tokio::time::timeout(budget, beat(&pool, &targets, cfg)).await {
            Ok(Ok(b)) => {
                last_ok = started;
                if isolated {
                    tracing::info!(share = b.cap, "heartbeat through again");
                    isolated = false;
                }
                metrics.forwarder_replicas_live(b.view.count);
                if b.cap != b.due {
                    tracing::debug!(
                        due = b.due,
                        share = b.cap,
                        "waiting for other replicas to give back slots"
                    );
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "forwarder heartbeat failed"),
            Err(_) => tracing::warn!("forwarder heartbeat timed out"),
        }
    }
}
