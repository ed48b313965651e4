//! forwarder: takes `sale.forward` commands from `salesync.forward`, delivers
//! each to its target over HTTP (signed, idempotent), retries failures through
//! delay queues with jittered exponential backoff, dead-letters what cannot be
//! delivered, and records every attempt.
//!
//! The pipeline, one module per step:
//! `handler` (consume a batch) → `triage` (duplicates, missing or deleted
//! targets) → `deliver` (HTTP) → `classify` (verdict and retry step) →
//! `store` (attempt log and delivery state, one transaction).

pub mod classify;
pub mod config;
pub mod deliver;
pub mod handler;
pub mod store;
pub mod triage;

use std::sync::Arc;

use salesync_core::amqp::consumer::{self, ConsumerConfig};
use salesync_core::amqp::topology;
use salesync_core::db;
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use tokio_util::sync::CancellationToken;

pub use config::Args;
pub use handler::{ForwardHandler, RetryPolicy};

/// Connects to the database and consumes until `shutdown`, registering the
/// readiness parts "database" and "amqp.consumer". After `shutdown` the batch
/// in flight is finished (sent, recorded, acked) before this returns.
pub async fn run(
    args: Args,
    readiness: Readiness,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let db_ready = readiness.part("database");
    let amqp_ready = readiness.part("amqp.consumer");
    let pool = db::connect_and_migrate(
        &args.common.database_url,
        args.common.database_max_connections,
    )
    .await?;
    db_ready.set(true);
    db::watch_readiness(pool.clone(), db_ready, shutdown.clone());

    let deliverer = deliver::Deliverer::new(args.connect_timeout, args.request_timeout)?;
    let policy = RetryPolicy {
        delays: args.retry_delays.0.clone(),
        max_attempts: args.max_attempts,
    };
    let handler = Arc::new(ForwardHandler::new(
        pool,
        deliverer,
        args.encryption.encryption_keys.clone(),
        policy,
        metrics.clone(),
    ));
    let cfg = ConsumerConfig {
        amqp_url: args.common.amqp_url.clone(),
        queue: topology::Q_FORWARD,
        prefetch: args.prefetch,
        connection_name: "forwarder".into(),
        // Declared by the consumer on every connect, so retries are routable.
        retry_delays: args.retry_delays.0,
    };
    consumer::run(cfg, handler, amqp_ready, metrics, shutdown).await;
    Ok(())
}
