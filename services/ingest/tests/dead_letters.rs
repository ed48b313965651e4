//! Dead-letter operations on real PostgreSQL (and, for the full round trip,
//! RabbitMQ with the outbox relay and the forwarder running in-process):
//! list and show with the attempt log, replay one and in bulk, discard with
//! a reason, other tenants' dead letters invisible, the raw queue peeked and
//! purged, and the `console dlq` command on the same rows.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::dlq::{
    ForwarderTask, RelayTask, ago, counts, integration, outbox_commands, pipeline_state,
    plan_delivery, shop, state_of, wait_for_state,
};
use common::seed::{self, DEAD_REASON, Dead};
use common::target::Target;
use common::{ADMIN_TOKEN, TestDb, TestVhost, call, count, state};
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::amqp::{self, topology};
use salesync_core::crypto::SecretBox;
use salesync_core::domain::{DeliveryId, IntegrationId};
use salesync_core::messages::{Purpose, ROUTING_FORWARD};
use serde_json::{Value, json};

fn ids_in(page: &Value) -> Vec<String> {
    page["dead_letters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_and_discarded_per_tenant() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let a = shop(&app, "A", 4, seed::TARGET_URL).await;
    let other = integration(&app, &a.token, "Other", seed::TARGET_URL).await;
    let t = Some(a.token.as_str());
    // Status webhooks replay to the tenant's webhook: it has one.
    let r = call(
        &app,
        "PUT",
        "/v1/webhook",
        t,
        Some(&json!({"url": seed::TARGET_URL})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let dead = |sale: usize, integration: Option<IntegrationId>, age: i64| {
        let mut d = Dead::new(a.tenant, a.sales[sale], integration);
        d.dead_at = ago(age);
        d
    };
    // Oldest first: d1 (other integration), d2, d3 (webhook), d4 (newest).
    let d1 = seed::dead_delivery(&db.pool, dead(0, Some(other), 400)).await;
    let d2 = seed::dead_delivery(&db.pool, dead(1, Some(a.integration), 300)).await;
    let d3 = seed::dead_delivery(&db.pool, dead(2, None, 200)).await;
    let d4 = seed::dead_delivery(&db.pool, dead(3, Some(a.integration), 100)).await;
    let mut delivered = dead(0, Some(a.integration), 50);
    delivered.state = "delivered";
    let delivered = seed::dead_delivery(&db.pool, delivered).await;

    // The list: newest first, only dead ones, paged by cursor.
    let r = call(&app, "GET", "/v1/dead-letters", t, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let all: Vec<String> = [d4, d3, d2, d1].iter().map(ToString::to_string).collect();
    assert_eq!(ids_in(&r.body), all);
    assert!(r.body.get("next_cursor").is_none());
    let first = &r.body["dead_letters"][0];
    assert_eq!(first["reason"], DEAD_REASON);
    assert_eq!(first["attempts"], 2);
    assert_eq!(first["last_error"], DEAD_REASON);
    assert_eq!(first["sale_id"], a.sales[3].to_string());
    assert_eq!(first["sale_external_id"], "A-3");
    assert_eq!(first["integration_id"], a.integration.to_string());
    assert_eq!(first["purpose"], "forward");
    assert_eq!(first["replayable"], true);
    assert_eq!(r.body["dead_letters"][1]["purpose"], "status_webhook");
    assert_eq!(r.body["dead_letters"][1]["integration_id"], Value::Null);

    let r = call(&app, "GET", "/v1/dead-letters?limit=3", t, None).await;
    assert_eq!(ids_in(&r.body), all[..3]);
    let cursor = r.body["next_cursor"].as_str().expect("cursor").to_string();
    let r = call(
        &app,
        "GET",
        &format!("/v1/dead-letters?limit=3&cursor={cursor}"),
        t,
        None,
    )
    .await;
    assert_eq!(ids_in(&r.body), all[3..]);
    assert!(r.body.get("next_cursor").is_none());

    // Filters: integration, time range (from inclusive, to exclusive).
    let path = format!("/v1/dead-letters?integration_id={}", a.integration);
    let r = call(&app, "GET", &path, t, None).await;
    assert_eq!(ids_in(&r.body), [d4.to_string(), d2.to_string()]);
    let (from, to) = (ago(350).to_rfc3339(), ago(150).to_rfc3339());
    let path = format!(
        "/v1/dead-letters?from={}&to={}",
        urlencode(&from),
        urlencode(&to)
    );
    let r = call(&app, "GET", &path, t, None).await;
    assert_eq!(ids_in(&r.body), [d3.to_string(), d2.to_string()]);
    // Bad parameters: 422 naming each; unknown integration: 404.
    let r = call(&app, "GET", "/v1/dead-letters?limit=0&from=x", t, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let fields = common::error_fields(&r.body);
    assert_eq!(fields, ["from", "limit"]);
    let r = call(&app, "GET", "/v1/dead-letters?nope=1", t, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let path = format!("/v1/dead-letters?integration_id={}", IntegrationId::new());
    assert_eq!(
        call(&app, "GET", &path, t, None).await.status,
        StatusCode::NOT_FOUND
    );

    // One dead letter in full: the attempt log and the request a replay re-sends.
    let r = call(&app, "GET", &format!("/v1/dead-letters/{d2}"), t, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let outcomes: Vec<(i64, &str)> = r.body["attempt_log"]
        .as_array()
        .expect("attempt log")
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap_or(0),
                a["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(outcomes, [(1, "retry"), (2, "dead")]);
    assert_eq!(r.body["body"]["data"]["sale_id"], a.sales[1].to_string());
    assert_eq!(r.body["actions"], json!([]));
    for path in [
        format!("/v1/dead-letters/{delivered}"),
        format!("/v1/dead-letters/{}", DeliveryId::new()),
        "/v1/dead-letters/not-an-id".to_string(),
    ] {
        let r = call(&app, "GET", &path, t, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }

    // Replay one: back to pending, recorded, and the original request queued.
    let r = call(
        &app,
        "POST",
        &format!("/v1/dead-letters/{d2}/replay"),
        t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"id": d2, "state": "pending", "target_url": seed::TARGET_URL})
    );
    assert_eq!(state_of(&db.pool, d2).await, ("pending".into(), 0, None));
    let commands = outbox_commands(&db.pool).await;
    assert_eq!(commands.len(), 1);
    let c = &commands[0];
    assert_eq!(
        (c.tenant_id, c.sale_id, c.attempt),
        (a.tenant, a.sales[1], 1)
    );
    assert_eq!(c.payload.delivery_id, d2);
    assert_eq!(c.payload.purpose, Purpose::Forward);
    assert_eq!(c.payload.integration_id, Some(a.integration));
    assert_eq!(c.payload.target_url, seed::TARGET_URL);
    assert_eq!(c.payload.target_ref, d2.to_string());
    assert_eq!(
        c.payload.body, None,
        "the forwarder re-sends the body stored with the delivery"
    );
    let (action, via, actor): (String, String, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT action, via, actor_token_id FROM dead_letter_actions WHERE delivery_id = $1",
    )
    .bind(d2)
    .fetch_one(&db.pool)
    .await
    .expect("action recorded");
    let token_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens WHERE tenant_id = $1")
        .bind(a.tenant)
        .fetch_one(&db.pool)
        .await
        .expect("token");
    assert_eq!(
        (action.as_str(), via.as_str(), actor),
        ("replay", "api", Some(token_id))
    );
    // No longer a dead letter: gone from the list, and a second replay is a 409.
    let r = call(&app, "GET", "/v1/dead-letters", t, None).await;
    assert!(!ids_in(&r.body).contains(&d2.to_string()));
    for id in [d2, delivered] {
        let r = call(
            &app,
            "POST",
            &format!("/v1/dead-letters/{id}/replay"),
            t,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.body["error"]["code"], "not_dead");
    }

    // Discard: needs a reason, is recorded, hides the dead letter, happens once.
    let discard = format!("/v1/dead-letters/{d3}/discard");
    let r = call(&app, "POST", &discard, t, Some(&json!({"reason": "  "}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["fields"][0]["field"], "reason");
    let r = call(&app, "POST", &discard, t, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = call(
        &app,
        "POST",
        &discard,
        t,
        Some(&json!({"reason": "customer refunded in shop"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["reason"], "customer refunded in shop");
    assert_eq!(state_of(&db.pool, d3).await.0, "dead");
    let r = call(&app, "POST", &discard, t, Some(&json!({"reason": "again"}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"]["code"], "already_discarded");
    let r = call(&app, "GET", "/v1/dead-letters", t, None).await;
    assert_eq!(ids_in(&r.body), [d4.to_string(), d1.to_string()]);
    let r = call(
        &app,
        "GET",
        "/v1/dead-letters?include_discarded=true",
        t,
        None,
    )
    .await;
    assert_eq!(
        ids_in(&r.body),
        [d4.to_string(), d3.to_string(), d1.to_string()]
    );
    assert_eq!(
        r.body["dead_letters"][1]["discard_reason"],
        "customer refunded in shop"
    );
    let r = call(&app, "GET", &format!("/v1/dead-letters/{d3}"), t, None).await;
    assert_eq!(r.body["actions"][0]["action"], "discard");
    assert_eq!(r.body["actions"][0]["reason"], "customer refunded in shop");

    // Bulk replay: a filter is required; discarded ones are skipped.
    let bulk = "/v1/dead-letters/replay";
    let r = call(&app, "POST", bulk, t, Some(&json!({}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = call(
        &app,
        "POST",
        bulk,
        t,
        Some(&json!({"integration_id": IntegrationId::new()})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = call(
        &app,
        "POST",
        bulk,
        t,
        Some(&json!({"integration_id": a.integration})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(counts(&r.body), (1, 0, 0, 0));
    assert_eq!(state_of(&db.pool, d4).await.0, "pending");
    let r = call(
        &app,
        "POST",
        bulk,
        t,
        Some(&json!({"from": ago(10_000), "to": Utc::now()})),
    )
    .await;
    assert_eq!(counts(&r.body), (1, 0, 0, 0), "only d1 is left");
    assert_eq!(state_of(&db.pool, d1).await.0, "pending");
    assert_eq!(
        state_of(&db.pool, d3).await.0,
        "dead",
        "discarded: not in bulk"
    );

    // A discarded one can still be replayed on its own (undoing the discard).
    let r = call(
        &app,
        "POST",
        &format!("/v1/dead-letters/{d3}/replay"),
        t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let (discarded_at,): (Option<DateTime<Utc>>,) =
        sqlx::query_as("SELECT discarded_at FROM deliveries WHERE id = $1")
            .bind(d3)
            .fetch_one(&db.pool)
            .await
            .expect("row");
    assert!(discarded_at.is_none());
    let webhook = outbox_commands(&db.pool)
        .await
        .into_iter()
        .find(|c| c.payload.delivery_id == d3)
        .expect("webhook replayed");
    assert_eq!(webhook.payload.purpose, Purpose::StatusWebhook);
    assert_eq!(outbox_commands(&db.pool).await.len(), 4);

    // A dead letter from before request recording cannot be re-sent.
    let mut old = dead(0, Some(a.integration), 30);
    old.body = None;
    let old = seed::dead_delivery(&db.pool, old).await;
    let r = call(
        &app,
        "POST",
        &format!("/v1/dead-letters/{old}/replay"),
        t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"]["code"], "not_replayable");
    let r = call(
        &app,
        "POST",
        bulk,
        t,
        Some(&json!({"integration_id": a.integration})),
    )
    .await;
    assert_eq!(counts(&r.body), (0, 1, 0, 0));
    assert_eq!(state_of(&db.pool, old).await.0, "dead");
}

#[tokio::test]
async fn another_tenants_dead_letters_do_not_exist() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let a = shop(&app, "A", 1, seed::TARGET_URL).await;
    let b = shop(&app, "B", 1, seed::TARGET_URL).await;
    let mine = seed::dead_delivery(
        &db.pool,
        Dead::new(a.tenant, a.sales[0], Some(a.integration)),
    )
    .await;
    let theirs = Some(b.token.as_str());
    let probes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/dead-letters/{mine}"), None),
        ("POST", format!("/v1/dead-letters/{mine}/replay"), None),
        (
            "POST",
            format!("/v1/dead-letters/{mine}/discard"),
            Some(json!({"reason": "not yours"})),
        ),
        (
            "GET",
            format!("/v1/dead-letters?integration_id={}", a.integration),
            None,
        ),
        (
            "POST",
            "/v1/dead-letters/replay".into(),
            Some(json!({"integration_id": a.integration})),
        ),
    ];
    for (method, path, body) in &probes {
        let r = call(&app, method, path, theirs, body.as_ref()).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.text
        );
        assert!(!r.text.contains(&mine.to_string()), "{}", r.text);
    }
    let r = call(&app, "GET", "/v1/dead-letters", theirs, None).await;
    assert_eq!(r.body, json!({"dead_letters": []}));
    let r = call(
        &app,
        "POST",
        "/v1/dead-letters/replay",
        theirs,
        Some(&json!({"to": Utc::now()})),
    )
    .await;
    assert_eq!(counts(&r.body), (0, 0, 0, 0));
    // A's dead letter is untouched.
    assert_eq!(state_of(&db.pool, mine).await.0, "dead");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM dead_letter_actions").await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM outbox WHERE routing_key = 'sale.forward'"
        )
        .await,
        0
    );
    // Integration-only tokens cannot reach dead letters at all.
    let r = call(
        &app,
        "POST",
        &format!("/admin/tenants/{}/tokens", a.tenant),
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "pos", "integration_only": true})),
    )
    .await;
    let pos = r.body["token"].as_str().expect("token").to_string();
    let r = call(&app, "GET", "/v1/dead-letters", Some(&pos), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Percent-encodes a timestamp for a query string (`+` and `:`).
fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// The `ingest` binary on the test database: the CLI shares the API's code
/// path, so the same dead letters answer the same way.
fn ingest_cli(db: &TestDb, args: &[&str]) -> (bool, Value, String) {
    let out = std::process::Command::new(common::console_bin())
        .arg("--database-url")
        .arg(&db.url)
        .args(args)
        .env_remove("SALESYNC_ENCRYPTION_KEYS")
        .output()
        .expect("run console");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stderr,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dlq_command_works_on_the_same_dead_letters() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let a = shop(&app, "A", 3, seed::TARGET_URL).await;
    let b = shop(&app, "B", 1, seed::TARGET_URL).await;
    let dead = |s: usize| Dead::new(a.tenant, a.sales[s], Some(a.integration));
    let d1 = seed::dead_delivery(&db.pool, dead(0)).await;
    let d2 = seed::dead_delivery(&db.pool, dead(1)).await;
    let d3 = seed::dead_delivery(&db.pool, dead(2)).await;
    let bd = seed::dead_delivery(
        &db.pool,
        Dead::new(b.tenant, b.sales[0], Some(b.integration)),
    )
    .await;
    let (ta, tb) = (a.tenant.to_string(), b.tenant.to_string());
    let db = Arc::new(db);

    let run = |args: Vec<String>| {
        let db = db.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ingest_cli(&db, &args)
            })
            .await
            .expect("cli task")
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let (ok, page, err) = run(s(&["dlq", "list", "--tenant", &ta])).await;
    assert!(ok, "{err}");
    assert_eq!(ids_in(&page).len(), 3);
    let (ok, page, _) = run(s(&["dlq", "list"])).await;
    assert!(ok);
    assert_eq!(ids_in(&page).len(), 4, "no --tenant: every tenant");

    let (ok, shown, err) = run(s(&["dlq", "show", &d1.to_string()])).await;
    assert!(ok, "{err}");
    assert_eq!(shown["attempt_log"].as_array().map(Vec::len), Some(2));
    // Scoped to another tenant, A's dead letter does not exist.
    let (ok, _, err) = run(s(&["dlq", "show", &d1.to_string(), "--tenant", &tb])).await;
    assert!(!ok && err.contains("not found"), "{err}");

    let (ok, done, err) = run(s(&["dlq", "replay", &d1.to_string(), "--tenant", &ta])).await;
    assert!(ok, "{err}");
    assert_eq!(done["state"], "pending");
    let (ok, _, err) = run(s(&["dlq", "replay", &d1.to_string()])).await;
    assert!(!ok && err.contains("not dead"), "{err}");

    let (ok, done, err) = run(s(&[
        "dlq",
        "discard",
        &d2.to_string(),
        "--reason",
        "booked by hand",
    ]))
    .await;
    assert!(ok, "{err}");
    assert_eq!(done["reason"], "booked by hand");
    let (ok, _, err) = run(s(&["dlq", "discard", &d3.to_string(), "--reason", " "])).await;
    assert!(!ok && err.contains("reason"), "{err}");

    let (ok, done, err) = run(s(&[
        "dlq",
        "replay",
        "--integration",
        &a.integration.to_string(),
        "--dry-run",
    ]))
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        (done["dry_run"].clone(), counts(&done)),
        (json!(true), (1, 0, 0, 0))
    );
    assert_eq!(
        state_of(&db.pool, d3).await.0,
        "dead",
        "a dry run changes nothing"
    );
    let (ok, done, err) = run(s(&[
        "dlq",
        "replay",
        "--integration",
        &a.integration.to_string(),
    ]))
    .await;
    assert!(ok, "{err}");
    assert_eq!(counts(&done), (1, 0, 0, 0), "d3 only");
    let (ok, _, err) = run(s(&["dlq", "replay", "--from", "yesterday"])).await;
    assert!(!ok && err.contains("from"), "{err}");

    // The API sees what the CLI did; B's dead letter was never touched.
    let r = call(&app, "GET", "/v1/dead-letters", Some(&a.token), None).await;
    assert_eq!(ids_in(&r.body), Vec::<String>::new());
    let r = call(
        &app,
        "GET",
        &format!("/v1/dead-letters/{d2}"),
        Some(&a.token),
        None,
    )
    .await;
    assert_eq!(r.body["actions"][0]["via"], "cli");
    assert_eq!(r.body["actions"][0]["actor_token_id"], Value::Null);
    assert_eq!(state_of(&db.pool, bd).await.0, "dead");
    let vias: Vec<String> = sqlx::query_scalar("SELECT DISTINCT via FROM dead_letter_actions")
        .fetch_all(&db.pool)
        .await
        .expect("actions");
    assert_eq!(vias, ["cli"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_dead_letter_is_delivered_by_the_forwarder() {
    let db = TestDb::new().await;
    let vhost = TestVhost::new().await;
    let keys = SecretBox::generate_spec("k1");
    let st = pipeline_state(&db, &vhost, &keys);
    let wake = st.wake.clone();
    let relay = RelayTask::start(&db, &vhost, &st);
    let fwd = ForwarderTask::start(&db, &vhost, &keys);
    let app = common::app(st);
    let target = Target::start().await;
    let a = shop(&app, "A", 1, &target.url).await;

    // A delivery as condition-filter makes it; the target fails it once (503,
    // retried) and then refuses it (400): dead after two attempts.
    target.answer(&[503, 400]);
    let id = plan_delivery(&db.pool, &a, 0, &target.url).await;
    let body: Value = sqlx::query_scalar("SELECT body FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("body");
    wake.notify_one();
    wait_for_state(&db.pool, id, "dead").await;

    // A poison message too: it never becomes a delivery, only a DLQ entry.
    let conn = amqp::connect(&vhost.amqp_url, "test-poison")
        .await
        .expect("broker");
    let publisher = Publisher::open(&conn).await.expect("publisher");
    publisher
        .publish_all(&[OutgoingMessage::new(
            ROUTING_FORWARD,
            "poison-1".into(),
            "sale.forward",
            Default::default(),
            b"{not json".to_vec(),
        )])
        .await
        .expect("published");

    // The operator's view of the raw queue: both, with reasons, left in place.
    let mut peek = Value::Null;
    for _ in 0..100 {
        peek = call(&app, "GET", "/admin/dlq?limit=10", Some(ADMIN_TOKEN), None)
            .await
            .body;
        if peek["depth"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(peek["depth"], 2, "{peek}");
    let reasons: Vec<&str> = peek["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["reason"].as_str())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("400")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("poison")),
        "{reasons:?}"
    );
    let dead_copy = peek["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["tenant_id"] == a.tenant.to_string()))
        .expect("the dead delivery's copy");
    assert_eq!(dead_copy["original_queue"], topology::Q_FORWARD);
    assert_eq!(dead_copy["body"]["payload"]["delivery_id"], id.to_string());
    let again = call(&app, "GET", "/admin/dlq?limit=1", Some(ADMIN_TOKEN), None).await;
    assert_eq!(again.body["depth"], 2, "peeking removes nothing");
    assert_eq!(again.body["messages"].as_array().map(Vec::len), Some(1));
    let r = call(
        &app,
        "GET",
        "/admin/dlq?limit=1000",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(&app, "GET", "/admin/dlq", Some(&a.token), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Replay. The target fails once more (503), then takes it: the replay's
    // own retry (attempt 2, with 2 attempts already on record) must go
    // through, not be taken for a stale copy of the first round.
    target.answer(&[503]);
    let r = call(
        &app,
        "POST",
        &format!("/v1/dead-letters/{id}/replay"),
        Some(&a.token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait_for_state(&db.pool, id, "delivered").await;

    let seen = target.received();
    assert_eq!(
        seen.len(),
        4,
        "503 and 400, then 503 and 200 after the replay"
    );
    for s in &seen {
        assert_eq!(s.body, body, "re-sent exactly as first sent");
        assert_eq!(s.headers.get("idempotency-key"), Some(&id.to_string()));
        assert_eq!(s.headers.get("webhook-id"), Some(&id.to_string()));
    }
    let log: Vec<(i32, Option<i32>, String)> = sqlx::query_as(
        "SELECT attempt, status_code, outcome FROM delivery_attempts
         WHERE delivery_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await
    .expect("attempts");
    assert_eq!(
        log,
        [
            (1, Some(503), "retry".to_string()),
            (2, Some(400), "dead".to_string()),
            (1, Some(503), "retry".to_string()),
            (2, Some(200), "delivered".to_string()),
        ]
    );

    // Purge: the queue empties; the database keeps the history.
    let r = call(&app, "POST", "/admin/dlq/purge", Some(ADMIN_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"purged": 2}));
    let r = call(&app, "GET", "/admin/dlq", Some(ADMIN_TOKEN), None).await;
    assert_eq!(r.body, json!({"depth": 0, "messages": []}));

    let _ = conn.close(200, "bye".into()).await;
    relay.stop().await;
    fwd.stop().await;
}
