//! Command line and environment. `console` (or `console serve`) runs the
//! service; `console admin create-tenant` provisions a tenant from a shell,
//! through the same code as `POST /admin/tenants`; `console dlq …` works on
//! dead letters through the same code as `/v1/dead-letters`; `console
//! rotate-secrets` re-encrypts secrets at rest; `console
//! topology-definitions` prints the RabbitMQ definitions. Every tunable is an
//! environment variable with a default; a bad value stops start-up with a
//! message naming it.

use std::net::SocketAddr;

use std::time::Duration;

use clap::{Parser, Subcommand};
use salesync_core::api::config::ApiArgs;
use salesync_core::config::{CommonArgs, parse_positive_duration};
use salesync_core::crypto::EncryptionArgs;
use salesync_core::domain::{DeliveryId, TenantId};
use salesync_core::egress::EgressArgs;

/// Shortest accepted `ADMIN_TOKEN`: anything shorter is guessable.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

#[derive(Parser, Debug)]
#[command(
    name = "console",
    version,
    about = "salesync console: the control plane (tenants, integrations, dead letters, the operator)",
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

    #[command(flatten)]
    pub egress: EgressArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Serve the control plane's HTTP API (the default).
    Serve,
    /// Operator commands.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Dead letters (dead deliveries) in the database: list, show, replay,
    /// discard. Prints JSON. Replays are published by a running service's
    /// outbox relay.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Re-encrypt every stored secret with the first key of
    /// SALESYNC_ENCRYPTION_KEYS (key rotation; see the README). Prints a
    /// JSON report; fails if any secret could not be decrypted.
    RotateSecrets,
    /// Print the RabbitMQ definitions (exchange, queues with their
    /// arguments, delay queues, bindings) the services declare, as JSON for
    /// `load_definitions` / `rabbitmqctl import_definitions`. Needs neither
    /// database nor broker. deploy/rabbitmq/definitions.json is this with
    /// the defaults.
    TopologyDefinitions {
        /// The forwarder's RETRY_DELAYS (one delay queue each).
        #[arg(long, default_value = salesync_core::amqp::topology::DEFAULT_RETRY_DELAYS)]
        retry_delays: String,
        /// The vhost the services' AMQP_URL names.
        #[arg(long, default_value = salesync_core::amqp::definitions::DEFAULT_VHOST)]
        vhost: String,
    },
}

