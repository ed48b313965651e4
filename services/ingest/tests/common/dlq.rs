//! What the dead-letter tests share: shops (a tenant, an integration and
//! sales, made through the API), the delivery and outbox rows they look at,
//! and the outbox relay with the forwarder running in-process on a test
//! vhost, so a dead letter can die and be replayed for real.

use std::time::Duration;

use super::ApiState;
use axum::Router;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId, sample_sale};
use salesync_core::messages::{Envelope, ForwardCommand, Purpose, ROUTING_FORWARD};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_core::outbox::{self, OutboxMessage, Relay};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{TestDb, TestVhost, call, tenant};

/// A tenant with an integration and `sales` sales, made through the API.
pub struct Shop {
    pub tenant: TenantId,
    pub token: String,
    pub integration: IntegrationId,
    /// The integration's signing secret, as shown once at creation.
    pub signing_secret: String,
    pub sales: Vec<SaleId>,
}

pub fn id_of<T: std::str::FromStr>(v: &Value) -> T {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// Creates a webhook integration; returns its id and signing secret.
pub async fn integration_with_secret(
    app: &Router,
    token: &str,
    name: &str,
    url: &str,
) -> (IntegrationId, String) {
    let a = call(
        app,
        "POST",
        "/v1/integrations",
        Some(token),
        Some(&json!({"name": name, "target_kind": "webhook", "target_url": url})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let secret = a.body["signing_secret"].as_str().expect("secret");
    (id_of(&a.body["id"]), secret.to_string())
}

pub async fn integration(app: &Router, token: &str, name: &str, url: &str) -> IntegrationId {
    integration_with_secret(app, token, name, url).await.0
}

pub async fn shop(app: &Router, name: &str, sales: usize, target_url: &str) -> Shop {
    let (tenant_id, token) = tenant(app, name, false).await;
    let (integration, signing_secret) =
        integration_with_secret(app, &token, "Books", target_url).await;
    let mut ids = Vec::new();
    for i in 0..sales {
        let sale = serde_json::to_value(sample_sale(&format!("{name}-{i}"))).expect("sale");
        let a = call(app, "POST", "/v1/sales", Some(&token), Some(&sale)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        ids.push(id_of(&a.body["id"]));
    }
    Shop {
        tenant: id_of(&json!(tenant_id)),
        token,
        integration,
        signing_secret,
        sales: ids,
    }
}

pub fn ago(secs: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::seconds(secs)
}

pub async fn state_of(pool: &PgPool, id: DeliveryId) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT state, attempts, dead_reason FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("delivery")
}

/// Polls until the delivery reaches `state` (20 s at most).
pub async fn wait_for_state(pool: &PgPool, id: DeliveryId, want: &str) {
    for _ in 0..200 {
        if state_of(pool, id).await.0 == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "delivery {id} never became {want}: {:?}",
        state_of(pool, id).await
    );
}

/// The forward commands waiting in the outbox.
pub async fn outbox_commands(pool: &PgPool) -> Vec<Envelope<ForwardCommand>> {
    let bodies: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT body FROM outbox WHERE routing_key = 'sale.forward' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("outbox");
    bodies
        .iter()
        .map(|b| Envelope::decode(b).expect("a forward command"))
        .collect()
}

/// A bulk replay's counts: (replayed, not_replayable, target_unavailable,
/// remaining).
pub fn counts(answer: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| {
        answer[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {answer}"))
    };
    (
        n("replayed"),
        n("not_replayable"),
        n("target_unavailable"),
        n("remaining"),
    )
}

/// Writes a forward delivery to `url` and its command, as condition-filter
/// does (one transaction); returns its id.
pub async fn plan_delivery(pool: &PgPool, shop: &Shop, sale: usize, url: &str) -> DeliveryId {
    let (id, sale_id) = (DeliveryId::new(), shop.sales[sale]);
    let body = json!({"type": "sale.forwarded", "data": {"sale_id": sale_id}});
    let mut tx = pool.begin().await.expect("tx");
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, sale_id, integration_id, purpose, dedupe_key,
                                 target_url, target_ref, body)
         VALUES ($1, $2, $3, $4, 'forward', $5, $6, $1::text, $7)",
    )
    .bind(id)
    .bind(shop.tenant)
    .bind(sale_id)
    .bind(shop.integration)
    .bind(format!("forward:{sale_id}:{}", shop.integration))
    .bind(url)
    .bind(&body)
    .execute(&mut *tx)
    .await
    .expect("delivery");
    let command = Envelope::new(
        shop.tenant,
        sale_id,
        ForwardCommand {
            delivery_id: id,
            purpose: Purpose::Forward,
            integration_id: Some(shop.integration),
            target_url: url.to_string(),
            target_ref: id.to_string(),
            accepted_at: Utc::now(),
            body: None,
        },
    );
    outbox::enqueue(
        &mut tx,
        &[OutboxMessage::from_envelope(ROUTING_FORWARD, &command)],
    )
    .await
    .expect("outbox");
    tx.commit().await.expect("commit");
    id
}

/// The app's state set up for a pipeline: encryption keys the forwarder
/// shares, and the test vhost.
pub fn pipeline_state(db: &TestDb, vhost: &TestVhost, keys: &str) -> ApiState {
    let mut st = super::state(&db.pool);
    st.secrets =
        std::sync::Arc::new(salesync_core::crypto::SecretBox::from_spec(keys).expect("keys"));
    st.amqp_url = vhost.amqp_url.clone();
    st
}

/// The outbox relay (as ingest runs it), stoppable on its own to stand in
/// for an ingest that dies after committing and before publishing.
pub struct RelayTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RelayTask {
    pub fn start(db: &TestDb, vhost: &TestVhost, st: &ApiState) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            Relay {
                pool: db.pool.clone(),
                amqp_url: vhost.amqp_url.clone(),
                connection_name: "test-relay".into(),
                wake: st.wake.clone(),
                handoff: None,
                batch_size: 100,
                metrics: Metrics::new("test"),
                ready: Readiness::default().part("relay"),
            }
            .run(stop.clone()),
        );
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// The forwarder, in-process: test-speed retries (200 ms), 3 attempts.
pub struct ForwarderTask {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl ForwarderTask {
    pub fn start(db: &TestDb, vhost: &TestVhost, keys: &str) -> Self {
        let args = <forwarder::Args as clap::Parser>::try_parse_from([
            "forwarder",
            "--database-url",
            &db.url,
            "--amqp-url",
            &vhost.amqp_url,
            "--encryption-keys",
            keys,
            "--retry-delays",
            "200ms",
            "--max-attempts",
            "3",
            "--request-timeout",
            "2s",
            // The test targets listen on loopback.
            "--target-allow-nets",
            "127.0.0.0/8,::1",
        ])
        .expect("forwarder args");
        let stop = CancellationToken::new();
        let task = tokio::spawn(forwarder::run(
            args,
            Readiness::default(),
            Metrics::new("test-forwarder"),
            stop.clone(),
        ));
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}
