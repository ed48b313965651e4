//! Nothing is booked twice: the same sale POSTed again (single or in a
//! batch) is a duplicate that emits nothing, and the same AMQP message
//! delivered twice — a copy of a real `sale.forward`, and of a real
//! `sale.ingested` — leads to no second request at the target.

use std::time::Duration;

use salesync_core::messages::ROUTING_FORWARD;
use salesync_e2e::sales::sale;
use salesync_e2e::{Behaviour, Stack, StackOptions, TestTarget, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_idempotency() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let broker = stack.broker().await.expect("broker");
    let capture = broker.capture("#").await.expect("capture");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let target = TestTarget::start(Behaviour::Ok).await.expect("target");
    a.webhook_to(&target, "acc").await.expect("integration");

    // The same sale twice (single, then in a batch): one sale, one delivery.
    let s = sale("dup-1", "completed", "COF-001");
    let first = a.api.post_sale(&s).await.expect("first post");
    assert!(!first.duplicate);
    let second = a.api.post_sale(&s).await.expect("second post");
    assert!(second.duplicate, "{second:?}");
    assert_eq!(second.id, first.id);
    let batch = a
        .api
        .post_batch(std::slice::from_ref(&s))
        .await
        .expect("batch");
    assert_eq!(batch.results[0].outcome, "duplicate", "{:?}", batch.results);
    assert_eq!(batch.results[0].id, Some(first.id));

    wait_until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async { target.accepted_keys().len() == 1 },
    )
    .await
    .expect("delivered");
    stack
        .wait_quiet(Duration::from_secs(30))
        .await
        .expect("quiet");
    assert_eq!(target.total_requests(), 1, "{:?}", target.requests());
    assert_eq!(
        capture.with_key("sale.ingested").len(),
        1,
        "a duplicate POST emits nothing"
    );

    // Redeliver the very same sale.forward message: the target hears nothing new.
    let forwards = capture.with_key(ROUTING_FORWARD);
    assert_eq!(forwards.len(), 1, "{forwards:?}");
    broker
        .publish(&[forwards[0].to_outgoing()])
        .await
        .expect("republish sale.forward");
    // And the sale.ingested event: condition-filter must not plan a second delivery.
    let ingested = capture.with_key("sale.ingested");
    broker
        .publish(&[ingested[0].to_outgoing()])
        .await
        .expect("republish sale.ingested");
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            capture.with_key(ROUTING_FORWARD).len() >= 2
                && capture.with_key("sale.ingested").len() >= 2
        },
    )
    .await
    .expect("copies were routed");
    stack
        .wait_quiet(Duration::from_secs(30))
        .await
        .expect("quiet");

    assert_eq!(target.total_requests(), 1, "{:?}", target.requests());
    assert_eq!(target.bad_signatures(), 0);
    let view = a.api.get_sale(first.id).await.expect("GET sale");
    assert_eq!(view.deliveries.len(), 1, "{view:?}");
    assert_eq!(view.deliveries[0].attempts, 1, "{view:?}");
    assert_eq!(
        stack
            .db
            .scalar("SELECT count(*) FROM sales")
            .await
            .expect("count"),
        1
    );
    drop(capture);
    broker.close().await;
}
