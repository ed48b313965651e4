//! Everything one campaign runs on, started in order and torn down in
//! reverse: a private PostgreSQL cluster and RabbitMQ node or cluster (so
//! they can be restarted and killed without touching the machine's shared
//! ones), the
//! five services on them, the POS tenant with one integration per route,
//! tenant B as the partner salesync, and the webhook targets.

use std::collections::BTreeMap;
use std::time::Duration;

use salesync_core::domain::ids::IntegrationId;

use super::routing::Route;
use crate::api::Api;
use crate::pg::PrivatePostgres;
use crate::rabbit_cluster::{self, RabbitCluster};
use crate::services::{Replicas, ServiceKind};
use crate::stack::{Stack, StackOptions, Tenant};
use crate::target::{Behaviour, TestTarget};

/// Settings that shape the world (not the schedule).
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Processes per service.
    pub replicas: usize,
    /// RabbitMQ nodes (more than one: clustered, every service given all).
    pub broker_nodes: usize,
    /// How long the slow target takes per request.
    pub slow_delay: Duration,
    /// The forwarder's total request timeout (a hang lasts past it).
    pub request_timeout: Duration,
    /// The forwarder's retry tiers and attempts: together they must outlast
    /// the longest misbehaviour window, or sales end dead instead of delivered.
    pub retry_delays: String,
    pub max_attempts: u32,
}

// Field order is drop order: the processes go first, then the broker, then
// the database cluster.
pub struct World {
    pub stack: Stack,
    /// Webhook targets by route (the partner is tenant B's ingest).
    pub targets: BTreeMap<Route, TestTarget>,
    pub integrations: BTreeMap<IntegrationId, Route>,
    pub pos: Tenant,
    pub partner: Tenant,
    /// The POS tenant's client on each ingest replica.
    pub pos_apis: Vec<Api>,
    pub rabbit: RabbitCluster,
    pub pg: PrivatePostgres,
}

impl World {
    pub async fn start(cfg: &WorldConfig, say: &(dyn Fn(String) + Sync)) -> anyhow::Result<Self> {
        let pg = PrivatePostgres::start().await?;
        say(format!(
            "private PostgreSQL on 127.0.0.1:{} (log {})",
            pg.port(),
            pg.log_path().display()
        ));
        let rabbit = RabbitCluster::start(cfg.broker_nodes).await?;
        for node in rabbit.nodes() {
            say(format!(
                "private RabbitMQ node {} on 127.0.0.1:{}",
                node.node(),
                node.port()
            ));
        }
        let n = cfg.replicas.max(1);
        let replicas = ServiceKind::ALL
            .iter()
            .fold(Replicas::one_each(), |r, k| r.with(*k, n));
        let timeout = format!("{}ms", cfg.request_timeout.as_millis());
        let mut options = StackOptions::default();
        // Each service lists the nodes from another one on, so whichever
        // node is lost, some services lose their connections with it.
        for (i, kind) in ServiceKind::ALL.iter().enumerate() {
            options = options.env(*kind, "AMQP_URL", &rabbit.amqp_url_from(i));
        }
        let mut stack = Stack::start(
            options
                .replicas(replicas)
                .amqp_url(&rabbit.amqp_url())
                .database_server(&pg.url())
                .env(ServiceKind::Forwarder, "REQUEST_TIMEOUT", &timeout)
                .env(ServiceKind::Forwarder, "CONNECT_TIMEOUT", "1s")
                .env(ServiceKind::Forwarder, "RETRY_DELAYS", &cfg.retry_delays)
                .env(
                    ServiceKind::Forwarder,
                    "MAX_ATTEMPTS",
                    &cfg.max_attempts.to_string(),
                )
                .env(ServiceKind::Forwarder, "PREFETCH", "50")
                .env(ServiceKind::StatusPoller, "POLL_INTERVAL", "2s"),
        )
        .await?;
        // The whole cluster is removed at the end; dropping one database on
        // it first would only wait for a server that may be down.
        stack.db.forget();
        if rabbit.len() > 1 {
            say(replicated(&rabbit).await?);
        }
        say(format!(
            "{n} process(es) per service; logs in {}",
            stack.services.logs_dir().display()
        ));

        let pos = stack.tenant("chaos pos").await?;
        let partner = stack.tenant("chaos partner").await?;
        let partner_token = stack.integration_token(&partner).await?;
        let mut targets = BTreeMap::new();
        let mut integrations = BTreeMap::new();
        for route in Route::ALL {
            if route == Route::Partner {
                let created = pos
                    .api
                    .create_integration(&Route::partner_integration(
                        &stack.ingest_url(),
                        &partner_token,
                    ))
                    .await?;
                integrations.insert(created.id, route);
                continue;
            }
            let behaviour = match route {
                Route::Slow => Behaviour::Stall(cfg.slow_delay),
                _ => Behaviour::Ok,
            };
            let target = TestTarget::start(behaviour).await?;
            let created = pos
                .api
                .create_integration(&route.webhook_integration(&target.url("/sales")))
                .await?;
            target.set_secret(&created.signing_secret);
            integrations.insert(created.id, route);
            targets.insert(route, target);
        }
        let pos_apis = stack
            .services
            .urls(ServiceKind::Ingest)
            .iter()
            .map(|u| Api::new(u).with_token(&pos.token))
            .collect();
        Ok(Self {
            stack,
            targets,
            integrations,
            pos,
            partner,
            pos_apis,
            rabbit,
            pg,
        })
    }

    /// Every flaky target back to normal.
    pub fn calm_targets(&self) {
        for route in [Route::FlakyA, Route::FlakyB] {
            if let Some(t) = self.targets.get(&route) {
                t.set_behaviour(Behaviour::Ok);
            }
        }
    }
}

/// Checks that the services' queues have a replica on every node of the
/// cluster (declared after it formed, as quorum queues they must), and says
/// who leads them.
async fn replicated(rabbit: &RabbitCluster) -> anyhow::Result<String> {
    use salesync_core::amqp::topology::{Q_DEAD, Q_FORWARD, Q_SALE_EVENTS, Q_STATUS};
    let queues = [Q_FORWARD, Q_SALE_EVENTS, Q_STATUS, Q_DEAD];
    let nodes: Vec<&str> = rabbit.nodes().iter().map(|n| n.node()).collect();
    let replicas = rabbit.queue_replicas().await?;
    let gaps = rabbit_cluster::replication_gaps(&replicas, &queues, &nodes);
    if !gaps.is_empty() {
        anyhow::bail!("queues not replicated on every node: {}", gaps.join("; "));
    }
    let leaders: Vec<String> = replicas
        .iter()
        .filter(|q| queues.contains(&q.name.as_str()))
        .map(|q| format!("{} led by {}", q.name, q.leader))
        .collect();
    Ok(format!(
        "quorum queues replicated on all {} nodes; {}",
        nodes.len(),
        leaders.join(", ")
    ))
}
