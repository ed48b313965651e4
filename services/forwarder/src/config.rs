//! The forwarder's settings, all from the environment (clap documents each in
//! `--help`); a bad value stops the service at start-up with a clear message.

use std::time::Duration;

use clap::Parser;
use salesync_core::amqp::topology;
use salesync_core::config::{
    CommonArgs, OpsArgs, parse_duration, parse_duration_at_most, parse_duration_list,
};
use salesync_core::crypto::EncryptionArgs;
use salesync_core::egress::EgressArgs;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "forwarder",
    version,
    about = "Delivers sales and status webhooks to targets over HTTP; retries with backoff through delay queues; dead-letters what cannot be delivered"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub ops: OpsArgs,

    #[command(flatten)]
    pub encryption: EncryptionArgs,

    #[command(flatten)]
    pub egress: EgressArgs,

    /// Unacked messages the broker hands this process at once: the most
    /// deliveries in flight (being sent, waiting for a slot, or waiting for
    /// their group commit).
    #[arg(long, env = "PREFETCH", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,

    /// Total time one request to a target may take (connect, send, answer).
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub request_timeout: Duration,

    /// Time to establish a connection to a target.
    #[arg(long, env = "CONNECT_TIMEOUT", default_value = "3s", value_parser = parse_nonzero_duration)]
    pub connect_timeout: Duration,

    /// Backoff tiers, ascending: attempt n that failed waits the n-th (the
    /// last one repeats). One delay queue is declared per tier.
    #[arg(long, env = "RETRY_DELAYS", default_value = topology::DEFAULT_RETRY_DELAYS,
          value_parser = parse_retry_delays)]
    pub retry_delays: RetryDelays,

    /// Attempts per delivery (the first included) before it is dead-lettered.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,

    /// Most requests in flight to one target (scheme, host and port of its
    /// URL) at once, all forwarder replicas together: each live replica
    /// gets its share (see `REPLICA_HEARTBEAT`); with more replicas than
    /// this, some send nothing to the target.
    #[arg(long, env = "TARGET_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub target_concurrency: u16,

    /// When all of a target's slots are busy, a delivery waits for one only
    /// if the target's recent latency says a slot frees up within this;
    /// otherwise it goes back to a delay queue (no attempt used), so a slow
    /// target cannot fill the prefetch window and starve the others.
    #[arg(long, env = "TARGET_MAX_WAIT", default_value = "1s", value_parser = parse_duration)]
    pub target_max_wait: Duration,

    /// Percentage of failed calls (5xx, timeouts, refused or broken
    /// connections — not 4xx) over `BREAKER_WINDOW` that opens a target's
    /// circuit breaker (judged by each replica over its own calls; once open
    /// it is open for all) — of all calls and of the
    /// retries among them; also the rate of failed half-open probes that
    /// keeps it open. High by default: the breaker is for outages; a target
    /// failing part of the time is left to the retries.
    #[arg(long, env = "BREAKER_FAILURE_RATE", default_value_t = 90,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub breaker_failure_rate: u8,

    /// Answered calls the window must hold before their failure rate can
    /// open the breaker, a quarter of them (at least one) retries
    /// [default: 20].
    #[arg(long, env = "BREAKER_MIN_CALLS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_min_calls: Option<u32>,

    /// Replaced by `BREAKER_MIN_CALLS` and `BREAKER_FAILURE_RATE` (the
    /// breaker no longer counts failures in a row); still read as
    /// `BREAKER_MIN_CALLS` when that is not set.
    #[arg(long, env = "BREAKER_FAILURES", hide = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failures: Option<u32>,

    /// How far back a closed breaker looks (a sliding window of time). Keep
    /// it at least twice the first `RETRY_DELAYS` tier, so that the window
    /// holds retries' answers when the target fails.
    #[arg(long, env = "BREAKER_WINDOW", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub breaker_window: Duration,

    /// Probe requests a half-open breaker lets through; their failure rate
    /// decides: below `BREAKER_FAILURE_RATE` closes it, otherwise it opens
    /// for another cooldown.
    #[arg(long, env = "BREAKER_HALF_OPEN_CALLS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_half_open_calls: u32,

    /// How long an open breaker sends nothing to its target (deliveries wait
    /// in the delay queues, using no attempt); then the probes decide.
    #[arg(long, env = "BREAKER_COOLDOWN", default_value = "30s", value_parser = parse_nonzero_duration)]
    pub breaker_cooldown: Duration,

    /// How often this replica tells the others it is alive (a row in
    /// `forwarder_replicas`) and learns how many there are: the per-target
    /// concurrency limit and the circuit breakers are shared by the live
    /// replicas, refreshed at this pace.
    #[arg(long, env = "REPLICA_HEARTBEAT", default_value = "1s", value_parser = parse_nonzero_duration)]
    pub replica_heartbeat: Duration,

    /// A replica not heard from for this long is no longer live: its share
    /// of the targets' slots and its probe claims go to the others. At least
    /// twice `REPLICA_HEARTBEAT`.
    #[arg(long, env = "REPLICA_TTL", default_value = "5s", value_parser = parse_nonzero_duration)]
    pub replica_ttl: Duration,

    /// How long the first finished delivery waits for others to share its
    /// group commit when no commit is running.
    #[arg(long, env = "COMMIT_LINGER", default_value = "2ms", value_parser = parse_commit_linger)]
    pub commit_linger: Duration,
}

