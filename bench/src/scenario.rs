//! One salesync phase end to end: a fresh `Stack` (own database, own vhost,
//! the service binaries as processes with their production settings), a
//! tenant whose one webhook integration points at the `CountingTarget`,
//! then load, drain, and the readings. A fresh stack per phase keeps the
//! phases from inheriting each other's backlog, table bloat or peak RSS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use salesync_e2e::{IntegrationInput, Replicas, ServiceKind, Stack, StackOptions, Tenant, partner};

use crate::config::BenchArgs;
use crate::load::{self, LoadPlan, SalesClient};
use crate::procfs;
use crate::progress::Progress;
use crate::stages::{self, StageLatency};
use crate::stats::{self, PhaseStats, Window};
use crate::target::CountingTarget;
use crate::timeline::Timeline;
use crate::usage::{RssWatch, ServiceUsage, UsageProbe};

/// External ids are `<PREFIX>-<n>`; the target reads `n` back.
const PREFIX: &str = "bench";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// Open-loop single-sale POSTs at this rate.
    Fixed { rate: u32 },
    /// Closed-loop batch POSTs, as fast as ingest answers.
    Saturate,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub label: String,
    pub load: Load,
    pub replicas: Replicas,
    /// Sales go as a provider's orders through a mapped salesync
    /// integration (`mapped_integration`), not to a webhook.
    pub mapped: bool,
}

#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub label: String,
    pub load: Load,
    /// Processes of the most-replicated service (1 = one of each).
    pub max_replicas: usize,
    pub stats: PhaseStats,
    pub usage: Vec<ServiceUsage>,
    /// Per-hop latency from the services' timestamps (empty if unreadable).
    pub stages: Vec<StageLatency>,
    /// Share of the machine's CPU busy while the load ran, 0..=1.
    pub machine_busy: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub requests: u64,
}

