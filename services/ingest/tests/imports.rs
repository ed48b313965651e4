//! The reseller's (A's) side of a tenant-to-tenant integration through the
//! API, with the provider (B) served over real HTTP on 127.0.0.1 and both on
//! the real PostgreSQL (issue 17): Test connection answers each case in
//! plain words; import copies B's products with their version; Sync now
//! reports what changed (and "last synchronised at" moves only then); each
//! removal policy does what it says; the reconciliation repairs a lost
//! callback; the mapping check flags what is new.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::{ADMIN_TOKEN, TestDb, call, state, tenant};
use console::catalogue_sync::{self, SyncContext};
use salesync_core::api::token_cache::TokenCache;
use serde_json::{Value, json};

/// The API, uncached (a revoked grant or token shows at once), served on
/// 127.0.0.1 too: the URL B's partner routes answer at.
async fn serve(db: &TestDb) -> (Router, common::ApiState, String) {
    let mut st = state(&db.pool);
    st.auth.token_cache = Arc::new(TokenCache::new(Duration::ZERO, 0));
    let app = common::app(st.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let served = app.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, served).await;
    });
    (app, st, url)
}

fn product(rate: i64) -> Value {
    json!({
        "name": "Fixed 3y",
        "price": {"amount": rate, "currency": "EUR", "vat_rate": "21"},
        "questions": [
            {"key": "iban", "label": "IBAN", "kind": "iban", "required": true},
            {"key": "term", "label": "Term", "kind": "single_choice", "required": true,
             "options": [{"value": "1y", "label": "1 year"}, {"value": "3y", "label": "3 years"}]},
        ],
    })
}

struct Provider {
    token: String,
    org: String,
    agent_token: String,
}