/// `BREAKER_MIN_CALLS` when none is set.
pub const DEFAULT_BREAKER_MIN_CALLS: u32 = 20;

impl Args {
    /// `BREAKER_MIN_CALLS`, else the deprecated `BREAKER_FAILURES`, else the default.
    pub fn breaker_min_calls(&self) -> u32 {
        self.breaker_min_calls
            .or(self.breaker_failures)
            .unwrap_or(DEFAULT_BREAKER_MIN_CALLS)
    }

    /// Settings that contradict each other, as an error for start-up.
    pub fn check(&self) -> Result<(), String> {
        if self.replica_ttl < self.replica_heartbeat * 2 {
            return Err(format!(
                "REPLICA_TTL ({:?}) must be at least twice REPLICA_HEARTBEAT ({:?})",
                self.replica_ttl, self.replica_heartbeat
            ));
        }
        Ok(())
    }

    /// Settings that work but defeat their purpose, as warnings for the log.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.breaker_failures.is_some() {
            w.push(
                "BREAKER_FAILURES is deprecated: the breaker opens on a failure rate \
                 (BREAKER_FAILURE_RATE) over BREAKER_WINDOW once BREAKER_MIN_CALLS \
                 answers are in; BREAKER_FAILURES is read as BREAKER_MIN_CALLS"
                    .to_string(),
            );
        }
        if let Some(first) = self.retry_delays.0.first()
            && self.breaker_window < *first * 2
        {
            w.push(format!(
                "BREAKER_WINDOW ({:?}) is shorter than twice the first retry delay ({first:?}): \
                 the breaker may see too few retries to open on an outage",
                self.breaker_window
            ));
        }
        w
    }
}

/// The retry tiers. A newtype because clap treats a bare `Vec` as "many
/// values" rather than one comma-separated value.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryDelays(pub Vec<Duration>);

fn parse_nonzero_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn parse_commit_linger(s: &str) -> Result<Duration, String> {
    parse_duration_at_most(
        s,
        Duration::from_secs(1),
        "as every ack waits this long when idle",
    )
}

