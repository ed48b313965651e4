//! The provider's catalogue through the API on the real PostgreSQL (issue
//! 17): a product written again with the same content stays at its version,
//! every change is a new version and every version stays readable (also of a
//! withdrawn product); a product that does not hold together is refused with
//! each field named and nothing stored; first writes racing each other make
//! exactly one version 1; a flow names only products of the catalogue.

mod common;

use axum::Router;
use axum::http::StatusCode;
use common::{TestDb, call, count, state, tenant};
use serde_json::{Value, json};

fn tariff(name: &str, amount: i64) -> Value {
    json!({
        "name": name,
        "description": "Fixed rate for three years",
        "price": {"amount": amount, "currency": "EUR", "vat_rate": "21"},
        "category": "energy",
        "questions": [
            {"key": "iban", "label": "IBAN", "kind": "iban", "required": true},
            {"key": "start", "label": "Start date", "kind": "date"},
        ],
    })
}

async fn put(app: &Router, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let a = call(app, "PUT", path, Some(token), Some(body)).await;
    (a.status, a.body)
}

#[tokio::test]
async fn products_keep_every_version_and_change_only_when_their_content_does() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Energy B", false).await;

    let (status, v1) = put(
        &app,
        &token,
        "/v1/products/fixed-3y",
        &tariff("Fixed 3y", 1200),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(
        (v1["key"].as_str(), v1["version"].as_u64()),
        (Some("fixed-3y"), Some(1))
    );

    // The same content again: nothing new.
    let (status, again) = put(
        &app,
        &token,
        "/v1/products/fixed-3y",
        &tariff("Fixed 3y", 1200),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, v1);
    // A new rate: version 2; version 1 stays as it was.
    let (status, v2) = put(
        &app,
        &token,
        "/v1/products/fixed-3y",
        &tariff("Fixed 3y", 1250),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["price"]["amount"], 1250);
    let a = call(
        &app,
        "GET",
        "/v1/products/fixed-3y/versions/1",
        Some(&token),
        None,
    )
    .await;
    assert_eq!((a.status, &a.body), (StatusCode::OK, &v1));
    let versions = count(&db.pool, "SELECT count(*) FROM product_versions").await;
    assert_eq!(versions, 2);

    let a = call(&app, "GET", "/v1/products", Some(&token), None).await;
    assert_eq!(a.body["products"], json!([v2]));

    // Withdrawn: gone from the list, its versions still readable.
    let a = call(&app, "DELETE", "/v1/products/fixed-3y", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = call(&app, "DELETE", "/v1/products/fixed-3y", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "withdrawn already");
    let a = call(&app, "GET", "/v1/products", Some(&token), None).await;
    assert_eq!(a.body["products"], json!([]));
    let a = call(
        &app,
        "GET",
        "/v1/products/fixed-3y/versions/2",
        Some(&token),
        None,
    )
    .await;
    assert_eq!((a.status, &a.body), (StatusCode::OK, &v2));
    // Written again, even unchanged: back, as a new version.
    let (status, v3) = put(
        &app,
        &token,
        "/v1/products/fixed-3y",
        &tariff("Fixed 3y", 1250),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v3["version"], 3);

    for path in [
        "/v1/products/fixed-3y/versions/4",
        "/v1/products/fixed-3y/versions/0",
        "/v1/products/fixed-3y/versions/x",
        "/v1/products/other/versions/1",
    ] {
        let a = call(&app, "GET", path, Some(&token), None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.text);
    }
}

#[tokio::test]
async fn a_product_that_does_not_hold_together_is_refused_whole() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Energy B", false).await;
    let mut bad = tariff("Fixed 3y", -5);
    bad["questions"] = json!([
        {"key": "iban", "label": "IBAN", "kind": "iban"},
        {"key": "iban", "label": "Again", "kind": "text"},
        {"key": "plan", "label": "Plan", "kind": "single_choice", "options": []},
    ]);
    let (status, body) = put(&app, &token, "/v1/products/Bad%20Key", &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = common::error_fields(&body);
    for field in [
        "key",
        "price.amount",
        "questions[1].key",
        "questions[2].options",
    ] {
        assert!(fields.contains(&field), "{field} not named: {body}");
    }
    // An unknown field is the JSON's shape, not a rule: 400.
    let mut odd = tariff("Fixed 3y", 100);
    odd["colour"] = json!("green");
    let (status, body) = put(&app, &token, "/v1/products/fixed-3y", &odd).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM products").await, 0);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM product_versions").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_writes_racing_each_other_make_one_version_1() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Energy B", false).await;
    // All start together; half write one content, half another.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let writes: Vec<_> = (0..16)
        .map(|i| {
            let (app, token, start) = (app.clone(), token.clone(), start.clone());
            let body = tariff("Variable", 900 + (i % 2));
            tokio::spawn(async move {
                start.wait().await;
                put(&app, &token, "/v1/products/variable", &body).await
            })
        })
        .collect();
    let mut created = 0;
    for w in writes {
        let (status, body) = w.await.expect("write");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 1, "exactly one write created the product");
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM product_versions ORDER BY version")
            .fetch_all(&db.pool)
            .await
            .expect("versions");
    assert_eq!(versions, (1..=versions.len() as i32).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_flow_names_only_products_of_the_catalogue() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Energy B", false).await;
    let (_, other) = tenant(&app, "Someone else", false).await;
    put(
        &app,
        &token,
        "/v1/products/fixed-3y",
        &tariff("Fixed 3y", 1200),
    )
    .await;
    put(&app, &other, "/v1/products/solar", &tariff("Solar", 5000)).await;

    let flow = json!({"name": "Door to door", "products": ["fixed-3y", "solar", "gone"]});
    let (status, body) = put(&app, &token, "/v1/flows/door", &flow).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = common::error_fields(&body);
    assert_eq!(
        fields,
        ["products[1]", "products[2]"],
        "another tenant's product is not ours"
    );

    let flow = json!({"name": "Door to door", "products": ["fixed-3y"]});
    let (status, body) = put(&app, &token, "/v1/flows/door", &flow).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = put(&app, &token, "/v1/flows/door", &flow).await;
    assert_eq!(status, StatusCode::OK);
    let a = call(&app, "GET", "/v1/flows", Some(&token), None).await;
    assert_eq!(
        a.body["flows"],
        json!([{"key": "door", "name": "Door to door", "products": ["fixed-3y"]}])
    );
    let a = call(&app, "DELETE", "/v1/flows/door", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = call(&app, "GET", "/v1/flows", Some(&token), None).await;
    assert_eq!(a.body["flows"], json!([]));
}
