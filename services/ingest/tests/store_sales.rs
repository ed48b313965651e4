//! The one-statement sale insert (`accept::store_sales`) where the statement's
//! snapshot cannot answer on its own: the same (tenant, external id) twice in
//! one call, and the same sales stored by concurrent calls. Every item must
//! come out as if the calls were sequential, and every stored sale must have
//! exactly one history row and one event, handed to the outbox relay exactly
//! once, under a lease.

mod common;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use common::{TestDb, count, state, tenant};
use ingest::accept::{TenantItems, store_sales};
use ingest::intake::Outcome;
use salesync_core::db::HeldConnection;
use salesync_core::domain::{SaleInput, TenantId, sample_sale};
use salesync_core::outbox::{self, HandoffQueue};
use tokio::sync::Barrier;

fn sale(external_id: &str, status: &str) -> SaleInput {
    let mut s = sample_sale(external_id);
    s.status = status.to_string();
    s
}

fn items(tenant: TenantId, sales: Vec<SaleInput>) -> TenantItems {
    TenantItems {
        tenant,
        items: sales.into_iter().map(|s| Ok(s.into())).collect(),
        spans: Vec::new(),
    }
}

fn names(outcomes: &[Outcome]) -> Vec<&'static str> {
    outcomes.iter().map(Outcome::name).collect()
}

async fn new_tenant(db: &TestDb, name: &str) -> TenantId {
    let app = common::app(state(&db.pool));
    let (id, _) = tenant(&app, name, false).await;
    TenantId::from_str(&id).expect("tenant id")
}

/// Every event row was handed off once, with its own id and message, and
/// carries a lease (so no relay's sweep publishes it while the hand-off does).
async fn assert_handed_off(db: &TestDb, queue: &mut HandoffQueue) {
    let mut handed: Vec<(i64, uuid::Uuid)> = Vec::new();
    while let Some(batch) = queue.try_recv() {
        handed.extend(
            batch
                .into_iter()
                .map(|c| (c.outbox_id, c.message.message_id)),
        );
    }
    let distinct: HashSet<_> = handed.iter().collect();
    assert_eq!(distinct.len(), handed.len(), "a row handed off twice");
    let mut rows: Vec<(i64, uuid::Uuid)> =
        sqlx::query_as("SELECT id, message_id FROM outbox WHERE leased_until IS NOT NULL")
            .fetch_all(&db.pool)
            .await
            .expect("outbox rows");
    rows.sort_unstable();
    handed.sort_unstable();
    assert_eq!(
        handed, rows,
        "handed-off rows differ from the leased outbox rows"
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM outbox WHERE leased_until IS NULL"
        )
        .await,
        0
    );
}

async fn assert_complete(db: &TestDb, sales: i64) {
    assert_eq!(count(&db.pool, "SELECT count(*) FROM sales").await, sales);
    let incomplete = count(
        &db.pool,
        "SELECT count(*) FROM sales s
         WHERE (SELECT count(*) FROM sale_status_history h WHERE h.sale_id = s.id) <> 1
            OR (SELECT count(*) FROM outbox o
                WHERE convert_from(o.body, 'UTF8')::jsonb ->> 'sale_id' = s.id::text) <> 1",
    )
    .await;
    assert_eq!(
        incomplete, 0,
        "sales without exactly one history row and event"
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM outbox").await, sales);
}

#[tokio::test]
async fn a_tenant_listed_twice_in_one_call_is_judged_as_if_sequential() {
    let db = TestDb::new().await;
    let t = new_tenant(&db, "Shop").await;
    let (handoff, mut queue) = outbox::handoff();
    let out = store_sales(
        &mut HeldConnection::new(db.pool.clone()),
        &handoff,
        &[
            items(t, vec![sale("a", "completed"), sale("b", "completed")]),
            // The same sale again (duplicate) and a different payload (conflict).
            items(t, vec![sale("a", "completed"), sale("b", "refunded")]),
            items(t, vec![sale("c", "completed")]),
        ],
    )
    .await
    .expect("stored");
    let got: Vec<Vec<&str>> = out.iter().map(|o| names(o)).collect();
    assert_eq!(
        got,
        vec![
            vec!["created", "created"],
            vec!["duplicate", "conflict"],
            vec!["created"],
        ]
    );
    assert_eq!(
        out[0][0].id(),
        out[1][0].id(),
        "the duplicate names the stored sale"
    );
    assert_complete(&db, 3).await;
    assert_handed_off(&db, &mut queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_storing_the_same_sales_create_each_once() {
    let db = TestDb::new().await;
    let t = new_tenant(&db, "Shop").await;
    let (handoff, mut queue) = outbox::handoff();
    let calls = 8;
    let rounds = 10;
    for round in 0..rounds {
        // Every call carries the same 20 sales; they race on every key.
        let barrier = Arc::new(Barrier::new(calls));
        let mut tasks = Vec::new();
        for _ in 0..calls {
            let (pool, handoff, barrier) = (db.pool.clone(), handoff.clone(), barrier.clone());
            let batch: Vec<SaleInput> = (0..20)
                .map(|i| sale(&format!("r{round}-{i}"), "completed"))
                .collect();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store_sales(&mut HeldConnection::new(pool), &handoff, &[items(t, batch)]).await
            }));
        }
        let mut created = 0;
        for task in tasks {
            let out = task.await.expect("task").expect("stored");
            for o in out.iter().flatten() {
                match o.name() {
                    "created" => created += 1,
                    "duplicate" => {}
                    other => panic!("round {round}: unexpected outcome {other}"),
                }
            }
        }
        assert_eq!(created, 20, "round {round}: each sale created exactly once");
    }
    assert_complete(&db, 20 * rounds).await;
    assert_handed_off(&db, &mut queue).await;
}
