//! kill -9 the forwarder while it is delivering 300 sales, start it again:
//! every sale still arrives, and exactly once as the target books it — one
//! idempotency key per sale. A request cut off by the kill may be repeated,
//! but only under its own key, so the target's deduplicated view is exact.

use std::collections::BTreeSet;
use std::time::Duration;

use salesync_e2e::sales::mixed;
use salesync_e2e::{Behaviour, ServiceKind, Stack, StackOptions, TestTarget, wait_until};

const SALES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_kill_forwarder() {
    // Small prefetch and a slowish target keep the forwarder busy long enough
    // to be killed mid-stream.
    let stack = Stack::start(StackOptions::default().env(ServiceKind::Forwarder, "PREFETCH", "5"))
        .await
        .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let target = TestTarget::start(Behaviour::Stall(Duration::from_millis(40)))
        .await
        .expect("target");
    a.webhook_to(&target, "acc").await.expect("integration");

    let sales: Vec<_> = (0..SALES).map(|i| mixed("k", i)).collect();
    let mut ids = BTreeSet::new();
    for chunk in sales.chunks(150) {
        for item in a.api.post_batch(chunk).await.expect("batch").results {
            assert_eq!(item.outcome, "created", "{item:?}");
            ids.insert(item.id.expect("id").to_string());
        }
    }

    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(10),
        || async { target.accepted_keys().len() >= 30 },
    )
    .await
    .expect("deliveries started");
    let mut stack = stack;
    stack.services.kill(ServiceKind::Forwarder).await;
    let at_kill = target.accepted_keys().len();
    assert!(
        at_kill < SALES,
        "everything was delivered before the kill; the test proved nothing"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack
        .services
        .restart(ServiceKind::Forwarder)
        .await
        .expect("forwarder restarts");

    stack
        .await_arrivals(&target, SALES, Duration::from_secs(120))
        .await
        .expect("all arrive after the restart");

    let keys = target.distinct_keys();
    assert_eq!(keys.len(), SALES, "one key per sale");
    assert_eq!(target.accepted_keys(), keys, "the target booked each key");
    let per_key = target.attempts_per_key();
    let repeated = per_key.values().filter(|n| **n > 1).count();
    eprintln!(
        "killed at {at_kill}/{SALES} delivered; {} requests, {repeated} keys repeated",
        target.total_requests()
    );
    // Each key belongs to one sale, and each sale has one key.
    let mut sale_of_key = std::collections::BTreeMap::new();
    for r in target.requests() {
        let sale = r.body["data"]["sale_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = r.idempotency_key.clone().unwrap_or_default();
        let prev = sale_of_key.insert(key.clone(), sale.clone());
        assert!(
            prev.is_none_or(|p| p == sale),
            "key {key} used for two sales"
        );
    }
    let sales_seen: BTreeSet<String> = sale_of_key.values().cloned().collect();
    assert_eq!(sales_seen, ids);
    assert_eq!(target.bad_signatures(), 0);
    let delivered = stack
        .db
        .scalar("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
        .await
        .expect("count");
    assert_eq!(delivered, SALES as i64);
}
