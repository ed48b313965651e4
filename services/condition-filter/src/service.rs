//! Wiring: database pool, outbox relay, sale-event consumer and ops server,
//! and the order they stop in. On shutdown the consumer stops taking events
//! and finishes its batch first; only then does the relay get its stop, so
//! the forward commands of that last batch are still published (the relay
//! drains on stop). All of it within `SHUTDOWN_GRACE_SECS`.

use std::sync::Arc;

use salesync_core::amqp::consumer::{self, ConsumerConfig};
use salesync_core::amqp::topology;
use salesync_core::metrics::Metrics;
use salesync_core::ops::{self, Readiness};
use salesync_core::{db, outbox};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::handler::FilterHandler;

/// Service name in logs, traces, metrics and RabbitMQ connection names.
pub const SERVICE: &str = "condition-filter";

/// Runs condition-filter until `shutdown` is cancelled (or its ops server
/// cannot start, which is an error).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = Metrics::new(SERVICE);
    let readiness = Readiness::default();
    let db_ready = readiness.part("database");
    let consumer_ready = readiness.part("amqp.consumer");
    let outbox_ready = readiness.part("amqp.outbox");

    // Stops everything but the relay; the relay stops after the consumer.
    let stop = shutdown.child_token();
    let relay_stop = CancellationToken::new();
    let mut ops_task = tokio::spawn(ops::serve(
        config.ops.ops_listen,
        ops::router(readiness, metrics.clone()),
        config.common.http_idle_timeout,
        stop.clone(),
    ));

    let pool = tokio::select! {
        pool = db::connect_and_migrate_with(
            &config.common.database_url,
            config.common.database_max_connections,
            db::Plans::Generic,
        ) => pool?,
        served = &mut ops_task => return Err(ops_failure(served)),
        _ = stop.cancelled() => return Ok(()),
    };
    db::watch_readiness(pool.clone(), db_ready, stop.clone());

    // Every outbox row condition-filter writes is handed off; the relay's
    // sweep (woken by nobody, so on its idle poll) only picks up rows whose
    // lease ended.
    let (handoff, handoff_queue) = outbox::handoff();
    let relay = outbox::Relay {
        pool: pool.clone(),
        amqp_url: config.common.amqp_url.clone(),
        connection_name: format!("{SERVICE}-outbox"),
        wake: Arc::new(Notify::new()),
        handoff: Some(handoff_queue),
        batch_size: config.outbox_batch,
        metrics: metrics.clone(),
        ready: outbox_ready,
    };
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));

    let handler = Arc::new(FilterHandler {
        db: Mutex::new(db::HeldConnection::new(pool)),
        handoff,
        metrics: metrics.clone(),
    });
    let consumer_config = ConsumerConfig {
        amqp_url: config.common.amqp_url.clone(),
        queue: topology::Q_SALE_EVENTS,
        prefetch: config.prefetch,
        connection_name: SERVICE.to_string(),
        retry_delays: Vec::new(),
    };
    let consumer_task = tokio::spawn(consumer::run(
        consumer_config,
        handler,
        consumer_ready,
        metrics,
        stop.clone(),
    ));

    let mut failure = None;
    tokio::select! {
        // Checked first: on SIGTERM the ops server stops too, and that is not a failure.
        biased;
        _ = stop.cancelled() => {}
        served = &mut ops_task => {
            if !stop.is_cancelled() {
                failure = Some(ops_failure(served));
            }
            stop.cancel();
        }
    }
    tracing::info!("shutting down: finishing the batch in flight");
    let grace = config.common.shutdown_grace();
    let drained = tokio::time::timeout(grace, async {
        let _ = consumer_task.await;
        relay_stop.cancel();
        let _ = relay_task.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            ?grace,
            "shutdown grace elapsed; unacked events return to the queue, outbox rows stay for the next start"
        );
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Why the ops server ended before shutdown: it only does so when it could
/// not start (address in use …).
fn ops_failure(served: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match served {
        Ok(Err(e)) => e,
        Ok(Ok(())) => anyhow::anyhow!("ops server stopped unexpectedly"),
        Err(e) => anyhow::anyhow!("ops server task failed: {e}"),
    }
}
