//! Replays go where the integration points now: a dead letter replayed after
//! its tenant fixed the integration's URL (and set new credentials, rotated
//! the secret) reaches the new target, signed with the new secret, with the
//! same idempotency key — once, even when two replays race and ingest dies
//! between committing the replay and publishing it; `"target": "recorded"`
//! keeps the old URL. Bulk replays: a dry run that changes nothing, the
//! per-request cap, the audit rows, deleted/disabled integrations, and other
//! tenants' dead letters untouched. Real PostgreSQL, RabbitMQ, HTTP targets.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use common::dlq::{
    ForwarderTask, RelayTask, ago, counts, integration, outbox_commands, pipeline_state,
    plan_delivery, shop, state_of, wait_for_state,
};
use common::seed::{self, DEAD_REASON, Dead};
use common::target::{Received, Target};
use common::{TestDb, TestVhost, call, count, raw, state};
use salesync_core::crypto::SecretBox;
use salesync_core::domain::DeliveryId;
use salesync_core::signing;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Where each replay was recorded to go, in order.
async fn audited_targets(pool: &PgPool) -> Vec<(DeliveryId, String, Option<String>)> {
    sqlx::query_as(
        "SELECT delivery_id, via, target_url FROM dead_letter_actions
         WHERE action = 'replay' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("actions")
}

/// The request verifies as a Standard Webhooks receiver holding `secret`
/// would check it, and carries `id` as its idempotency key.
fn assert_signed(r: &Received, secret: &str, id: DeliveryId) {
    let h = |k: &str| r.headers.get(k).map(String::as_str).unwrap_or_default();
    assert_eq!(h("idempotency-key"), id.to_string());
    assert_eq!(h("webhook-id"), id.to_string());
    let verified = signing::verify(
        secret,
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        &r.raw,
        Utc::now().timestamp(),
        300,
    );
    assert_eq!(verified, Ok(()), "signature under the expected secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_goes_where_the_integration_points_now() {
    let db = TestDb::new().await;
    let vhost = TestVhost::new().await;
    let keys = SecretBox::generate_spec("k1");
    let st = pipeline_state(&db, &vhost, &keys);
    let relay = RelayTask::start(&db, &vhost, &st);
    let fwd = ForwarderTask::start(&db, &vhost, &keys);
    let app = common::app(st.clone());
    let (old, new) = (Target::start().await, Target::start().await);
    let a = shop(&app, "A", 2, &old.url).await;
    let t = Some(a.token.as_str());

    // The integration points at a broken URL: what answers there refuses
    // both deliveries (404 is permanent), so both die at the first attempt.
    old.answer(&[404, 404]);
    let fixed = plan_delivery(&db.pool, &a, 0, &old.url).await;
    let kept = plan_delivery(&db.pool, &a, 1, &old.url).await;
    st.wake.notify_one();
    wait_for_state(&db.pool, fixed, "dead").await;
    wait_for_state(&db.pool, kept, "dead").await;
    assert_eq!(old.received().len(), 2);

    // The tenant fixes the URL, sets credentials and rotates the secret.
    let integration = format!("/v1/integrations/{}", a.integration);
    let patch = json!({"target_url": new.url, "credentials": {"bearer_token": "new-token"}});
    let r = call(&app, "PATCH", &integration, t, Some(&patch)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &app,
        "POST",
        &format!("{integration}/rotate-secret"),
        t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_secret = r.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_ne!(new_secret, a.signing_secret);

    // Ingest dies after committing replays and before publishing them (no
    // relay runs), while two replays of the same dead letter race.
    relay.stop().await;
    let path = format!("/v1/dead-letters/{fixed}/replay");
    let (r1, r2) = tokio::join!(
        call(&app, "POST", &path, t, None),
        call(&app, "POST", &path, t, None)
    );
    let (won, lost) = if r1.status == StatusCode::ACCEPTED {
        (r1, r2)
    } else {
        (r2, r1)
    };
    assert_eq!(won.status, StatusCode::ACCEPTED, "{}", won.text);
    assert_eq!(won.body["target_url"], new.url.as_str());
    assert_eq!(lost.status, StatusCode::CONFLICT, "{}", lost.text);
    assert_eq!(lost.body["error"]["code"], "not_dead");
    let queued = outbox_commands(&db.pool).await;
    assert_eq!(queued.len(), 1, "one replay committed, none lost");
    assert_eq!(queued[0].payload.target_url, new.url);

    // Ingest is back: its relay publishes what was committed, once.
    let relay = RelayTask::start(&db, &vhost, &st);
    wait_for_state(&db.pool, fixed, "delivered").await;

    // The explicit option keeps the recorded URL (the old one, working now).
    let r = call(
        &app,
        "POST",
        &format!("/v1/dead-letters/{kept}/replay"),
        t,
        Some(&json!({"target": "recorded"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["target_url"], old.url.as_str());
    wait_for_state(&db.pool, kept, "delivered").await;

    // The new target got the fixed one exactly once, with the same
    // idempotency key, the new credentials and a signature under the new
    // secret; the old URL got nothing but the kept one's replay.
    let at_new = new.received();
    assert_eq!(at_new.len(), 1, "{at_new:?}");
    assert_signed(&at_new[0], &new_secret, fixed);
    assert_eq!(
        at_new[0].headers.get("authorization").map(String::as_str),
        Some("Bearer new-token")
    );
    let at_old = old.received();
    assert_eq!(
        at_old.len(),
        3,
        "two first attempts, then only the kept one"
    );
    assert_signed(&at_old[2], &new_secret, kept);
    assert_eq!(
        audited_targets(&db.pool).await,
        [
            (fixed, "api".to_string(), Some(new.url.clone())),
            (kept, "api".to_string(), Some(old.url.clone())),
        ]
    );
    let recorded: String = sqlx::query_scalar("SELECT target_url FROM deliveries WHERE id = $1")
        .bind(fixed)
        .fetch_one(&db.pool)
        .await
        .expect("delivery");
    assert_eq!(recorded, new.url, "the delivery records where it now goes");

    relay.stop().await;
    fwd.stop().await;
}

#[tokio::test]
async fn bulk_replays_dry_run_cap_audit_and_unavailable_targets() {
    const FIXED: &str = "https://fixed.example/in";
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let a = shop(&app, "A", 8, seed::TARGET_URL).await;
    let b = shop(&app, "B", 2, seed::TARGET_URL).await;
    let t = Some(a.token.as_str());
    let disabled = integration(&app, &a.token, "Paused", seed::TARGET_URL).await;
    let deleted = integration(&app, &a.token, "Gone", seed::TARGET_URL).await;

    // A's books integration: five replayable dead letters (oldest first) and
    // a newer one from before request recording; one dead letter each for a
    // disabled and a deleted integration; two of B's.
    let dead = |sale: usize, integration, age: i64, body: bool| {
        let mut d = Dead::new(a.tenant, a.sales[sale], Some(integration));
        d.dead_at = ago(age);
        if !body {
            d.body = None;
        }
        d
    };
    let mut books = Vec::new();
    for (sale, age) in [(0, 500), (1, 400), (2, 300), (3, 200), (4, 100)] {
        books.push(seed::dead_delivery(&db.pool, dead(sale, a.integration, age, true)).await);
    }
    let unrecorded = seed::dead_delivery(&db.pool, dead(5, a.integration, 50, false)).await;
    let off = seed::dead_delivery(&db.pool, dead(6, disabled, 40, true)).await;
    let gone = seed::dead_delivery(&db.pool, dead(7, deleted, 30, true)).await;
    let mut theirs = Vec::new();
    for sale in b.sales.iter() {
        let d = Dead::new(b.tenant, *sale, Some(b.integration));
        theirs.push(seed::dead_delivery(&db.pool, d).await);
    }
    // Then the tenant fixes its URL, disables one integration, deletes one.
    for (method, path, body) in [
        (
            "PATCH",
            format!("/v1/integrations/{}", a.integration),
            Some(json!({"target_url": FIXED})),
        ),
        (
            "PATCH",
            format!("/v1/integrations/{disabled}"),
            Some(json!({"enabled": false})),
        ),
        ("DELETE", format!("/v1/integrations/{deleted}"), None),
    ] {
        let r = call(&app, method, &path, t, body.as_ref()).await;
        assert!(r.status.is_success(), "{method} {path}: {}", r.text);
    }
    let bulk = |body: Value| {
        let app = app.clone();
        let token = a.token.clone();
        async move {
            call(
                &app,
                "POST",
                "/v1/dead-letters/replay",
                Some(&token),
                Some(&body),
            )
            .await
        }
    };
    let unchanged = async || {
        let mut states = Vec::new();
        for id in books
            .iter()
            .chain([&unrecorded, &off, &gone])
            .chain(&theirs)
        {
            states.push(state_of(&db.pool, *id).await.0);
        }
        assert!(states.iter().all(|s| s == "dead"), "{states:?}");
        assert_eq!(outbox_commands(&db.pool).await.len(), 0, "nothing queued");
        let actions = count(&db.pool, "SELECT count(*) FROM dead_letter_actions").await;
        assert_eq!(actions, 0, "nothing audited");
    };
    let sample = |answer: &Value| -> Vec<(String, String, String)> {
        answer["sample"]
            .as_array()
            .expect("sample")
            .iter()
            .map(|s| {
                let f = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                (f("id"), f("reason"), f("target_url"))
            })
            .collect()
    };
    let expect_sample = |ids: &[DeliveryId], url: &str| -> Vec<(String, String, String)> {
        ids.iter()
            .map(|id| (id.to_string(), DEAD_REASON.to_string(), url.to_string()))
            .collect()
    };

    // Dry runs: counts and a sample with where each would go; nothing changes.
    let r = bulk(json!({"integration_id": a.integration, "dry_run": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["dry_run"], true);
    assert_eq!(counts(&r.body), (5, 1, 0, 0));
    assert_eq!(sample(&r.body), expect_sample(&books, FIXED));
    let r = bulk(json!({"to": Utc::now(), "dry_run": true, "target": "recorded"})).await;
    assert_eq!(counts(&r.body), (5, 1, 2, 0), "{}", r.text);
    assert_eq!(sample(&r.body), expect_sample(&books, seed::TARGET_URL));
    let r = bulk(json!({"to": Utc::now(), "dry_run": true, "limit": 2})).await;
    assert_eq!(counts(&r.body), (2, 0, 0, 6), "{}", r.text);
    unchanged().await;

    // Bad options: 4xx naming the field, nothing done.
    for (body, status, field) in [
        (json!({"to": Utc::now(), "limit": 1001}), 422, "limit"),
        (json!({"to": Utc::now(), "limit": 0}), 422, "limit"),
        (
            json!({"to": Utc::now(), "target": "elsewhere"}),
            422,
            "target",
        ),
        (json!({"to": Utc::now(), "dry_run": "yes"}), 400, "dry_run"),
        (json!({"dry_run": true}), 422, "$"),
    ] {
        let r = bulk(body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["fields"][0]["field"], field, "{body}");
    }
    unchanged().await;

    // The cap: three of the six matched, oldest first; the rest remains.
    let r = bulk(json!({"integration_id": a.integration, "limit": 3})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["dry_run"], false);
    assert_eq!(counts(&r.body), (3, 0, 0, 3));
    assert_eq!(sample(&r.body), expect_sample(&books[..3], FIXED));
    let queued = outbox_commands(&db.pool).await;
    let queued: Vec<(DeliveryId, &str)> = queued
        .iter()
        .map(|c| (c.payload.delivery_id, c.payload.target_url.as_str()))
        .collect();
    let want: Vec<(DeliveryId, &str)> = books[..3].iter().map(|id| (*id, FIXED)).collect();
    assert_eq!(queued, want);
    // Audited like single replays: one row each, who and where.
    let audited = audited_targets(&db.pool).await;
    let want: Vec<_> = books[..3]
        .iter()
        .map(|id| (*id, "api".to_string(), Some(FIXED.to_string())))
        .collect();
    assert_eq!(audited, want);
    let actors = count(
        &db.pool,
        "SELECT count(DISTINCT actor_token_id) FROM dead_letter_actions",
    )
    .await;
    assert_eq!(actors, 1);
    let r = bulk(json!({"integration_id": a.integration})).await;
    assert_eq!(counts(&r.body), (2, 1, 0, 0), "{}", r.text);

    // Deleted and disabled integrations: a clear 409 either way; left dead.
    for (id, code) in [(off, "integration_disabled"), (gone, "integration_deleted")] {
        for body in [None, Some(json!({"target": "recorded"}))] {
            let path = format!("/v1/dead-letters/{id}/replay");
            let r = call(&app, "POST", &path, t, body.as_ref()).await;
            assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
            assert_eq!(r.body["error"]["code"], code);
        }
        assert_eq!(state_of(&db.pool, id).await.0, "dead");
    }
    let r = bulk(json!({"to": Utc::now()})).await;
    assert_eq!(counts(&r.body), (0, 1, 2, 0), "{}", r.text);

    // A single replay's options are checked too; a body needs its type.
    let path = format!("/v1/dead-letters/{unrecorded}/replay");
    let r = call(&app, "POST", &path, t, Some(&json!({"target": "x"}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["fields"][0]["field"], "target");
    let untyped = Request::post(&path)
        .header("authorization", format!("Bearer {}", a.token))
        .body(Body::from(r#"{"target":"recorded"}"#))
        .expect("request");
    let r = raw(&app, untyped).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    // An empty body is no options, typed or not: the replay is decided.
    let empty = Request::post(&path)
        .header("authorization", format!("Bearer {}", a.token))
        .header("content-type", "application/json")
        .body(Body::empty())
        .expect("request");
    let r = raw(&app, empty).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "not_replayable");
    // So is a JSON `null`, as the document allows.
    let r = call(&app, "POST", &path, t, Some(&json!(null))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "not_replayable");

    // B's dead letters: untouched, and B's own dry run sees only them.
    for id in &theirs {
        assert_eq!(state_of(&db.pool, *id).await.0, "dead");
    }
    let b_actions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letter_actions WHERE tenant_id = $1")
            .bind(b.tenant)
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert_eq!(b_actions, 0);
    let r = call(
        &app,
        "POST",
        "/v1/dead-letters/replay",
        Some(&b.token),
        Some(&json!({"to": Utc::now(), "dry_run": true})),
    )
    .await;
    assert_eq!(counts(&r.body), (2, 0, 0, 0), "{}", r.text);
    let ids: Vec<String> = sample(&r.body).into_iter().map(|s| s.0).collect();
    let mut want: Vec<String> = theirs.iter().map(ToString::to_string).collect();
    want.sort();
    let mut got = ids.clone();
    got.sort();
    assert_eq!(got, want);
}
