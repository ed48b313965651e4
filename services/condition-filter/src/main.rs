//! condition-filter binary: read the configuration, start logging/tracing,
//! and run the service until SIGTERM/SIGINT (see `service::run`).

use clap::Parser;
use condition_filter::{Config, SERVICE};
use salesync_core::{ops, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = telemetry::init(
        SERVICE,
        config.common.otlp_endpoint.as_deref(),
        &config.common.log_format,
    )?;
    let shutdown = ops::shutdown_on_signal();
    salesync_core::memory::trim_periodically(shutdown.clone());
    let result = condition_filter::run(config, shutdown).await;
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "condition-filter stopped");
    }
    result
}
