//! kill -9 condition-filter and then the forwarder while A's orders go to
//! provider B through the catalogue mapping: every order still reaches B
//! exactly once (B keys each by its delivery id), each in B's flow with B's
//! answers, and none is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use salesync_e2e::partner::{A_FLOW, B_FLOW, FIXED, ProviderAddress, Scenario, as_order};
use salesync_e2e::sales::mixed;
use salesync_e2e::{ServiceKind, Stack, StackOptions, wait_until};

const ORDERS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_partner_kill() {
    // Small prefetches keep both workers busy long enough to be killed
    // mid-stream.
    let stack = Stack::start(
        StackOptions::default()
            .env(ServiceKind::ConditionFilter, "PREFETCH", "5")
            .env(ServiceKind::Forwarder, "PREFETCH", "5"),
    )
    .await
    .expect("stack");
    let b = stack.tenant("Energy B").await.expect("tenant B");
    let a = stack.tenant("Shop A").await.expect("tenant A");
    let address = ProviderAddress {
        ingest_url: stack.ingest_url(),
        console_url: stack.console_url(),
    };
    let scenario = Scenario::set_up(&stack, &a, &b, &address).await;
    let integration = scenario.integration;

    let orders: Vec<_> = (0..ORDERS)
        .map(|i| {
            let mut s = as_order(mixed("order", i), A_FLOW, &[FIXED]);
            s.status = "paid".into();
            // Three-year contracts only: the scenario's rule holds back 1j.
            for line in &mut s.lines {
                line.answers
                    .insert("looptijd".into(), serde_json::json!("3j"));
            }
            s
        })
        .collect();
    let mut sent = BTreeSet::new();
    for chunk in orders.chunks(100) {
        for item in a.api.post_batch(chunk).await.expect("batch").results {
            assert_eq!(item.outcome, "created", "{item:?}");
            sent.insert(item.external_id.clone());
        }
    }

    let mut stack = stack;
    let b_id = b.id.to_string();
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(10),
        || async { decisions(&stack, integration).await >= 20 },
    )
    .await
    .expect("decisions started");
    stack.services.kill(ServiceKind::ConditionFilter).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack
        .services
        .restart(ServiceKind::ConditionFilter)
        .await
        .expect("condition-filter restarts");
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(10),
        || async { orders_at(&stack, &b_id).await >= 40 },
    )
    .await
    .expect("orders arriving at B");
    stack.services.kill(ServiceKind::Forwarder).await;
    let at_kill = orders_at(&stack, &b_id).await;
    assert!(
        (at_kill as usize) < ORDERS,
        "everything arrived before the kill; the test proved nothing"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack
        .services
        .restart(ServiceKind::Forwarder)
        .await
        .expect("forwarder restarts");

    wait_until(
        Duration::from_secs(120),
        Duration::from_millis(200),
        || async { orders_at(&stack, &b_id).await >= ORDERS as i64 },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "not every order reached B ({e})\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        )
    });
    stack
        .wait_quiet(Duration::from_secs(60))
        .await
        .expect("quiet");

    // Exactly once: one order at B per sale of A, each B's flow and answers.
    let rows: Vec<(Option<String>, serde_json::Value, serde_json::Value)> = sqlx::query_as(
        "SELECT sale->>'sale_number', sale->'flow', sale->'lines'->0->'answers'
         FROM sales WHERE tenant_id = $1",
    )
    .bind(b.id)
    .fetch_all(stack.db.pool())
    .await
    .expect("B's orders");
    assert_eq!(rows.len(), ORDERS, "one order at B per sale");
    let numbers: BTreeSet<String> = rows.iter().filter_map(|r| r.0.clone()).collect();
    assert_eq!(numbers, sent, "every sale of A, once");
    for (number, flow, answers) in &rows {
        assert_eq!(flow, B_FLOW, "{number:?}");
        assert!(
            answers.get("iban").is_some() && answers.get("term").is_some(),
            "{number:?}: {answers}"
        );
    }
    eprintln!("forwarder killed with {at_kill}/{ORDERS} orders at B");
}

/// Decisions recorded for `integration`.
async fn decisions(stack: &Stack, integration: salesync_core::domain::IntegrationId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sale_decisions WHERE integration_id = $1")
        .bind(integration)
        .fetch_one(stack.db.pool())
        .await
        .unwrap_or(0)
}

/// Orders at tenant `b`.
async fn orders_at(stack: &Stack, b: &str) -> i64 {
    stack
        .db
        .scalar_with("SELECT count(*) FROM sales WHERE tenant_id = $1::uuid", b)
        .await
        .unwrap_or(0)
}
