//! RabbitMQ goes away while sales are coming in. ingest must keep accepting
//! them (201: the sale and its event are in PostgreSQL, the outbox holds the
//! message), and once the broker is back every accepted sale is delivered
//! exactly once and every service reports ready again. Runs on a private
//! RabbitMQ node, never the shared one.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use salesync_e2e::sales::mixed;
use salesync_e2e::{
    Behaviour, PrivateRabbit, ServiceKind, Stack, StackOptions, Tenant, TestTarget, wait_until,
};

/// POSTs sales `from..to` one by one; each must be accepted with 201.
async fn post_range(a: &Tenant, from: usize, to: usize, accepted: &mut BTreeSet<String>) {
    for i in from..to {
        let s = mixed("out", i);
        let (status, body) = a
            .api
            .raw(
                Method::POST,
                "/v1/sales",
                Some(&serde_json::to_value(&s).expect("json")),
            )
            .await
            .expect("POST /v1/sales");
        assert_eq!(status, StatusCode::CREATED, "sale {i}: {body}");
        accepted.insert(body["id"].as_str().unwrap_or_default().to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_broker_outage() {
    let mut rabbit = PrivateRabbit::start().await.expect("private rabbit");
    let stack = Stack::start(StackOptions::default().amqp_url(&rabbit.amqp_url()))
        .await
        .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let target = TestTarget::start(Behaviour::Ok).await.expect("target");
    a.webhook_to(&target, "acc").await.expect("integration");

    let mut accepted = BTreeSet::new();
    post_range(&a, 0, 30, &mut accepted).await;

    rabbit.stop_app().await.expect("stop_app");
    post_range(&a, 30, 90, &mut accepted).await;
    let pending: i64 = stack
        .db
        .scalar("SELECT count(*) FROM outbox")
        .await
        .expect("outbox");
    assert!(
        pending > 0,
        "messages of sales accepted during the outage wait in the outbox"
    );
    rabbit.start_app().await.expect("start_app");
    post_range(&a, 90, 120, &mut accepted).await;
    assert_eq!(accepted.len(), 120);

    let arrived = wait_until(
        Duration::from_secs(120),
        Duration::from_millis(300),
        || async { target.accepted_keys().len() >= accepted.len() },
    )
    .await;
    if let Err(e) = arrived {
        panic!(
            "only {} of {} delivered ({e})\ningest:\n{}\nforwarder:\n{}",
            target.accepted_keys().len(),
            accepted.len(),
            stack.services.log_tail(ServiceKind::Ingest, 20),
            stack.services.log_tail(ServiceKind::Forwarder, 20)
        );
    }
    stack
        .wait_quiet(Duration::from_secs(60))
        .await
        .expect("quiet");

    // Exactly once per sale: one key per sale, every key accepted; a repeat
    // request (an attempt cut off by the outage) may only reuse its key.
    let keys = target.distinct_keys();
    assert_eq!(
        keys.len(),
        accepted.len(),
        "{:?}",
        target.attempts_per_key()
    );
    assert_eq!(target.accepted_keys(), keys);
    let delivered_sales: BTreeSet<String> = target
        .requests()
        .iter()
        .map(|r| {
            r.body["data"]["sale_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(delivered_sales, accepted);
    assert_eq!(target.bad_signatures(), 0);

    for kind in ServiceKind::ALL {
        let ready = wait_until(Duration::from_secs(60), Duration::from_millis(300), || {
            stack.services.is_ready(kind)
        })
        .await;
        assert!(
            ready.is_ok(),
            "{kind} not ready after the outage:\n{}",
            stack.services.log_tail(kind, 20)
        );
    }
    drop(stack);
    rabbit.stop().await.expect("stop rabbit");
}
