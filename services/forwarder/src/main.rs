//! The `forwarder` binary: reads its configuration, installs telemetry,
//! serves the ops endpoints and runs the consumer until SIGTERM/SIGINT, then
//! gives the requests in flight `SHUTDOWN_GRACE_SECS` to finish.

use std::process::ExitCode;

use clap::Parser;
use forwarder::Args;
use salesync_core::metrics::Metrics;
use salesync_core::ops::{self, Readiness};
use salesync_core::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let _telemetry = match telemetry::init(
        "forwarder",
        args.common.otlp_endpoint.as_deref(),
        &args.common.log_format,
    ) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("forwarder: cannot set up telemetry: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let grace = args.common.shutdown_grace();
    if grace < args.request_timeout {
        // A request in flight may take a full request timeout before it can
        // be recorded and acked; a shorter grace cuts it off (it is then
        // redelivered and sent again, deduplicated by the target).
        tracing::warn!(
            ?grace,
            request_timeout = ?args.request_timeout,
            "SHUTDOWN_GRACE_SECS is shorter than REQUEST_TIMEOUT"
        );
    }
    for warning in args.warnings() {
        tracing::warn!("{warning}");
    }
    let metrics = Metrics::new("forwarder");
    let readiness = Readiness::default();
    let shutdown = ops::shutdown_on_signal();
    salesync_core::memory::trim_periodically(shutdown.clone());

    let mut ops_server = tokio::spawn(ops::serve(
        args.ops.ops_listen,
        ops::router(readiness.clone(), metrics.clone()),
        args.common.http_idle_timeout,
        shutdown.clone(),
    ));
    let mut worker = tokio::spawn(forwarder::run(args, readiness, metrics, shutdown.clone()));

    tokio::select! {
        result = &mut worker => return exit_code(result),
        result = &mut ops_server => {
            match result {
                Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "ops server failed"),
                Err(e) => tracing::error!(error = %e, "ops server crashed"),
                Ok(Ok(())) => {}
            }
            shutdown.cancel();
        }
        _ = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(grace, worker).await {
        Ok(result) => exit_code(result),
        Err(_) => {
            // Unacked messages return to the queue when the connection drops.
            tracing::warn!(
                ?grace,
                "shutdown grace elapsed with work in flight; it will be redelivered"
            );
            ExitCode::FAILURE
        }
    }
}

fn exit_code(result: Result<anyhow::Result<()>, tokio::task::JoinError>) -> ExitCode {
    match result {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            tracing::error!(error = format!("{e:#}"), "forwarder failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %e, "forwarder crashed");
            ExitCode::FAILURE
        }
    }
}
