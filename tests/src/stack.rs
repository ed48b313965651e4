//! `Stack`: one complete, private salesync for one test — its own database,
//! its own vhost (or a given broker, e.g. a `PrivateRabbit`), the five
//! services running and ready, and an API client. Dropping it kills the
//! processes, then drops the database and the vhost.

use std::time::Duration;

use salesync_core::amqp::topology::{Q_FORWARD, Q_SALE_EVENTS, Q_STATUS};
use salesync_core::domain::ids::TenantId;

use crate::api::{Api, CreatedIntegration, IntegrationInput};
use crate::broker::Broker;
use crate::db::TestDb;
use crate::services::{Replicas, ServiceKind, Services, ServicesConfig};
use crate::target::TestTarget;
use crate::vhost::TestVhost;
use crate::wait::wait_until;

#[derive(Clone, Debug, Default)]
pub struct StackOptions {
    pub replicas: Replicas,
    /// Environment overrides per service.
    pub env: Vec<(ServiceKind, String, String)>,
    /// Use this broker instead of a fresh vhost on the shared one.
    pub amqp_url: Option<String>,
    /// Create the database on this server (e.g. a `PrivatePostgres`)
    /// instead of the one of `DATABASE_URL`.
    pub database_server: Option<String>,
    /// console gets its own address as `PUBLIC_URL` (providers call back).
    pub public_console: bool,
}

impl StackOptions {
    #[must_use]
    pub fn env(mut self, kind: ServiceKind, key: &str, value: &str) -> Self {
        self.env.push((kind, key.into(), value.into()));
        self
    }

    #[must_use]
    pub fn replicas(mut self, replicas: Replicas) -> Self {
        self.replicas = replicas;
        self
    }

    #[must_use]
    pub fn amqp_url(mut self, url: &str) -> Self {
        self.amqp_url = Some(url.into());
        self
    }

    #[must_use]
    pub fn public_console(mut self) -> Self {
        self.public_console = true;
        self
    }

    #[must_use]
    pub fn database_server(mut self, url: &str) -> Self {
        self.database_server = Some(url.into());
        self
    }
}

/// A tenant created through the admin API, with a client using its token.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub token: String,
    pub api: Api,
}

impl Tenant {
    /// Creates `input` (its URL pointing at `target`) and gives `target` the
    /// signing secret, so it verifies every request it receives.
    pub async fn integrate(
        &self,
        target: &TestTarget,
        input: &IntegrationInput,
    ) -> anyhow::Result<CreatedIntegration> {
        let created = self.api.create_integration(input).await?;
        target.set_secret(&created.signing_secret);
        Ok(created)
    }

    /// A webhook integration `name` taking every sale, to `target`'s `/hook`.
    pub async fn webhook_to(
        &self,
        target: &TestTarget,
        name: &str,
    ) -> anyhow::Result<CreatedIntegration> {
        self.integrate(
            target,
            &IntegrationInput::webhook(name, &target.url("/hook")),
        )
        .await
    }
}

// Field order is drop order: processes die before their database and vhost go.
pub struct Stack {
    pub services: Services,
    /// Client without a token (use `Tenant::api` for tenant calls).
    pub api: Api,
    pub db: TestDb,
    pub vhost: Option<TestVhost>,
    amqp_url: String,
}

