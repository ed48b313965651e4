//! Group commit of `POST /v1/sales`, in-process on a throwaway database: many
//! concurrent single-sale requests (repeats and conflicts across and within
//! groups, two tenants) come out exactly as if sent one after the other, and
//! a database that goes away mid-way answers 503 without half-written sales.

mod common;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use common::{TestDb, call, count, state, tenant};
use ingest::group_commit::{GroupPolicy, SaleCommitter};
use ingest::intake::Outcome;
use salesync_core::domain::TenantId;
use salesync_core::domain::sample_sale;
use salesync_core::outbox;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Barrier;

fn sale(external_id: &str, status: &str) -> Value {
    let mut s = sample_sale(external_id);
    s.status = status.to_string();
    serde_json::to_value(s).unwrap_or_default()
}

/// What one request sent and got back.
struct Sent {
    token: usize,
    external_id: String,
    status: StatusCode,
    body: Value,
}

/// POSTs every `(token index, sale)` at once (all released by one barrier).
async fn post_all(app: &Router, tokens: &[String], sales: Vec<(usize, Value)>) -> Vec<Sent> {
    let barrier = Arc::new(Barrier::new(sales.len()));
    let mut tasks = Vec::new();
    for (t, body) in sales {
        let (app, barrier) = (app.clone(), barrier.clone());
        let token = tokens.get(t).cloned().unwrap_or_default();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let a = call(&app, "POST", "/v1/sales", Some(&token), Some(&body)).await;
            Sent {
                token: t,
                external_id: body["external_id"].as_str().unwrap_or_default().into(),
                status: a.status,
                body: a.body,
            }
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.push(t.await.expect("request task"));
    }
    sent
}