fn parse_retry_delays(s: &str) -> Result<RetryDelays, String> {
    let list = parse_duration_list(s)?;
    // "The smallest tier ≥ Retry-After" and "exponential" both assume order.
    if list.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!("'{s}': list the delays in ascending order"));
    }
    // RabbitMQ takes a queue TTL in ms as a 32-bit count.
    if list.iter().any(|d| d.as_millis() > u32::MAX as u128) {
        return Err(format!("'{s}': a delay may be at most ~49 days"));
    }
    Ok(RetryDelays(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["forwarder", "--encryption-keys", KEY];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn defaults_match_the_documentation() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.prefetch, 64);
        assert_eq!(a.request_timeout, Duration::from_secs(10));
        assert_eq!(a.connect_timeout, Duration::from_secs(3));
        assert_eq!(a.max_attempts, 8);
        assert_eq!(a.target_concurrency, 16);
        assert_eq!(a.target_max_wait, Duration::from_secs(1));
        assert_eq!(a.breaker_failure_rate, 90);
        assert_eq!(a.breaker_min_calls(), 20);
        assert_eq!(a.breaker_window, Duration::from_secs(10));
        assert_eq!(a.breaker_half_open_calls, 10);
        assert_eq!(a.breaker_cooldown, Duration::from_secs(30));
        assert_eq!(a.warnings(), Vec::<String>::new());
        assert_eq!(a.commit_linger, Duration::from_millis(2));
        assert_eq!(a.replica_heartbeat, Duration::from_secs(1));
        assert_eq!(a.replica_ttl, Duration::from_secs(5));
        assert_eq!(a.check(), Ok(()));
        assert_eq!(
            a.retry_delays.0,
            [1, 5, 30, 120, 600, 1800, 3600].map(Duration::from_secs)
        );
    }

    #[test]
    fn refuses_bad_values() {
        let cases: &[(&str, &[&str])] = &[
            ("zero attempts", &["--max-attempts", "0"]),
            ("zero prefetch", &["--prefetch", "0"]),
            ("prefetch too big", &["--prefetch", "70000"]),
            ("timeout without unit", &["--request-timeout", "10"]),
            ("zero timeout", &["--request-timeout", "0s"]),
            ("zero connect timeout", &["--connect-timeout", "0ms"]),
            ("descending delays", &["--retry-delays", "5s,1s"]),
            ("zero delay", &["--retry-delays", "0s,1s"]),
            ("empty delays", &["--retry-delays", ""]),
            ("zero target concurrency", &["--target-concurrency", "0"]),
            (
                "negative target concurrency",
                &["--target-concurrency", "-1"],
            ),
            ("max wait without unit", &["--target-max-wait", "5"]),
            ("zero breaker failures", &["--breaker-failures", "0"]),
            ("zero failure rate", &["--breaker-failure-rate", "0"]),
            ("failure rate over 100", &["--breaker-failure-rate", "101"]),
            ("zero min calls", &["--breaker-min-calls", "0"]),
            ("zero window", &["--breaker-window", "0s"]),
            ("window without unit", &["--breaker-window", "10"]),
            ("zero half-open calls", &["--breaker-half-open-calls", "0"]),
            ("zero cooldown", &["--breaker-cooldown", "0s"]),
            ("cooldown without unit", &["--breaker-cooldown", "30"]),
            ("long linger", &["--commit-linger", "2s"]),
            ("zero heartbeat", &["--replica-heartbeat", "0s"]),
            ("zero ttl", &["--replica-ttl", "0s"]),
        ];
        for (name, extra) in cases {
            assert!(parse(extra).is_err(), "case {name} should be refused");
        }
        assert!(Args::try_parse_from(["forwarder", "--encryption-keys", "nope"]).is_err());
        let short_ttl = parse(&["--replica-heartbeat", "1s", "--replica-ttl", "1500ms"]).unwrap();
        assert!(short_ttl.check().is_err());
        let fast = parse(&["--replica-heartbeat", "200ms", "--replica-ttl", "1s"]).unwrap();
        assert_eq!(fast.check(), Ok(()));
    }

    #[test]
    fn accepts_short_test_settings() {
        let a = parse(&[
            "--retry-delays",
            "200ms,400ms,400ms",
            "--request-timeout",
            "500ms",
            "--max-attempts",
            "1",
        ])
        .unwrap();
        assert_eq!(a.retry_delays.0, [200, 400, 400].map(Duration::from_millis));
        assert_eq!(a.request_timeout, Duration::from_millis(500));
        assert_eq!(a.max_attempts, 1);
        let a = parse(&[
            "--target-concurrency",
            "1",
            "--target-max-wait",
            "0ms",
            "--breaker-failure-rate",
            "100",
            "--breaker-min-calls",
            "1",
            "--breaker-window",
            "2s",
            "--breaker-half-open-calls",
            "1",
            "--breaker-cooldown",
            "500ms",
            "--commit-linger",
            "0ms",
        ])
        .unwrap();
        assert_eq!(a.target_concurrency, 1);
        assert_eq!(a.target_max_wait, Duration::ZERO);
        assert_eq!(a.breaker_failure_rate, 100);
        assert_eq!(a.breaker_min_calls(), 1);
        assert_eq!(a.breaker_window, Duration::from_secs(2));
        assert_eq!(a.breaker_half_open_calls, 1);
        assert_eq!(a.breaker_cooldown, Duration::from_millis(500));
        assert_eq!(a.commit_linger, Duration::ZERO);
    }

    #[test]
    fn the_old_breaker_setting_still_counts_and_warns() {
        let a = parse(&["--breaker-failures", "1000000"]).unwrap();
        assert_eq!(a.breaker_min_calls(), 1_000_000);
        assert_eq!(a.warnings().len(), 1, "{:?}", a.warnings());
        let a = parse(&["--breaker-failures", "7", "--breaker-min-calls", "30"]).unwrap();
        assert_eq!(a.breaker_min_calls(), 30, "the new name wins");
        let a = parse(&["--retry-delays", "6s,10s"]).unwrap();
        assert!(
            a.warnings()[0].starts_with("BREAKER_WINDOW"),
            "{:?}",
            a.warnings()
        );
    }
}
