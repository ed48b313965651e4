//! forwarder: takes `sale.forward` commands from `salesync.forward`, delivers
//! each to its target over HTTP (signed, idempotent), retries failures through
//! delay queues with jittered exponential backoff, dead-letters what cannot be
//! delivered, and records every attempt.
//!
//! Messages are handled one by one as they arrive (no batch barrier: a slow
//! target delays only its own deliveries) and recorded in group commits. The
//! pipeline, one module per step:
//! `message` (decode, span) → `claims` + `row_loader` (one copy at a time,
//! its delivery row) → `triage` (duplicates, missing or deleted targets) →
//! `targets` (per-target slots and circuit breaker: `target_limits`,
//! `breaker`, `failure_window`; shared by the replicas through `membership`,
//! `replicas` and `breaker_sync`, in the background) → `deliver` (HTTP) → `classify` (verdict and retry step) →
//! `effects` (what to record) → `handler` commit → `store` (attempt log and
//! delivery state, one transaction per group).

pub mod breaker;
pub mod breaker_sync;
pub mod claims;
pub mod classify;
pub mod config;
pub mod deliver;
pub mod effects;
pub mod failure_window;
pub mod handler;
pub mod membership;
pub mod message;
pub mod replicas;
pub mod row_loader;
pub mod store;
pub mod target_limits;
pub mod targets;
pub mod triage;

use std::sync::Arc;
use std::time::Duration;

use salesync_core::amqp::consumer::{self, ConsumerConfig, GroupCommit};
use salesync_core::amqp::topology;
use salesync_core::db;
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use tokio_util::sync::CancellationToken;

pub use config::Args;
pub use handler::{ForwardHandler, RetryPolicy};

use crate::breaker::BreakerConfig;
use crate::targets::{TargetLimits, Targets};

/// Connects to the database and consumes until `shutdown`, registering the
/// readiness parts "database" and "amqp.consumer". After `shutdown` no new
/// message is taken; requests already sent are finished, recorded and acked
/// before this returns (messages still waiting for a target's slot are left
/// for redelivery).
pub async fn run(
    args: Args,
    readiness: Readiness,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    args.check().map_err(anyhow::Error::msg)?;
    let db_ready = readiness.part("database");
    let amqp_ready = readiness.part("amqp.consumer");
    let pool = db::connect_and_migrate_with(
        &args.common.database_url,
        args.common.database_max_connections,
        db::Plans::Generic,
    )
    .await?;
    db_ready.set(true);
    db::watch_readiness(pool.clone(), db_ready, shutdown.clone());

    let deliverer = deliver::Deliverer::new(
        args.connect_timeout,
        args.request_timeout,
        args.egress.policy(),
    )?;
    let policy = RetryPolicy {
        delays: args.retry_delays.0.clone(),
        max_attempts: args.max_attempts,
    };
    let targets = Arc::new(Targets::shared(
        TargetLimits {
            concurrency: usize::from(args.target_concurrency),
            max_wait: args.target_max_wait,
            breaker: BreakerConfig {
                failure_rate: args.breaker_failure_rate,
                min_calls: args.breaker_min_calls(),
                window: args.breaker_window,
                half_open_calls: args.breaker_half_open_calls,
                cooldown: args.breaker_cooldown,
                // The request timeout bounds a probe; a little slack for
                // scheduling before another probe may go.
                probe_timeout: args.request_timeout + Duration::from_secs(1),
            },
        },
        metrics.clone(),
        args.replica_heartbeat,
    ));
    let replica = uuid::Uuid::new_v4();
    // Heartbeats go on after `shutdown` until the requests in flight are
    // done: until then this replica's share is in use.
    let coordination_stop = CancellationToken::new();
    let mut coordination = start_coordination(
        &pool,
        &targets,
        &metrics,
        &args,
        replica,
        &coordination_stop,
    )
    .await?;
    let handler = Arc::new(ForwardHandler::new(
        pool.clone(),
        deliverer,
        args.encryption.encryption_keys.clone(),
        policy,
        Arc::clone(&targets),
        metrics.clone(),
        shutdown.clone(),
    ));
    let cfg = ConsumerConfig {
        amqp_url: args.common.amqp_url.clone(),
        queue: topology::Q_FORWARD,
        prefetch: args.prefetch,
        connection_name: "forwarder".into(),
        // Declared by the consumer on every connect, so retries are routable.
        retry_delays: args.retry_delays.0,
    };
    let group = GroupCommit {
        max: usize::from(args.prefetch),
        linger: args.commit_linger,
    };
    consumer::run_pipelined(cfg, group, handler, amqp_ready, metrics, shutdown).await;
    // Nothing is in flight any more: our share is free for the others.
    coordination_stop.cancel();
    coordination.shutdown().await;
    targets.set_cap(0);
    if let Err(e) = membership::leave(&pool, replica).await {
        tracing::warn!(error = %e, "could not deregister; the row expires after REPLICA_TTL");
    }
    Ok(())
}

/// Joins the forwarder replicas (a first heartbeat and breaker sync before
/// any message is taken, so this replica starts with its share and knows
/// the open breakers) and keeps both going in the background.
async fn start_coordination(
    pool: &sqlx::PgPool,
    targets: &Arc<Targets>,
    metrics: &Metrics,
    args: &Args,
    replica: uuid::Uuid,
    shutdown: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinSet<()>> {
    let members = membership::MembershipConfig {
        replica,
        heartbeat: args.replica_heartbeat,
        ttl: args.replica_ttl,
    };
    let sync = breaker_sync::SyncConfig {
        replica,
        heartbeat: args.replica_heartbeat,
        claim_ttl: args.replica_ttl,
    };
    let started = std::time::Instant::now();
    let first = membership::beat(pool, targets, members).await?;
    metrics.forwarder_replicas_live(first.view.count);
    breaker_sync::sync_once(pool, targets, sync).await?;
    tracing::info!(
        %replica,
        replicas = first.view.count,
        share = first.cap,
        due = first.due,
        "joined the forwarder replicas"
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(membership::run(
        pool.clone(),
        Arc::clone(targets),
        metrics.clone(),
        members,
        started,
        shutdown.clone(),
    ));
    tasks.spawn(breaker_sync::run(
        pool.clone(),
        Arc::clone(targets),
        sync,
        shutdown.clone(),
    ));
    Ok(tasks)
}
