//! Test harness for the status-poller integration tests: a private PostgreSQL
//! database and RabbitMQ vhost per test (removed on drop), SQL fixtures for
//! tenants/integrations/sales/deliveries, fake targets served by axum on
//! 127.0.0.1, and a queue bound to `sale.status` to watch what gets published.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use salesync_core::amqp::topology;
use salesync_core::crypto::SecretBox;
use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::egress::{self, EgressPolicy};
use salesync_core::integration::TargetCredentials;
use salesync_core::messages::{EXCHANGE, ROUTING_STATUS};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_core::outbox::Relay;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use status_poller::client::build_http_client;
use status_poller::poller::{PollSettings, Poller};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// `url` with its last path segment (database name / vhost) replaced.
fn with_last_segment(url: &str, segment: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    match base.rsplit_once('/') {
        Some((head, _)) if head.contains("://") && !head.ends_with('/') => {
            format!("{head}/{segment}")
        }
        _ => format!("{}/{segment}", base.trim_end_matches('/')),
    }
}

/// A private database and vhost; both removed when dropped.
pub struct TestEnv {
    pub pool: PgPool,
    pub amqp_url: String,
    pub secret_box: SecretBox,
    admin_url: String,
    db_name: String,
    mgmt_url: String,
    /// `None` for a database-only env.
    vhost: Option<String>,
}

impl TestEnv {
    pub async fn new() -> Self {
        let mut env = Self::database_only().await;
        env.add_vhost().await;
        env
    }

    /// A private database and no vhost, for tests that need no broker.
    pub async fn database_only() -> Self {
        let admin_url = env_or(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let db_name = format!("sp_test_{suffix}");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("connect to PostgreSQL (DATABASE_URL)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let pool =
            salesync_core::db::connect_and_migrate(&with_last_segment(&admin_url, &db_name), 8)
                .await
                .expect("migrate test database");
        Self {
            pool,
            amqp_url: String::new(),
            secret_box: SecretBox::from_spec(&SecretBox::generate_spec("test")).expect("test key"),
            admin_url,
            db_name,
            mgmt_url: env_or("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672"),
            vhost: None,
        }
    }

    async fn add_vhost(&mut self) {
        let mgmt_url = self.mgmt_url.clone();
        let vhost = format!("sp-test-{}", uuid::Uuid::new_v4().simple());
        let http = reqwest::Client::new();
        let put = |url: String, body: serde_json::Value| {
            http.put(url)
                .basic_auth("guest", Some("guest"))
                .json(&body)
                .send()
        };
        let r = put(
            format!("{mgmt_url}/api/vhosts/{vhost}"),
            serde_json::json!({}),
        )
        .await
        .expect("RabbitMQ management API");
        assert!(r.status().is_success(), "create vhost: {}", r.status());
        let r = put(
            format!("{mgmt_url}/api/permissions/{vhost}/guest"),
            serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await
        .expect("RabbitMQ management API");
        assert!(r.status().is_success(), "set permissions: {}", r.status());
        self.amqp_url = with_last_segment(
            &env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            &vhost,
        );
        self.vhost = Some(vhost);
    }

    pub async fn tenant(&self) -> TenantId {
        let id = TenantId::new();
        sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2)")
            .bind(id)
            .bind(format!("tenant-{id}"))
            .execute(&self.pool)
            .await
            .expect("insert tenant");
        id
    }

    /// A polling integration: status_map {"processed": "completed"},
    /// final_statuses ["processed"].
    pub async fn integration(
        &self,
        tenant: TenantId,
        kind: &str,
        target_url: &str,
        status_url: Option<&str>,
        bearer_token: Option<&str>,
    ) -> IntegrationId {
        let id = IntegrationId::new();
        let credentials = bearer_token.map(|t| {
            self.secret_box.encrypt_json(&TargetCredentials {
                bearer_token: Some(t.to_string()),
            })
        });
        let signing = self.secret_box.encrypt_json(&vec!["whsec_dGVzdA=="]);
        sqlx::query(
            "INSERT INTO integrations (id, tenant_id, name, target_kind, target_url, credentials_enc,
                 signing_secrets_enc, poll_status, status_url, status_map, final_statuses)
             VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8,
                 '{\"processed\": \"completed\"}'::jsonb, ARRAY['processed'])",
        )
        .bind(id)
        .bind(tenant)
        .bind(format!("integration-{id}"))
        .bind(kind)
        .bind(target_url)
        .bind(credentials)
        .bind(signing)
        .bind(status_url)
        .execute(&self.pool)
        .await
        .expect("insert integration");
        id
    }

