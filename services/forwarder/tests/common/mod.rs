//! Test harness for the forwarder on real infrastructure: a database and a
//! RabbitMQ vhost of its own (created here, dropped at the end), a recording
//! HTTP target on 127.0.0.1 that verifies every Standard Webhooks signature
//! the way a customer would, rows inserted with SQL, and the forwarder's
//! consumer running in-process through `forwarder::run`.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::amqp::{self, topology};
use salesync_core::crypto::SecretBox;
use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::integration::TargetCredentials;
use salesync_core::messages::{Envelope, ForwardCommand, Purpose, ROUTING_FORWARD};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_core::signing;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A message taken from `salesync.dead`: body and headers.
pub type DeadLetter = (Vec<u8>, BTreeMap<String, String>);

pub const BEARER: &str = "tok-123";
/// The trace every test message starts; the target must see it continued.
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Settings the forwarder runs with in tests: short tiers, a short timeout.
pub const RETRY_DELAYS: &str = "200ms,400ms,1s";
pub const MAX_ATTEMPTS: u32 = 3;
pub const REQUEST_TIMEOUT: &str = "500ms";
/// `TARGET_ALLOW_NETS` of the tests: the test targets listen on loopback.
pub const LOOPBACK_NETS: &str = "127.0.0.0/8,::1";

// ---------------------------------------------------------------- target

/// One request the target received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub route: String,
    pub idempotency_key: String,
    pub webhook_id: String,
    pub authorization: Option<String>,
    pub traceparent: Option<String>,
    pub signature_ok: bool,
    /// The request body exactly as received.
    pub body: Bytes,
    pub at: Instant,
}

#[derive(Clone)]
struct TargetState {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// When each `slow` request was answered (idempotency key, instant).
    answered: Arc<Mutex<Vec<(String, Instant)>>>,
    /// Whether `switch` answers 200 (else 500).
    healthy: Arc<AtomicBool>,
    integration_secret: String,
    webhook_secret: String,
}

/// The HTTP target. Routes (all `POST /{route}`):
/// `ok` 200 · `flaky` 503, 503, then 200 (per key) · `bad` 400 · `stall`
/// answers after 3 s · `throttle` 429 `Retry-After: 1`, then 200 ·
/// `garbage` 200 with a non-JSON, non-UTF-8 body · `status` 200 (signed with
/// the tenant's webhook secret instead of the integration's) · `slow` 200
/// after 2 s · `switch` 500 until [`Target::heal`], then 200.
pub struct Target {
    pub base_url: String,
    state: TargetState,
    shutdown: CancellationToken,
}

impl Target {
    async fn start(integration_secret: String, webhook_secret: String) -> Self {
        let state = TargetState {
            seen: Arc::default(),
            answered: Arc::default(),
            healthy: Arc::default(),
            integration_secret,
            webhook_secret,
        };
        let app = Router::new()
            .route("/{route}", post(target_handler))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Self {
            base_url: format!("http://{addr}"),
            state,
            shutdown,
        }
    }

    pub fn url(&self, route: &str) -> String {
        format!("{}/{route}", self.base_url)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// When each `slow` request was answered.
    pub fn answered(&self) -> Vec<(String, Instant)> {
        self.state.answered.lock().unwrap().clone()
    }

    /// From now on `switch` answers 200.
    pub fn heal(&self) {
        self.state.healthy.store(true, Ordering::SeqCst);
    }

    pub fn seen_for(&self, key: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.idempotency_key == key)
            .collect()
    }
}

