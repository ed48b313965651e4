//! status-poller binary: reads the settings, connects to PostgreSQL, and runs
//! the polling loop, retention, the outbox relay and the ops endpoints until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use salesync_core::metrics::Metrics;
use salesync_core::ops::{self, Readiness};
use salesync_core::outbox::Relay;
use salesync_core::{db, telemetry};
use status_poller::client::build_http_client;
use status_poller::config::Args;
use status_poller::poller::Poller;
use status_poller::retention::Retention;
use tokio::sync::Notify;

const SERVICE: &str = "status-poller";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _telemetry = match telemetry::init(
        SERVICE,
        args.common.otlp_endpoint.as_deref(),
        &args.common.log_format,
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("status-poller: cannot set up telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "status-poller failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = ops::shutdown_on_signal();
    salesync_core::memory::trim_periodically(shutdown.clone());
    let metrics = Metrics::new(SERVICE);
    let readiness = Readiness::default();
    let db_ready = readiness.part("database");
    let outbox_ready = readiness.part("amqp.outbox");

    let ops_task = tokio::spawn(ops::serve(
        args.ops.ops_listen,
        ops::router(readiness.clone(), metrics.clone()),
        args.common.http_idle_timeout,
        shutdown.clone(),
    ));

    let pool = db::connect_and_migrate(
        &args.common.database_url,
        args.common.database_max_connections,
    )
    .await?;
    db::watch_readiness(pool.clone(), db_ready, shutdown.clone());

    let wake = Arc::new(Notify::new());
    let relay = Relay {
        pool: pool.clone(),
        amqp_url: args.common.amqp_url.clone(),
        connection_name: format!("{SERVICE}-outbox"),
        wake: wake.clone(),
        handoff: None,
        batch_size: args.outbox_batch,
        metrics: metrics.clone(),
        ready: outbox_ready,
    };
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    let retention = Retention {
        pool: pool.clone(),
        settings: args.retention_settings(),
        metrics: metrics.clone(),
    };
    let retention_task = tokio::spawn(retention.run(shutdown.clone()));

    let poller = Poller {
        pool,
        http: build_http_client(args.request_timeout, args.egress.policy())?,
        secret_box: args.encryption.encryption_keys.clone(),
        settings: args.poll_settings(),
        metrics,
        wake,
    };
    let poller_task = tokio::spawn(poller.run(shutdown.clone()));

    shutdown.cancelled().await;
    // The poller finishes its tick (its writes then sit in the outbox), the
    // relay flushes what is committed; whatever misses the grace period is
    // picked up on the next start.
    let grace = args.common.shutdown_grace();
    let all = async {
        let _ = poller_task.await;
        let _ = retention_task.await;
        let _ = relay_task.await;
        let _ = ops_task.await;
    };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            ?grace,
            "shutdown grace period over; exiting with work in flight"
        );
    }
    Ok(())
}
