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
//! `breaker`, `failure_window`) → `deliver` (HTTP) → `classify` (verdict and retry step) →
//! `effects` (what to record) → `handler` commit → `store` (attempt log and
//! delivery state, one transaction per group).

pub mod breaker;
pub mod claims;
pub mod classify;
pub mod config;
pub mod deliver;
pub mod effects;
pub mod failure_window;
pub mod handler;
pub mod message;
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
    let targets = Arc::new(Targets::new(
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
    ));
    let handler = Arc::new(ForwardHandler::new(
        pool,
        deliverer,
        args.encryption.encryption_keys.clone(),
        policy,
        targets,
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
    Ok(())
}
