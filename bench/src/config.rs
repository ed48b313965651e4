//! The benchmark's settings (clap, each also from a `BENCH_*` variable) and
//! the checks that refuse a configuration that cannot measure anything.
//! Defaults give the quoted run: 30 s measured after 5 s of warm-up per
//! phase, about four minutes in all.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use salesync_core::config::parse_duration;
use salesync_e2e::ServiceKind;

/// One part of the run; `--phases` picks which (all by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Phase {
    /// Raw RabbitMQ baseline with lapin on its own vhost.
    Raw,
    /// The raw baseline paced at each `--rate`: one broker hop's latency and
    /// the broker's CPU at the load the fixed-rate phases offer.
    RawFixed,
    /// salesync at a fixed offered load, single-sale endpoint.
    Fixed,
    /// salesync at saturation, batch endpoint, several clients.
    Saturation,
    /// Saturation again with more forwarder and condition-filter replicas.
    Replicas,
    /// Fixed rates and saturation again, every sale a provider's order
    /// (flow, products, answers) through a salesync integration with
    /// imported products and a question mapping.
    Mapped,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "salesync-bench",
    about = "Measures salesync end to end against the raw broker on this machine and writes the table"
)]
pub struct BenchArgs {
    /// Measured time of each phase, after the warm-up.
    #[arg(long, env = "BENCH_DURATION", default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Load sent before the measured window starts (not counted).
    #[arg(long, env = "BENCH_WARMUP", default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Offered load of the fixed-rate phase, sales per second; a list runs
    /// one fixed-rate phase per rate (e.g. `1000,500`).
    #[arg(
        long,
        env = "BENCH_RATE",
        value_delimiter = ',',
        default_value = "1000"
    )]
    pub rate: Vec<u32>,

    /// Concurrent clients of the saturation phases (each posts batches back to back).
    #[arg(long, env = "BENCH_CLIENTS", default_value_t = 8)]
    pub clients: usize,

    /// Sales per batch request in the saturation phases (1..=1000).
    #[arg(long, env = "BENCH_BATCH_SIZE", default_value_t = 200)]
    pub batch_size: usize,

    /// Saturation clients pause while this many accepted sales are not yet
    /// delivered, so the backlog (and the drain after the run) stays bounded.
    #[arg(long, env = "BENCH_MAX_IN_FLIGHT", default_value_t = 5_000)]
    pub max_in_flight: u64,

    /// Most single-sale requests open at once in the fixed-rate phase; when
    /// reached the generator falls behind its schedule (reported as the
    /// achieved offered rate).
    #[arg(long, env = "BENCH_MAX_OUTSTANDING", default_value_t = 512)]
    pub max_outstanding: usize,

    /// Stop a phase's load after this many sales (tiny smoke runs).
    #[arg(long, env = "BENCH_MAX_SALES")]
    pub max_sales: Option<u64>,

    /// How long to wait after the load for every accepted sale to arrive.
    #[arg(long, env = "BENCH_DRAIN_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Replicas of forwarder and condition-filter in the replicas phase.
    #[arg(long, env = "BENCH_REPLICAS", default_value_t = 2)]
    pub replicas: usize,

    /// Times the saturation and replicas phases run, alternating (one
    /// saturation run, one replicas run, …); the replicas verdict compares the
    /// medians, since one run each cannot tell a few percent from noise.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 1)]
    pub rounds: usize,

    /// Raw baseline: publisher confirms outstanding at once.
    #[arg(long, env = "BENCH_RAW_CONFIRM_WINDOW", default_value_t = 1000)]
    pub raw_confirm_window: usize,

    /// Raw baseline: consumer prefetch.
    #[arg(long, env = "BENCH_RAW_PREFETCH", default_value_t = 500)]
    pub raw_prefetch: u16,

    /// Raw baseline: message body size in bytes (≥ 16).
    #[arg(long, env = "BENCH_RAW_MESSAGE_BYTES", default_value_t = 500)]
    pub raw_message_bytes: usize,

    /// Which phases to run, comma-separated.
    #[arg(
        long,
        env = "BENCH_PHASES",
        value_enum,
        value_delimiter = ',',
        default_value = "raw,raw-fixed,fixed,saturation,replicas,mapped"
    )]
    pub phases: Vec<Phase>,

    /// `RUST_LOG` of the services (their production default is `info`).
    #[arg(long, env = "BENCH_SERVICE_LOG", default_value = "info")]
    pub service_log: String,

    /// Extra service environment, `SERVICE:KEY=VALUE` (repeatable), e.g.
    /// `forwarder:PREFETCH=256`; applied over the production defaults.
    #[arg(long = "service-env", env = "BENCH_SERVICE_ENV", value_delimiter = ';',
          value_parser = parse_service_env)]
    pub service_env: Vec<ServiceEnv>,

    /// Run `ANALYZE` on the phase's database when the warm-up ends, so the
    /// measured window runs with query plans made for tables that are no
    /// longer empty (a fresh database keeps its first, empty-table plans
    /// until autovacuum's first analyze). Off by default: the default run
    /// shows a fresh deployment as it is.
    #[arg(long, env = "BENCH_ANALYZE_AFTER_WARMUP")]
    pub analyze_after_warmup: bool,

    /// Write the results table into this markdown file (between the
    /// benchmark's markers, keeping the rest of the file).
    #[arg(long, env = "BENCH_WRITE")]
    pub write: Option<std::path::PathBuf>,

    /// Write every sale's hop timestamps to `<this>-<phase label>.csv`
    /// (diagnostics: when the slow sales happen, and in which hop).
    #[arg(long, env = "BENCH_DUMP_HOPS")]
    pub dump_hops: Option<std::path::PathBuf>,

    /// Keep the services' log directories after the run.
    #[arg(long, env = "BENCH_KEEP_LOGS")]
    pub keep_logs: bool,

    /// Hide the progress bars (the table is still printed).
    #[arg(long, env = "BENCH_QUIET")]
    pub quiet: bool,
}

