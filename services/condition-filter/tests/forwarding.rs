//! condition-filter end to end against the real local PostgreSQL and RabbitMQ:
//! its own database and vhost, sales and integrations inserted with SQL, sale
//! events published to the exchange, the service running in-process. Checks
//! the recorded decisions, the deliveries, exactly one `sale.forward` per
//! forwarded (sale, integration) even when events repeat, and that poison ends
//! up in `salesync.dead` with its reason — for events sent one by one and
//! for events bundled as ingest's relay sends them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::amqp::{self, bundle, headers_to_map, topology};
use salesync_core::domain::ids::{IntegrationId, SaleId, TenantId};
use salesync_core::domain::{Currency, SaleInput, sample_sale};
use salesync_core::messages::{
    EXCHANGE, Envelope, ForwardCommand, ROUTING_FORWARD, SaleEvent, Trigger,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

struct Sandbox {
    admin_db_url: String,
    db_name: String,
    db_url: String,
    vhost: String,
    amqp_url: String,
    http: reqwest::Client,
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
    async fn create() -> anyhow::Result<Self> {
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

    async fn destroy(&self) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decides_forwards_once_and_dead_letters_poison() {
    run_scenario(Delivered::OneByOne).await;
}

/// The same events bundled as ingest's relay sends a commit group: decided
/// exactly as one by one; a poison part is dead-lettered alone (its own
/// body, as a message of its own), a bundle that does not decode whole, and
/// a redelivered bundle forwards nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decides_bundled_events_as_if_they_came_one_by_one() {
    run_scenario(Delivered::Bundled).await;
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Delivered {
    OneByOne,
    Bundled,
}

async fn run_scenario(how: Delivered) {
    // Spans must be recorded for the trace to be carried on; harmless if a
    // subscriber is installed already.
    let _telemetry = salesync_core::telemetry::init("condition-filter-test", None, "text");
    let sandbox = std::sync::Arc::new(Sandbox::create().await.expect("test database and vhost"));
    // In its own task so a failed assertion still reaches the clean-up below.
    let run = tokio::spawn({
        let sandbox = sandbox.clone();
        async move { scenario(&sandbox, how).await }
    })
    .await;
    sandbox.destroy().await;
    match run {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("scenario task: {e}"),
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: uuid::Uuid,
    sale_id: SaleId,
    integration_id: IntegrationId,
    purpose: String,
    dedupe_key: String,
    target_url: String,
    target_ref: String,
    state: String,
    /// What the forwarder will send (the command only names the delivery).
    body: serde_json::Value,
}

struct Fixture {
    tenant: TenantId,
    books: IntegrationId,
    partner: IntegrationId,
    s1: SaleId,
    s2: SaleId,
    s3: SaleId,
}

async fn insert_fixture(pool: &PgPool) -> anyhow::Result<Fixture> {
    let f = Fixture {
        tenant: TenantId::new(),
        books: IntegrationId::new(),
        partner: IntegrationId::new(),
        s1: SaleId::new(),
        s2: SaleId::new(),
        s3: SaleId::new(),
    };
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2)")
        .bind(f.tenant)
        .bind(format!("tenant-{}", f.tenant))
        .execute(pool)
        .await?;
    let integrations = [
        // Accounting webhook: automatic, on completed and paid sales.
        (
            f.books,
            "books",
            "webhook",
            "http://books.invalid/hook",
            vec!["completed", "paid"],
            serde_json::json!({}),
            serde_json::json!({}),
        ),
        // Another salesync: only USD sales, SKUs and flow mapped.
        (
            f.partner,
            "partner",
            "salesync",
            "http://partner.invalid/",
            vec![],
            serde_json::json!({"currencies": ["USD"]}),
            serde_json::json!({"skus": {"COF-001": "P-COF"}, "target_flow": "shop"}),
        ),
    ];
    for (id, name, kind, url, triggers, conditions, mapping) in integrations {
        sqlx::query(
            "INSERT INTO integrations (id, tenant_id, name, target_kind, target_url,
                 signing_secrets_enc, trigger_statuses, conditions, mapping)
             VALUES ($1, $2, $3, $4, $5, '\\x00', $6, $7, $8)",
        )
        .bind(id)
        .bind(f.tenant)
        .bind(name)
        .bind(kind)
        .bind(url)
        .bind(triggers)
        .bind(conditions)
        .bind(mapping)
        .execute(pool)
        .await?;
    }
    for (id, sale) in [(f.s1, sale1()), (f.s2, sale2()), (f.s3, sale3())] {
        sqlx::query(
            "INSERT INTO sales (id, tenant_id, external_id, payload_hash, sale, status,
                 currency, gross, occurred_at, business_date)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(f.tenant)
        .bind(&sale.external_id)
        .bind(sale.payload_hash().to_vec())
        .bind(serde_json::to_value(&sale)?)
        .bind(&sale.status)
        .bind(sale.currency.code())
        .bind(sale.totals.gross)
        .bind(sale.occurred_at)
        .bind(sale.business_date)
        .execute(pool)
        .await?;
    }
    Ok(f)
}

fn sale1() -> SaleInput {
    sample_sale("pos-1")
}
fn sale2() -> SaleInput {
    let mut s = sample_sale("pos-2");
    s.status = "draft".into();
    s
}
fn sale3() -> SaleInput {
    let mut s = sample_sale("pos-3");
    s.currency = Currency::USD;
    s
}

fn event(
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

fn message(env: &Envelope<SaleEvent>, headers: BTreeMap<String, String>) -> OutgoingMessage {
    OutgoingMessage::new(
        env.payload.trigger.routing_key(),
        env.id.to_string(),
        "sale.event",
        headers,
        env.to_bytes(),
    )
}

fn raw(routing_key: &str, body: Vec<u8>) -> OutgoingMessage {
    OutgoingMessage::new(
        routing_key,
        uuid::Uuid::new_v4().to_string(),
        "sale.event",
        BTreeMap::new(),
        body,
    )
}

type Received = Vec<(BTreeMap<String, String>, Vec<u8>)>;

/// Takes messages off `queue` (bundles opened) until `want` arrived (then waits `quiet` more,
/// to catch any extra) or `deadline` passed.
async fn take(
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
async fn wait_count(pool: &PgPool, sql: &'static str, want: i64) -> anyhow::Result<i64> {
    let start = tokio::time::Instant::now();
    loop {
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await?;
        if n >= want || start.elapsed() > Duration::from_secs(20) {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario(sandbox: &Sandbox, how: Delivered) -> anyhow::Result<()> {
    let pool = salesync_core::db::connect_and_migrate(&sandbox.db_url, 4).await?;
    let f = insert_fixture(&pool).await?;

    // Topology first (as every service does), plus a queue of our own bound
    // to sale.forward to see what the forwarder would get.
    let conn = amqp::connect(&sandbox.amqp_url, "condition-filter-test").await?;
    let ch = conn.create_channel().await?;
    topology::declare(&ch).await?;
    let tap = "test.forward-tap";
    ch.queue_declare(
        tap.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        tap.into(),
        EXCHANGE.into(),
        ROUTING_FORWARD.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let publisher = Publisher::open(&conn).await?;

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
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(condition_filter::run(config, shutdown.clone()));

    // e1 twice (a redelivery: same envelope id), then e2 for the same sale.
    let e1 = event(f.tenant, f.s1, Trigger::Created, "completed", sale1());
    let e2 = event(f.tenant, f.s1, Trigger::StatusChanged, "paid", sale1());
    let e3 = event(f.tenant, f.s2, Trigger::Created, "draft", sale2());
    let e4 = event(f.tenant, f.s3, Trigger::Created, "completed", sale3());
    let gone = IntegrationId::new();
    let manual_gone = event(
        f.tenant,
        f.s1,
        Trigger::Manual {
            integration_id: gone,
        },
        "completed",
        sale1(),
    );
    let missing_sale = SaleId::new();
    let missing = event(
        f.tenant,
        missing_sale,
        Trigger::Created,
        "completed",
        sale1(),
    );
    let mut v7: serde_json::Value = serde_json::from_slice(&e4.to_bytes())?;
    v7["schema_version"] = 7.into();
    let traced = BTreeMap::from([(
        "traceparent".to_string(),
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01"),
    )]);
    let first = match how {
        Delivered::OneByOne => vec![
            message(&e1, traced.clone()),
            message(&e1, traced),
            message(&e2, BTreeMap::new()),
            message(&e3, BTreeMap::new()),
            message(&e4, BTreeMap::new()),
            message(&manual_gone, BTreeMap::new()),
            message(&missing, BTreeMap::new()),
            raw("sale.ingested", b"{ not json".to_vec()),
            raw("sale.ingested", serde_json::to_vec(&v7)?),
        ],
        Delivered::Bundled => {
            // One bundle of six `sale.ingested` parts (two of them poison),
            // then what cannot join it: other routing keys, a body that is
            // not JSON, and a bundle that does not decode.
            let mut messages = bundle::bundle(
                vec![
                    message(&e1, traced.clone()),
                    message(&e1, traced),
                    message(&e3, BTreeMap::new()),
                    message(&e4, BTreeMap::new()),
                    message(&missing, BTreeMap::new()),
                    raw("sale.ingested", serde_json::to_vec(&v7)?),
                    message(&e2, BTreeMap::new()),
                    message(&manual_gone, BTreeMap::new()),
                    raw("sale.ingested", b"{ not json".to_vec()),
                ],
                |_| true,
            );
            let kinds: Vec<&str> = messages.iter().map(|m| m.message_type.as_str()).collect();
            anyhow::ensure!(
                kinds
                    == [
                        bundle::BUNDLE_TYPE,
                        "sale.event",
                        "sale.event",
                        "sale.event"
                    ],
                "bundled as {kinds:?}"
            );
            let mut broken = raw("sale.ingested", b"{\"parts\": 1}".to_vec());
            broken.message_type = bundle::BUNDLE_TYPE.into();
            messages.push(broken);
            messages
        }
    };
    publisher.publish_all(&first).await?;
    let dead_wanted = match how {
        Delivered::OneByOne => 4,
        Delivered::Bundled => 5,
    };

    let decisions = wait_count(&pool, "SELECT count(*) FROM sale_decisions", 8).await?;
    anyhow::ensure!(decisions == 8, "expected 8 decisions, got {decisions}");
    let forwards = take(
        &ch,
        tap,
        3,
        Duration::from_millis(500),
        Duration::from_secs(20),
    )
    .await?;
    let dead = take(
        &ch,
        topology::Q_DEAD,
        dead_wanted,
        Duration::from_millis(200),
        Duration::from_secs(20),
    )
    .await?;

    // The same events once more, now certainly in a later batch (bundled:
    // e1's bundle again — a redelivered bundle).
    let again = match how {
        Delivered::OneByOne => vec![message(&e1, BTreeMap::new()), message(&e2, BTreeMap::new())],
        Delivered::Bundled => {
            let mut again = bundle::bundle(
                vec![message(&e1, BTreeMap::new()), message(&e1, BTreeMap::new())],
                |_| true,
            );
            again.push(message(&e2, BTreeMap::new()));
            again
        }
    };
    publisher.publish_all(&again).await?;
    let e5 = event(f.tenant, f.s1, Trigger::StatusChanged, "paid", sale1());
    publisher
        .publish_all(&[message(&e5, BTreeMap::new())])
        .await?;
    let decisions = wait_count(&pool, "SELECT count(*) FROM sale_decisions", 10).await?;
    let more_forwards = take(&ch, tap, 0, Duration::from_secs(1), Duration::from_secs(5)).await?;

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), service).await;
    let _ = conn.close(200, "bye".into()).await;

    // --- decisions: every (event, integration), with reasons ---
    anyhow::ensure!(decisions == 10, "expected 10 decisions, got {decisions}");
    let rows: Vec<(uuid::Uuid, IntegrationId, String, String, bool, String)> = sqlx::query_as(
        "SELECT event_id, integration_id, trigger, status, forwarded, reason FROM sale_decisions",
    )
    .fetch_all(&pool)
    .await?;
    let find = |e: &Envelope<SaleEvent>, i: IntegrationId| {
        rows.iter()
            .find(|r| r.0 == *e.id.as_uuid() && r.1 == i)
            .map(|r| (r.2.as_str(), r.3.as_str(), r.4, r.5.as_str()))
    };
    let currency = "currency EUR not in [USD]";
    let expected = [
        (
            "e1 books",
            &e1,
            f.books,
            ("created", "completed", true, "forwarded"),
        ),
        (
            "e1 partner",
            &e1,
            f.partner,
            ("created", "completed", false, currency),
        ),
        (
            "e2 books",
            &e2,
            f.books,
            ("status_changed", "paid", false, "already forwarded"),
        ),
        (
            "e2 partner",
            &e2,
            f.partner,
            ("status_changed", "paid", false, currency),
        ),
        (
            "e3 books",
            &e3,
            f.books,
            (
                "created",
                "draft",
                false,
                "status 'draft' does not trigger forwarding (triggers: completed, paid)",
            ),
        ),
        (
            "e3 partner",
            &e3,
            f.partner,
            ("created", "draft", false, currency),
        ),
        (
            "e4 books",
            &e4,
            f.books,
            ("created", "completed", true, "forwarded"),
        ),
        (
            "e4 partner",
            &e4,
            f.partner,
            ("created", "completed", true, "forwarded"),
        ),
        (
            "e5 books",
            &e5,
            f.books,
            ("status_changed", "paid", false, "already forwarded"),
        ),
        (
            "e5 partner",
            &e5,
            f.partner,
            ("status_changed", "paid", false, currency),
        ),
    ];
    for (case, env, integration, want) in expected {
        assert_eq!(find(env, integration), Some(want), "{case}");
    }

    // --- deliveries: one per forwarded (sale, integration) ---
    let deliveries: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT id, sale_id, integration_id, purpose, dedupe_key, target_url, target_ref, state,
                body
         FROM deliveries ORDER BY target_url, sale_id",
    )
    .fetch_all(&pool)
    .await?;
    let summary: Vec<(SaleId, IntegrationId, &str, &str)> = deliveries
        .iter()
        .map(|d| {
            (
                d.sale_id,
                d.integration_id,
                d.target_url.as_str(),
                d.state.as_str(),
            )
        })
        .collect();
    let mut want = vec![
        (f.s1, f.books, "http://books.invalid/hook", "pending"),
        (f.s3, f.books, "http://books.invalid/hook", "pending"),
        (
            f.s3,
            f.partner,
            "http://partner.invalid/v1/sales",
            "pending",
        ),
    ];
    want.sort_by_key(|w| (w.2, w.0));
    assert_eq!(summary, want);
    for d in &deliveries {
        assert_eq!(d.purpose, "forward");
        assert_eq!(
            d.dedupe_key,
            format!("forward:{}:{}", d.sale_id, d.integration_id)
        );
        assert_eq!(
            d.target_ref,
            d.id.to_string(),
            "target_ref is the delivery id"
        );
    }

    // --- forward commands: exactly one per delivery, trace carried on ---
    assert_eq!(more_forwards.len(), 0, "repeated events sent nothing");
    assert_eq!(forwards.len(), 3, "one sale.forward per delivery");
    let mut commands = Vec::new();
    for (headers, body) in &forwards {
        let cmd = Envelope::<ForwardCommand>::decode(body)?;
        commands.push((cmd, headers.clone()));
    }
    for d in &deliveries {
        let matching: Vec<_> = commands
            .iter()
            .filter(|(c, _)| *c.payload.delivery_id.as_uuid() == d.id)
            .collect();
        assert_eq!(matching.len(), 1, "command for delivery {}", d.id);
        let (cmd, headers) = matching[0];
        assert_eq!(cmd.sale_id, d.sale_id);
        assert_eq!(cmd.tenant_id, f.tenant);
        assert_eq!(cmd.payload.integration_id, Some(d.integration_id));
        assert_eq!(cmd.payload.target_url, d.target_url);
        assert_eq!(cmd.payload.target_ref, d.target_ref);
        assert_eq!(cmd.payload.body, None, "the body stays in the delivery row");
        if d.integration_id == f.partner {
            // Mapped for the other salesync.
            assert_eq!(d.body["external_id"], d.target_ref.as_str());
            assert_eq!(d.body["sale_number"], "pos-3");
            assert_eq!(d.body["lines"][0]["sku"], "P-COF");
            assert_eq!(d.body["metadata"]["flow"], "shop");
            assert_eq!(d.body["metadata"]["source_tenant"], f.tenant.to_string());
        } else {
            assert_eq!(d.body["type"], "sale.forwarded");
            assert_eq!(d.body["data"]["sale_id"], d.sale_id.to_string());
        }
        if d.sale_id == f.s1
            && tracing::enabled!(target: "condition_filter::handler", tracing::Level::INFO)
        {
            let tp = headers.get("traceparent").cloned().unwrap_or_default();
            assert!(tp.contains(TRACE_ID), "trace carried on: {tp:?}");
        }
    }

    // --- dead letters: each with its reason, a bundle's parts alone ---
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|(h, _)| h.get("x-dead-reason").cloned().unwrap_or_default())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), dead_wanted, "{reasons:?}");
    assert_eq!(
        reasons[0],
        format!("integration not found: {gone} (deleted?)")
    );
    let mut rest = &reasons[1..];
    if how == Delivered::Bundled {
        assert!(
            rest[0].starts_with("poison: undecodable bundle"),
            "{reasons:?}"
        );
        rest = &rest[1..];
    }
    assert!(
        rest[0].starts_with("poison: undecodable message"),
        "{reasons:?}"
    );
    assert_eq!(rest[1], "poison: unknown schema version 7");
    assert_eq!(rest[2], format!("sale not found: {missing_sale}"));
    for (h, body) in &dead {
        assert_eq!(
            h.get("x-original-queue").map(String::as_str),
            Some(topology::Q_SALE_EVENTS)
        );
        if h.get("x-dead-reason") == Some(&format!("sale not found: {missing_sale}")) {
            // Bundled or not, the dead letter is the event itself, and a
            // replay sends it back under its own routing key.
            assert_eq!(body, &missing.to_bytes());
            assert_eq!(
                h.get("x-original-routing-key").map(String::as_str),
                Some("sale.ingested")
            );
        }
    }

    // --- clean stop within the grace period ---
    match stopped {
        Ok(Ok(Ok(()))) => {}
        other => anyhow::bail!("service did not stop cleanly: {other:?}"),
    }
    let (outbox_left,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .context("outbox count")?;
    assert_eq!(outbox_left, 0, "relay published everything");
    pool.close().await;
    Ok(())
}
