//! The provider's Agent users through the API on the real PostgreSQL (issue
//! 17): an Agent's token is integration-only, reaches exactly the partner
//! routes, sees only what its organization is granted, and rotating or
//! revoking it stops the old token at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::{TestDb, call, state, tenant};
use salesync_core::api::token_cache::TokenCache;
use serde_json::{Value, json};

/// Products `fixed-3y`, `variable` and `green`, flow `door` selling the
/// first two, flow `web` selling `green`.
async fn catalogue(app: &Router, token: &str) {
    let product = json!({
        "name": "Fixed 3y",
        "price": {"amount": 1200, "currency": "EUR", "vat_rate": "21"},
        "questions": [{"key": "iban", "label": "IBAN", "kind": "iban", "required": true}],
    });
    for key in ["fixed-3y", "variable", "green"] {
        let path = format!("/v1/products/{key}");
        let a = call(app, "PUT", &path, Some(token), Some(&product)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    for (key, products) in [
        ("door", json!(["fixed-3y", "variable"])),
        ("web", json!(["green"])),
    ] {
        let flow = json!({"name": key, "products": products});
        let path = format!("/v1/flows/{key}");
        let a = call(app, "PUT", &path, Some(token), Some(&flow)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
}

/// An organization granted `fixed-3y` in flow `door`; its id.
async fn organization(app: &Router, token: &str, name: &str) -> String {
    let a = call(
        app,
        "POST",
        "/v1/organizations",
        Some(token),
        Some(&json!({"name": name})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.body["id"].as_str().expect("id").to_string();
    let grants = json!({"products": ["fixed-3y"], "flows": ["door"]});
    let path = format!("/v1/organizations/{id}/grants");
    let a = call(app, "PUT", &path, Some(token), Some(&grants)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    id
}

/// Creates an agent of the organization: (agent id, token).
async fn agent(app: &Router, token: &str, organization: &str, name: &str) -> (String, String) {
    let path = format!("/v1/organizations/{organization}/agents");
    let a = call(
        app,
        "POST",
        &path,
        Some(token),
        Some(&json!({"name": name})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    (
        a.body["agent"]["id"].as_str().expect("id").to_string(),
        a.body["token"].as_str().expect("token").to_string(),
    )
}

/// The app without a token cache, so a revoked token fails at once here as
/// it does on every process that hears the database's notice.
fn uncached_app(db: &TestDb) -> Router {
    let mut st = state(&db.pool);
    st.auth.token_cache = Arc::new(TokenCache::new(Duration::ZERO, 0));
    common::app(st)
}

#[tokio::test]
async fn an_agents_token_sees_only_what_its_organization_is_granted() {
    let db = TestDb::new().await;
    let app = uncached_app(&db);
    let (b_id, b) = tenant(&app, "Energy B", false).await;
    catalogue(&app, &b).await;
    let org = organization(&app, &b, "Shop A").await;
    let (_, token) = agent(&app, &b, &org, "shop-a-integration").await;

    let a = call(&app, "GET", "/v1/integration", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        a.body["account"],
        json!({"tenant_id": b_id, "name": "Energy B"})
    );
    assert_eq!(a.body["token"]["integration_only"], true);
    assert_eq!(a.body["token"]["organization"]["id"], org.as_str());
    assert_eq!(a.body["granted"], json!({"products": 1, "flows": 1}));

    let a = call(&app, "GET", "/v1/integration/catalogue", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let keys = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|p| p["key"].as_str().expect("key").to_string())
            .collect()
    };
    assert_eq!(keys(&a.body["products"]), ["fixed-3y"]);
    assert_eq!(a.body["products"][0]["version"], 1);
    assert_eq!(a.body["products"][0]["questions"][0]["key"], "iban");
    assert_eq!(keys(&a.body["flows"]), ["door"]);
    // The flow lists only what the organization may sell.
    assert_eq!(a.body["flows"][0]["products"], json!(["fixed-3y"]));

    // Stop granting the product: the listing follows at once.
    let path = format!("/v1/organizations/{org}/grants");
    let grants = json!({"products": [], "flows": ["door"]});
    let g = call(&app, "PUT", &path, Some(&b), Some(&grants)).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    let a = call(&app, "GET", "/v1/integration/catalogue", Some(&token), None).await;
    assert_eq!(a.body["products"], json!([]));
    assert_eq!(a.body["flows"][0]["products"], json!([]));

    // B's own token is not an Agent's: it has an identity, no catalogue.
    let a = call(&app, "GET", "/v1/integration", Some(&b), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["token"]["integration_only"], false);
    assert_eq!(a.body["token"]["organization"], Value::Null);
    assert_eq!(a.body["granted"], Value::Null);
    let a = call(&app, "GET", "/v1/integration/catalogue", Some(&b), None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "agent_token_required");
    // Neither has an integration-only token that is not an Agent's.
    let (_, plain) = tenant(&app, "Plain C", true).await;
    let a = call(&app, "GET", "/v1/integration/catalogue", Some(&plain), None).await;
    assert_eq!(a.body["error"]["code"], "agent_token_required");
}

#[tokio::test]
async fn an_agents_token_is_refused_on_ordinary_routes() {
    let db = TestDb::new().await;
    let app = uncached_app(&db);
    let (_, b) = tenant(&app, "Energy B", false).await;
    catalogue(&app, &b).await;
    let org = organization(&app, &b, "Shop A").await;
    let (_, token) = agent(&app, &b, &org, "shop-a").await;
    for (method, path) in [
        ("GET", "/v1/products"),
        ("GET", "/v1/organizations"),
        ("GET", "/v1/integrations"),
        ("POST", "/v1/organizations/{org}/agents"),
    ] {
        let path = path.replace("{org}", &org);
        let a = call(
            &app,
            method,
            &path,
            Some(&token),
            Some(&json!({"name": "x"})),
        )
        .await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            a.text
        );
        assert_eq!(a.body["error"]["code"], "forbidden");
    }
}

#[tokio::test]
async fn agents_are_named_once_per_organization_and_scoped_to_their_tenant() {
    let db = TestDb::new().await;
    let app = uncached_app(&db);
    let (_, b) = tenant(&app, "Energy B", false).await;
    let (_, c) = tenant(&app, "Other C", false).await;
    catalogue(&app, &b).await;
    let org = organization(&app, &b, "Shop A").await;
    let (agent_id, _) = agent(&app, &b, &org, "shop-a").await;

    let path = format!("/v1/organizations/{org}/agents");
    let a = call(
        &app,
        "POST",
        &path,
        Some(&b),
        Some(&json!({"name": "shop-a"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "agent_exists");
    let a = call(&app, "POST", &path, Some(&b), Some(&json!({"name": "  "}))).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);
    assert_eq!(common::error_fields(&a.body), ["name"]);

    // C sees nothing of B's organization or agent.
    let a = call(&app, "POST", &path, Some(&c), Some(&json!({"name": "x"}))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    let a = call(&app, "GET", &path, Some(&c), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
    let token_path = format!("/v1/agents/{agent_id}/token");
    for method in ["POST", "DELETE"] {
        let a = call(&app, method, &token_path, Some(&c), None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{method}: {}", a.text);
    }
    let a = call(&app, "GET", &path, Some(&b), None).await;
    assert_eq!(a.body["agents"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn rotating_or_revoking_an_agents_token_stops_the_old_one_at_once() {
    let db = TestDb::new().await;
    let app = uncached_app(&db);
    let (_, b) = tenant(&app, "Energy B", false).await;
    catalogue(&app, &b).await;
    let org = organization(&app, &b, "Shop A").await;
    let (agent_id, first) = agent(&app, &b, &org, "shop-a").await;
    let whoami = |t: String| {
        let app = app.clone();
        async move {
            call(&app, "GET", "/v1/integration", Some(&t), None)
                .await
                .status
        }
    };
    assert_eq!(whoami(first.clone()).await, StatusCode::OK);

    let path = format!("/v1/agents/{agent_id}/token");
    let a = call(&app, "POST", &path, Some(&b), None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let second = a.body["token"].as_str().expect("token").to_string();
    assert_ne!(second, first);
    assert!(second.starts_with(a.body["agent"]["token"]["prefix"].as_str().expect("prefix")));
    assert_eq!(whoami(first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(whoami(second.clone()).await, StatusCode::OK);
    // Only a hash is stored, never the token.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens WHERE agent_id IS NOT NULL AND token_hash = sha256($1::bytea)",
    )
    .bind(second.as_bytes())
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(stored, 1);

    for _ in 0..2 {
        let a = call(&app, "DELETE", &path, Some(&b), None).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    }
    assert_eq!(whoami(second).await, StatusCode::UNAUTHORIZED);
    let list = format!("/v1/organizations/{org}/agents");
    let a = call(&app, "GET", &list, Some(&b), None).await;
    assert_eq!(a.body["agents"][0]["token"], Value::Null);
    // Rotating a revoked agent issues it a token again.
    let a = call(&app, "POST", &path, Some(&b), None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let third = a.body["token"].as_str().expect("token").to_string();
    assert_eq!(whoami(third).await, StatusCode::OK);
}
