//! Erasure of one customer's personal data on the real PostgreSQL: every
//! stored copy of the tenant's rows loses it (checked by dumping the
//! tenant's rows and searching them for the customer's values), amounts and
//! hashes stay, other customers and other tenants are untouched, bad
//! requests are 4xx naming the field, and the same sale sent again after
//! the erasure is a duplicate that stores nothing again.

mod common;

use axum::Router;
use axum::http::StatusCode;
use common::{ADMIN_TOKEN, TestDb, call, state, tenant};
use salesync_core::domain::{Customer, OptIn, SaleInput, sample_sale};
use serde_json::{Value, json};
use sqlx::PgPool;

const EMAIL: &str = "ada@example.com";
const NAME: &str = "Ada Lovelace";
const VAT: &str = "NL123456789B01";

fn grace(external_id: &str) -> SaleInput {
    let mut s = sample_sale(external_id);
    s.customer = Some(Customer {
        name: Some("Grace Hopper".into()),
        email: Some("grace@example.com".into()),
        vat_number: None,
        country: Some("US".into()),
        opt_in: OptIn::default(),
    });
    s
}

async fn post_sale(app: &Router, token: &str, sale: &SaleInput) -> (StatusCode, Value) {
    let a = call(app, "POST", "/v1/sales", Some(token), Some(&json!(sale))).await;
    (a.status, a.body)
}

/// Every row the database holds for `tenant` (outbox rows: those naming it),
/// as one lowercase text.
async fn dump(pool: &PgPool, tenant: &str) -> String {
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(x)::text FROM sales x WHERE tenant_id = $1::uuid
         UNION ALL SELECT row_to_json(x)::text FROM deliveries x WHERE tenant_id = $1::uuid
         UNION ALL SELECT row_to_json(a)::text FROM delivery_attempts a
                   JOIN deliveries d ON d.id = a.delivery_id WHERE d.tenant_id = $1::uuid
         UNION ALL SELECT row_to_json(h)::text FROM sale_status_history h
                   JOIN sales s ON s.id = h.sale_id WHERE s.tenant_id = $1::uuid
         UNION ALL SELECT row_to_json(x)::text FROM sale_decisions x
                   JOIN sales s ON s.id = x.sale_id WHERE s.tenant_id = $1::uuid
         UNION ALL SELECT row_to_json(x)::text FROM personal_data_erasures x
                   WHERE tenant_id = $1::uuid
         UNION ALL SELECT convert_from(body, 'UTF8') FROM outbox
                   WHERE position(convert_to($1, 'UTF8') IN body) > 0",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("dump");
    parts.join("\n").to_lowercase()
}

fn has_ada(dump: &str) -> bool {
    [EMAIL, NAME, VAT]
        .iter()
        .any(|v| dump.contains(&v.to_lowercase()))
}

/// A delivery of `sale` whose stored request, error and attempt quote the
/// customer, as a target answering "unknown customer …" leaves them.
async fn quoting_delivery(pool: &PgPool, tenant: &str, sale: &str, sale_doc: &Value) {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, sale_id, purpose, dedupe_key, target_url,
             target_ref, state, attempts, last_error, dead_reason, dead_at, body)
         VALUES ($1, $2::uuid, $3::uuid, 'status_webhook', $4, 'https://books.example/in',
                 $1::text, 'dead', 1, $5, $5, now(), $6)",
    )
    .bind(id)
    .bind(tenant)
    .bind(sale)
    .bind(format!("seed:{id}"))
    .bind(format!("422: unknown customer {EMAIL}"))
    .bind(json!({"type": "sale.forwarded", "data": {"sale": sale_doc}}))
    .execute(pool)
    .await
    .expect("seed delivery");
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
             error, outcome, response_excerpt)
         VALUES ($1, 1, now(), 9, 422, 'rejected', 'dead', $2)",
    )
    .bind(id)
    .bind(format!("{{\"error\": \"no customer {NAME} <{EMAIL}>\"}}"))
    .execute(pool)
    .await
    .expect("seed attempt");
}