    /// A sale and its delivered forward to `integration`, due for polling now.
    pub async fn delivered_sale(
        &self,
        tenant: TenantId,
        integration: IntegrationId,
        target_status: Option<&str>,
    ) -> (SaleId, DeliveryId) {
        let sale = SaleId::new();
        let delivery = DeliveryId::new();
        sqlx::query(
            "INSERT INTO sales (id, tenant_id, external_id, payload_hash, sale, status, currency,
                 gross, occurred_at, business_date)
             VALUES ($1, $2, $3, '\\x00'::bytea, '{}'::jsonb, 'completed', 'EUR', 1000, now(), current_date)",
        )
        .bind(sale)
        .bind(tenant)
        .bind(format!("ext-{sale}"))
        .execute(&self.pool)
        .await
        .expect("insert sale");
        sqlx::query(
            "INSERT INTO deliveries (id, tenant_id, sale_id, integration_id, purpose, dedupe_key,
                 target_url, target_ref, state, attempts, delivered_at, target_status, poll_after)
             VALUES ($1, $2, $3, $4, 'forward', $5, 'http://unused', $6, 'delivered', 1, now(), $7,
                 now() - interval '1 second')",
        )
        .bind(delivery)
        .bind(tenant)
        .bind(sale)
        .bind(integration)
        .bind(format!("forward:{sale}:{integration}"))
        .bind(delivery.to_string())
        .bind(target_status)
        .execute(&self.pool)
        .await
        .expect("insert delivery");
        (sale, delivery)
    }

    /// (target_status, target_status_final) of a delivery.
    pub async fn delivery_status(&self, id: DeliveryId) -> (Option<String>, bool) {
        sqlx::query_as("SELECT target_status, target_status_final FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("read delivery")
    }

    pub fn poller(&self, interval: Duration, lookup_chunk: usize, timeout: Duration) -> Poller {
        Poller {
            pool: self.pool.clone(),
            // The test targets listen on loopback.
            http: build_http_client(timeout, loopback_allowed()).expect("http client"),
            secret_box: self.secret_box.clone(),
            settings: PollSettings {
                interval,
                batch: 500,
                lookup_chunk,
                concurrency: 8,
            },
            metrics: Metrics::new("status-poller-test"),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Runs the poller and an outbox relay into this env's vhost until `stop`.
    pub fn run(&self, poller: Poller, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let relay = Relay {
            pool: self.pool.clone(),
            amqp_url: self.amqp_url.clone(),
            connection_name: "status-poller-test-outbox".into(),
            wake: poller.wake.clone(),
            handoff: None,
            batch_size: 100,
            metrics: poller.metrics.clone(),
            ready: Readiness::default().part("amqp.outbox"),
        };
        vec![
            tokio::spawn(relay.run(stop.clone())),
            tokio::spawn(poller.run(stop.clone())),
        ]
    }

    /// A private queue bound to `sale.status`; published bodies arrive on the receiver.
    pub async fn watch_status_updates(
        &self,
    ) -> (lapin::Connection, mpsc::UnboundedReceiver<Vec<u8>>) {
        let conn = salesync_core::amqp::connect(&self.amqp_url, "status-poller-test-watch")
            .await
            .expect("connect to RabbitMQ");
        let ch = conn.create_channel().await.expect("channel");
        topology::declare(&ch).await.expect("declare topology");
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare watch queue");
        let name = q.name().clone();
        ch.queue_bind(
            name.clone(),
            EXCHANGE.into(),
            ROUTING_STATUS.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind watch queue");
        let mut consumer = ch
            .basic_consume(
                name,
                "watch".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume watch queue");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                if tx.send(d.data.clone()).is_err() {
                    return;
                }
            }
        });
        (conn, rx)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Runs on a thread of its own so it works inside (and after a panic in)
        // an async test.
        let (admin_url, db_name, mgmt_url, vhost) = (
            self.admin_url.clone(),
            self.db_name.clone(),
            self.mgmt_url.clone(),
            self.vhost.clone(),
        );
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
                if let Some(vhost) = vhost {
                    let _ = reqwest::Client::new()
                        .delete(format!("{mgmt_url}/api/vhosts/{vhost}"))
                        .basic_auth("guest", Some("guest"))
                        .send()
                        .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// How a fake target behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Behaviour {
    Healthy,
    /// 200 with a body that is not the agreed shape.
    Garbage,
    /// Never answers (within any sane timeout).
    Stall,
}

/// A fake target: a salesync lookup endpoint (`/v1/sales/lookup`) and a
/// webhook status endpoint (`/status`) over one status table.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub statuses: Arc<Mutex<HashMap<String, String>>>,
    pub requests: Arc<AtomicUsize>,
    /// Number of ids in each request received.
    pub request_sizes: Arc<Mutex<Vec<usize>>>,
    expected_token: Option<String>,
    behaviour: Behaviour,
}

impl Target {
    pub async fn start(behaviour: Behaviour, expected_token: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake target");
        let addr = listener.local_addr().expect("local addr");
        let target = Target {
            url: format!("http://{addr}"),
            statuses: Default::default(),
            requests: Default::default(),
            request_sizes: Default::default(),
            expected_token: expected_token.map(Into::into),
            behaviour,
        };
        let app = axum::Router::new()
            .route("/v1/sales/lookup", post(salesync_lookup))
            .route("/status", post(webhook_status))
            .with_state(target.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        target
    }

    pub fn set(&self, target_ref: impl ToString, status: &str) {
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(target_ref.to_string(), status.to_string());
    }

    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Counts the request and answers per behaviour; `None` = answer normally.
    async fn intercept(&self, headers: &HeaderMap, ids: usize) -> Option<Response> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.request_sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ids);
        if let Some(token) = &self.expected_token {
            let got = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if got != format!("Bearer {token}") {
                return Some(StatusCode::UNAUTHORIZED.into_response());
            }
        }
        match self.behaviour {
            Behaviour::Healthy => None,
            Behaviour::Garbage => Some("<html>definitely not json".into_response()),
            Behaviour::Stall => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Some(StatusCode::GATEWAY_TIMEOUT.into_response())
            }
        }
    }

    fn lookup(&self, ids: &[String]) -> Vec<(String, String)> {
        let statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .filter_map(|id| statuses.get(id).map(|s| (id.clone(), s.clone())))
            .collect()
    }
}

