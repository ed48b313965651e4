//! The status consumer on a real broker (own vhost) and database: statuses
//! published to `salesync.status` are applied once, recorded, and reported
//! to the tenant's webhook; poison is dead-lettered.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use common::ApiState;
use common::{TestDb, TestVhost, call, count, state, tenant};
use ingest::status_consumer::StatusConsumer;
use lapin::options::BasicGetOptions;
use salesync_core::amqp::consumer::{self, ConsumerConfig};
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::amqp::{self, headers_to_map, topology};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId, sample_sale};
use salesync_core::messages::{Envelope, ForwardCommand, ROUTING_STATUS, StatusUpdate};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn update(
    tenant: TenantId,
    sale: SaleId,
    integration: IntegrationId,
    target: &str,
    mapped: Option<&str>,
) -> Envelope<StatusUpdate> {
    Envelope::new(
        tenant,
        sale,
        StatusUpdate {
            delivery_id: DeliveryId::new(),
            integration_id: integration,
            target_status: target.into(),
            mapped_status: mapped.map(str::to_string),
            observed_at: chrono::Utc::now(),
            unmapped_reason: None,
        },
    )
}

async fn publish(p: &Publisher, id: &str, body: Vec<u8>) {
    let m = OutgoingMessage::new(
        ROUTING_STATUS,
        id.into(),
        "sale.status",
        BTreeMap::new(),
        body,
    );
    p.publish_all(&[m]).await.expect("publish confirmed");
}

async fn publish_update(p: &Publisher, e: &Envelope<StatusUpdate>) {
    publish(p, &e.id.to_string(), e.to_bytes()).await;
}

/// Polls `sql` (a count) until it reaches `want`, for up to 20 s.
async fn wait_for(pool: &PgPool, sql: &'static str, want: i64) {
    for _ in 0..200 {
        if count(pool, sql).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out waiting for {sql} = {want} (is {})",
        count(pool, sql).await
    );
}

/// Runs the status consumer on the test's database and vhost until `shutdown`.
fn start_consumer(
    db: &TestDb,
    vhost: &TestVhost,
    st: &ApiState,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(consumer::run(
        ConsumerConfig {
            amqp_url: vhost.amqp_url.clone(),
            queue: topology::Q_STATUS,
            prefetch: 50,
            connection_name: "ingest-test-status".into(),
            retry_delays: vec![],
        },
        Arc::new(StatusConsumer {
            pool: db.pool.clone(),
            wake: st.wake.clone(),
        }),
        Readiness::default().part("status"),
        Metrics::new("ingest-test"),
        shutdown.clone(),
    ))
}

/// A connection with the topology declared, a channel and a publisher on it.
async fn open_broker(vhost: &TestVhost) -> (lapin::Connection, lapin::Channel, Publisher) {
    let conn = amqp::connect(&vhost.amqp_url, "ingest-test-publisher")
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    topology::declare(&ch).await.expect("topology");
    let publisher = Publisher::open(&conn).await.expect("publisher");
    (conn, ch, publisher)
}