async fn target_handler(
    State(state): State<TargetState>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let secret = if route == "status" {
        &state.webhook_secret
    } else {
        &state.integration_secret
    };
    let webhook_id = h("webhook-id").unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let signature_ok = signing::verify(
        secret,
        &webhook_id,
        &h("webhook-timestamp").unwrap_or_default(),
        &h("webhook-signature").unwrap_or_default(),
        &body,
        now,
        300,
    )
    .is_ok()
        && h("content-type").as_deref() == Some("application/json")
        && serde_json::from_slice::<serde_json::Value>(&body).is_ok();
    let key = h("idempotency-key").unwrap_or_default();
    let answered = state.answered.clone();
    let slow_key = key.clone();
    let earlier = {
        let mut seen = state.seen.lock().unwrap();
        let earlier = seen.iter().filter(|s| s.idempotency_key == key).count();
        seen.push(Seen {
            route: route.clone(),
            idempotency_key: key,
            webhook_id,
            authorization: h("authorization"),
            traceparent: h("traceparent"),
            signature_ok,
            body: body.clone(),
            at: Instant::now(),
        });
        earlier
    };
    if !signature_ok {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    match route.as_str() {
        "ok" | "status" => (StatusCode::OK, r#"{"ok":true}"#).into_response(),
        "flaky" if earlier < 2 => (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        "flaky" => (StatusCode::CREATED, r#"{"ok":true}"#).into_response(),
        "bad" => (StatusCode::BAD_REQUEST, "missing field lines").into_response(),
        "stall" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, "too late").into_response()
        }
        "throttle" if earlier == 0 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response(),
        "throttle" => StatusCode::NO_CONTENT.into_response(),
        "garbage" => (StatusCode::OK, Bytes::from_static(b"\0<<\xff\xfe not json")).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            answered.lock().unwrap().push((slow_key, Instant::now()));
            (StatusCode::OK, r#"{"ok":true}"#).into_response()
        }
        "switch" if state.healthy.load(Ordering::SeqCst) => {
            (StatusCode::OK, r#"{"ok":true}"#).into_response()
        }
        "switch" => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Every request the target saw carried a valid signature, the idempotency
/// key equal to `webhook-id`, and this test's trace.
pub fn assert_well_formed(seen: &[Seen]) {
    for s in seen {
        assert!(s.signature_ok, "signature did not verify: {s:?}");
        assert_eq!(s.webhook_id, s.idempotency_key);
        let traceparent = s.traceparent.as_deref().unwrap_or_default();
        assert!(
            traceparent.contains(TRACE_ID),
            "trace not continued: {traceparent:?}"
        );
    }
}

// ---------------------------------------------------------------- environment

/// One test's world: own database, own vhost, a target, one tenant with one
/// integration and one sale, and (once started) the forwarder.
pub struct TestEnv {
    pub pool: PgPool,
    db_name: String,
    admin_db_url: String,
    pub database_url: String,
    vhost: String,
    pub amqp_url: String,
    pub key_spec: String,
    pub secret_box: SecretBox,
    pub target: Target,
    pub tenant_id: TenantId,
    pub integration_id: IntegrationId,
    pub sale_id: SaleId,
    /// Dead letters taken from the queue so far (a lookup consumes the queue).
    dead_letters: Mutex<Vec<DeadLetter>>,
}

fn with_last_segment(url: &str, segment: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let cut = base[scheme_end..]
        .rfind('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{segment}{query}", &base[..cut])
}

fn management_url() -> String {
    std::env::var("RABBITMQ_MANAGEMENT_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".into())
}

/// Runs `body` in a fresh environment and always cleans up, even when the
/// body panics (the panic is re-raised afterwards).
pub async fn with_env<F, Fut>(body: F)
where
    F: FnOnce(Arc<TestEnv>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Traces need an OpenTelemetry layer; only the first init in a process wins.
    if let Ok(guard) = salesync_core::telemetry::init("forwarder-test", None, "text") {
        std::mem::forget(guard);
    }
    let env = Arc::new(TestEnv::create().await);
    let result = tokio::spawn(body(env.clone())).await;
    match Arc::try_unwrap(env) {
        Ok(env) => env.destroy().await,
        Err(_) => panic!("the test kept a handle on its environment"),
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

impl TestEnv {
    async fn create() -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let base_db = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin_db_url = with_last_segment(&base_db, "postgres");
        let db_name = format!("fwd_test_{suffix}");
        let admin = PgPool::connect(&admin_db_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let database_url = with_last_segment(&base_db, &db_name);
        let pool = salesync_core::db::connect_and_migrate(&database_url, 4)
            .await
            .unwrap();

        let vhost = format!("fwd_test_{suffix}");
        let http = reqwest::Client::new();
        let mgmt = management_url();
        http.put(format!("{mgmt}/api/vhosts/{vhost}"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        http.put(format!("{mgmt}/api/permissions/{vhost}/guest"))
            .basic_auth("guest", Some("guest"))
            .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let base_amqp = std::env::var("AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let amqp_url = with_last_segment(&base_amqp, &vhost);

        let key_spec = SecretBox::generate_spec("test");
        let secret_box = SecretBox::from_spec(&key_spec).unwrap();
        let integration_secret = signing::generate_secret();
        let webhook_secret = signing::generate_secret();
        let target = Target::start(integration_secret.clone(), webhook_secret.clone()).await;

        let tenant_id = TenantId::new();
        let integration_id = IntegrationId::new();
        let sale_id = SaleId::new();
        sqlx::query(
            "INSERT INTO tenants (id, name, webhook_url, webhook_secret_enc) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant_id)
        .bind(format!("tenant-{suffix}"))
        .bind(target.url("status"))
        .bind(secret_box.encrypt_json(&webhook_secret))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO integrations (id, tenant_id, name, target_kind, target_url, credentials_enc,
                                       signing_secrets_enc, poll_status, status_url)
             VALUES ($1, $2, 'books', 'webhook', $3, $4, $5, true, $6)",
        )
        .bind(integration_id)
        .bind(tenant_id)
        .bind(target.url("ok"))
        .bind(secret_box.encrypt_json(&TargetCredentials {
            bearer_token: Some(BEARER.into()),
        }))
        .bind(secret_box.encrypt_json(&vec![integration_secret]))
        .bind(target.url("sale-status"))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO sales (id, tenant_id, external_id, payload_hash, sale, status, currency, gross, occurred_at, business_date)
             VALUES ($1, $2, 'S-1', '\\x00', '{}', 'completed', 'EUR', 1000, now(), current_date)",
        )
        .bind(sale_id)
        .bind(tenant_id)
        .execute(&pool)
        .await
        .unwrap();

        // Declare the topology now, so messages published before the
        // forwarder starts are routable.
        let conn = amqp::connect(&amqp_url, "forwarder-test-setup")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        topology::declare(&ch).await.unwrap();
        let _ = conn.close(200, "bye".into()).await;

        Self {
            pool,
            db_name,
            admin_db_url,
            database_url,
            vhost,
            amqp_url,
            key_spec,
            secret_box,
            target,
            tenant_id,
            integration_id,
            sale_id,
            dead_letters: Mutex::default(),
        }
    }

    async fn destroy(self) {
        self.target.shutdown.cancel();
        self.pool.close().await;
        if let Ok(admin) = PgPool::connect(&self.admin_db_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
        let _ = reqwest::Client::new()
            .delete(format!("{}/api/vhosts/{}", management_url(), self.vhost))
            .basic_auth("guest", Some("guest"))
            .send()
            .await;
    }

    /// Takes the test's database down for everyone (`up = false`): new
    /// connections are refused and those open are ended — the forwarder's
    /// and the test's own alike — or lets connections in again (and waits
    /// until the test's pool has dropped its ended connections).
    pub async fn set_database_up(&self, up: bool) {
        let admin = PgPool::connect(&self.admin_db_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {up}",
            self.db_name
        )))
        .execute(&admin)
        .await
        .unwrap();
        if !up {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&self.db_name)
            .execute(&admin)
            .await
            .unwrap();
        }
        admin.close().await;
        // Each failed query closes one ended connection of the pool.
        for _ in 0..10 {
            if !up || sqlx::query("SELECT 1").execute(&self.pool).await.is_ok() {
                return;
            }
        }
        panic!("the test's pool did not reconnect");
    }

    /// The forwarder's arguments for this environment (loopback allowed).
    pub fn args(&self) -> forwarder::Args {
        self.args_with(&[])
    }

    /// The forwarder's arguments, with `extra` (flag, value, flag, value …)
    /// replacing the test defaults of the same flags.
    pub fn args_with(&self, extra: &[&str]) -> forwarder::Args {
        let max_attempts = MAX_ATTEMPTS.to_string();
        let defaults: [(&str, &str); 10] = [
            ("--database-url", &self.database_url),
            ("--database-max-connections", "4"),
            ("--amqp-url", &self.amqp_url),
            ("--encryption-keys", &self.key_spec),
            ("--retry-delays", RETRY_DELAYS),
            ("--request-timeout", REQUEST_TIMEOUT),
            ("--connect-timeout", "500ms"),
            ("--max-attempts", &max_attempts),
            ("--prefetch", "16"),
            // The test targets listen on loopback.
            ("--target-allow-nets", LOOPBACK_NETS),
        ];
        let mut argv = vec!["forwarder"];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                argv.extend([flag, value]);
            }
        }
        argv.extend_from_slice(extra);
        forwarder::Args::try_parse_from(argv).unwrap()
    }

    /// Starts the forwarder in-process (stopped when the test ends).
    pub fn start_forwarder(self: &Arc<Self>) -> ForwarderHandle {
        self.start_forwarder_with(&[])
    }

    /// Starts the forwarder with `extra` arguments (see [`TestEnv::args_with`]).
    pub fn start_forwarder_with(self: &Arc<Self>, extra: &[&str]) -> ForwarderHandle {
        let stop = CancellationToken::new();
        let metrics = Metrics::new("forwarder-test");
        let task = tokio::spawn(forwarder::run(
            self.args_with(extra),
            Readiness::default(),
            metrics.clone(),
            stop.clone(),
        ));
        ForwarderHandle {
            stop,
            metrics,
            task: Some(task),
        }
    }

    /// Turns status polling off for the environment's integration (its
    /// delivered sales are then never watched by the status-poller).
    pub async fn stop_polling(&self) {
        sqlx::query("UPDATE integrations SET poll_status = false")
            .execute(&self.pool)
            .await
            .unwrap();
    }

    /// Inserts a delivery of `purpose` to `route` and returns its command envelope.
    pub async fn delivery(&self, route: &str, purpose: Purpose) -> Envelope<ForwardCommand> {
        self.delivery_to(&self.target.url(route), purpose).await
    }

    /// Inserts a delivery of `purpose` to any URL, its body stored with it as
    /// producers do, and returns its command envelope.
    pub async fn delivery_to(
        &self,
        target_url: &str,
        purpose: Purpose,
    ) -> Envelope<ForwardCommand> {
        self.delivery_with(target_url, purpose, Some(self.body()), None)
            .await
    }

    /// A body to send, recognisable per environment.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "sale.forwarded",
            "data": {"sale_id": self.sale_id, "note": "ünïcode"}
        })
    }

    /// Inserts a delivery whose row holds `stored` and whose command carries
    /// `carried` (as producers before the body-less contract sent it).
    pub async fn delivery_with(
        &self,
        target_url: &str,
        purpose: Purpose,
        stored: Option<serde_json::Value>,
        carried: Option<serde_json::Value>,
    ) -> Envelope<ForwardCommand> {
        let target_url = target_url.to_string();
        let delivery_id = DeliveryId::new();
        let integration_id = (purpose == Purpose::Forward).then_some(self.integration_id);
        sqlx::query(
            "INSERT INTO deliveries (id, tenant_id, sale_id, integration_id, purpose, dedupe_key, target_url, target_ref, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(delivery_id)
        .bind(self.tenant_id)
        .bind(self.sale_id)
        .bind(integration_id)
        .bind(purpose.as_str())
        .bind(delivery_id.to_string())
        .bind(&target_url)
        .bind(delivery_id.to_string())
        .bind(stored)
        .execute(&self.pool)
        .await
        .unwrap();
        Envelope::new(
            self.tenant_id,
            self.sale_id,
            ForwardCommand {
                delivery_id,
                purpose,
                integration_id,
                target_url,
                target_ref: delivery_id.to_string(),
                accepted_at: chrono::Utc::now(),
                body: carried,
            },
        )
    }

    /// Publishes raw bodies to `sale.forward`, each with a fresh `traceparent`
    /// in trace [`TRACE_ID`].
    pub async fn publish_raw(&self, bodies: &[Vec<u8>]) {
        self.publish_messages(&commands(bodies)).await;
    }

    pub async fn publish(&self, envelopes: &[&Envelope<ForwardCommand>]) {
        let bodies: Vec<Vec<u8>> = envelopes.iter().map(|e| e.to_bytes()).collect();
        self.publish_raw(&bodies).await;
    }

    /// Publishes `messages` as they are (bundles, broken ones …).
    pub async fn publish_messages(&self, messages: &[OutgoingMessage]) {
        let conn = amqp::connect(&self.amqp_url, "forwarder-test-publisher")
            .await
            .unwrap();
        let publisher = Publisher::open(&conn).await.unwrap();
        publisher.publish_all(messages).await.unwrap();
        let _ = conn.close(200, "bye".into()).await;
    }

    /// Messages ready in `queue` (not counting those delivered and unacked).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        let conn = amqp::connect(&self.amqp_url, "forwarder-test-depth")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = conn.close(200, "bye".into()).await;
        q.message_count()
    }

    /// Takes everything in `salesync.dead` (body, headers).
    pub async fn take_dead(&self) -> Vec<DeadLetter> {
        let conn = amqp::connect(&self.amqp_url, "forwarder-test-dlq")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Some(m) = ch
            .basic_get(topology::Q_DEAD.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            out.push((
                m.delivery.data.clone(),
                amqp::headers_to_map(m.delivery.properties.headers().as_ref()),
            ));
        }
        let _ = conn.close(200, "bye".into()).await;
        out
    }

    /// Waits until `salesync.dead` holds a message whose body contains
    /// `needle` and returns its headers.
    pub async fn dead_letter_of(&self, needle: &str) -> BTreeMap<String, String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let fresh = self.take_dead().await;
            if let Some(headers) = self.find_dead(fresh, needle) {
                return headers;
            }
            assert!(
                Instant::now() < deadline,
                "no dead letter containing {needle}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Adds `fresh` to the dead letters seen so far and looks for `needle`.
    fn find_dead(&self, fresh: Vec<DeadLetter>, needle: &str) -> Option<BTreeMap<String, String>> {
        let mut taken = self.dead_letters.lock().unwrap();
        taken.extend(fresh);
        taken
            .iter()
            .find(|(body, _)| String::from_utf8_lossy(body).contains(needle))
            .map(|(_, h)| h.clone())
    }

    pub async fn delivery_row(&self, id: DeliveryId) -> DeliveryState {
        sqlx::query_as(
            "SELECT state, attempts, last_error, dead_reason, delivered_at IS NOT NULL AS delivered,
                    poll_after IS NOT NULL AS poll_scheduled
             FROM deliveries WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// Every attempt of every delivery, in the order they started.
    pub async fn all_attempts(&self) -> Vec<AttemptRow> {
        sqlx::query_as(
            "SELECT attempt, status_code, error, outcome, response_excerpt, duration_ms, started_at
             FROM delivery_attempts ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    pub async fn attempts(&self, id: DeliveryId) -> Vec<AttemptRow> {
        sqlx::query_as(
            "SELECT attempt, status_code, error, outcome, response_excerpt, duration_ms, started_at
             FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Waits until the delivery reaches `state` (or fails the test after `within`).
    pub async fn wait_for_state(
        &self,
        id: DeliveryId,
        state: &str,
        within: Duration,
    ) -> DeliveryState {
        let deadline = Instant::now() + within;
        loop {
            let row = self.delivery_row(id).await;
            if row.state == state {
                return row;
            }
            assert!(
                Instant::now() < deadline,
                "delivery {id} did not reach '{state}' within {within:?}: {row:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Counts the target's requests per idempotency key.
    pub fn request_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for s in self.target.seen() {
            *counts.entry(s.idempotency_key).or_insert(0) += 1;
        }
        counts
    }
}

#[derive(sqlx::FromRow, Debug)]
pub struct DeliveryState {
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    pub delivered: bool,
    pub poll_scheduled: bool,
}

#[derive(sqlx::FromRow, Debug)]
pub struct AttemptRow {
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub outcome: String,
    pub response_excerpt: Option<String>,
    pub duration_ms: i32,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// `sale.forward` messages of these bodies, each with a fresh `traceparent`
/// in trace [`TRACE_ID`].
pub fn commands(bodies: &[Vec<u8>]) -> Vec<OutgoingMessage> {
    bodies
        .iter()
        .map(|b| {
            let headers = BTreeMap::from([(
                "traceparent".to_string(),
                format!("00-{TRACE_ID}-00f067aa0ba902b7-01"),
            )]);
            OutgoingMessage::new(
                ROUTING_FORWARD,
                uuid::Uuid::new_v4().to_string(),
                "sale.forward",
                headers,
                b.clone(),
            )
        })
        .collect()
}

/// A forwarder started by a test; stopped when dropped.
pub struct ForwarderHandle {
    stop: CancellationToken,
    /// The forwarder's metrics (`render()` for the Prometheus text).
    pub metrics: Metrics,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl ForwarderHandle {
    /// Stops it gracefully and waits (the batch in flight finishes).
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the forwarder stops within 10 s");
            result.unwrap().unwrap();
        }
    }
}

impl Drop for ForwarderHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
