//! The provider's organizations and grants through the API on the real
//! PostgreSQL (issue 17): names are unique per tenant, grants name only what
//! the catalogue has, a grant left out is revoked and kept on record, and
//! granting again brings it back.

mod common;

use axum::Router;
use axum::http::StatusCode;
use common::{TestDb, call, count, state, tenant};
use serde_json::{Value, json};

async fn catalogue(app: &Router, token: &str) {
    let product = json!({
        "name": "Fixed 3y",
        "price": {"amount": 1200, "currency": "EUR", "vat_rate": "21"},
    });
    for key in ["fixed-3y", "variable"] {
        let a = call(
            app,
            "PUT",
            &format!("/v1/products/{key}"),
            Some(token),
            Some(&product),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    let flow = json!({"name": "Door to door", "products": ["fixed-3y"]});
    let a = call(app, "PUT", "/v1/flows/door", Some(token), Some(&flow)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

async fn grant(app: &Router, token: &str, id: &str, grants: &Value) -> (StatusCode, Value) {
    let a = call(
        app,
        "PUT",
        &format!("/v1/organizations/{id}/grants"),
        Some(token),
        Some(grants),
    )
    .await;
    (a.status, a.body)
}

#[tokio::test]
async fn organizations_are_granted_what_the_catalogue_has_and_revoked_grants_stay_on_record() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Energy B", false).await;
    catalogue(&app, &token).await;

    let a = call(
        &app,
        "POST",
        "/v1/organizations",
        Some(&token),
        Some(&json!({"name": "Shop A"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["grants"], json!({"products": [], "flows": []}));
    let id = a.body["id"].as_str().expect("id").to_string();
    let a = call(
        &app,
        "POST",
        "/v1/organizations",
        Some(&token),
        Some(&json!({"name": "Shop A"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "organization_exists");
    let a = call(
        &app,
        "POST",
        "/v1/organizations",
        Some(&token),
        Some(&json!({"name": " "})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text);

    // Unknown keys: each named, nothing granted.
    let (status, body) = grant(
        &app,
        &token,
        &id,
        &json!({"products": ["fixed-3y", "solar"], "flows": ["phone"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = common::error_fields(&body);
    assert_eq!(fields, ["products[1]", "flows[0]"]);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM grants").await, 0);

    let (status, body) = grant(
        &app,
        &token,
        &id,
        &json!({"products": ["variable", "fixed-3y", "variable"], "flows": ["door"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["grants"],
        json!({"products": ["fixed-3y", "variable"], "flows": ["door"]})
    );
    // Left out: revoked, kept on record. Then granted again.
    let (_, body) = grant(
        &app,
        &token,
        &id,
        &json!({"products": ["fixed-3y"], "flows": ["door"]}),
    )
    .await;
    assert_eq!(body["grants"]["products"], json!(["fixed-3y"]));
    let revoked = count(
        &db.pool,
        "SELECT count(*) FROM grants WHERE key = 'variable' AND revoked_at IS NOT NULL",
    )
    .await;
    assert_eq!(revoked, 1);
    let (_, body) = grant(
        &app,
        &token,
        &id,
        &json!({"products": ["fixed-3y", "variable"], "flows": ["door"]}),
    )
    .await;
    assert_eq!(body["grants"]["products"], json!(["fixed-3y", "variable"]));
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM grants WHERE revoked_at IS NOT NULL"
        )
        .await,
        0
    );

    let a = call(
        &app,
        "GET",
        &format!("/v1/organizations/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["grants"]["flows"], json!(["door"]));
    let a = call(&app, "GET", "/v1/organizations", Some(&token), None).await;
    assert_eq!(a.body["organizations"][0]["name"], "Shop A");
    for path in [
        "/v1/organizations/nope".to_string(),
        format!("/v1/organizations/{}", uuid::Uuid::now_v7()),
    ] {
        let a = call(&app, "GET", &path, Some(&token), None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
    }
}