/// Takes messages from `salesync.dead` until `want` arrived (or 30 s passed),
/// then any more that come within a second: (headers, body) each.
async fn take_dead(ch: &lapin::Channel, want: usize) -> Vec<(BTreeMap<String, String>, Vec<u8>)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    loop {
        let m = ch
            .basic_get(topology::Q_DEAD.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get");
        if let Some(m) = m {
            let headers = headers_to_map(m.delivery.properties.headers().as_ref());
            got.push((headers, m.delivery.data.clone()));
            continue;
        }
        let now = tokio::time::Instant::now();
        if got.len() >= want {
            let until = *quiet_until.get_or_insert(now + Duration::from_secs(1));
            if now >= until {
                return got;
            }
        } else if now >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Status updates for twelve sales in one batch, one of which the database
/// refuses (a trigger in the test's database raises for its sale): that one
/// is dead-lettered with the database's reason and its own body, every other
/// is applied exactly once, and the queue drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_the_database_refuses_is_dead_lettered_and_the_rest_applied_once() {
    const SALES: usize = 12;
    const POISON: usize = 7;
    let db = TestDb::new().await;
    let vhost = TestVhost::new().await;
    let st = state(&db.pool);
    let app = common::app(st.clone());
    let (tenant_id, token) = tenant(&app, "Shop", false).await;
    let tenant_id: TenantId = tenant_id.parse().expect("tenant id");
    let mut sales = Vec::new();
    for n in 0..SALES {
        let sale = serde_json::to_value(sample_sale(&format!("pos-{n}"))).expect("sale");
        let a = call(&app, "POST", "/v1/sales", Some(&token), Some(&sale)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let id: SaleId = a.body["id"].as_str().expect("id").parse().expect("sale id");
        sales.push(id);
    }
    let poison = sales[POISON];
    sqlx::query(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'sale % is poison', NEW.sale_id; END $$",
    )
    .execute(&db.pool)
    .await
    .expect("function");
    // A uuid, so formatting it into the DDL is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON sale_status_history FOR EACH ROW
         WHEN (NEW.sale_id = '{poison}') EXECUTE FUNCTION refuse()"
    )))
    .execute(&db.pool)
    .await
    .expect("trigger");

    // All queued before the consumer starts: it finds them in one batch.
    let (conn, ch, publisher) = open_broker(&vhost).await;
    let integration = IntegrationId::new();
    let updates: Vec<_> = sales
        .iter()
        .map(|s| update(tenant_id, *s, integration, "processed", Some("paid")))
        .collect();
    for u in &updates {
        publish_update(&publisher, u).await;
    }
    let shutdown = CancellationToken::new();
    let consumer_task = start_consumer(&db, &vhost, &st, &shutdown);
    let dead = take_dead(&ch, 1).await;
    wait_for(
        &db.pool,
        "SELECT count(*) FROM sales WHERE status = 'paid'",
        SALES as i64 - 1,
    )
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), consumer_task)
        .await
        .expect("the consumer stops")
        .expect("consumer task");

    assert_eq!(dead.len(), 1, "{dead:?}");
    let (headers, body) = &dead[0];
    assert_eq!(
        headers.get("x-dead-reason").map(String::as_str),
        Some(format!("refused by the database: sale {poison} is poison (SQLSTATE P0001)").as_str())
    );
    assert_eq!(
        headers.get("x-original-queue").map(String::as_str),
        Some(topology::Q_STATUS)
    );
    assert_eq!(body, &updates[POISON].to_bytes());
    // Every other update applied exactly once; the poison sale untouched.
    let applied: Vec<(SaleId, i64)> = sqlx::query_as(
        "SELECT sale_id, count(*) FROM sale_status_history
         WHERE origin = 'integration' GROUP BY sale_id ORDER BY sale_id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("history");
    let mut others: Vec<(SaleId, i64)> = sales
        .iter()
        .filter(|s| **s != poison)
        .map(|s| (*s, 1))
        .collect();
    others.sort();
    assert_eq!(applied, others);
    let status: String = sqlx::query_scalar("SELECT status FROM sales WHERE id = $1")
        .bind(poison)
        .fetch_one(&db.pool)
        .await
        .expect("poison sale");
    assert_ne!(status, "paid");
    let q = ch
        .queue_declare(
            topology::Q_STATUS.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("status queue");
    assert_eq!(q.message_count(), 0, "the queue drained");
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_updates_are_applied_once_and_reported() {
    let db = TestDb::new().await;
    let vhost = TestVhost::new().await;
    let st = state(&db.pool);
    let app = common::app(st.clone());
    let (tenant_id, token) = tenant(&app, "Shop", false).await;
    let tenant_id: TenantId = tenant_id.parse().expect("tenant id");
    let sale = serde_json::to_value(sample_sale("pos-1")).expect("sale");
    let a = call(&app, "POST", "/v1/sales", Some(&token), Some(&sale)).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let sale_id: SaleId = a.body["id"].as_str().expect("id").parse().expect("sale id");
    let integration = IntegrationId::new();

    let shutdown = CancellationToken::new();
    let consumer_task = start_consumer(&db, &vhost, &st, &shutdown);
    let (conn, ch, publisher) = open_broker(&vhost).await;

    // Mapped: the sale's status changes and the history says why.
    let paid = update(tenant_id, sale_id, integration, "processed", Some("paid"));
    publish_update(&publisher, &paid).await;
    wait_for(
        &db.pool,
        "SELECT count(*) FROM sales WHERE status = 'paid'",
        1,
    )
    .await;
    let (status, origin, target, key): (String, String, String, String) = sqlx::query_as(
        "SELECT status, origin, target_status, dedupe_key FROM sale_status_history
         WHERE origin = 'integration'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("history");
    assert_eq!(
        (status.as_str(), origin.as_str(), target.as_str()),
        ("paid", "integration", "processed")
    );
    assert_eq!(key, format!("integration:{integration}:processed"));

    // The same message again, then an unmapped one: one row each.
    publish_update(&publisher, &paid).await;
    let limbo = update(tenant_id, sale_id, integration, "limbo", None);
    publish_update(&publisher, &limbo).await;
    wait_for(
        &db.pool,
        "SELECT count(*) FROM sale_status_history WHERE note IS NOT NULL",
        1,
    )
    .await;
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM sale_status_history WHERE origin = 'integration'"
        )
        .await,
        2
    );
    let (status, note): (String, String) = sqlx::query_as(
        "SELECT status, note FROM sale_status_history WHERE target_status = 'limbo'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("unmapped row");
    assert_eq!(status, "paid", "unmapped keeps the current status");
    assert_eq!(note, "unmapped target status 'limbo': not synchronised");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM sales WHERE status = 'paid'").await,
        1
    );
    // Carried-back statuses never re-trigger forwarding; no webhook is set yet.
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM outbox WHERE routing_key <> 'sale.ingested'"
        )
        .await,
        0
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM deliveries").await, 0);

    // With a webhook: a status_webhook delivery and its forwarder command.
    let a = call(
        &app,
        "PUT",
        "/v1/webhook",
        Some(&token),
        Some(&json!({"url": "https://shop.example/status"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let refunded = update(
        tenant_id,
        sale_id,
        integration,
        "reversed",
        Some("refunded"),
    );
    publish_update(&publisher, &refunded).await;
    wait_for(
        &db.pool,
        "SELECT count(*) FROM deliveries WHERE purpose = 'status_webhook'",
        1,
    )
    .await;
    let (delivery_id, target_url, target_ref, integration_id, dedupe, webhook_body): (
        DeliveryId,
        String,
        String,
        Option<IntegrationId>,
        String,
        serde_json::Value,
    ) = sqlx::query_as(
        "SELECT id, target_url, target_ref, integration_id, dedupe_key, body FROM deliveries",
    )
    .fetch_one(&db.pool)
    .await
    .expect("delivery");
    assert_eq!(target_url, "https://shop.example/status");
    assert_eq!(target_ref, delivery_id.to_string());
    assert_eq!(integration_id, None);
    assert!(dedupe.starts_with("status:"), "{dedupe}");
    let body: Vec<u8> =
        sqlx::query_scalar("SELECT body FROM outbox WHERE routing_key = 'sale.forward'")
            .fetch_one(&db.pool)
            .await
            .expect("outbox command");
    let cmd = Envelope::<ForwardCommand>::decode(&body).expect("forward command");
    assert_eq!(cmd.tenant_id, tenant_id);
    assert_eq!(cmd.payload.delivery_id, delivery_id);
    assert_eq!(cmd.payload.body, None, "the body stays in the delivery row");
    let data = &webhook_body["data"];
    assert_eq!(webhook_body["type"], "sale.status_changed");
    assert_eq!(data["status"], "refunded");
    assert_eq!(data["previous_status"], "paid");
    assert_eq!(data["origin"], "integration");
    assert_eq!(data["target_status"], "reversed");
    assert_eq!(data["external_id"], "pos-1");
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM sales WHERE status = 'refunded'"
        )
        .await,
        1
    );

    // Poison and another tenant's claim are dead-lettered, not applied.
    publish(&publisher, "poison-1", b"not json".to_vec()).await;
    let stranger = update(
        TenantId::new(),
        sale_id,
        integration,
        "hijack",
        Some("void"),
    );
    publish_update(&publisher, &stranger).await;
    let mut reasons = Vec::new();
    for _ in 0..200 {
        if let Some(m) = ch
            .basic_get(topology::Q_DEAD.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")
        {
            let headers = headers_to_map(m.delivery.properties.headers().as_ref());
            reasons.push(headers.get("x-dead-reason").cloned().unwrap_or_default());
            if reasons.len() == 2 {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].starts_with("poison:"), "{reasons:?}");
    assert!(reasons[1].starts_with("tenant_mismatch:"), "{reasons:?}");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM sales WHERE status = 'void'").await,
        0
    );

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), consumer_task).await;
    let _ = conn.close(200, "bye".into()).await;
}
