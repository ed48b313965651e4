//! condition-filter end to end against the real local PostgreSQL and RabbitMQ:
//! its own database and vhost, sales and integrations inserted with SQL, sale
//! events published to the exchange, the service running in-process. Checks
//! the recorded decisions, the deliveries, exactly one `sale.forward` per
//! forwarded (sale, integration) even when events repeat, and that poison ends
//! up in `salesync.dead` with its reason — for events sent one by one and
//! for events bundled as ingest's relay sends them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use common::{
    Sandbox, TAP, event, in_sandbox, insert_sale, message, open_tap, start_filter, take, wait_count,
};
use salesync_core::amqp::publisher::OutgoingMessage;
use salesync_core::amqp::{bundle, topology};
use salesync_core::domain::ids::{IntegrationId, SaleId, TenantId};
use salesync_core::domain::{Currency, SaleInput, sample_sale};
use salesync_core::messages::{Envelope, ForwardCommand, SaleEvent, Trigger};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

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
    in_sandbox(move |sandbox| async move { scenario(&sandbox, how).await }).await;
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
        insert_sale(pool, f.tenant, id, &sale).await?;
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

fn raw(routing_key: &str, body: Vec<u8>) -> OutgoingMessage {
    OutgoingMessage::new(
        routing_key,
        uuid::Uuid::new_v4().to_string(),
        "sale.event",
        BTreeMap::new(),
        body,
    )
}

async fn scenario(sandbox: &Sandbox, how: Delivered) -> anyhow::Result<()> {
    let pool = salesync_core::db::connect_and_migrate(&sandbox.db_url, 4).await?;
    let f = insert_fixture(&pool).await?;

    let (conn, ch, publisher) = open_tap(sandbox).await?;
    let tap = TAP;
    let shutdown = CancellationToken::new();
    let service = start_filter(sandbox, &shutdown)?;

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
