//! The `console` binary: the control plane. Parses configuration, then
//! either serves (the management API, its outbox relay, the pause pass)
//! until SIGTERM, or runs an operator command (`admin`, `dlq`,
//! `rotate-secrets`, `topology-definitions`; see `console::cli`).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use console::app::{AppState, app};
use console::cli as commands;
use console::config::{Cli, Command};
use salesync_core::metrics::Metrics;
use salesync_core::ops::{self, Readiness};
use salesync_core::{db, outbox, telemetry};
use tokio::sync::Notify;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.clone() {
        None | Some(Command::Serve) => serve(cli).await,
        Some(Command::Admin(cmd)) => commands::admin(&cli, cmd).await,
        Some(Command::Dlq(cmd)) => commands::dlq(&cli, cmd).await,
        Some(Command::RotateSecrets) => commands::rotate_secrets(&cli).await,
        Some(Command::TopologyDefinitions {
            retry_delays,
            vhost,
        }) => commands::topology_definitions(&retry_delays, &vhost),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("console: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let Some(encryption) = cli.encryption else {
        anyhow::bail!("SALESYNC_ENCRYPTION_KEYS is required to serve (keys for secrets at rest)");
    };
    let _telemetry = telemetry::init(
        "console",
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
    let metrics = Metrics::new("console");
    let readiness = Readiness::default();
    let wake = Arc::new(Notify::new());

    db::watch_readiness(pool.clone(), readiness.part("database"), shutdown.clone());
    // Replays, resumes and pause notices are written to the outbox here.
    let relay = outbox::Relay {
        pool: pool.clone(),
        amqp_url: cli.common.amqp_url.clone(),
        connection_name: "console-outbox".into(),
        wake: wake.clone(),
        handoff: None,
        batch_size: cli.serve.outbox_batch,
        metrics: metrics.clone(),
        ready: readiness.part("amqp.outbox"),
    };
    let relay = tokio::spawn(relay.run(shutdown.clone()));
    let pause_pass = tokio::spawn(console::pause::run_periodic(
        pool.clone(),
        wake.clone(),
        metrics.clone(),
        cli.serve.auto_pause_after,
        cli.serve.pause_check_interval,
        shutdown.clone(),
    ));

    let secrets = Arc::new(encryption.encryption_keys);
    let egress = cli.egress.policy();
    let catalogue_sync = tokio::spawn(console::catalogue_sync::run(
        pool.clone(),
        secrets.clone(),
        console::provider::client::http_client(&egress)?,
        cli.serve.public_url.clone(),
        cli.serve.catalogue_reconcile_interval,
        cli.serve.catalogue_sync_poll,
        shutdown.clone(),
    ));

    let state = AppState {
        pool: pool.clone(),
        secrets,
        wake,
        metrics,
        readiness,
        auth: cli.serve.api.start(
            &pool,
            console::routes::integration_token_allowed,
            cli.serve.admin_token.as_deref(),
            shutdown.clone(),
        ),
        body: cli.serve.api.body_limits(),
        amqp_url: cli.common.amqp_url.clone(),
        egress,
        public_url: cli.serve.public_url.clone(),
        web: Arc::new(console::web::WebSettings {
            management: Some(console::web::broker::ManagementApi::new(
                &cli.serve.rabbitmq_management_url,
                &cli.common.amqp_url,
            )?),
            services: cli.serve.service_urls.0.clone(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()?,
            trace_url: cli.serve.trace_url.clone(),
        }),
    };
    let server = tokio::spawn(ops::serve(
        cli.serve.api_listen,
        app(state),
        cli.common.http_idle_timeout,
        shutdown.clone(),
    ));

    let mut server = server;
    let early = tokio::select! {
        _ = shutdown.cancelled() => None,
        r = &mut server => Some(r),
    };
    shutdown.cancel();
    let drained = tokio::time::timeout(cli.common.shutdown_grace(), async {
        let served = match early {
            Some(r) => r,
            None => server.await,
        };
        let _ = relay.await;
        let _ = pause_pass.await;
        let _ = catalogue_sync.await;
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