/// B: products `fixed-3y` and `green`, flow `door` selling both, an
/// organization granted all of it, and its Agent.
async fn provider(app: &Router) -> Provider {
    let (_, token) = tenant(app, "Energy B", false).await;
    let t = Some(token.as_str());
    for key in ["fixed-3y", "green"] {
        let a = call(
            app,
            "PUT",
            &format!("/v1/products/{key}"),
            t,
            Some(&product(1200)),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    let flow = json!({"name": "Door", "products": ["fixed-3y", "green"]});
    let a = call(app, "PUT", "/v1/flows/door", t, Some(&flow)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let a = call(
        app,
        "POST",
        "/v1/organizations",
        t,
        Some(&json!({"name": "Shop A"})),
    )
    .await;
    let org = a.body["id"].as_str().expect("id").to_string();
    grant(app, &token, &org, &["fixed-3y", "green"]).await;
    let a = call(
        app,
        "POST",
        &format!("/v1/organizations/{org}/agents"),
        t,
        Some(&json!({"name": "a"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    Provider {
        token,
        org,
        agent_token: a.body["token"].as_str().expect("token").to_string(),
    }
}

async fn grant(app: &Router, token: &str, org: &str, products: &[&str]) {
    let grants = json!({"products": products, "flows": ["door"]});
    let a = call(
        app,
        "PUT",
        &format!("/v1/organizations/{org}/grants"),
        Some(token),
        Some(&grants),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

/// A's integration to B with `policy`; its id.
async fn integration(app: &Router, a: &str, url: &str, token: &str, policy: &str) -> String {
    let body = json!({
        "name": format!("B ({policy})"),
        "target_kind": "salesync",
        "target_url": url,
        "credentials": {"bearer_token": token},
        "removed_product_policy": policy,
    });
    let r = call(app, "POST", "/v1/integrations", Some(a), Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["removed_product_policy"], policy);
    r.body["id"].as_str().expect("id").to_string()
}

async fn test_connection(app: &Router, a: &str, url: &str, token: &str) -> Value {
    let body = json!({"url": url, "token": token});
    let r = call(
        app,
        "POST",
        "/v1/integrations/test-connection",
        Some(a),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

/// A server on 127.0.0.1 that answers every request with `answer`.
async fn answering(status: u16, body: &'static str) -> String {
    let app = Router::new()
        .fallback(move || async move { (StatusCode::from_u16(status).expect("status"), body) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test]
async fn test_connection_answers_each_case_in_plain_words() {
    let db = TestDb::new().await;
    let (app, _, b_url) = serve(&db).await;
    let b = provider(&app).await;
    let (_, a) = tenant(&app, "Shop A", false).await;

    // A port that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            let _ = tx.send(socket).await;
        }
    });
    // Holds every accepted socket open, unanswered.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(socket) = rx.recv().await {
            held.push(socket);
        }
    });
    let broken = answering(502, "bad gateway").await;
    let not_salesync = answering(200, "<html>hello</html>").await;
    let (_, plain_integration) = {
        let r = call(
            &app,
            "POST",
            "/admin/tenants",
            Some(ADMIN_TOKEN),
            Some(&json!({"name": "Plain C", "integration_only": true})),
        )
        .await;
        ((), r.body["token"].as_str().expect("token").to_string())
    };
    let tls_url = b_url.replace("http://", "https://");
    // A port nobody listens on, taken after every listener above so that
    // none of them can be handed the freed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };

    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (&closed, "x", "unreachable", "refused the connection"),
        (
            "http://no-such-provider.invalid",
            "x",
            "unreachable",
            "Cannot reach",
        ),
        (&silent_url, "x", "unreachable", "did not answer within"),
        ("http://10.1.2.3", "x", "unreachable", "does not call"),
        (&tls_url, "x", "tls_error", "TLS failed"),
        (&broken, "x", "http_error", "HTTP 502"),
        (&not_salesync, "x", "http_error", "not what a salesync"),
        (
            &b_url,
            "sst_wrong",
            "token_rejected",
            "does not accept this token",
        ),
        (
            &b_url,
            &b.token,
            "not_integration_only",
            "not integration-only",
        ),
        (&b_url, &plain_integration, "not_an_agent", "not an Agent's"),
        (&b_url, &b.agent_token, "ok", "2 products granted"),
    ];
    for (url, token, outcome, says) in cases {
        let v = test_connection(&app, &a, url, token).await;
        assert_eq!(v["outcome"], outcome, "{url}: {v}");
        assert_eq!(v["ok"], outcome == "ok", "{url}: {v}");
        let message = v["message"].as_str().expect("message");
        assert!(
            message.contains(says),
            "{url}: '{message}' should say '{says}'"
        );
    }
    let ok = test_connection(&app, &a, &b_url, &b.agent_token).await;
    assert_eq!(ok["account"], "Energy B");
    assert_eq!(ok["granted_products"], 2);

    // The saved integration's own address and token.
    let id = integration(&app, &a, &b_url, &b.agent_token, "nothing").await;
    let r = call(
        &app,
        "POST",
        &format!("/v1/integrations/{id}/test-connection"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.body["outcome"], "ok", "{}", r.text);
    // Bad input is named.
    let r = call(
        &app,
        "POST",
        "/v1/integrations/test-connection",
        Some(&a),
        Some(&json!({"url": "ftp://x", "token": " "})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(common::error_fields(&r.body), ["url", "token"]);
}

#[tokio::test]
async fn import_copies_products_and_sync_reports_only_real_changes() {
    let db = TestDb::new().await;
    let (app, _, b_url) = serve(&db).await;
    let b = provider(&app).await;
    let (_, a) = tenant(&app, "Shop A", false).await;
    let id = integration(&app, &a, &b_url, &b.agent_token, "nothing").await;

    let r = call(
        &app,
        "GET",
        &format!("/v1/integrations/{id}/provider-catalogue"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["products"].as_array().map(Vec::len), Some(2));
    assert_eq!(r.body["products"][0]["imported_version"], Value::Null);

    // Importing a product B does not grant is named.
    let sel = json!({"products": ["fixed-3y", "nope"]});
    let r = call(
        &app,
        "PUT",
        &format!("/v1/integrations/{id}/imports"),
        Some(&a),
        Some(&sel),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(common::error_fields(&r.body), ["products[1]"]);

    let sel = json!({"products": ["fixed-3y"]});
    let r = call(
        &app,
        "PUT",
        &format!("/v1/integrations/{id}/imports"),
        Some(&a),
        Some(&sel),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["changes"],
        json!([{"change": "imported", "product": "fixed-3y", "version": 1}])
    );
    let first_sync = r.body["last_synchronised_at"].clone();
    assert!(first_sync.is_string(), "{}", r.text);

    // Nothing changed at B: nothing to report, the timestamp stays.
    let r = call(
        &app,
        "POST",
        &format!("/v1/integrations/{id}/sync"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["changes"], json!([]));
    assert_eq!(r.body["last_synchronised_at"], first_sync);

    // B changes the rate: Sync now takes the new version.
    let p = call(
        &app,
        "PUT",
        "/v1/products/fixed-3y",
        Some(&b.token),
        Some(&product(1300)),
    )
    .await;
    assert_eq!(p.body["version"], 2, "{}", p.text);
    let r = call(
        &app,
        "POST",
        &format!("/v1/integrations/{id}/sync"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(
        r.body["changes"],
        json!([{"change": "updated", "product": "fixed-3y", "from": 1, "to": 2}])
    );
    assert_ne!(r.body["last_synchronised_at"], first_sync);
    let r = call(
        &app,
        "GET",
        &format!("/v1/integrations/{id}/imports"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.body["products"][0]["product"]["version"], 2, "{}", r.text);
    assert_eq!(r.body["products"][0]["product"]["price"]["amount"], 1300);
    assert_eq!(r.body["products"][0]["active"], true);
    assert_eq!(r.body["last_changes"][0]["change"], "updated");

    // Unselecting deletes A's copy.
    let sel = json!({"products": []});
    let r = call(
        &app,
        "PUT",
        &format!("/v1/integrations/{id}/imports"),
        Some(&a),
        Some(&sel),
    )
    .await;
    assert_eq!(
        r.body["changes"],
        json!([{"change": "unimported", "product": "fixed-3y"}])
    );
}

#[tokio::test]
async fn each_removal_policy_does_what_it_says_and_reconciliation_needs_no_call_from_a() {
    let db = TestDb::new().await;
    let (app, st, b_url) = serve(&db).await;
    let b = provider(&app).await;
    let (_, a) = tenant(&app, "Shop A", false).await;
    let mut ids = Vec::new();
    for policy in ["nothing", "deactivate", "delete"] {
        let id = integration(&app, &a, &b_url, &b.agent_token, policy).await;
        let sel = json!({"products": ["fixed-3y", "green"]});
        let r = call(
            &app,
            "PUT",
            &format!("/v1/integrations/{id}/imports"),
            Some(&a),
            Some(&sel),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        ids.push((policy, id));
    }

    // B stops granting `green`. Nobody on A's side calls anything: the
    // reconciliation (interval 0 here: everything is due) repairs it.
    grant(&app, &b.token, &b.org, &["fixed-3y"]).await;
    let http = console::provider::client::http_client(&st.egress).expect("client");
    let ctx = SyncContext {
        pool: &db.pool,
        secrets: &st.secrets,
        http: &http,
        public_url: None,
    };
    let synced = catalogue_sync::pass(ctx, Duration::ZERO, Duration::ZERO)
        .await
        .expect("pass");
    assert_eq!(synced, 3);
    for (policy, id) in &ids {
        let r = call(
            &app,
            "GET",
            &format!("/v1/integrations/{id}/imports"),
            Some(&a),
            None,
        )
        .await;
        let products = r.body["products"].as_array().expect("products");
        let green = products.iter().find(|p| p["product"]["key"] == "green");
        match *policy {
            "nothing" => {
                let g = green.expect("kept");
                assert_eq!(
                    (g["active"].clone(), g["source_state"].clone()),
                    (json!(true), json!("removed"))
                );
            }
            "deactivate" => {
                let g = green.expect("kept inactive");
                assert_eq!(
                    (g["active"].clone(), g["source_state"].clone()),
                    (json!(false), json!("removed"))
                );
            }
            _ => assert!(green.is_none(), "{policy}: {}", r.text),
        }
        assert_eq!(
            products
                .iter()
                .filter(|p| p["product"]["key"] == "fixed-3y")
                .count(),
            1
        );
        assert_eq!(
            r.body["last_changes"][0]["source_state"], "removed",
            "{policy}"
        );
    }

    // B withdraws `fixed-3y` altogether; then sells a product under that key
    // again: the deactivated copy comes back.
    let r = call(
        &app,
        "DELETE",
        "/v1/products/fixed-3y",
        Some(&b.token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let (_, deactivating) = &ids[1];
    let r = call(
        &app,
        "POST",
        &format!("/v1/integrations/{deactivating}/sync"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(r.body["changes"][0]["change"], "deactivated", "{}", r.text);
    let p = call(
        &app,
        "PUT",
        "/v1/products/fixed-3y",
        Some(&b.token),
        Some(&product(1400)),
    )
    .await;
    assert!(p.status.is_success(), "{}", p.text);
    grant(&app, &b.token, &b.org, &["fixed-3y"]).await;
    let r = call(
        &app,
        "POST",
        &format!("/v1/integrations/{deactivating}/sync"),
        Some(&a),
        None,
    )
    .await;
    let changes: Vec<&str> = r.body["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["change"].as_str())
        .collect();
    assert!(changes.contains(&"reactivated"), "{}", r.text);

    // Not due: a pass with the real interval does nothing.
    let synced = catalogue_sync::pass(ctx, Duration::from_secs(900), Duration::from_secs(2))
        .await
        .expect("pass");
    assert_eq!(synced, 0);
}

#[tokio::test]
async fn the_mapping_check_runs_after_import_and_flags_what_is_new() {
    let db = TestDb::new().await;
    let (app, _, b_url) = serve(&db).await;
    let b = provider(&app).await;
    let (_, a) = tenant(&app, "Shop A", false).await;
    // A's own questions: a bank account, and a term with A's own options.
    let own = json!({
        "name": "A's energy script",
        "price": {"amount": 0, "currency": "EUR", "vat_rate": "21"},
        "questions": [
            {"key": "bank_account", "label": "Bank account", "kind": "iban", "required": true},
            {"key": "looptijd", "label": "Looptijd", "kind": "single_choice", "required": true,
             "options": [{"value": "1j", "label": "1 jaar"}, {"value": "3j", "label": "3 jaar"}]},
        ],
    });
    let r = call(&app, "PUT", "/v1/products/script", Some(&a), Some(&own)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = integration(&app, &a, &b_url, &b.agent_token, "nothing").await;

    let sel = json!({"products": ["fixed-3y"]});
    let r = call(
        &app,
        "PUT",
        &format!("/v1/integrations/{id}/imports"),
        Some(&a),
        Some(&sel),
    )
    .await;
    let kinds = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .expect("mismatches")
            .iter()
            .map(|m| {
                (
                    m["kind"].as_str().unwrap_or("").to_string(),
                    m["question"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let unmapped = vec![
        ("unmapped_flow".to_string(), String::new()),
        ("unmapped_required".to_string(), "iban".to_string()),
        ("unmapped_required".to_string(), "term".to_string()),
    ];
    assert_eq!(kinds(&r.body["mismatches"]), unmapped, "{}", r.text);
    assert_eq!(r.body["new_mismatches"], 3);
    let r = call(
        &app,
        "GET",
        &format!("/v1/integrations/{id}/imports"),
        Some(&a),
        None,
    )
    .await;
    assert!(r.body["mapping"]["flagged_at"].is_string(), "{}", r.text);

    // Map iban, and term without renaming A's options: B would refuse them.
    let mapping = json!({
        "flows": {"energy": "door"},
        "questions": {
            "iban": {"from_question": {"question": "bank_account"}},
            "term": {"from_question": {"question": "looptijd"}},
        },
    });
    let r = call(
        &app,
        "PUT",
        &format!("/v1/integrations/{id}/mappings"),
        Some(&a),
        Some(&mapping),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        kinds(&r.body["mismatches"]),
        [(
            "options_without_counterpart".to_string(),
            "term".to_string()
        )],
        "{}",
        r.text
    );
    assert_eq!(
        r.body["mismatches"][0]["option_values"],
        json!(["1j", "3j"])
    );
    // Renamed: clean, and the flag is cleared.
    let mapping = json!({
        "flows": {"energy": "door"},
        "questions": {
            "iban": {"from_question": {"question": "bank_account"}},
            "term": {"from_question": {"question": "looptijd", "options": {"1j": "1y", "3j": "3y"}}},
        },
    });
    let r = call(
        &app,
        "PUT",
        &format!("/v1/integrations/{id}/mappings"),
        Some(&a),
        Some(&mapping),
    )
    .await;
    assert_eq!(r.body["mismatches"], json!([]), "{}", r.text);
    assert_eq!(r.body["flagged_at"], Value::Null);

    // B adds a required question: the next sync flags it.
    let mut changed = product(1200);
    changed["questions"]
        .as_array_mut()
        .expect("questions")
        .push(json!({"key": "meter", "label": "Meter number", "kind": "text", "required": true}));
    let p = call(
        &app,
        "PUT",
        "/v1/products/fixed-3y",
        Some(&b.token),
        Some(&changed),
    )
    .await;
    assert!(p.status.is_success(), "{}", p.text);
    let r = call(
        &app,
        "POST",
        &format!("/v1/integrations/{id}/sync"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(
        kinds(&r.body["mismatches"]),
        [("unmapped_required".to_string(), "meter".to_string())],
        "{}",
        r.text
    );
    assert_eq!(r.body["new_mismatches"], 1);
    let r = call(
        &app,
        "POST",
        &format!("/v1/integrations/{id}/mapping-check"),
        Some(&a),
        None,
    )
    .await;
    assert!(r.body["flagged_at"].is_string(), "{}", r.text);

    // Bad keys are named.
    let bad = json!({"flows": {"Energy!": "door"}, "questions": {"IBAN": {"constant": "x"}}});
    let r = call(
        &app,
        "PUT",
        &format!("/v1/integrations/{id}/mappings"),
        Some(&a),
        Some(&bad),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        common::error_fields(&r.body),
        ["flows.Energy!", "questions.IBAN"]
    );
}
