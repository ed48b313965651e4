//! Command line and environment. `ingest` (or `ingest serve`) runs the data
//! plane: the sales API, the status consumer and the outbox relay. Every
//! tunable is an environment variable with a default; a bad value stops
//! start-up with a message naming it. (The operator's commands are
//! `console`'s.)

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use salesync_core::api::config::ApiArgs;
use salesync_core::config::{CommonArgs, parse_duration_at_most};

#[derive(Parser, Debug)]
#[command(
    name = "ingest",
    version,
    about = "salesync ingest: the data plane (sales in, statuses carried back)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Serve the sales API and consume status updates (the default).
    Serve,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the API, which also serves /healthz, /readyz and /metrics.
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8080")]
    pub api_listen: SocketAddr,

    #[command(flatten)]
    pub api: ApiArgs,

    /// Outbox rows published per relay pass.
    #[arg(long, env = "OUTBOX_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub outbox_batch: i64,

    /// Unacked status updates held at once (also the largest batch per transaction).
    #[arg(long, env = "STATUS_PREFETCH", default_value_t = 200,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub status_prefetch: u16,

    /// Most single-sale requests (`POST /v1/sales`) stored in one transaction
    /// by the group commit; also how many may wait for it.
    #[arg(long, env = "GROUP_COMMIT_MAX", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub group_commit_max: u32,

    /// Shortest time between the starts of two group commits. A sale that
    /// arrives after a quiet spell is committed at once; under load the
    /// sales of this interval share one transaction, and everything
    /// downstream (outbox relay, broker, condition-filter, forwarder) works
    /// in correspondingly larger batches. `0s`: commit whenever the last
    /// commit is done. At most 1s.
    #[arg(long, env = "GROUP_COMMIT_INTERVAL", default_value = "10ms",
          value_parser = parse_group_commit_interval)]
    pub group_commit_interval: Duration,
}

/// Longest accepted `GROUP_COMMIT_INTERVAL`: each sale may wait this long.
pub const MAX_GROUP_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

fn parse_group_commit_interval(s: &str) -> Result<Duration, String> {
    parse_duration_at_most(
        s,
        MAX_GROUP_COMMIT_INTERVAL,
        "as every single-sale request may wait this long",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_serve_settings() {
        let cli = Cli::try_parse_from(["ingest", "--api-listen", "0.0.0.0:9000"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.api_listen.port(), 9000);
        assert_eq!(cli.serve.api.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(cli.serve.api.body_read_timeout, Duration::from_secs(60));
        assert_eq!(cli.serve.outbox_batch, 500);
        assert_eq!(cli.serve.status_prefetch, 200);
        assert_eq!(cli.serve.api.rate_limit_per_sec, 2000);
        assert_eq!(cli.serve.api.rate_limit_burst, 4000);
        assert_eq!(cli.serve.group_commit_max, 500);
        assert_eq!(cli.serve.group_commit_interval, Duration::from_millis(10));
        assert_eq!(cli.serve.api.auth_cache_ttl, Duration::from_secs(30));
        assert_eq!(cli.serve.api.auth_cache_max, 10_000);
        assert!(matches!(
            Cli::try_parse_from(["ingest", "serve"]).map(|c| c.command),
            Ok(Some(Command::Serve))
        ));
    }

    #[test]
    fn rejects_bad_values() {
        for args in [
            &["ingest", "--max-body-bytes", "10"][..],
            &["ingest", "--outbox-batch", "0"],
            &["ingest", "--status-prefetch", "0"],
            &["ingest", "--rate-limit-per-sec", "0"],
            &["ingest", "--rate-limit-burst", "0"],
            &["ingest", "--rate-limit-burst", "-5"],
            &["ingest", "--group-commit-max", "0"],
            &["ingest", "--group-commit-max", "10001"],
            &["ingest", "--group-commit-interval", "2s"],
            &["ingest", "--auth-cache-ttl", "30"],
            &["ingest", "--auth-cache-ttl", "6m"],
            &["ingest", "--auth-cache-max", "0"],
            &["ingest", "--body-read-timeout", "0s"],
            &["ingest", "--body-read-timeout", "soon"],
            &["ingest", "--api-listen", "nowhere"],
            &["ingest", "admin", "create-tenant", "--name", "x"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