/// The services' own defaults (their `--help`), restored over the e2e
/// harness's test-speed settings so the benchmark measures what production
/// runs. Keep in step with the services' config.rs.
pub fn production_env(service_log: &str) -> Vec<(ServiceKind, &'static str, String)> {
    let mut env = Vec::new();
    for kind in ServiceKind::ALL {
        env.push((kind, "RUST_LOG", service_log.to_string()));
        env.push((kind, "DATABASE_MAX_CONNECTIONS", "8".into()));
        env.push((kind, "SHUTDOWN_GRACE_SECS", "10".into()));
    }
    let specific: [(ServiceKind, &'static str, &str); 11] = [
        // Not a default: the per-tenant quota (2,000 sales/s per ingest
        // process) would cap the one benchmark tenant below what the
        // pipeline carries, and the quota is not what is measured here.
        (ServiceKind::Ingest, "RATE_LIMIT_PER_SEC", "1000000"),
        (ServiceKind::Ingest, "RATE_LIMIT_BURST", "1000000"),
        (ServiceKind::ConditionFilter, "PREFETCH", "256"),
        (ServiceKind::Forwarder, "PREFETCH", "64"),
        (ServiceKind::Forwarder, "REQUEST_TIMEOUT", "10s"),
        (ServiceKind::Forwarder, "CONNECT_TIMEOUT", "3s"),
        (
            ServiceKind::Forwarder,
            "RETRY_DELAYS",
            "1s,5s,30s,2m,10m,30m,1h",
        ),
        (ServiceKind::Forwarder, "MAX_ATTEMPTS", "8"),
        (ServiceKind::StatusPoller, "POLL_INTERVAL", "30s"),
        (ServiceKind::StatusPoller, "LOOKUP_CHUNK", "200"),
        (ServiceKind::StatusPoller, "POLL_BATCH", "500"),
    ];
    env.extend(specific.iter().map(|(k, key, v)| (*k, *key, v.to_string())));
    env
}

pub async fn run(
    args: &BenchArgs,
    scenario: &Scenario,
    progress: &Progress,
) -> anyhow::Result<ScenarioResult> {
    let timeline = Arc::new(Timeline::new());
    let target = CountingTarget::start(timeline.clone(), PREFIX).await?;

    let spinner = progress.spinner("starting database, vhost and services");
    let mut options = StackOptions::default().replicas(scenario.replicas.clone());
    for (kind, key, value) in production_env(&args.service_log) {
        options = options.env(kind, key, &value);
    }
    for e in &args.service_env {
        options = options.env(e.kind, &e.key, &e.value);
    }
    let mut stack = Stack::start(options).await?;
    if args.keep_logs {
        stack.services.keep_logs();
        progress.step(&format!(
            "service logs kept in {}",
            stack.services.logs_dir().display()
        ));
    }
    let tenant = stack.tenant("bench-pos").await?;
    if scenario.mapped {
        mapped_integration(&stack, &tenant, &target).await?;
    } else {
        tenant
            .api
            .create_integration(&IntegrationInput::webhook(
                "bench counting target",
                &target.url("/sales"),
            ))
            .await?;
    }
    // Let start-up work (migrations checked, topology declared, pools
    // filled) finish so the idle reading is idle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    spinner.finish_and_clear();

    let probe = UsageProbe::start(Some(&stack.services), Some(&stack.db)).await;
    let rss = RssWatch::start(&stack.services, args.warmup, args.duration);
    let client = SalesClient::new(&stack.ingest_url(), &tenant.token, PREFIX)?;
    let client = Arc::new(if scenario.mapped {
        client.with_orders()
    } else {
        client
    });
    let plan = LoadPlan {
        warmup: args.warmup,
        duration: args.duration,
        max_sales: args.max_sales,
    };
    let machine_before = procfs::machine_ticks();
    let analyze = args.analyze_after_warmup.then(|| {
        let pool = stack.db.pool().clone();
        let warmup = plan.warmup;
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            sqlx::query("ANALYZE").execute(&pool).await.map(|_| ())
        })
    });
    let (bar, stop_bar) = progress.load_bar(plan.warmup + plan.duration, timeline.clone());
    let outcome = match scenario.load {
        Load::Fixed { rate } => {
            load::open_loop(client, timeline.clone(), rate, args.max_outstanding, plan).await
        }
        Load::Saturate => {
            load::saturate(
                client,
                timeline.clone(),
                args.clients,
                args.batch_size,
                args.max_in_flight,
                plan,
            )
            .await
        }
    };
    let machine_after = procfs::machine_ticks();
    let rss = rss.stop().await;
    if let Some(task) = analyze {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => progress.step(&format!("ANALYZE after the warm-up failed: {e}")),
            Err(e) => progress.step(&format!("ANALYZE after the warm-up failed: {e}")),
        }
    }
    bar.set_message(format!(
        "load done; draining {} in flight",
        timeline.in_flight()
    ));
    let drained = drain(&timeline, args.drain_timeout).await;
    stop_bar.cancel();
    bar.finish_and_clear();
    let usage = probe.finish(&rss).await;
    let stages = stages::measure(stack.db.pool(), args.warmup)
        .await
        .unwrap_or_else(|e| {
            progress.step(&format!("per-hop latency unavailable: {e}"));
            Vec::new()
        });
    if let Some(prefix) = &args.dump_hops {
        let slug: String = scenario
            .label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = std::path::PathBuf::from(format!("{}-{slug}.csv", prefix.display()));
        match stages::dump_csv(stack.db.pool(), &path).await {
            Ok(n) => progress.step(&format!("{n} sales' hops written to {}", path.display())),
            Err(e) => progress.step(&format!("hop dump failed: {e}")),
        }
    }
    if !drained {
        progress.step(&format!(
            "{} sales had not arrived after {:?}; forwarder log tail:\n{}",
            timeline.in_flight(),
            args.drain_timeout,
            stack.services.log_tail(ServiceKind::Forwarder, 10)
        ));
    }
    let window = outcome.window.unwrap_or(Window { start: 0, end: 0 });
    Ok(ScenarioResult {
        label: scenario.label.clone(),
        load: scenario.load,
        max_replicas: ServiceKind::ALL
            .into_iter()
            .map(|k| scenario.replicas.of(k))
            .max()
            .unwrap_or(1)
            .max(1),
        stats: stats::summarize(&timeline.snapshot(), window),
        usage,
        stages,
        machine_busy: match (machine_before, machine_after) {
            (Some(a), Some(b)) => a.busy_share_until(&b),
            _ => 0.0,
        },
        errors: outcome.errors,
        first_error: outcome.first_error,
        requests: outcome.requests,
    })
}

/// The mapped phase's setup, through the API as its users do it: a provider
/// tenant on the same stack publishes and grants its catalogue; `tenant`
/// imports both products and maps its flow and questions, forwarding every
/// sale (as the webhook phases do). Orders go to `target`, which counts
/// them; the provider's partner routes (test connection, import) are the
/// stack's console.
async fn mapped_integration(
    stack: &Stack,
    tenant: &Tenant,
    target: &CountingTarget,
) -> anyhow::Result<()> {
    let provider = stack.tenant("bench-provider").await?;
    let setup = partner::set_up_provider(&provider.api).await?;
    let address = partner::ProviderAddress {
        ingest_url: target.url(""),
        console_url: stack.console_url(),
    };
    let (_, check) = partner::set_up_reseller_with(
        &tenant.api,
        &address,
        &setup.agent_token,
        &partner::a_mapping(),
        &serde_json::json!({}),
    )
    .await?;
    anyhow::ensure!(
        check["mismatches"] == serde_json::json!([]),
        "the mapping check is not clean: {check}"
    );
    Ok(())
}

/// Waits until every accepted sale arrived; false on timeout.
async fn drain(timeline: &Timeline, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if timeline.in_flight() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_env_sets_every_service_once_per_key() {
        let env = production_env("warn");
        for kind in ServiceKind::ALL {
            let keys: Vec<&str> = env
                .iter()
                .filter(|(k, ..)| *k == kind)
                .map(|(_, key, _)| *key)
                .collect();
            let mut unique = keys.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(keys.len(), unique.len(), "{kind}: {keys:?}");
            assert!(keys.contains(&"RUST_LOG"), "{kind}");
        }
        assert!(
            env.iter()
                .any(|(k, key, v)| *k == ServiceKind::Forwarder && *key == "PREFETCH" && v == "64")
        );
    }
}
