//! The `ingest` binary: the data plane. Parses configuration, then serves
//! the sales API, relays the outbox and consumes carried-back statuses
//! until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ingest::app::{AppState, app};
use ingest::config::Cli;
use ingest::group_commit::{GroupPolicy, SaleCommitter};
use ingest::status_consumer::StatusConsumer;
use salesync_core::amqp::{consumer, topology};
use salesync_core::metrics::Metrics;
use salesync_core::ops::{self, Readiness};
use salesync_core::{db, outbox, telemetry};
use tokio::sync::Notify;

#[tokio::main]
async fn main() -> ExitCode {
    match serve(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(
        "ingest",
        cli.common.otlp_endpoint.as_deref(),
        &cli.common.log_format,
    )?;
    let shutdown = ops::shutdown_on_signal();
    salesync_core::memory::trim_periodically(shutdown.clone());
    let pool = db::connect_and_migrate(
        &cli.common.database_url,
        cli.common.database_max_connections,
    )
    .await?;
    let metrics = Metrics::new("ingest");
    let readiness = Readiness::default();
    let wake = Arc::new(Notify::new());
    let (handoff, handoff_queue) = outbox::handoff();

    db::watch_readiness(pool.clone(), readiness.part("database"), shutdown.clone());
    let relay = outbox::Relay {
        pool: pool.clone(),
        amqp_url: cli.common.amqp_url.clone(),
        connection_name: "ingest-outbox".into(),
        wake: wake.clone(),
        handoff: Some(handoff_queue),
        batch_size: cli.serve.outbox_batch,
        metrics: metrics.clone(),
        ready: readiness.part("amqp.outbox"),
    };
    let relay = tokio::spawn(relay.run(shutdown.clone()));
    let status = tokio::spawn(consumer::run(
        consumer::ConsumerConfig {
            amqp_url: cli.common.amqp_url.clone(),
            queue: topology::Q_STATUS,
            prefetch: cli.serve.status_prefetch,
            connection_name: "ingest-status".into(),
            retry_delays: Vec::new(),
        },
        Arc::new(StatusConsumer {
            pool: pool.clone(),
            wake: wake.clone(),
        }),
        readiness.part("amqp.status-consumer"),
        metrics.clone(),
        shutdown.clone(),
    ));

    let committer = SaleCommitter::start(
        pool.clone(),
        handoff.clone(),
        GroupPolicy {
            max: usize::try_from(cli.serve.group_commit_max).unwrap_or(500),
            interval: cli.serve.group_commit_interval,
        },
    );
    let state = AppState {
        pool: pool.clone(),
        wake,
        handoff,
        metrics,
        readiness,
        auth: cli.serve.api.start(
            &pool,
            ingest::routes::integration_token_allowed,
            None,
            shutdown.clone(),
        ),
        body: cli.serve.api.body_limits(),
        committer,
    };
    let server = tokio::spawn(ops::serve(
        cli.serve.api_listen,
        app(state),
        cli.common.http_idle_timeout,
        shutdown.clone(),
    ));

    // Run until a signal, or until the server stops on its own (e.g. cannot bind).
    let mut server = server;
    let early = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = &mut server => Some(r),
    };
    shutdown.cancel();
    if let Some(r) = early {
        let _ = tokio::time::timeout(cli.common.shutdown_grace(), async {
            let _ = relay.await;
            let _ = status.await;
        })
        .await;
        return r?;
    }
    // Stop taking work; finish what is in flight within the grace period.
    let drained = tokio::time::timeout(cli.common.shutdown_grace(), async {
        let served = server.await;
        let _ = relay.await;
        let _ = status.await;
        served
    })
    .await;
    match drained {
        Ok(served) => served?,
        Err(_) => {
            tracing::warn!("shutdown grace period over; exiting with work in flight");
            Ok(())
        }
    }
}
