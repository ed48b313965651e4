//! The `ingest` binary: parse configuration, then either serve (API, outbox
//! relay, status consumer, readiness) until SIGTERM, or run an operator
//! command (`admin`, `dlq`, `rotate-secrets`; see `ingest::cli`).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ingest::app::{AppState, app};
use ingest::cli as commands;
use ingest::config::{Cli, Command};
use ingest::group_commit::{GroupPolicy, SaleCommitter};
use ingest::status_consumer::StatusConsumer;
use salesync_core::amqp::{consumer, topology};
use salesync_core::api::quota::TenantQuota;
use salesync_core::api::token_cache::TokenCache;
use salesync_core::api::{AuthState, BodyLimits};
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let Some(encryption) = cli.encryption else {
        anyhow::bail!("SALESYNC_ENCRYPTION_KEYS is required to serve (keys for secrets at rest)");
    };
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

    let pause_pass = tokio::spawn(ingest::pause::run_periodic(
        pool.clone(),
        wake.clone(),
        cli.serve.auto_pause_after,
        cli.serve.pause_check_interval,
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
    let token_cache = Arc::new(TokenCache::new(
        cli.serve.auth_cache_ttl,
        usize::try_from(cli.serve.auth_cache_max).unwrap_or(10_000),
    ));
    let _revocations = tokio::spawn(salesync_core::api::revocations::listen(
        pool.clone(),
        token_cache.clone(),
        shutdown.clone(),
    ));
    let state = AppState {
        pool: pool.clone(),
        secrets: Arc::new(encryption.encryption_keys),
        wake,
        handoff,
        metrics,
        readiness,
        auth: AuthState {
            pool: pool.clone(),
            token_cache,
            rate_limits: Arc::new(TenantQuota::new(
                pool.clone(),
                cli.serve.rate_limit_per_sec,
                cli.serve.rate_limit_burst,
            )),
            admin_token: cli.serve.admin_token.map(Arc::from),
            integration_policy: ingest::routes::integration_token_allowed,
        },
        body: BodyLimits {
            max_bytes: usize::try_from(cli.serve.max_body_bytes).unwrap_or(usize::MAX),
            read_timeout: cli.serve.body_read_timeout,
        },
        amqp_url: cli.common.amqp_url.clone(),
        committer,
        egress: cli.egress.policy(),
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
            let _ = pause_pass.await;
        })
        .await;
        return r?;
    }
    // Stop taking work; finish what is in flight within the grace period.
    let drained = tokio::time::timeout(cli.common.shutdown_grace(), async {
        let served = server.await;
        let _ = relay.await;
        let _ = status.await;
        let _ = pause_pass.await;
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
