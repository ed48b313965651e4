//! condition-filter test fixtures on the real local PostgreSQL and RabbitMQ:
//! a database and a vhost of the test's own (dropped afterwards, also when
//! the test fails), events built and published, the service run in-process,
//! and what it sent read back.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::amqp::{self, bundle, headers_to_map, topology};
use salesync_core::domain::SaleInput;
use salesync_core::domain::ids::{SaleId, TenantId};
use salesync_core::messages::{EXCHANGE, Envelope, ROUTING_FORWARD, SaleEvent, Trigger};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub struct Sandbox {
    pub admin_db_url: String,
    pub db_name: String,
    pub db_url: String,
    pub vhost: String,
    pub amqp_url: String,
    pub http: reqwest::Client,
}

fn management_url() -> String {
    std::env::var("RABBITMQ_MANAGEMENT_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".into())
}

/// `url` with its last path segment (database or vhost) replaced.
fn with_last_segment(url: &str, segment: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    match base[scheme_end..].rfind('/') {
        Some(i) => format!("{}/{segment}{query}", &base[..scheme_end + i]),
        None => format!("{base}/{segment}{query}"),
    }
}

impl Sandbox {
    pub async fn create() -> anyhow::Result<Self> {
        let db_base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let amqp_base = std::env::var("AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let sandbox = Self {
            admin_db_url: with_last_segment(&db_base, "postgres"),
            db_name: format!("cf_test_{suffix}"),
            db_url: with_last_segment(&db_base, &format!("cf_test_{suffix}")),
            vhost: format!("cf-test-{suffix}"),
            amqp_url: with_last_segment(&amqp_base, &format!("cf-test-{suffix}")),
            http: reqwest::Client::new(),
        };
        let admin = PgPool::connect(&sandbox.admin_db_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            sandbox.db_name
        )))
        .execute(&admin)
        .await?;
        admin.close().await;
        let mgmt = management_url();
        sandbox
            .http
            .put(format!("{mgmt}/api/vhosts/{}", sandbox.vhost))
            .basic_auth("guest", Some("guest"))
            .send()
            .await?
            .error_for_status()?;
        sandbox
            .http
            .put(format!("{mgmt}/api/permissions/{}/guest", sandbox.vhost))
            .basic_auth("guest", Some("guest"))
            .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
            .send()
            .await?
            .error_for_status()?;
        Ok(sandbox)
    }

    /// Takes the test's database down for everyone (`up = false`): new
    /// connections are refused and those open are ended — the service's and
    /// the test's own pools alike — or lets connections in again.
    pub async fn set_database_up(&self, up: bool) -> anyhow::Result<()> {
        let admin = PgPool::connect(&self.admin_db_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {up}",
            self.db_name
        )))
        .execute(&admin)
        .await?;
        if !up {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&self.db_name)
            .execute(&admin)
            .await?;
        }
        admin.close().await;
        Ok(())
    }

    pub async fn destroy(&self) {
        let _ = self
            .http
            .delete(format!("{}/api/vhosts/{}", management_url(), self.vhost))
            .basic_auth("guest", Some("guest"))
            .send()
            .await;
        if let Ok(admin) = PgPool::connect(&self.admin_db_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}

/// Runs `test` in a fresh sandbox and always cleans up.
pub async fn in_sandbox<F, Fut>(test: F)
where
    F: FnOnce(std::sync::Arc<Sandbox>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    // Spans must be recorded for the trace to be carried on; harmless if a
    // subscriber is installed already.
    let _telemetry = salesync_core::telemetry::init("condition-filter-test", None, "text");
    let sandbox = std::sync::Arc::new(Sandbox::create().await.expect("test database and vhost"));
    // In its own task so a failed assertion still reaches the clean-up below.
    let run = tokio::spawn(test(sandbox.clone())).await;
    sandbox.destroy().await;
    match run {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("scenario task: {e}"),
    }
}

pub async fn insert_sale(
    pool: &PgPool,
    tenant: TenantId,
    id: SaleId,
    sale: &SaleInput,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO sales (id, tenant_id, external_id, payload_hash, sale, status,
             currency, gross, occurred_at, business_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(tenant)
    .bind(&sale.external_id)
    .bind(sale.payload_hash().to_vec())
    .bind(serde_json::to_value(sale)?)
    .bind(&sale.status)
    .bind(sale.currency.code())
    .bind(sale.totals.gross)
    .bind(sale.occurred_at)
    .bind(sale.business_date)
    .execute(pool)
    .await?;
    Ok(())
}

pub fn event(
    tenant: TenantId,
    sale: SaleId,
    trigger: Trigger,
    status: &str,
    body: SaleInput,
) -> Envelope<SaleEvent> {
    Envelope::new(
        tenant,
        sale,
        SaleEvent {
            trigger,
            status: status.into(),
            accepted_at: Utc::now(),
            sale: body,
        },
    )
}

pub fn message(env: &Envelope<SaleEvent>, headers: BTreeMap<String, String>) -> OutgoingMessage {
    OutgoingMessage::new(
        env.payload.trigger.routing_key(),
        env.id.to_string(),
        "sale.event",
        headers,
        env.to_bytes(),
    )
}

pub type Received = Vec<(BTreeMap<String, String>, Vec<u8>)>;

/// Takes messages off `queue` (bundles opened) until `want` arrived (then waits `quiet` more,
/// to catch any extra) or `deadline` passed.
pub async fn take(
    ch: &lapin::Channel,
    queue: &str,
    want: usize,
    quiet: Duration,
    deadline: Duration,
) -> anyhow::Result<Received> {
    let mut got = Vec::new();
    let start = tokio::time::Instant::now();
    let mut full_since = None;
    loop {
        match ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await?
        {
            // A bundle (forward commands of one commit) counts as its parts;
            // a dead letter (a broken bundle among them) is taken as it is.
            Some(m)
                if m.delivery.properties.kind().as_ref().map(|k| k.as_str())
                    == Some(bundle::BUNDLE_TYPE)
                    && queue != topology::Q_DEAD =>
            {
                let parts = bundle::unbundle(&m.delivery.data).map_err(anyhow::Error::msg)?;
                got.extend(parts.into_iter().map(|p| (p.headers, p.body)));
            }
            Some(m) => got.push((
                headers_to_map(m.delivery.properties.headers().as_ref()),
                m.delivery.data.clone(),
            )),
            None => {
                if got.len() >= want {
                    let since = *full_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= quiet {
                        return Ok(got);
                    }
                }
                if start.elapsed() > deadline {
                    return Ok(got);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Waits until `sql` (a count) reaches `want`.
pub async fn wait_count(pool: &PgPool, sql: &'static str, want: i64) -> anyhow::Result<i64> {
    let start = tokio::time::Instant::now();
    loop {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await?;
        if n >= want || start.elapsed() > Duration::from_secs(20) {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A queue of the test's own bound to `sale.forward`: what the forwarder would get.
pub const TAP: &str = "test.forward-tap";

/// Declares the topology (as every service does) and [`TAP`]; a channel to
/// take messages with and a publisher.
pub async fn open_tap(
    sandbox: &Sandbox,
) -> anyhow::Result<(lapin::Connection, lapin::Channel, Publisher)> {
    let conn = amqp::connect(&sandbox.amqp_url, "condition-filter-test").await?;
    let ch = conn.create_channel().await?;
    topology::declare(&ch).await?;
    ch.queue_declare(
        TAP.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        TAP.into(),
        EXCHANGE.into(),
        ROUTING_FORWARD.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let publisher = Publisher::open(&conn).await?;
    Ok((conn, ch, publisher))
}

/// Starts condition-filter in-process, until `shutdown`.
pub fn start_filter(
    sandbox: &Sandbox,
    shutdown: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let config = <condition_filter::Config as clap::Parser>::try_parse_from([
        "condition-filter",
        "--database-url",
        &sandbox.db_url,
        "--amqp-url",
        &sandbox.amqp_url,
        "--ops-listen",
        "127.0.0.1:0",
        "--prefetch",
        "64",
        "--shutdown-grace-secs",
        "5",
    ])?;
    Ok(tokio::spawn(condition_filter::run(
        config,
        shutdown.clone(),
    )))
}
