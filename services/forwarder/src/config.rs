//! The forwarder's settings, all from the environment (clap documents each in
//! `--help`); a bad value stops the service at start-up with a clear message.

use std::time::Duration;

use clap::Parser;
use salesync_core::config::{CommonArgs, OpsArgs, parse_duration, parse_duration_list};
use salesync_core::crypto::EncryptionArgs;

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

    /// Messages taken from the queue at once; also the most requests in flight.
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
    #[arg(long, env = "RETRY_DELAYS", default_value = "1s,5s,30s,2m,10m,30m,1h",
          value_parser = parse_retry_delays)]
    pub retry_delays: RetryDelays,

    /// Attempts per delivery (the first included) before it is dead-lettered.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
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
        ];
        for (name, extra) in cases {
            assert!(parse(extra).is_err(), "case {name} should be refused");
        }
        assert!(Args::try_parse_from(["forwarder", "--encryption-keys", "nope"]).is_err());
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
    }
}
