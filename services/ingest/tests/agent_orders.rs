//! Orders from a partner's Agent (issue 17, B's side), through the API on the
//! real PostgreSQL: every sale an Agent's token sends is checked against
//! B's catalogue as the organization is granted it. A refusal is a 422
//! naming each field in B's words and stores nothing; an accepted order
//! keeps the version of each product it was made with.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::{TestDb, call, count, error_fields, state, tenant};
use salesync_core::api::token_cache::TokenCache;
use salesync_core::domain::validation::sample_sale;
use serde_json::{Value, json};

const IBAN: &str = "NL91ABNA0417164300";

fn product(rate: i64) -> Value {
    json!({
        "name": "Fixed 3y",
        "price": {"amount": rate, "currency": "EUR", "vat_rate": "21"},
        "questions": [
            {"key": "iban", "label": "IBAN", "kind": "iban", "required": true},
            {"key": "term", "label": "Term", "kind": "single_choice", "required": false,
             "options": [{"value": "1y", "label": "1 year"}, {"value": "3y", "label": "3 years"}]},
        ],
    })
}

/// B with products `fixed-3y` and `variable` and flows `door` (both) and
/// `web`; an organization granted `fixed-3y` in `door`, and its Agent.
/// Returns (app, B's token, the Agent's token).
async fn provider(db: &TestDb) -> (Router, String, String) {
    let mut st = state(&db.pool);
    st.auth.token_cache = Arc::new(TokenCache::new(Duration::ZERO, 0));
    let app = common::app(st);
    let (_, b) = tenant(&app, "Energy B", false).await;
    for key in ["fixed-3y", "variable"] {
        let path = format!("/v1/products/{key}");
        let a = call(&app, "PUT", &path, Some(&b), Some(&product(1200))).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    for (key, products) in [
        ("door", json!(["fixed-3y", "variable"])),
        ("web", json!(["fixed-3y"])),
    ] {
        let path = format!("/v1/flows/{key}");
        let flow = json!({"name": key, "products": products});
        let a = call(&app, "PUT", &path, Some(&b), Some(&flow)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    let a = call(
        &app,
        "POST",
        "/v1/organizations",
        Some(&b),
        Some(&json!({"name": "Shop A"})),
    )
    .await;
    let org = a.body["id"].as_str().expect("id").to_string();
    let grants = json!({"products": ["fixed-3y"], "flows": ["door"]});
    let path = format!("/v1/organizations/{org}/grants");
    let a = call(&app, "PUT", &path, Some(&b), Some(&grants)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let path = format!("/v1/organizations/{org}/agents");
    let a = call(
        &app,
        "POST",
        &path,
        Some(&b),
        Some(&json!({"name": "shop-a"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let agent = a.body["token"].as_str().expect("token").to_string();
    (app, b, agent)
}

/// A sale that is a valid order: flow `door`, every line `fixed-3y` with
/// an IBAN.
fn order(external_id: &str) -> Value {
    let mut sale = serde_json::to_value(sample_sale(external_id)).expect("sale");
    sale["flow"] = json!("door");
    for line in sale["lines"].as_array_mut().expect("lines") {
        line["product_ref"] = json!("fixed-3y");
        line["answers"] = json!({"iban": IBAN, "term": "3y"});
    }
    sale
}

#[tokio::test]
async fn an_agents_order_keeps_the_product_version_it_was_made_with() {
    let db = TestDb::new().await;
    let (app, b, agent) = provider(&db).await;
    let a = call(&app, "POST", "/v1/sales", Some(&agent), Some(&order("o-1"))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let id = a.body["id"].as_str().expect("id").to_string();

    // B changes the rate: version 2. The sale keeps version 1.
    let p = call(
        &app,
        "PUT",
        "/v1/products/fixed-3y",
        Some(&b),
        Some(&product(1300)),
    )
    .await;
    assert_eq!(p.body["version"], 2, "{}", p.text);
    let a = call(&app, "GET", &format!("/v1/sales/{id}"), Some(&agent), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["catalogue_versions"], json!({"fixed-3y": 1}));
    assert_eq!(a.body["sale"]["lines"][0]["answers"]["iban"], IBAN);
    // The next order is checked against version 2.
    let a = call(&app, "POST", "/v1/sales", Some(&agent), Some(&order("o-2"))).await;
    let id = a.body["id"].as_str().expect("id").to_string();
    let a = call(&app, "GET", &format!("/v1/sales/{id}"), Some(&agent), None).await;
    assert_eq!(a.body["catalogue_versions"], json!({"fixed-3y": 2}));
    // Resending the first order is a duplicate, not a new check.
    let a = call(&app, "POST", "/v1/sales", Some(&agent), Some(&order("o-1"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["duplicate"], true);
}

/// A change that spoils a valid order.
type Change = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn an_agents_order_outside_its_grants_or_b_s_questions_is_refused_naming_the_field() {
    let db = TestDb::new().await;
    let (app, b, agent) = provider(&db).await;
    let cases: Vec<(&str, Change, &[&str])> = vec![
        (
            "a product not granted",
            Box::new(|s| s["lines"][1]["product_ref"] = json!("variable")),
            &["lines[1].product_ref"],
        ),
        (
            "a product B does not have",
            Box::new(|s| s["lines"][0]["product_ref"] = json!("nope")),
            &["lines[0].product_ref"],
        ),
        (
            "a line without a product",
            Box::new(|s| s["lines"][0]["product_ref"] = Value::Null),
            &["lines[0].product_ref"],
        ),
        (
            "a flow not granted",
            Box::new(|s| s["flow"] = json!("web")),
            &["flow"],
        ),
        (
            "no flow",
            Box::new(|s| {
                s.as_object_mut().map(|o| o.remove("flow"));
            }),
            &["flow"],
        ),
        (
            "a required answer missing",
            Box::new(|s| s["lines"][0]["answers"] = json!({"term": "1y"})),
            &["lines[0].answers.iban"],
        ),
        (
            "an IBAN failing its check digits",
            Box::new(|s| s["lines"][1]["answers"]["iban"] = json!("NL91ABNA0417164301")),
            &["lines[1].answers.iban"],
        ),
        (
            "an answer outside the options",
            Box::new(|s| s["lines"][0]["answers"]["term"] = json!("5y")),
            &["lines[0].answers.term"],
        ),
        (
            "an answer of the wrong type",
            Box::new(|s| s["lines"][0]["answers"]["term"] = json!(3)),
            &["lines[0].answers.term"],
        ),
        (
            "a question B does not ask",
            Box::new(|s| s["lines"][0]["answers"]["colour"] = json!("red")),
            &["lines[0].answers.colour"],
        ),
    ];
    for (i, (what, change, fields)) in cases.iter().enumerate() {
        let mut sale = order(&format!("bad-{i}"));
        change(&mut sale);
        let a = call(&app, "POST", "/v1/sales", Some(&agent), Some(&sale)).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            a.text
        );
        assert_eq!(a.body["error"]["code"], "validation_failed", "{what}");
        assert_eq!(error_fields(&a.body), *fields, "{what}: {}", a.text);
    }
    assert_eq!(count(&db.pool, "SELECT count(*) FROM sales").await, 0);

    // The batch route checks each item alike; the others are stored.
    let mut bad = order("batch-bad");
    bad["lines"][0]["product_ref"] = json!("variable");
    let batch = json!({"sales": [order("batch-ok"), bad]});
    let a = call(&app, "POST", "/v1/sales/batch", Some(&agent), Some(&batch)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["results"][0]["outcome"], "created", "{}", a.text);
    assert_eq!(a.body["results"][1]["outcome"], "invalid", "{}", a.text);
    assert_eq!(
        a.body["results"][1]["error"]["fields"][0]["field"],
        "lines[0].product_ref"
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM sales").await, 1);

    // B's own token sells what it likes: its sales are not orders.
    let mut own = order("own-1");
    own["lines"][0]["product_ref"] = json!("anything");
    own.as_object_mut().map(|o| o.remove("flow"));
    let a = call(&app, "POST", "/v1/sales", Some(&b), Some(&own)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let versions = count(
        &db.pool,
        "SELECT count(*) FROM sales WHERE catalogue_versions IS NULL",
    )
    .await;
    assert_eq!(versions, 1);
}
