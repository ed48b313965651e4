//! Command line and environment. `ingest` (or `ingest serve`) runs the
//! service; `ingest admin create-tenant` provisions a tenant from a shell,
//! through the same code as `POST /admin/tenants`. Every tunable is an
//! environment variable with a default; a bad value stops start-up with a
//! message naming it.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use salesync_core::config::CommonArgs;
use salesync_core::crypto::EncryptionArgs;

/// Shortest accepted `ADMIN_TOKEN`: anything shorter is guessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

#[derive(Parser, Debug)]
#[command(
    name = "ingest",
    version,
    about = "salesync ingest: the HTTP API and the status consumer",
    // Admin commands need no encryption key; `serve` checks for it itself.
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub common: CommonArgs,

    /// Needed to serve (secrets at rest); not needed by admin commands.
    #[command(flatten)]
    pub encryption: Option<EncryptionArgs>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Serve the HTTP API and consume status updates (the default).
    Serve,
    /// Operator commands.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand, Debug, Clone)]
pub enum AdminCommand {
    /// Create a tenant and its first API token; prints
    /// `{"tenant_id","name","token","token_id"}` (the token is shown once).
    CreateTenant {
        #[arg(long)]
        name: String,
        /// Name of the first token.
        #[arg(long)]
        token_name: Option<String>,
        /// Limit the token to the routes another salesync needs.
        #[arg(long)]
        integration_only: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the API, which also serves /healthz, /readyz and /metrics.
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8080")]
    pub api_listen: SocketAddr,

    /// Operator token for /admin routes; admin routes answer 404 when unset.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = parse_admin_token)]
    pub admin_token: Option<String>,

    /// Largest accepted request body in bytes (larger: 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub max_body_bytes: u64,

    /// Outbox rows published per relay pass.
    #[arg(long, env = "OUTBOX_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub outbox_batch: i64,

    /// Unacked status updates held at once (also the largest batch per transaction).
    #[arg(long, env = "STATUS_PREFETCH", default_value_t = 200,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub status_prefetch: u16,
}

fn parse_admin_token(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.chars().count() < MIN_ADMIN_TOKEN_CHARS {
        return Err(format!(
            "must be at least {MIN_ADMIN_TOKEN_CHARS} characters (unset it to disable admin routes)"
        ));
    }
    Ok(s.to_string())
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
    fn parses_admin_and_serve() {
        let cli = Cli::try_parse_from([
            "ingest",
            "admin",
            "create-tenant",
            "--name",
            "Shop",
            "--integration-only",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Admin(AdminCommand::CreateTenant { ref name, integration_only: true, .. })) if name == "Shop"
        ));
        assert!(cli.encryption.is_none());
        let keys = salesync_core::crypto::SecretBox::generate_spec("k1");
        let cli = Cli::try_parse_from([
            "ingest",
            "--api-listen",
            "0.0.0.0:9000",
            "--encryption-keys",
            &keys,
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert!(cli.encryption.is_some());
        assert_eq!(cli.serve.api_listen.port(), 9000);
        assert_eq!(cli.serve.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(cli.serve.outbox_batch, 500);
        assert_eq!(cli.serve.status_prefetch, 200);
        if std::env::var_os("SALESYNC_ENCRYPTION_KEYS").is_none() {
            assert!(
                Cli::try_parse_from(["ingest"]).is_err(),
                "serving needs a key"
            );
        }
    }

    #[test]
    fn rejects_bad_values() {
        for args in [
            &["ingest", "--admin-token", "short"][..],
            &["ingest", "--max-body-bytes", "10"],
            &["ingest", "--outbox-batch", "0"],
            &["ingest", "--status-prefetch", "0"],
            &["ingest", "--api-listen", "nowhere"],
            &["ingest", "--encryption-keys", "k1:nope"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