/// Sales with their history and outbox rows: every stored sale must have
/// exactly one initial history row and one `sale.ingested` event.
async fn assert_complete(pool: &PgPool) {
    let incomplete = count(
        pool,
        "SELECT count(*) FROM sales s
         WHERE (SELECT count(*) FROM sale_status_history h WHERE h.sale_id = s.id) <> 1
            OR (SELECT count(*) FROM outbox o
                WHERE o.routing_key = 'sale.ingested'
                  AND convert_from(o.body, 'UTF8')::jsonb ->> 'sale_id' = s.id::text) <> 1",
    )
    .await;
    assert_eq!(
        incomplete, 0,
        "sales without exactly one history row and event"
    );
    let events = count(pool, "SELECT count(*) FROM outbox").await;
    let sales = count(pool, "SELECT count(*) FROM sales").await;
    assert_eq!(events, sales, "one event per stored sale, no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_sales_behave_as_if_sequential() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token_a) = tenant(&app, "Shop A", false).await;
    let (_, token_b) = tenant(&app, "Shop B", false).await;
    let tokens = vec![token_a, token_b];

    // Per tenant (the same external ids in both: they are different sales):
    // 50 distinct sales, 20 identical resends of "same", and 20 of
    // "clash" with two different payloads, 10 each.
    let mut sales = Vec::new();
    for t in 0..2 {
        for i in 0..50 {
            sales.push((t, sale(&format!("u-{i}"), "completed")));
        }
        for _ in 0..20 {
            sales.push((t, sale("same", "completed")));
        }
        for i in 0..20 {
            let status = if i % 2 == 0 { "completed" } else { "refunded" };
            sales.push((t, sale("clash", status)));
        }
    }
    let sent = post_all(&app, &tokens, sales).await;
    assert_eq!(sent.len(), 180);

    // Per (tenant, external id): answers by status code, and the ids given.
    let mut by_key: HashMap<(usize, String), Vec<&Sent>> = HashMap::new();
    for s in &sent {
        by_key
            .entry((s.token, s.external_id.clone()))
            .or_default()
            .push(s);
    }
    assert_eq!(by_key.len(), 2 * 52);
    for ((t, external_id), answers) in &by_key {
        let n = |code: StatusCode| answers.iter().filter(|a| a.status == code).count();
        let (created, dup, conflict) = (
            n(StatusCode::CREATED),
            n(StatusCode::OK),
            n(StatusCode::CONFLICT),
        );
        assert_eq!(
            created + dup + conflict,
            answers.len(),
            "{t} {external_id}: only 201/200/409"
        );
        assert_eq!(created, 1, "{t} {external_id}: exactly one creates");
        match external_id.as_str() {
            "same" => assert_eq!(dup, 19, "{t} same"),
            "clash" => assert_eq!((dup, conflict), (9, 10), "{t} clash"),
            _ => assert_eq!(answers.len(), 1),
        }
        let first = answers
            .iter()
            .find(|a| a.status == StatusCode::CREATED)
            .expect("the created one");
        assert_eq!(first.body["duplicate"], false);
        for a in answers {
            match a.status {
                StatusCode::OK => {
                    assert_eq!(a.body["duplicate"], true);
                    assert_eq!(a.body["id"], first.body["id"], "a duplicate names the sale");
                }
                StatusCode::CONFLICT => {
                    assert_eq!(a.body["error"]["code"], "sale_conflict");
                }
                _ => {}
            }
        }
    }

    assert_eq!(count(&db.pool, "SELECT count(*) FROM sales").await, 104);
    assert_complete(&db.pool).await;
    // Stored in fewer transactions than sales: requests were grouped.
    let transactions = count(&db.pool, "SELECT count(DISTINCT xmin::text) FROM sales").await;
    assert!(
        transactions < 104,
        "{transactions} transactions for 104 sales"
    );

    // Afterwards the same sales are still duplicates/conflicts, one by one.
    let again = post_all(
        &app,
        &tokens,
        vec![(0, sale("u-1", "completed")), (1, sale("same", "refunded"))],
    )
    .await;
    assert_eq!(again[0].status, StatusCode::OK);
    assert_eq!(again[1].status, StatusCode::CONFLICT);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM sales").await, 104);

    // The batch endpoint shares the store code and its semantics: a repeat
    // is judged against the stored sale, not against the batch's first item.
    let winner = by_key
        .get(&(0, "clash".to_string()))
        .and_then(|answers| answers.iter().find(|a| a.status == StatusCode::CREATED))
        .map(|a| a.body["status"].as_str().unwrap_or_default().to_string())
        .expect("clash was created");
    let loser = if winner == "completed" {
        "refunded"
    } else {
        "completed"
    };
    let a = call(
        &app,
        "POST",
        "/v1/sales/batch",
        tokens.first().map(String::as_str),
        Some(&json!({"sales": [sale("clash", loser), sale("clash", &winner), sale("new", loser)]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let outcomes: Vec<&str> = a.body["results"]
        .as_array()
        .map(|r| r.iter().filter_map(|i| i["outcome"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(outcomes, vec!["conflict", "duplicate", "created"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_gone_mid_way_answers_503_and_writes_nothing_half() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (_, token) = tenant(&app, "Shop", false).await;
    // Authenticated once, so the token is cached and the requests below reach
    // the group commit even once the pool is gone.
    let a = call(
        &app,
        "POST",
        "/v1/sales",
        Some(&token),
        Some(&sale("warm", "completed")),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);

    let tokens = vec![token];
    let watch = PgPool::connect(&db.url).await.expect("second pool");
    let closer = {
        let (pool, watch) = (db.pool.clone(), watch.clone());
        tokio::spawn(async move {
            // Let some groups commit first, then take the pool away.
            while count(&watch, "SELECT count(*) FROM sales").await < 60 {
                tokio::task::yield_now().await;
            }
            pool.close().await;
        })
    };
    // Waves of concurrent requests, 20 sales per wave, so the close lands
    // between and inside groups.
    let mut sent = Vec::new();
    for wave in 0..12 {
        let sales = (0..20)
            .map(|i| (0, sale(&format!("s-{wave}-{i}"), "completed")))
            .collect();
        sent.extend(post_all(&app, &tokens, sales).await);
    }
    closer.await.expect("closer");
    // After the close, certainly unavailable.
    sent.extend(post_all(&app, &tokens, vec![(0, sale("late", "completed"))]).await);
    assert_eq!(
        sent.last().map(|s| s.status),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );

    let check = watch;
    let stored: Vec<String> = sqlx::query_scalar("SELECT external_id FROM sales")
        .fetch_all(&check)
        .await
        .expect("stored sales");
    for s in &sent {
        let is_stored = stored.contains(&s.external_id);
        match s.status {
            StatusCode::CREATED => assert!(is_stored, "{} answered 201", s.external_id),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(!is_stored, "{} answered 503 but stored", s.external_id);
                assert_eq!(s.body["error"]["code"], "unavailable");
            }
            other => panic!("{}: unexpected {other}", s.external_id),
        }
    }
    assert_complete(&check).await;
    let created = sent
        .iter()
        .filter(|s| s.status == StatusCode::CREATED)
        .count();
    eprintln!("{created} created, {} unavailable", sent.len() - created);
    check.close().await;
}

/// With an interval, sales that arrive while the last transaction is too
/// recent wait for it and share the next one; a sale after a quiet spell is
/// committed alone. Each committed group is one hand-off to the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sales_within_the_interval_share_one_transaction() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let (id, _) = tenant(&app, "Shop", false).await;
    let tenant_id = TenantId::from_str(&id).expect("tenant id");
    let (handoff, mut queue) = outbox::handoff();
    let committer = SaleCommitter::start(
        db.pool.clone(),
        handoff,
        GroupPolicy {
            max: 500,
            // Long enough that the five below surely queue up inside it.
            interval: Duration::from_secs(1),
        },
    );

    let first = committer
        .submit(tenant_id, sample_sale("first"))
        .await
        .expect("first sale");
    assert!(matches!(first, Outcome::Created { .. }), "{first:?}");
    let barrier = Arc::new(Barrier::new(5));
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let (committer, barrier) = (committer.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                committer
                    .submit(tenant_id, sample_sale(&format!("next-{i}")))
                    .await
            })
        })
        .collect();
    for t in tasks {
        let outcome = t.await.expect("task").expect("stored");
        assert!(matches!(outcome, Outcome::Created { .. }), "{outcome:?}");
    }

    let mut groups = Vec::new();
    while let Some(rows) = queue.try_recv() {
        groups.push(rows.len());
    }
    assert_eq!(groups, vec![1, 5], "sales per committed group");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM sales").await, 6);
    assert_complete(&db.pool).await;
}
