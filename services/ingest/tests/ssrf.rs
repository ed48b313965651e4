//! URLs salesync calls on a tenant's behalf — integration targets, status
//! URLs, the tenant's webhook — are refused when they lead to our own
//! network (loopback, private, link-local, CGNAT …), unless an operator
//! allowed that network (`TARGET_ALLOW_NETS`). Checked here when they are
//! configured; the forwarder's and status-poller's tests check connect time.

mod common;

use axum::Router;
use axum::http::StatusCode;
use common::{Answer, TestDb, call, state, tenant};
use salesync_core::egress::{EgressPolicy, parse_allow_nets};
use serde_json::{Value, json};

/// One URL of each forbidden class, and the class the answer must name.
const FORBIDDEN: &[(&str, &str)] = &[
    ("http://127.0.0.1:15672/api/overview", "loopback"),
    ("http://localhost:15672/api/overview", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://10.0.0.5/hook", "private"),
    ("http://172.16.4.4/hook", "private"),
    ("http://192.168.1.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://100.64.0.1/", "shared (CGNAT)"),
    ("http://0.0.0.0:5432/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://[fd00::1]/", "unique local"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
];

fn integration(target_url: &str, status_url: Option<&str>) -> Value {
    let mut body = json!({
        "name": "books",
        "target_kind": "webhook",
        "target_url": target_url,
    });
    if let Some(s) = status_url {
        body["poll_status"] = json!(true);
        body["status_url"] = json!(s);
    }
    body
}

/// Posts an integration to `url`; the answer.
async fn create_integration(app: &Router, token: Option<&str>, url: &str) -> Answer {
    call(
        app,
        "POST",
        "/v1/integrations",
        token,
        Some(&integration(url, None)),
    )
    .await
}

/// The one field error of a 422, as (field, problem).
fn field_error(body: &Value) -> (String, String) {
    let fields = body["error"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields: {body}"));
    assert_eq!(fields.len(), 1, "{body}");
    (
        fields[0]["field"].as_str().unwrap().to_string(),
        fields[0]["problem"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn every_forbidden_address_class_is_refused_when_configured() {
    let db = TestDb::new().await;
    let mut st = state(&db.pool);
    st.egress = EgressPolicy::default();
    let app = common::app(st);
    let (_, token) = tenant(&app, "acme", false).await;
    let t = Some(token.as_str());

    for (url, class) in FORBIDDEN {
        let a = create_integration(&app, t, url).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            a.text
        );
        let (field, message) = field_error(&a.body);
        assert_eq!(field, "target_url", "{url}");
        assert!(
            message.contains(&format!("a {class} address salesync does not call")),
            "{url}: {message}"
        );

        let a = call(&app, "PUT", "/v1/webhook", t, Some(&json!({"url": url}))).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            a.text
        );
        assert_eq!(field_error(&a.body).0, "url");
    }

    // A status URL is checked as well, and so is a URL changed later.
    let a = call(
        &app,
        "POST",
        "/v1/integrations",
        t,
        Some(&integration(
            "https://books.example/in",
            Some("http://10.1.1.1/status"),
        )),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(field_error(&a.body).0, "status_url");

    let a = create_integration(&app, t, "https://books.example/in").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.body["id"].as_str().unwrap();
    let a = call(
        &app,
        "PATCH",
        &format!("/v1/integrations/{id}"),
        t,
        Some(&json!({"target_url": "http://169.254.169.254/"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(field_error(&a.body).0, "target_url");
    let a = call(&app, "GET", &format!("/v1/integrations/{id}"), t, None).await;
    assert_eq!(
        a.body["target_url"], "https://books.example/in",
        "nothing half-written"
    );

    // Nothing refused was stored.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM integrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    let webhooks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenants WHERE webhook_url IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(webhooks, 0);
}

#[tokio::test]
async fn an_allowed_network_is_accepted_and_only_that_one() {
    let db = TestDb::new().await;
    let mut st = state(&db.pool);
    st.egress = EgressPolicy::new(parse_allow_nets("127.0.0.0/8,::1").unwrap());
    let app = common::app(st);
    let (_, token) = tenant(&app, "acme", false).await;
    let t = Some(token.as_str());

    // A name resolving to loopback, and loopback itself: allowed now.
    for url in ["http://localhost:9000/in", "http://127.0.0.1:9000/in"] {
        let a = create_integration(&app, t, url).await;
        assert_eq!(a.status, StatusCode::CREATED, "{url}: {}", a.text);
    }
    let a = call(
        &app,
        "PUT",
        "/v1/webhook",
        t,
        Some(&json!({"url": "http://localhost:9001/"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // Other classes stay closed.
    for url in ["http://10.0.0.5/", "http://169.254.169.254/"] {
        let a = create_integration(&app, t, url).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            a.text
        );
    }
}
