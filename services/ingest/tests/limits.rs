//! Per-tenant rate limits (429 with Retry-After, a batch costs its sales)
//! and the request size limit (413, also for a body sent without a length),
//! and the body's deadline (408, also for a client that keeps trickling).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestDb, call, count, raw, state, tenant};
use salesync_core::api::quota::TenantQuota;
use salesync_core::domain::sample_sale;
use salesync_core::ops;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

fn batch(prefix: &str, n: usize) -> Value {
    let sales: Vec<Value> = (0..n)
        .map(|i| serde_json::to_value(sample_sale(&format!("{prefix}-{i}"))).expect("sale"))
        .collect();
    json!({ "sales": sales })
}

fn retry_after(a: &common::Answer) -> u64 {
    a.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn tenants_over_their_rate_get_429_with_retry_after() {
    let db = TestDb::new().await;
    let mut st = state(&db.pool);
    // 1 per second refill, bucket of 20: a test cannot accidentally refill it.
    st.auth.rate_limits = Arc::new(TenantQuota::new(db.pool.clone(), 1, 20));
    let app = common::app(st);
    // Admin routes are not tenant-limited: tenants can be made at any rate.
    let (_, a) = tenant(&app, "A", false).await;
    let (_, b) = tenant(&app, "B", false).await;

    // A batch of 15 costs 15; the next batch of 10 does not fit.
    let r = call(
        &app,
        "POST",
        "/v1/sales/batch",
        Some(&a),
        Some(&batch("a", 15)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &app,
        "POST",
        "/v1/sales/batch",
        Some(&a),
        Some(&batch("b", 10)),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "rate_limited");
    let wait = retry_after(&r);
    assert!((1..=10).contains(&wait), "Retry-After {wait}");
    // Nothing of the refused batch was stored.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM sales WHERE external_id LIKE 'b-%'")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(stored, 0);

    // Every request costs one: a few more and even reads are refused.
    let mut refused = None;
    for _ in 0..10 {
        let r = call(&app, "GET", "/v1/integrations", Some(&a), None).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = refused.expect("reads are limited too");
    assert!(retry_after(&r) >= 1);

    // Another tenant is not slowed down by A.
    let r = call(
        &app,
        "POST",
        "/v1/sales/batch",
        Some(&b),
        Some(&batch("c", 19)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Limited requests are counted like any other.
    let r = call(&app, "GET", "/metrics", None, None).await;
    assert!(r.text.contains("status=\"429\""), "{}", r.text);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_with_or_without_a_length() {
    let db = TestDb::new().await;
    let mut st = state(&db.pool);
    st.body.max_bytes = 4096;
    let app = common::app(st);
    let (_, token) = tenant(&app, "Shop", false).await;

    // A declared length over the limit.
    let r = call(
        &app,
        "POST",
        "/v1/sales/batch",
        Some(&token),
        Some(&batch("x", 20)),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "payload_too_large");

    // A streamed body without Content-Length is cut off at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..10)
        .map(|_| Ok(vec![b' '; 1024]))
        .chain(std::iter::once(Ok(b"{}".to_vec())))
        .collect();
    let req = Request::builder()
        .method("POST")
        .uri("/v1/sales")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .expect("request");
    let r = raw(&app, req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "payload_too_large");

    // Under the limit all is well.
    let sale = serde_json::to_value(sample_sale("small")).expect("sale");
    let r = call(&app, "POST", "/v1/sales", Some(&token), Some(&sale)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// A client that sends its headers and then its body a byte at a time is
/// answered 408 once the body's deadline has passed — the deadline is on the
/// whole body, so bytes still arriving do not extend it — the connection is
/// closed, and nothing of the sale is stored.
#[tokio::test]
async fn a_body_trickling_in_past_its_deadline_is_408_and_closes_the_connection() {
    const DEADLINE: Duration = Duration::from_millis(600);
    let db = TestDb::new().await;
    let mut st = state(&db.pool);
    st.body.read_timeout = DEADLINE;
    let app = common::app(st);
    let (_, token) = tenant(&app, "Shop", false).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let server = tokio::spawn(ops::serve_on(
        listener,
        app,
        Duration::from_secs(30),
        stop.clone(),
    ));

    let body = serde_json::to_vec(&sample_sale("slow")).expect("sale");
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/sales HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // Before the head leaves: the server's deadline cannot start earlier.
    let started = Instant::now();
    conn.write_all(head.as_bytes()).await.expect("head");
    // One byte every 50 ms: the whole body would take far longer than the
    // deadline, but no gap between bytes comes near it.
    let (mut rx, mut tx) = conn.into_split();
    let trickle = tokio::spawn(async move {
        for b in body.iter().take(body.len() - 1) {
            if tx.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), rx.read_to_end(&mut answer))
        .await
        .expect("answered and closed well before the body could finish")
        .expect("read");
    let waited = started.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(
        waited >= DEADLINE,
        "answered before the deadline: {waited:?}"
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM sales").await, 0);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, 0);
    stop.cancel();
    server.await.expect("server");
}
