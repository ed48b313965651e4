//! Settings every service reads from its environment (twelve-factor), as clap
//! argument groups so `--help` documents each variable and a bad value stops the
//! service at start-up with a clear message.

use std::net::SocketAddr;
use std::time::Duration;

/// Connection settings shared by all services.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/salesync"
    )]
    pub database_url: String,

    /// Maximum PostgreSQL connections in this process's pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,

    /// RabbitMQ URL (the vhost is URL-encoded: `%2f` is `/`).
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// OTLP/HTTP collector base URL; traces are exported only when set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Log format: `text` for people, `json` for log pipelines. Verbosity comes from RUST_LOG.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Seconds to finish in-flight work after SIGTERM/SIGINT before exiting.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// How long a client of this service's HTTP servers may take to send a
    /// request's headers, and how long a keep-alive connection may sit idle
    /// between requests, before the connection is closed (`250ms`, `30s`, …).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "30s",
          value_parser = parse_positive_duration)]
    pub http_idle_timeout: Duration,
}

impl CommonArgs {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// The listen address of a service's ops endpoints (`/healthz`, `/readyz`, `/metrics`).
#[derive(clap::Args, Debug, Clone)]
pub struct OpsArgs {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "OPS_LISTEN", default_value = "127.0.0.1:9090")]
    pub ops_listen: SocketAddr,
}

/// A duration as [`parse_duration`] reads it, longer than zero.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("'{s}' must be longer than zero")),
        d => Ok(d),
    }
}

/// Parses a duration written as `250ms`, `5s`, `2m`, `1h` or `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("'{s}' needs a unit: ms, s, m, h or d"))?;
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "d" => n
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("'{s}' is too long")),
        _ => Err(format!(
            "'{s}': unknown unit '{unit}', use ms, s, m, h or d"
        )),
    }
}

/// Parses a duration of at most `max`; `why` completes the refusal, e.g.
/// "so a revoked token stops working soon".
pub fn parse_duration_at_most(s: &str, max: Duration, why: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > max {
        return Err(format!("'{}': must be at most {max:?}, {why}", s.trim()));
    }
    Ok(d)
}

/// Parses a comma-separated list of durations, e.g. `1s,5s,30s,2m`.
pub fn parse_duration_list(s: &str) -> Result<Vec<Duration>, String> {
    let list = s
        .split(',')
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() || list.iter().any(Duration::is_zero) {
        return Err("give at least one non-zero duration".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 weeks").is_err());
        let max = Duration::from_secs(1);
        assert_eq!(parse_duration_at_most("1s", max, "x"), Ok(max));
        let err = parse_duration_at_most("2s", max, "because").unwrap_err();
        assert!(err.contains("at most 1s, because"), "{err}");
        assert!(parse_duration_at_most("nope", max, "x").is_err());
        assert_eq!(
            parse_duration_list("1s,2s").unwrap(),
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert!(parse_duration_list("0s").is_err());
        assert_eq!(parse_positive_duration("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_positive_duration("0ms").is_err());
    }
}
