//! Test fixtures on the machine's real PostgreSQL and RabbitMQ: a database
//! and a vhost created per test with unique names and removed afterwards
//! (also when the test panics), and helpers to drive the app in-process.
#![allow(dead_code)]

pub mod dlq;
pub mod seed;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ingest::group_commit::{GroupPolicy, SaleCommitter};
use salesync_core::api::quota::TenantQuota;
use salesync_core::api::routes::is_data_plane_path;
use salesync_core::api::token_cache::TokenCache;
use salesync_core::api::{AuthState, BodyLimits};
use salesync_core::crypto::SecretBox;
use salesync_core::egress::{self, EgressPolicy};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_core::outbox;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Notify;
use tower::ServiceExt;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh, migrated database, dropped when this value is.
pub struct TestDb {
    pub pool: PgPool,
    /// The test database's URL, for in-process services and the CLI.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let admin_url = database_url();
        let name = unique_name("ingest_test");
        let admin = PgPool::connect(&admin_url)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let mut url = reqwest::Url::parse(&admin_url).expect("DATABASE_URL is a URL");
        url.set_path(&format!("/{name}"));
        let pool = salesync_core::db::connect_and_migrate(url.as_str(), 5)
            .await
            .expect("migrate test database");
        Self {
            pool,
            url: url.to_string(),
            name,
            admin_url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, admin_url) = (self.name.clone(), self.admin_url.clone());
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = PgPool::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A fresh RabbitMQ vhost (guest has all permissions), deleted when dropped.
pub struct TestVhost {
    pub amqp_url: String,
    name: String,
    management: String,
    user: String,
    password: String,
}

impl TestVhost {
    pub async fn new() -> Self {
        let base = reqwest::Url::parse(&amqp_url()).expect("AMQP_URL is a URL");
        let host = base.host_str().unwrap_or("127.0.0.1").to_string();
        let user = match base.username() {
            "" => "guest".to_string(),
            u => u.to_string(),
        };
        let password = base.password().unwrap_or("guest").to_string();
        let management = std::env::var("RABBITMQ_MANAGEMENT_URL")
            .unwrap_or_else(|_| format!("http://{host}:15672"));
        let name = unique_name("ingest_test");
        let http = reqwest::Client::new();
        let put = |url: String, body: Value| {
            http.put(url)
                .basic_auth(&user, Some(&password))
                .json(&body)
                .send()
        };
        let r = put(
            format!("{management}/api/vhosts/{name}"),
            serde_json::json!({}),
        )
        .await
        .expect("management API reachable");
        assert!(r.status().is_success(), "create vhost: {}", r.status());
        let r = put(
            format!("{management}/api/permissions/{name}/{user}"),
            serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await
        .expect("management API reachable");
        assert!(r.status().is_success(), "set permissions: {}", r.status());
        let mut url = base.clone();
        url.set_path(&format!("/{name}"));
        Self {
            amqp_url: url.to_string(),
            name,
            management,
            user,
            password,
        }
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let url = format!("{}/api/vhosts/{}", self.management, self.name);
        let (user, password) = (self.user.clone(), self.password.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = reqwest::Client::new()
                    .delete(url)
                    .basic_auth(user, Some(password))
                    .send()
                    .await;
            });
        })
        .join();
    }
}

/// The app's state on `pool`. Starts the group committer, so it must be
/// called inside a tokio runtime.
/// Both services' state: the tests drive the whole API in-process, the data
/// plane (ingest) and the control plane (console) on one database.
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub secrets: Arc<SecretBox>,
    pub wake: Arc<Notify>,
    pub handoff: outbox::Handoff,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub auth: AuthState,
    pub body: BodyLimits,
    pub amqp_url: String,
    pub committer: SaleCommitter,
    pub egress: EgressPolicy,
    /// Where the test serves console, for providers' callbacks.
    pub public_url: Option<String>,
}

impl ApiState {
    pub fn data(&self) -> ingest::AppState {
        ingest::AppState {
            pool: self.pool.clone(),
            wake: self.wake.clone(),
            handoff: self.handoff.clone(),
            metrics: self.metrics.clone(),
            readiness: self.readiness.clone(),
            auth: AuthState {
                integration_policy: ingest::routes::integration_token_allowed,
                ..self.auth.clone()
            },
            body: self.body,
            committer: self.committer.clone(),
        }
    }