/// `--tenant`: limit a dead-letter command to one tenant (default: all).
#[derive(clap::Args, Debug, Clone)]
pub struct TenantScope {
    /// Only this tenant's dead letters.
    #[arg(long)]
    pub tenant: Option<TenantId>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum DlqCommand {
    /// Dead letters, newest first (discarded ones only with --include-discarded).
    List {
        #[command(flatten)]
        scope: TenantScope,
        /// Only this integration's.
        #[arg(long)]
        integration: Option<String>,
        /// Died at or after (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Died before (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Page size (1..=500, default 50).
        #[arg(long)]
        limit: Option<String>,
        /// `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Also list discarded dead letters.
        #[arg(long)]
        include_discarded: bool,
        /// Only those whose reason contains this text (case-insensitive).
        #[arg(long)]
        reason: Option<String>,
    },
    /// One dead letter with its attempt log and the actions taken on it.
    Show {
        /// The dead letter (delivery id).
        id: DeliveryId,
        #[command(flatten)]
        scope: TenantScope,
    },
    /// Replay one dead letter (by id), or those that match
    /// --integration / --from / --to (discarded ones are skipped; at most
    /// --limit, default and most 1000, per run: `remaining` says how many are left).
    Replay {
        #[arg(
            conflicts_with_all = ["integration", "from", "to"],
            required_unless_present_any = ["integration", "from", "to"]
        )]
        /// The dead letter (delivery id) to replay.
        id: Option<DeliveryId>,
        #[command(flatten)]
        scope: TenantScope,
        /// Replay every dead letter of this integration.
        #[arg(long)]
        integration: Option<String>,
        /// Replay those that died at or after (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Replay those that died before (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// `current` (default): where the integration points now;
        /// `recorded`: the URL stored with the delivery.
        #[arg(long)]
        target: Option<String>,
        /// Bulk only: count and sample what would be replayed; change nothing.
        #[arg(long, conflicts_with = "id")]
        dry_run: bool,
        /// Bulk only: replay at most this many (1..=1000).
        #[arg(long, conflicts_with = "id")]
        limit: Option<i64>,
    },
    /// Discard a dead letter: it stays dead, recorded with the reason, and is
    /// hidden from the default list.
    Discard {
        /// The dead letter (delivery id) to discard.
        id: DeliveryId,
        /// Why (required; recorded with the discard).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        scope: TenantScope,
    },
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
    /// Create an operator account for the web console; prints
    /// `{"id","name","token","tenants"}` (the token is shown once).
    CreateOperator {
        #[arg(long)]
        name: String,
        /// A tenant the operator may see (repeat for several); none: every
        /// tenant.
        #[arg(long = "tenant")]
        tenants: Vec<TenantId>,
    },
    /// Revoke an operator account: its token and sessions stop working.
    RevokeOperator {
        #[arg(long)]
        name: String,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the API, which also serves /healthz, /readyz and /metrics.
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8081")]
    pub api_listen: SocketAddr,

    /// Operator token for /admin routes; admin routes answer 404 when unset.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = parse_admin_token)]
    pub admin_token: Option<String>,

    #[command(flatten)]
    pub api: ApiArgs,

    /// Outbox rows published per relay pass.
    #[arg(long, env = "OUTBOX_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub outbox_batch: i64,

    /// An integration whose target has failed every request for this long
    /// (no success since its first failure) is paused, and its tenant told
    /// through its webhook; its deliveries are held until it is resumed.
    #[arg(long, env = "AUTO_PAUSE_AFTER", default_value = "24h",
          value_parser = parse_positive_duration)]
    pub auto_pause_after: Duration,

    /// How often the pause pass runs (one replica at a time): auto-pauses
    /// what is due and releases held deliveries a resume left behind.
    #[arg(long, env = "PAUSE_CHECK_INTERVAL", default_value = "30s",
          value_parser = parse_positive_duration)]
    pub pause_check_interval: Duration,

    /// This console's address as providers reach it: imports subscribe to
    /// the provider's catalogue callbacks at
    /// `{PUBLIC_URL}/v1/callbacks/catalogue/{integration}`. Unset: no
    /// callbacks, the reconciliation alone keeps imported catalogues in step.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Every imported catalogue is compared with its provider's at least
    /// this often: repairs a lost change callback.
    #[arg(long, env = "CATALOGUE_RECONCILE_INTERVAL", default_value = "15m",
          value_parser = parse_positive_duration)]
    pub catalogue_reconcile_interval: Duration,

    /// How often the sync worker looks for work (callbacks received,
    /// reconciliations due); also the least time between two calls to one
    /// provider for one integration.
    #[arg(long, env = "CATALOGUE_SYNC_POLL", default_value = "2s",
          value_parser = parse_positive_duration)]
    pub catalogue_sync_poll: Duration,

    /// RabbitMQ's management API, for the web console's queue overview
    /// (credentials in the URL; guest/guest when none). The vhost is
    /// `AMQP_URL`'s.
    #[arg(
        long,
        env = "RABBITMQ_MANAGEMENT_URL",
        default_value = "http://127.0.0.1:15672"
    )]
    pub rabbitmq_management_url: String,

    /// The services the overview shows, `name=url` comma-separated, each URL
    /// where that replica serves `/readyz` (list a service once per replica),
    /// e.g. `ingest=http://ingest:8080,forwarder=http://fwd-1:9090`.
    #[arg(long, env = "SERVICE_URLS", default_value = "", value_parser = parse_service_urls)]
    pub service_urls: ServiceUrls,

    /// A trace viewer's page for one trace, `{trace_id}` replaced; the sale
    /// timeline links its trace there (e.g.
    /// `http://127.0.0.1:6006/tracing?traceId={trace_id}`). Unset: the id only.
    #[arg(long, env = "TRACE_URL")]
    pub trace_url: Option<String>,
}

/// `SERVICE_URLS`, parsed.
#[derive(Debug, Clone, Default)]
pub struct ServiceUrls(pub Vec<(String, String)>);

