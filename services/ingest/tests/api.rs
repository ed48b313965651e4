//! The HTTP API end to end, in-process, on a throwaway PostgreSQL database:
//! auth, idempotent intake, batches, status changes, integrations, secrets.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{ADMIN_TOKEN, TestDb, call, count, raw, state, tenant};
use salesync_core::domain::sample_sale;
use serde_json::{Value, json};

fn sale(external_id: &str) -> Value {
    serde_json::to_value(sample_sale(external_id)).expect("sample serializes")
}

#[tokio::test]
async fn tenants_tokens_and_auth() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (tenant_id, token) = tenant(&app, "Shop A", false).await;
    assert!(token.starts_with("sst_"));

    // Same name twice: 409.
    let a = call(
        &app,
        "POST",
        "/admin/tenants",
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "Shop A"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "tenant_exists");

    // Admin routes need the admin token.
    let a = call(
        &app,
        "POST",
        "/admin/tenants",
        Some(&token),
        Some(&json!({"name": "X"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = call(
        &app,
        "POST",
        "/admin/tenants",
        None,
        Some(&json!({"name": "X"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // A second token for the tenant; unknown tenant → 404.
    let path = format!("/admin/tenants/{tenant_id}/tokens");
    let a = call(
        &app,
        "POST",
        &path,
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "pos"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let second = a.body["token"].as_str().expect("token").to_string();
    let missing = format!("/admin/tenants/{}/tokens", uuid::Uuid::now_v7());
    let a = call(
        &app,
        "POST",
        &missing,
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "pos"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Tokens work; a wrong one is 401 with the JSON error shape.
    let a = call(&app, "GET", "/v1/integrations", Some(&second), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = call(&app, "GET", "/v1/integrations", Some("sst_wrong"), None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"]["code"], "unauthorized");
    let a = call(&app, "GET", "/v1/integrations", None, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // The raw tokens appear nowhere in the database.
    let dump: Vec<String> = sqlx::query_scalar("SELECT row_to_json(t)::text FROM api_tokens t")
        .fetch_all(&db.pool)
        .await
        .expect("dump");
    assert_eq!(dump.len(), 2);
    for row in &dump {
        for t in [&token, &second] {
            assert!(!row.contains(t.as_str()), "token stored in clear: {row}");
            assert!(!row.contains(&t[4..]), "token body stored: {row}");
        }
    }

    // Admin routes disappear without ADMIN_TOKEN.
    let mut st = state(&db.pool);
    st.auth.admin_token = None;
    let no_admin = common::app(st);
    let a = call(
        &no_admin,
        "POST",
        "/admin/tenants",
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "Y"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sales_are_idempotent_and_validated() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Shop", false).await;
    let t = Some(token.as_str());

    let a = call(&app, "POST", "/v1/sales", t, Some(&sale("pos-1"))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["duplicate"], false);
    assert_eq!(a.body["status"], "completed");
    let id = a.body["id"].as_str().expect("id").to_string();
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, 1);
    let (key, kind): (String, String) =
        sqlx::query_as("SELECT routing_key, message_type FROM outbox")
            .fetch_one(&db.pool)
            .await
            .expect("outbox row");
    assert_eq!(
        (key.as_str(), kind.as_str()),
        ("sale.ingested", "sale.event")
    );

    // Same payload again: 200, same id, nothing emitted.
    let a = call(&app, "POST", "/v1/sales", t, Some(&sale("pos-1"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["duplicate"], true);
    assert_eq!(a.body["id"], id.as_str());
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, 1);

    // Different payload, same external id: 409 naming it.
    let mut altered = sale("pos-1");
    altered["metadata"]["note"] = json!("changed");
    let a = call(&app, "POST", "/v1/sales", t, Some(&altered)).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "sale_conflict");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("pos-1")
    );

    // Figures that do not add up: 422 with every field path.
    let mut bad = sale("pos-2");
    bad["lines"][0]["net_amount"] = json!(1999);
    bad["status"] = json!("Not Valid");
    let a = call(&app, "POST", "/v1/sales", t, Some(&bad)).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "validation_failed");
    let fields = common::error_fields(&a.body);
    assert!(fields.contains(&"lines[0].net_amount"), "{fields:?}");
    assert!(fields.contains(&"status"), "{fields:?}");

    // A type error: 400 naming the field.
    let mut typo = sale("pos-3");
    typo["lines"][0]["quantity"] = json!({"x": 1});
    let a = call(&app, "POST", "/v1/sales", t, Some(&typo)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "invalid_json");
    assert_eq!(a.body["error"]["fields"][0]["field"], "lines[0].quantity");

    // Not JSON at all: 400; wrong content type: 415; unknown route: 404 JSON.
    let req = Request::post("/v1/sales")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"external_id\": "))
        .expect("request");
    let a = raw(&app, req).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    let req = Request::post("/v1/sales")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .expect("request");
    let a = raw(&app, req).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "unsupported_media_type");
    let a = call(&app, "GET", "/v1/nothing-here", t, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["error"]["code"], "not_found");
    let a = call(&app, "DELETE", "/v1/sales", t, None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "method_not_allowed");

    // Nothing but the first sale was stored.
    assert_eq!(count(&db.pool, "SELECT count(*) FROM sales").await, 1);

    // The sale with its history; another tenant gets 404, not 403.
    let a = call(&app, "GET", &format!("/v1/sales/{id}"), t, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["external_id"], "pos-1");
    assert_eq!(a.body["sale"]["external_id"], "pos-1");
    assert_eq!(a.body["status_history"][0]["origin"], "source");
    assert_eq!(a.body["status_history"][0]["status"], "completed");
    assert_eq!(a.body["deliveries"], json!([]));
    let (_, other) = tenant(&app, "Other shop", false).await;
    let a = call(&app, "GET", &format!("/v1/sales/{id}"), Some(&other), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = call(&app, "GET", "/v1/sales/not-a-uuid", t, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // The other tenant may use the same external id for its own sale.
    let a = call(
        &app,
        "POST",
        "/v1/sales",
        Some(&other),
        Some(&sale("pos-1")),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_ne!(a.body["id"], id.as_str());

    // Lookup is scoped to the caller.
    let a = call(
        &app,
        "POST",
        "/v1/sales/lookup",
        t,
        Some(&json!({"external_ids": ["nope", "pos-1"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["sales"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["sales"][0]["id"], id.as_str());
    let many: Vec<String> = (0..501).map(|i| format!("e{i}")).collect();
    let a = call(
        &app,
        "POST",
        "/v1/sales/lookup",
        t,
        Some(&json!({"external_ids": many})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn batches_report_each_item() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Shop", false).await;
    let t = Some(token.as_str());
    let a = call(&app, "POST", "/v1/sales", t, Some(&sale("old-1"))).await;
    assert_eq!(a.status, StatusCode::CREATED);

    let mut invalid = sale("b-bad");
    invalid["totals"]["gross"] = json!(1);
    let mut mistyped = sale("b-typo");
    mistyped["lines"] = json!("none");
    let mut other_payload = sale("b-1");
    other_payload["sale_number"] = json!("R-9");
    let mut conflicting_old = sale("old-1");
    conflicting_old["sale_number"] = json!("R-9");
    let body = json!({"sales": [
        sale("b-1"), invalid, sale("old-1"), mistyped, sale("b-1"), other_payload,
        sale("b-2"), conflicting_old,
    ]});
    let a = call(&app, "POST", "/v1/sales/batch", t, Some(&body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let results = a.body["results"].as_array().expect("results");
    let outcomes: Vec<&str> = results
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes,
        vec![
            "created",
            "invalid",
            "duplicate",
            "invalid",
            "duplicate",
            "conflict",
            "created",
            "conflict"
        ]
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
    }
    assert_eq!(results[0]["id"], results[4]["id"]);
    assert_eq!(results[1]["error"]["code"], "validation_failed");
    assert_eq!(results[1]["external_id"], "b-bad");
    assert_eq!(results[3]["error"]["code"], "invalid_json");
    assert_eq!(results[3]["error"]["fields"][0]["field"], "lines");
    assert_eq!(results[5]["error"]["code"], "sale_conflict");
    assert!(results[5].get("id").is_none());

    // Exactly the valid new sales were stored and announced.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT external_id FROM sales ORDER BY external_id")
            .fetch_all(&db.pool)
            .await
            .expect("sales");
    assert_eq!(stored, vec!["b-1", "b-2", "old-1"]);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, 3);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM sale_status_history").await,
        3
    );

    // Sending the batch again creates nothing.
    let a = call(&app, "POST", "/v1/sales/batch", t, Some(&body)).await;
    let outcomes: Vec<&str> = a.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert!(!outcomes.contains(&"created"), "{outcomes:?}");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, 3);

    for n in [0usize, 1001] {
        let sales: Vec<Value> = (0..n).map(|i| sale(&format!("x{i}"))).collect();
        let a = call(
            &app,
            "POST",
            "/v1/sales/batch",
            t,
            Some(&json!({"sales": sales})),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "n={n}");
        assert_eq!(a.body["error"]["fields"][0]["field"], "sales");
    }
}

#[tokio::test]
async fn status_changes_and_manual_forwarding() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Shop", false).await;
    let t = Some(token.as_str());
    let a = call(&app, "POST", "/v1/sales", t, Some(&sale("pos-1"))).await;
    let id = a.body["id"].as_str().expect("id").to_string();
    let status_path = format!("/v1/sales/{id}/status");

    let a = call(
        &app,
        "POST",
        &status_path,
        t,
        Some(&json!({"status": "paid", "note": "cash"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body, json!({"id": id, "status": "paid", "changed": true}));
    let (key, body): (String, Vec<u8>) =
        sqlx::query_as("SELECT routing_key, body FROM outbox ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .expect("outbox");
    assert_eq!(key, "sale.status_changed");
    let event: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(event["payload"]["trigger"]["kind"], "status_changed");
    assert_eq!(event["payload"]["status"], "paid");
    assert_eq!(event["payload"]["sale"]["status"], "paid");
    assert_eq!(event["payload"]["sale"]["external_id"], "pos-1");

    // Same status again: nothing changes, nothing is emitted.
    let a = call(
        &app,
        "POST",
        &status_path,
        t,
        Some(&json!({"status": "paid"})),
    )
    .await;
    assert_eq!(a.body["changed"], false);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, 2);
    let a = call(&app, "GET", &format!("/v1/sales/{id}"), t, None).await;
    assert_eq!(a.body["status"], "paid");
    let history = a.body["status_history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["status"], "paid");
    assert_eq!(history[1]["note"], "cash");

    // Bad status: 422; unknown sale: 404.
    let a = call(
        &app,
        "POST",
        &status_path,
        t,
        Some(&json!({"status": "Paid!"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.body["error"]["fields"][0]["field"], "status");
    let missing = format!("/v1/sales/{}/status", uuid::Uuid::now_v7());
    let a = call(&app, "POST", &missing, t, Some(&json!({"status": "paid"}))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Manual forward: only through the caller's own integration.
    let a = call(&app, "POST", "/v1/integrations", t, Some(&json!({
        "name": "Books", "target_kind": "webhook", "target_url": "https://books.example/in", "mode": "manual"
    }))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let integration = a.body["id"].as_str().expect("id").to_string();
    let (_, other) = tenant(&app, "Other", false).await;
    let a = call(
        &app,
        "POST",
        "/v1/integrations",
        Some(&other),
        Some(&json!({
            "name": "Theirs", "target_kind": "webhook", "target_url": "https://x.example/in"
        })),
    )
    .await;
    let foreign = a.body["id"].as_str().expect("id").to_string();
    let forward = format!("/v1/sales/{id}/forward");
    let a = call(
        &app,
        "POST",
        &forward,
        t,
        Some(&json!({"integration_id": foreign})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = call(
        &app,
        "POST",
        &forward,
        t,
        Some(&json!({"integration_id": integration})),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(a.body, json!({"queued": true}));
    let (key, body): (String, Vec<u8>) =
        sqlx::query_as("SELECT routing_key, body FROM outbox ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .expect("outbox");
    assert_eq!(key, "sale.forward_requested");
    let event: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        event["payload"]["trigger"]["integration_id"],
        integration.as_str()
    );
    assert_eq!(event["payload"]["status"], "paid");
}

#[tokio::test]
async fn salesync_integrations_show_their_system_statuses() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Shop", false).await;
    let t = Some(token.as_str());
    let input = json!({
        "name": "B", "target_kind": "salesync", "target_url": "http://127.0.0.1:9999",
        "poll_status": true,
        "status_map": {"processed": "completed", "rejected": "cancelled"}
    });
    let a = call(&app, "POST", "/v1/integrations", t, Some(&input)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    // Every system status, mapped to itself unless overridden.
    let expected = json!([
        {"status": "new", "maps_to": "new", "overridden": false},
        {"status": "pending", "maps_to": "pending", "overridden": false},
        {"status": "accepted", "maps_to": "accepted", "overridden": false},
        {"status": "completed", "maps_to": "completed", "overridden": false},
        {"status": "cancelled", "maps_to": "cancelled", "overridden": false},
        {"status": "rejected", "maps_to": "cancelled", "overridden": true},
    ]);
    assert_eq!(a.body["system_statuses"], expected, "{}", a.text);
    let id = a.body["id"].as_str().expect("id").to_string();
    let one = call(&app, "GET", &format!("/v1/integrations/{id}"), t, None).await;
    assert_eq!(one.body["system_statuses"], expected);

    // B's statuses are sale statuses: both sides are checked, each named.
    let mut bad = input.clone();
    bad["status_map"] = json!({"Processed!": "completed", "on_hold": "On Hold"});
    let a = call(&app, "POST", "/v1/integrations", t, Some(&bad)).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(
        common::error_fields(&a.body),
        vec!["status_map.Processed!", "status_map.on_hold"]
    );
    let a = call(
        &app,
        "PATCH",
        &format!("/v1/integrations/{id}"),
        t,
        Some(&json!({"status_map": {"new": "NEW"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(common::error_fields(&a.body), vec!["status_map.new"]);

    // A webhook shares no system statuses with us.
    let hook =
        json!({"name": "Books", "target_kind": "webhook", "target_url": "http://127.0.0.1:9998"});
    let a = call(&app, "POST", "/v1/integrations", t, Some(&hook)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["system_statuses"], json!([]));
}

#[tokio::test]
async fn integrations_keep_their_secrets() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Shop", false).await;
    let t = Some(token.as_str());
    let bearer = "target-bearer-token-4711";
    let input = json!({
        "name": "Partner", "target_kind": "salesync", "target_url": "http://127.0.0.1:9999",
        "credentials": {"bearer_token": bearer}, "trigger_statuses": ["completed"],
        "conditions": {"min_gross": 100}, "mapping": {"skus": {"A": "B"}},
        "poll_status": true, "status_map": {"booked": "paid"}, "final_statuses": ["booked"]
    });
    let a = call(&app, "POST", "/v1/integrations", t, Some(&input)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let secret = a.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(a.body["has_credentials"], true);
    assert!(!a.text.contains(bearer));
    let id = a.body["id"].as_str().expect("id").to_string();

    // Views never show credentials or secrets.
    let one = call(&app, "GET", &format!("/v1/integrations/{id}"), t, None).await;
    let all = call(&app, "GET", "/v1/integrations", t, None).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(all.body["integrations"].as_array().map(Vec::len), Some(1));
    for view in [&one, &all] {
        for hidden in [
            bearer,
            secret.as_str(),
            "signing_secret",
            "\"credentials\":",
        ] {
            assert!(!view.text.contains(hidden), "{hidden} in {}", view.text);
        }
    }
    assert_eq!(one.body["status_map"]["booked"], "paid");
    assert_eq!(one.body["conditions"]["min_gross"], 100);

    // Encrypted at rest.
    let (creds, signing): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT credentials_enc, signing_secrets_enc FROM integrations WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&db.pool)
    .await
    .expect("row");
    assert!(!creds.windows(bearer.len()).any(|w| w == bearer.as_bytes()));
    assert!(!signing.windows(10).any(|w| w == &secret.as_bytes()[6..16]));

    // Validation names the field.
    let mut bad = input.clone();
    bad["target_url"] = json!("ftp://x");
    bad["conditions"] = json!({"skus_anny": []});
    let a = call(&app, "POST", "/v1/integrations", t, Some(&bad)).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    let fields = common::error_fields(&a.body);
    assert_eq!(fields, vec!["target_url", "conditions.skus_anny"]);

    // PATCH changes what it names; null clears credentials.
    let path = format!("/v1/integrations/{id}");
    let a = call(
        &app,
        "PATCH",
        &path,
        t,
        Some(&json!({"enabled": false, "credentials": null})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["enabled"], false);
    assert_eq!(a.body["has_credentials"], false);
    assert_eq!(a.body["name"], "Partner");
    let a = call(&app, "PATCH", &path, t, Some(&json!({"mode": "sometimes"}))).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Rotation: a new secret, the previous one kept beside it.
    let a = call(&app, "POST", &format!("{path}/rotate-secret"), t, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let rotated = a.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_ne!(rotated, secret);

    // Another tenant sees nothing; delete is soft and final.
    let (_, other) = tenant(&app, "Other", false).await;
    let a = call(&app, "GET", &path, Some(&other), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = call(&app, "DELETE", &path, Some(&other), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = call(&app, "DELETE", &path, t, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = call(&app, "GET", &path, t, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM integrations").await,
        1
    );
}

#[tokio::test]
async fn integration_only_tokens_and_webhook() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, full) = tenant(&app, "Shop", false).await;
    let (_, limited) = tenant(&app, "Partner", true).await;
    let l = Some(limited.as_str());

    let a = call(&app, "POST", "/v1/sales", l, Some(&sale("p-1"))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.body["id"].as_str().expect("id").to_string();
    let a = call(&app, "GET", &format!("/v1/sales/{id}"), l, None).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = call(
        &app,
        "POST",
        "/v1/sales/lookup",
        l,
        Some(&json!({"external_ids": ["p-1"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = call(
        &app,
        "POST",
        "/v1/sales/batch",
        l,
        Some(&json!({"sales": [sale("p-2")]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    for (method, path, body) in [
        ("GET", "/v1/integrations".to_string(), None),
        (
            "POST",
            format!("/v1/sales/{id}/status"),
            Some(json!({"status": "paid"})),
        ),
        (
            "PUT",
            "/v1/webhook".to_string(),
            Some(json!({"url": "https://x.example"})),
        ),
    ] {
        let a = call(&app, method, &path, l, body.as_ref()).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(a.body["error"]["code"], "forbidden");
    }

    // The tenant's status webhook: secret shown once, stored encrypted.
    let f = Some(full.as_str());
    let a = call(
        &app,
        "PUT",
        "/v1/webhook",
        f,
        Some(&json!({"url": "notaurl"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.body["error"]["fields"][0]["field"], "url");
    let a = call(
        &app,
        "PUT",
        "/v1/webhook",
        f,
        Some(&json!({"url": "https://shop.example/status"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let secret = a.body["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"));
    let enc: Vec<u8> =
        sqlx::query_scalar("SELECT webhook_secret_enc FROM tenants WHERE webhook_url IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .expect("tenant");
    assert!(!enc.windows(10).any(|w| w == &secret.as_bytes()[6..16]));
}

#[tokio::test]
async fn limits_docs_and_ops() {
    let db = TestDb::new().await;
    let mut st = state(&db.pool);
    st.body.max_bytes = 2048;
    let app = common::app(st);
    let (_, token) = tenant(&app, "Shop", false).await;
    let mut big = sale("big");
    big["metadata"]["blob"] = json!("x".repeat(4096));
    let a = call(&app, "POST", "/v1/sales", Some(&token), Some(&big)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "payload_too_large");

    // The gateway sends /openapi.json to console: the control plane's document.
    let a = call(&app, "GET", "/openapi.json", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body["paths"]["/v1/integrations"].is_object());

    let a = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = call(&app, "GET", "/metrics", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.text.contains("route=\"/v1/sales\"") && a.text.contains("status=\"413\""),
        "{}",
        a.text
    );
}