async fn gross_total(pool: &PgPool, tenant: &str) -> (i64, Vec<Value>) {
    let sum: i64 =
        sqlx::query_scalar("SELECT sum(gross)::int8 FROM sales WHERE tenant_id = $1::uuid")
            .bind(tenant)
            .fetch_one(pool)
            .await
            .expect("sum");
    let totals: Vec<Value> = sqlx::query_scalar(
        "SELECT sale->'totals' FROM sales WHERE tenant_id = $1::uuid ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("totals");
    (sum, totals)
}

#[tokio::test]
async fn erasure_removes_the_customer_everywhere_and_keeps_the_books() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (tenant_a, token_a) = tenant(&app, "Shop A", false).await;
    let (tenant_b, token_b) = tenant(&app, "Shop B", false).await;

    // Shop A: two sales of Ada, one of Grace; Shop B: one of Ada.
    let ada1 = sample_sale("ada-1");
    let ada2 = sample_sale("ada-2");
    let (s, a1) = post_sale(&app, &token_a, &ada1).await;
    assert_eq!(s, StatusCode::CREATED, "{a1}");
    post_sale(&app, &token_a, &ada2).await;
    let (_, g) = post_sale(&app, &token_a, &grace("grace-1")).await;
    let (s, _) = post_sale(&app, &token_b, &sample_sale("ada-1")).await;
    assert_eq!(s, StatusCode::CREATED);
    let ada1_id = a1["id"].as_str().expect("id").to_string();
    let a = call(
        &app,
        "POST",
        &format!("/v1/sales/{ada1_id}/status"),
        Some(&token_a),
        Some(&json!({"status": "paid", "note": format!("paid by {NAME}")})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    quoting_delivery(&db.pool, &tenant_a, &ada1_id, &json!(ada1)).await;
    assert!(
        has_ada(&dump(&db.pool, &tenant_a).await),
        "seeded everywhere"
    );
    let books_before = gross_total(&db.pool, &tenant_a).await;

    // The customer's e-mail, in another case than stored.
    let a = call(
        &app,
        "POST",
        "/v1/erasures",
        Some(&token_a),
        Some(&json!({"email": EMAIL.to_uppercase()})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let erased: Vec<&str> = a.body["sales"]
        .as_array()
        .expect("sales")
        .iter()
        .map(|s| s["external_id"].as_str().expect("external_id"))
        .collect();
    assert_eq!(erased, ["ada-1", "ada-2"]);
    assert_eq!(a.body["erasure"]["matched_by"], "email");
    assert_eq!(a.body["erasure"]["via"], "api");

    let after = dump(&db.pool, &tenant_a).await;
    assert!(
        !has_ada(&after),
        "personal data left in tenant A's rows:\n{after}"
    );
    assert!(
        after.contains("grace@example.com"),
        "another customer is untouched"
    );
    assert!(
        has_ada(&dump(&db.pool, &tenant_b).await),
        "another tenant is untouched"
    );
    assert_eq!(
        gross_total(&db.pool, &tenant_a).await,
        books_before,
        "the books add up"
    );
    let hashes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sales WHERE tenant_id = $1::uuid AND length(payload_hash) = 32",
    )
    .bind(&tenant_a)
    .fetch_one(&db.pool)
    .await
    .expect("hashes");
    assert_eq!(hashes, 3, "every sale keeps its hash");

    // The lookup shows the sale without the personal data.
    let a = call(
        &app,
        "GET",
        &format!("/v1/sales/{ada1_id}"),
        Some(&token_a),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body["sale"]["customer"],
        json!({"name": null, "email": null, "vat_number": null, "country": "NL",
               "opt_in": {"marketing_email": false, "marketing_sms": false}})
    );
    assert!(a.body["personal_data_erased_at"].is_string(), "{}", a.text);
    assert_eq!(a.body["sale"]["totals"], json!(ada1)["totals"]);
    let grace_id = g["id"].as_str().expect("id");
    let a = call(
        &app,
        "GET",
        &format!("/v1/sales/{grace_id}"),
        Some(&token_a),
        None,
    )
    .await;
    assert!(a.body.get("personal_data_erased_at").is_none());

    // The record says who, when and which sales — not the personal data.
    let a = call(&app, "GET", "/v1/erasures", Some(&token_a), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["erasures"].as_array().map(Vec::len), Some(1));
    assert_eq!(a.body["erasures"][0]["sale_ids"][0], ada1_id.as_str());
    assert!(!has_ada(&a.text.to_lowercase()));
    let a = call(&app, "GET", "/v1/erasures", Some(&token_b), None).await;
    assert_eq!(a.body["erasures"], json!([]), "tenant-scoped");

    // The same sale again is a duplicate and stores nothing again; another
    // payload under the id is still a conflict.
    let (s, again) = post_sale(&app, &token_a, &ada1).await;
    assert_eq!(
        (s, &again["duplicate"]),
        (StatusCode::OK, &json!(true)),
        "{again}"
    );
    assert_eq!(again["id"], ada1_id.as_str());
    let mut changed = ada1.clone();
    changed.sale_number = Some("R-999".into());
    assert_eq!(
        post_sale(&app, &token_a, &changed).await.0,
        StatusCode::CONFLICT
    );
    assert!(
        !has_ada(&dump(&db.pool, &tenant_a).await),
        "nothing stored again"
    );

    // An operator erases Grace for tenant A by external id.
    let a = call(
        &app,
        "POST",
        &format!("/admin/tenants/{tenant_a}/erasures"),
        Some(ADMIN_TOKEN),
        Some(&json!({"external_ids": ["grace-1"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["erasure"]["via"], "admin");
    assert!(
        !dump(&db.pool, &tenant_a)
            .await
            .contains("grace@example.com")
    );
}

#[tokio::test]
async fn bad_requests_name_the_field_and_tenants_stay_apart() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (tenant_a, token_a) = tenant(&app, "Shop A", false).await;
    let (_, integration_only) = tenant(&app, "Shop I", true).await;
    post_sale(&app, &token_a, &sample_sale("ada-1")).await;

    let cases = [
        (json!({}), "email"),
        (json!({"email": "not-an-address"}), "email"),
        (json!({"vat_number": ""}), "vat_number"),
        (json!({"external_ids": []}), "external_ids"),
        (json!({"external_ids": ["ok", " "]}), "external_ids[1]"),
    ];
    for (body, field) in cases {
        let a = call(&app, "POST", "/v1/erasures", Some(&token_a), Some(&body)).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            a.text
        );
        assert_eq!(a.body["error"]["fields"][0]["field"], field, "{body}");
    }
    let a = call(
        &app,
        "POST",
        "/v1/erasures",
        Some(&token_a),
        Some(&json!({"mail": EMAIL})),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "unknown field: {}",
        a.text
    );
    let a = call(
        &app,
        "POST",
        "/v1/erasures",
        None,
        Some(&json!({"email": EMAIL})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = call(
        &app,
        "POST",
        "/v1/erasures",
        Some(&integration_only),
        Some(&json!({"email": EMAIL})),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // A tenant token cannot use the operator's route; an unknown tenant is a 404.
    let other = format!("/admin/tenants/{tenant_a}/erasures");
    let a = call(
        &app,
        "POST",
        &other,
        Some(&token_a),
        Some(&json!({"email": EMAIL})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    let unknown = format!("/admin/tenants/{}/erasures", uuid::Uuid::now_v7());
    let a = call(
        &app,
        "POST",
        &unknown,
        Some(ADMIN_TOKEN),
        Some(&json!({"email": EMAIL})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Another tenant asking about Ada erases nothing of tenant A's.
    let (_, token_b) = tenant(&app, "Shop B", false).await;
    let a = call(
        &app,
        "POST",
        "/v1/erasures",
        Some(&token_b),
        Some(&json!({"email": EMAIL})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["sales"], json!([]));
    assert!(has_ada(&dump(&db.pool, &tenant_a).await));
}