impl Stack {
    /// Creates the database and vhost, starts the services, waits until ready.
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let db = match &options.database_server {
            Some(server) => TestDb::create_on(server).await?,
            None => TestDb::create().await?,
        };
        let (vhost, amqp_url) = match &options.amqp_url {
            Some(url) => (None, url.clone()),
            None => {
                let v = TestVhost::create().await?;
                let url = v.amqp_url().to_string();
                (Some(v), url)
            }
        };
        let mut config =
            ServicesConfig::new(db.url(), &amqp_url).replicas(options.replicas.clone());
        for (kind, key, value) in &options.env {
            config = config.env(*kind, key, value);
        }
        config.public_console = options.public_console;
        let mut services = Services::start(config).await?;
        services.try_wait_ready().await?;
        let api = Api::split(&services.ingest_url(), &services.console_url());
        Ok(Self {
            services,
            api,
            db,
            vhost,
            amqp_url,
        })
    }

    pub fn amqp_url(&self) -> &str {
        &self.amqp_url
    }

    pub fn admin_token(&self) -> &str {
        self.services.admin_token()
    }

    /// ingest's base URL (what a salesync integration targets).
    pub fn ingest_url(&self) -> String {
        self.services.ingest_url()
    }

    /// console's base URL (the management API).
    pub fn console_url(&self) -> String {
        self.services.console_url()
    }

    /// A new tenant with a full-access token.
    pub async fn tenant(&self, name: &str) -> anyhow::Result<Tenant> {
        let created = self.api.create_tenant(self.admin_token(), name).await?;
        Ok(Tenant {
            id: created.tenant_id,
            name: created.name,
            api: self.api.with_token(&created.token),
            token: created.token,
        })
    }

    /// A new integration-only token of `tenant` (what another salesync uses).
    pub async fn integration_token(&self, tenant: &Tenant) -> anyhow::Result<String> {
        let t = self
            .api
            .create_token(self.admin_token(), tenant.id, "integration", true)
            .await?;
        Ok(t.token)
    }

    /// An AMQP connection to this stack's broker.
    pub async fn broker(&self) -> anyhow::Result<Broker> {
        Broker::connect(&self.amqp_url).await
    }

    /// Counters that move while anything is still in flight.
    async fn progress(&self) -> anyhow::Result<(i64, Vec<i64>)> {
        let open: i64 = self
            .db
            .scalar(
                "SELECT (SELECT count(*) FROM outbox)
                      + (SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retrying'))",
            )
            .await?;
        let moving = vec![
            self.db.scalar("SELECT count(*) FROM sales").await?,
            self.db
                .scalar("SELECT count(*) FROM sale_decisions")
                .await?,
            self.db.scalar("SELECT count(*) FROM deliveries").await?,
            self.db
                .scalar("SELECT count(*) FROM delivery_attempts")
                .await?,
            self.db
                .scalar("SELECT count(*) FROM sale_status_history")
                .await?,
        ];
        Ok((open, moving))
    }

    /// Waits until `target` has accepted `n` distinct sales and the stack
    /// has gone quiet after them; on timeout the error carries the
    /// forwarder's log tail (the usual place to see why).
    pub async fn await_arrivals(
        &self,
        target: &TestTarget,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let arrived = wait_until(timeout, Duration::from_millis(200), || async {
            target.accepted_keys().len() >= n
        })
        .await;
        if let Err(e) = arrived {
            anyhow::bail!(
                "{} of {n} arrived ({e})\nforwarder:\n{}",
                target.accepted_keys().len(),
                self.services.log_tail(ServiceKind::Forwarder, 30)
            );
        }
        self.wait_quiet(Duration::from_secs(60)).await
    }

    /// Waits until nothing is in flight: outbox empty, no delivery pending or
    /// retrying, work queues empty, and the database unchanged across three
    /// looks `poll` apart (a message held unacked by a consumer shows in
    /// none of the first three, but its effects do in the last).
    pub async fn wait_quiet(&self, timeout: Duration) -> anyhow::Result<()> {
        let broker = self.broker().await?;
        let poll = Duration::from_millis(300);
        let started = std::time::Instant::now();
        let mut last: Option<Vec<i64>> = None;
        let mut stable = 0u32;
        let result = loop {
            if let Ok((open, moving)) = self.progress().await {
                let mut queued = 0u32;
                for q in [Q_SALE_EVENTS, Q_FORWARD, Q_STATUS] {
                    queued += broker.queue_depth(q).await.unwrap_or(u32::MAX / 4);
                }
                let quiet = open == 0 && queued == 0 && last.as_ref() == Some(&moving);
                stable = if quiet { stable + 1 } else { 0 };
                last = Some(moving);
            }
            if stable >= 3 {
                break Ok(());
            }
            if started.elapsed() >= timeout {
                break Err(anyhow::anyhow!(
                    "stack did not go quiet within {timeout:?} (last counts {last:?})"
                ));
            }
            tokio::time::sleep(poll).await;
        };
        broker.close().await;
        result
    }
}
