//! The service's settings, from the environment (or flags): connections and
//! ops address (shared groups), the key that decrypts target credentials, and
//! the polling pace. A bad value stops the service at start-up with a message
//! naming the variable.

use std::time::Duration;

use clap::Parser;
use salesync_core::config::{CommonArgs, OpsArgs, parse_duration};
use salesync_core::crypto::EncryptionArgs;
use salesync_core::egress::EgressArgs;

use crate::poller::PollSettings;
use crate::retention::RetentionSettings;

/// The salesync ingest lookup endpoint accepts at most this many ids per request.
pub const MAX_LOOKUP_CHUNK: u64 = 500;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "status-poller",
    version,
    about = "Asks targets for the status of forwarded sales and carries changes back to ingest"
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

    /// How often each not-yet-final delivery is asked about (e.g. 30s, 500ms, 2m).
    #[arg(long, env = "POLL_INTERVAL", default_value = "30s", value_parser = parse_positive_duration)]
    pub poll_interval: Duration,

    /// Most deliveries claimed per tick.
    #[arg(long, env = "POLL_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub poll_batch: i64,

    /// Most target refs per lookup request (the salesync lookup API takes ≤500).
    #[arg(long, env = "LOOKUP_CHUNK", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=MAX_LOOKUP_CHUNK))]
    pub lookup_chunk: u64,

    /// Total time allowed for one lookup request (connect, answer, body).
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,

    /// Most targets asked at the same time within a tick.
    #[arg(long, env = "POLL_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub poll_concurrency: u64,

    /// Most outbox rows the relay publishes per batch.
    #[arg(long, env = "OUTBOX_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub outbox_batch: i64,

    /// Time between retention passes (`10m`, `5s` …); `0s` turns retention off.
    #[arg(long, env = "RETENTION_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub retention_interval: Duration,

    /// Age after which an attempt's response excerpt is cleared (`30d`, `12h` …).
    #[arg(long, env = "EXCERPT_RETENTION", default_value = "30d", value_parser = parse_positive_duration)]
    pub excerpt_retention: Duration,

    /// Age after which settled deliveries (with their attempts), forwarding
    /// decisions and status history are removed.
    #[arg(long, env = "DELIVERY_RETENTION", default_value = "90d", value_parser = parse_positive_duration)]
    pub delivery_retention: Duration,

    /// Most rows one retention statement touches.
    #[arg(long, env = "RETENTION_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub retention_batch: i64,
}

impl Args {
    pub fn poll_settings(&self) -> PollSettings {
        PollSettings {
            interval: self.poll_interval,
            batch: self.poll_batch,
            // Both bounded by their parsers, so these always fit.
            lookup_chunk: usize::try_from(self.lookup_chunk).unwrap_or(1),
            concurrency: usize::try_from(self.poll_concurrency).unwrap_or(1),
        }
    }
}

impl Args {
    pub fn retention_settings(&self) -> RetentionSettings {
        RetentionSettings {
            interval: (!self.retention_interval.is_zero()).then_some(self.retention_interval),
            excerpts: self.excerpt_retention,
            deliveries: self.delivery_retention,
            batch: self.retention_batch,
        }
    }
}

/// A duration that is not zero (a zero interval would spin, a zero timeout fail everything).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::crypto::SecretBox;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let key = SecretBox::generate_spec("k1");
        let mut argv = vec!["status-poller", "--encryption-keys", key.as_str()];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn defaults_and_overrides() {
        let a = parse(&[]).unwrap();
        let s = a.poll_settings();
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.batch, 500);
        assert_eq!(s.lookup_chunk, 200);
        assert_eq!(a.request_timeout, Duration::from_secs(10));
        let a = parse(&["--poll-interval", "150ms", "--lookup-chunk", "500"]).unwrap();
        assert_eq!(a.poll_interval, Duration::from_millis(150));
        assert_eq!(a.poll_settings().lookup_chunk, 500);
        let r = parse(&[]).unwrap().retention_settings();
        assert_eq!(r.interval, Some(Duration::from_secs(600)));
        assert_eq!(r.excerpts, Duration::from_secs(30 * 86_400));
        assert_eq!(r.deliveries, Duration::from_secs(90 * 86_400));
        assert_eq!(r.batch, 1000);
        let off = parse(&["--retention-interval", "0s"]).unwrap();
        assert_eq!(off.retention_settings().interval, None);
    }

    #[test]
    fn refuses_bad_values() {
        let cases: &[&[&str]] = &[
            &["--poll-interval", "0s"],
            &["--poll-interval", "30"],
            &["--request-timeout", "soon"],
            &["--poll-batch", "0"],
            &["--lookup-chunk", "501"],
            &["--lookup-chunk", "0"],
            &["--poll-concurrency", "0"],
            &["--excerpt-retention", "0d"],
            &["--delivery-retention", "90"],
            &["--retention-batch", "0"],
            &["--encryption-keys", "nope"],
        ];
        for c in cases {
            assert!(parse(c).is_err(), "{c:?} should be refused");
        }
    }
}