    pub fn control(&self) -> console::AppState {
        console::AppState {
            pool: self.pool.clone(),
            secrets: self.secrets.clone(),
            wake: self.wake.clone(),
            metrics: self.metrics.clone(),
            readiness: self.readiness.clone(),
            auth: AuthState {
                integration_policy: console::routes::integration_token_allowed,
                ..self.auth.clone()
            },
            body: self.body,
            amqp_url: self.amqp_url.clone(),
            egress: self.egress.clone(),
            public_url: self.public_url.clone(),
            web: Default::default(),
        }
    }
}

/// The console binary, for its operator commands: built with the
/// workspace's binaries (`cargo build --workspace --bins`, as ./test.sh
/// does), beside this test's own directory.
pub fn console_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/console
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|dir| dir.join("console"))
        .expect("target directory");
    assert!(
        bin.is_file(),
        "{} is not built: run cargo build --workspace --bins",
        bin.display()
    );
    bin
}

/// The whole API as one router, as a gateway in front of both services
/// routes it: the sales routes to ingest's app, every other to console's.
pub fn app(st: ApiState) -> Router {
    let data = ingest::app(st.data());
    let control = console::app::app(st.control());
    Router::new().fallback_service(tower::service_fn(move |req: Request<Body>| {
        let service = if is_data_plane_path(req.uri().path()) {
            data.clone()
        } else {
            control.clone()
        };
        service.oneshot(req)
    }))
}

pub fn state(pool: &PgPool) -> ApiState {
    let wake = Arc::new(Notify::new());
    // No relay runs here: handed-off rows stay in the outbox, where tests
    // look for them.
    let (handoff, _) = outbox::handoff();
    let committer = SaleCommitter::start(
        pool.clone(),
        handoff.clone(),
        GroupPolicy {
            max: 500,
            interval: Duration::ZERO,
        },
    );
    ApiState {
        pool: pool.clone(),
        secrets: Arc::new(
            SecretBox::from_spec(&SecretBox::generate_spec("test")).expect("generated key spec"),
        ),
        wake,
        handoff,
        metrics: Metrics::new("ingest-test"),
        readiness: Readiness::default(),
        auth: AuthState {
            pool: pool.clone(),
            token_cache: Arc::new(TokenCache::new(Duration::from_secs(30), 1000)),
            rate_limits: Arc::new(TenantQuota::new(pool.clone(), 1_000_000, 1_000_000)),
            admin_token: Some(Arc::from(ADMIN_TOKEN)),
            integration_policy: ingest::routes::integration_token_allowed,
        },
        body: BodyLimits {
            max_bytes: 8 * 1024 * 1024,
            read_timeout: Duration::from_secs(60),
        },
        amqp_url: amqp_url(),
        committer,
        // The test targets listen on loopback.
        egress: EgressPolicy::new(egress::parse_allow_nets("127.0.0.0/8,::1").unwrap()),
        public_url: None,
    }
}

/// The `field` of each problem of an error answer's body, in order.
pub fn error_fields(body: &Value) -> Vec<&str> {
    body["error"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect()
}

/// A response: status and JSON body (`Value::Null` when empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

/// Sends one request to the app. `body` is sent as JSON when given.
pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(b).expect("serialize"))),
        None => req.body(Body::empty()),
    }
    .expect("request");
    raw(app, req).await
}

pub async fn raw(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

/// Creates a tenant through the admin API; returns (tenant_id, token).
pub async fn tenant(app: &Router, name: &str, integration_only: bool) -> (String, String) {
    let a = call(
        app,
        "POST",
        "/admin/tenants",
        Some(ADMIN_TOKEN),
        Some(&serde_json::json!({"name": name, "integration_only": integration_only})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    (
        a.body["tenant_id"].as_str().expect("tenant_id").to_string(),
        a.body["token"].as_str().expect("token").to_string(),
    )
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count query")
}