#[derive(serde::Deserialize)]
struct LookupBody {
    external_ids: Vec<String>,
}

async fn salesync_lookup(
    State(t): State<Target>,
    headers: HeaderMap,
    Json(body): Json<LookupBody>,
) -> Response {
    if let Some(r) = t.intercept(&headers, body.external_ids.len()).await {
        return r;
    }
    let sales: Vec<serde_json::Value> = t
        .lookup(&body.external_ids)
        .into_iter()
        .map(|(id, status)| {
            serde_json::json!({
                "external_id": id,
                "id": uuid::Uuid::now_v7(),
                "status": status,
                "updated_at": chrono::Utc::now(),
            })
        })
        .collect();
    Json(serde_json::json!({ "sales": sales })).into_response()
}

#[derive(serde::Deserialize)]
struct StatusBody {
    ids: Vec<String>,
}

async fn webhook_status(
    State(t): State<Target>,
    headers: HeaderMap,
    Json(body): Json<StatusBody>,
) -> Response {
    if let Some(r) = t.intercept(&headers, body.ids.len()).await {
        return r;
    }
    let statuses: Vec<serde_json::Value> = t
        .lookup(&body.ids)
        .into_iter()
        .map(|(id, status)| serde_json::json!({ "id": id, "status": status }))
        .collect();
    Json(serde_json::json!({ "statuses": statuses })).into_response()
}

/// Waits until `cond` holds, polling every 25 ms, up to `within`.
/// The egress policy of these tests: loopback allowed, as the test targets
/// listen there.
pub fn loopback_allowed() -> EgressPolicy {
    EgressPolicy::new(egress::parse_allow_nets("127.0.0.0/8,::1").unwrap())
}

pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    cond()
}

/// The next published body within `within`, if any.
pub async fn next_message(
    rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    within: Duration,
) -> Option<Vec<u8>> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}