fn parse_service_urls(s: &str) -> Result<ServiceUrls, String> {
    crate::web::settings::parse_service_urls(s).map(ServiceUrls)
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
            "console",
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
            "console",
            "--api-listen",
            "0.0.0.0:9000",
            "--encryption-keys",
            &keys,
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert!(cli.encryption.is_some());
        assert_eq!(cli.serve.api_listen.port(), 9000);
        assert_eq!(cli.serve.api.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(cli.serve.api.body_read_timeout, Duration::from_secs(60));
        assert_eq!(cli.serve.outbox_batch, 500);
        assert_eq!(cli.serve.api.rate_limit_per_sec, 2000);
        assert_eq!(cli.serve.api.rate_limit_burst, 4000);
        assert_eq!(cli.serve.api.auth_cache_ttl, Duration::from_secs(30));
        assert_eq!(cli.serve.api.auth_cache_max, 10_000);
        assert_eq!(cli.serve.auto_pause_after, Duration::from_secs(86_400));
        assert_eq!(cli.serve.pause_check_interval, Duration::from_secs(30));
        if std::env::var_os("SALESYNC_ENCRYPTION_KEYS").is_none() {
            assert!(
                Cli::try_parse_from(["console"]).is_err(),
                "serving needs a key"
            );
        }
    }

    #[test]
    fn parses_dead_letter_commands() {
        let id = DeliveryId::new();
        let tenant = TenantId::new();
        let parse = |args: &[&str]| {
            let mut argv = vec!["console", "dlq"];
            argv.extend_from_slice(args);
            match Cli::try_parse_from(argv) {
                Ok(Cli {
                    command: Some(Command::Dlq(c)),
                    ..
                }) => Some(c),
                _ => None,
            }
        };
        let id_s = id.to_string();
        let t_s = tenant.to_string();
        assert!(matches!(
            parse(&["replay", &id_s, "--tenant", &t_s]),
            Some(DlqCommand::Replay { id: Some(i), scope: TenantScope { tenant: Some(t) }, .. })
                if i == id && t == tenant
        ));
        assert!(matches!(
            parse(&[
                "replay",
                "--integration",
                "abc",
                "--from",
                "2025-01-01T00:00:00Z"
            ]),
            Some(DlqCommand::Replay {
                id: None,
                integration: Some(_),
                from: Some(_),
                ..
            })
        ));
        assert!(
            parse(&["replay", &id_s, "--integration", "abc"]).is_none(),
            "one or the other"
        );
        assert!(matches!(
            parse(&["replay", "--to", "x", "--dry-run", "--limit", "5", "--target", "recorded"]),
            Some(DlqCommand::Replay { dry_run: true, limit: Some(5), target: Some(t), .. })
                if t == "recorded"
        ));
        assert!(
            parse(&["replay", &id_s, "--dry-run"]).is_none(),
            "a dry run is for bulk replays"
        );
        assert!(matches!(
            parse(&["discard", &id_s, "--reason", "test order"]),
            Some(DlqCommand::Discard { reason, .. }) if reason == "test order"
        ));
        assert!(matches!(
            parse(&["list", "--include-discarded", "--limit", "5"]),
            Some(DlqCommand::List {
                include_discarded: true,
                scope: TenantScope { tenant: None },
                ..
            })
        ));
        assert!(matches!(
            Cli::try_parse_from(["console", "rotate-secrets"]).map(|c| c.command),
            Ok(Some(Command::RotateSecrets))
        ));
    }

    #[test]
    fn rejects_bad_values() {
        for args in [
            &["console", "--admin-token", "short"][..],
            &["console", "--max-body-bytes", "10"],
            &["console", "--outbox-batch", "0"],
            &["console", "--rate-limit-per-sec", "0"],
            &["console", "--rate-limit-burst", "0"],
            &["console", "--rate-limit-burst", "-5"],
            &["console", "--auth-cache-ttl", "30"],
            &["console", "--auth-cache-ttl", "6m"],
            &["console", "--auth-cache-max", "0"],
            &["console", "--body-read-timeout", "0s"],
            &["console", "--auto-pause-after", "0s"],
            &["console", "--pause-check-interval", "often"],
            &["console", "--body-read-timeout", "soon"],
            &["console", "dlq", "replay"],
            &["console", "dlq", "replay", "not-a-uuid"],
            &[
                "console",
                "dlq",
                "discard",
                "01890000-0000-7000-8000-000000000000",
            ],
            &["console", "dlq", "show", "x"],
            &["console", "dlq", "list", "--tenant", "nope"],
            &["console", "--api-listen", "nowhere"],
            &["console", "--encryption-keys", "k1:nope"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