/// One `--service-env` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEnv {
    pub kind: ServiceKind,
    pub key: String,
    pub value: String,
}

/// Parses `SERVICE:KEY=VALUE` (service by binary name).
pub fn parse_service_env(s: &str) -> Result<ServiceEnv, String> {
    let (service, assignment) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}': expected SERVICE:KEY=VALUE"))?;
    let kind = ServiceKind::ALL
        .into_iter()
        .find(|k| k.binary() == service.trim())
        .ok_or_else(|| {
            format!("'{s}': unknown service '{service}' (ingest, condition-filter, forwarder, status-poller)")
        })?;
    let (key, value) = assignment
        .split_once('=')
        .ok_or_else(|| format!("'{s}': expected SERVICE:KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("'{s}': empty variable name"));
    }
    Ok(ServiceEnv {
        kind,
        key: key.to_string(),
        value: value.to_string(),
    })
}

impl BenchArgs {
    /// Refuses settings that cannot produce a measurement.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() {
            return Err("--duration must be more than zero".into());
        }
        if self.rate.is_empty() || self.rate.contains(&0) {
            return Err("--rate must be at least 1 sale/s".into());
        }
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if !(1..=1000).contains(&self.batch_size) {
            return Err("--batch-size must be 1..=1000 (ingest's batch limit)".into());
        }
        if self.max_in_flight < self.batch_size as u64 {
            return Err("--max-in-flight must be at least --batch-size".into());
        }
        if self.max_outstanding == 0 {
            return Err("--max-outstanding must be at least 1".into());
        }
        if self.max_sales == Some(0) {
            return Err("--max-sales must be at least 1 when given".into());
        }
        if self.replicas == 0 {
            return Err("--replicas must be at least 1".into());
        }
        if self.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        if self.raw_confirm_window == 0 || self.raw_prefetch == 0 {
            return Err("--raw-confirm-window and --raw-prefetch must be at least 1".into());
        }
        if self.raw_message_bytes < crate::raw_broker::HEADER_BYTES {
            return Err(format!(
                "--raw-message-bytes must be at least {}",
                crate::raw_broker::HEADER_BYTES
            ));
        }
        if self.phases.is_empty() {
            return Err("--phases names no phase".into());
        }
        Ok(())
    }

    pub fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> BenchArgs {
        let mut argv = vec!["salesync-bench"];
        argv.extend_from_slice(extra);
        BenchArgs::parse_from(argv)
    }

    #[test]
    fn defaults_are_valid() {
        let a = args(&[]);
        assert_eq!(a.validate(), Ok(()));
        assert_eq!(a.duration, Duration::from_secs(30));
        assert_eq!(a.rate, vec![1000]);
        assert_eq!(
            a.phases,
            vec![
                Phase::Raw,
                Phase::RawFixed,
                Phase::Fixed,
                Phase::Saturation,
                Phase::Replicas,
                Phase::Mapped
            ]
        );
    }

    #[test]
    fn refuses_settings_that_measure_nothing() {
        for (extra, fragment) in [
            (&["--duration", "0s"][..], "--duration"),
            (&["--rate", "0"][..], "--rate"),
            (&["--rate", "1000,0"][..], "--rate"),
            (&["--clients", "0"][..], "--clients"),
            (&["--batch-size", "0"][..], "--batch-size"),
            (&["--batch-size", "1001"][..], "--batch-size"),
            (
                &["--max-in-flight", "10", "--batch-size", "20"][..],
                "--max-in-flight",
            ),
            (&["--max-outstanding", "0"][..], "--max-outstanding"),
            (&["--max-sales", "0"][..], "--max-sales"),
            (&["--replicas", "0"][..], "--replicas"),
            (&["--raw-prefetch", "0"][..], "--raw-prefetch"),
            (&["--raw-message-bytes", "8"][..], "--raw-message-bytes"),
        ] {
            let err = args(extra).validate().expect_err("must refuse");
            assert!(err.contains(fragment), "{extra:?}: {err}");
        }
    }

    #[test]
    fn phases_parse_as_a_list() {
        let a = args(&["--phases", "fixed,raw"]);
        assert!(a.runs(Phase::Raw) && a.runs(Phase::Fixed));
        assert!(!a.runs(Phase::Saturation));
    }

    #[test]
    fn service_env_entries() {
        for (raw, want) in [
            (
                "forwarder:PREFETCH=256",
                Some((ServiceKind::Forwarder, "PREFETCH", "256")),
            ),
            (
                "condition-filter:RUST_LOG=warn,sqlx=off",
                Some((ServiceKind::ConditionFilter, "RUST_LOG", "warn,sqlx=off")),
            ),
            ("ingest:X=", Some((ServiceKind::Ingest, "X", ""))),
            ("nobody:X=1", None),
            ("forwarder:=1", None),
            ("forwarder:PREFETCH", None),
            ("PREFETCH=1", None),
        ] {
            let got = parse_service_env(raw).ok();
            let want = want.map(|(kind, key, value)| ServiceEnv {
                kind,
                key: key.into(),
                value: value.into(),
            });
            assert_eq!(got, want, "{raw}");
        }
    }
}
