//! The forwarder's failure paths against real HTTP targets: transient
//! failures (503, 429 with Retry-After, a stall past REQUEST_TIMEOUT) are
//! retried through the delay queues until delivered; a permanent 400 and an
//! endless 503 (attempts exhausted) end as dead deliveries with a reason and
//! the message in `salesync.dead`. Each integration only takes sales with
//! its own SKU, so one sale exercises one failure mode.

use std::collections::BTreeMap;
use std::time::Duration;

use salesync_core::amqp::topology::Q_DEAD;
use salesync_core::domain::ids::{IntegrationId, SaleId};
use salesync_core::integration::Conditions;
use salesync_e2e::api::{DeliveryView, SaleView};
use salesync_e2e::sales::sale;
use salesync_e2e::{
    Behaviour, IntegrationInput, ServiceKind, Stack, StackOptions, Tenant, TestTarget, wait_for,
};

const MAX_ATTEMPTS: u32 = 4;

struct Case {
    sku: &'static str,
    target: TestTarget,
    integration: IntegrationId,
    sale: SaleId,
}

async fn case(a: &Tenant, sku: &'static str, behaviour: Behaviour) -> Case {
    let target = TestTarget::start(behaviour).await.expect("target");
    let input = IntegrationInput {
        conditions: Conditions {
            skus_any: vec![sku.into()],
            ..Conditions::default()
        },
        ..IntegrationInput::webhook(sku, &target.url("/hook"))
    };
    let created = a.integrate(&target, &input).await.expect("integration");
    Case {
        sku,
        target,
        integration: created.id,
        sale: SaleId::new(),
    }
}

/// Waits until the case's delivery reached a final state and returns it.
async fn final_delivery(a: &Tenant, c: &Case, stack: &Stack) -> (SaleView, DeliveryView) {
    let found = wait_for(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let view = a.api.get_sale(c.sale).await.ok()?;
            let d = view
                .deliveries
                .iter()
                .find(|d| d.integration_id == Some(c.integration))?
                .clone();
            matches!(d.state.as_str(), "delivered" | "dead").then_some((view, d))
        },
    )
    .await;
    match found {
        Ok(v) => v,
        Err(e) => panic!(
            "{}: delivery not final ({e}): {:?}\nforwarder log:\n{}",
            c.sku,
            a.api.get_sale(c.sale).await.map(|v| v.deliveries),
            stack.services.log_tail(ServiceKind::Forwarder, 40)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_retries_and_dead_letters() {
    let stack = Stack::start(
        StackOptions::default()
            .env(ServiceKind::Forwarder, "REQUEST_TIMEOUT", "500ms")
            .env(ServiceKind::Forwarder, "RETRY_DELAYS", "200ms,400ms,800ms")
            .env(
                ServiceKind::Forwarder,
                "MAX_ATTEMPTS",
                &MAX_ATTEMPTS.to_string(),
            ),
    )
    .await
    .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let broker = stack.broker().await.expect("broker");

    let mut cases = vec![
        case(&a, "FLAKY", Behaviour::FailTimes(2, 503)).await,
        case(&a, "BAD", Behaviour::Always(400)).await,
        case(&a, "SLOW", Behaviour::StallTimes(1, Duration::from_secs(3))).await,
        case(&a, "LIMITED", Behaviour::RetryAfter(1)).await,
        case(&a, "DOWN", Behaviour::Always(503)).await,
    ];
    for c in &mut cases {
        let r = a
            .api
            .post_sale(&sale(&format!("sale-{}", c.sku), "completed", c.sku))
            .await
            .expect("post sale");
        c.sale = r.id;
    }
    let by_sku: BTreeMap<&str, &Case> = cases.iter().map(|c| (c.sku, c)).collect();

    // 503 twice, then 200: delivered on attempt 3, all three in the log.
    let c = by_sku["FLAKY"];
    let (_, d) = final_delivery(&a, c, &stack).await;
    assert_eq!(d.state, "delivered", "{d:?}");
    assert_eq!(d.attempts, 3, "{d:?}");
    let codes: Vec<Option<i64>> = d.attempt_log.iter().map(|x| x.status_code).collect();
    assert_eq!(codes, [Some(503), Some(503), Some(200)], "{d:?}");
    let outcomes: Vec<&str> = d.attempt_log.iter().map(|x| x.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"], "{d:?}");
    assert_eq!(c.target.total_requests(), 3);
    assert_eq!(
        c.target.distinct_keys().len(),
        1,
        "every attempt carries the same key"
    );
    assert_eq!(
        c.target.distinct_keys().into_iter().next(),
        Some(d.id.to_string()),
        "the key is the delivery's target_ref"
    );

    // 400: permanent, dead at once with a reason.
    let c = by_sku["BAD"];
    let (_, bad) = final_delivery(&a, c, &stack).await;
    assert_eq!(bad.state, "dead", "{bad:?}");
    assert_eq!(bad.attempts, 1, "a 400 is not retried: {bad:?}");
    assert!(
        bad.dead_reason.as_deref().is_some_and(|r| !r.is_empty()),
        "{bad:?}"
    );
    assert_eq!(c.target.total_requests(), 1);

    // A stall past REQUEST_TIMEOUT is a transient failure: retried, then delivered.
    let c = by_sku["SLOW"];
    let (_, d) = final_delivery(&a, c, &stack).await;
    assert_eq!(d.state, "delivered", "{d:?}");
    assert!(d.attempts >= 2, "{d:?}");
    let first = &d.attempt_log[0];
    assert_eq!(first.outcome, "retry", "{d:?}");
    assert!(
        first.status_code.is_none(),
        "a timeout has no status: {d:?}"
    );
    assert!(
        first.error.as_deref().is_some_and(|e| !e.is_empty()),
        "{d:?}"
    );
    assert_eq!(c.target.distinct_keys().len(), 1);

    // 429 + Retry-After: retried, then delivered.
    let c = by_sku["LIMITED"];
    let (_, d) = final_delivery(&a, c, &stack).await;
    assert_eq!(d.state, "delivered", "{d:?}");
    assert_eq!(d.attempts, 2, "{d:?}");
    assert_eq!(d.attempt_log[0].status_code, Some(429), "{d:?}");

    // Endless 503: dead after MAX_ATTEMPTS.
    let c = by_sku["DOWN"];
    let (_, down) = final_delivery(&a, c, &stack).await;
    assert_eq!(down.state, "dead", "{down:?}");
    assert_eq!(down.attempts, i64::from(MAX_ATTEMPTS), "{down:?}");
    assert_eq!(c.target.total_requests(), MAX_ATTEMPTS as usize);
    assert!(down.dead_reason.is_some(), "{down:?}");

    for c in &cases {
        assert_eq!(c.target.bad_signatures(), 0, "{}", c.sku);
    }

    // Both dead deliveries sit in salesync.dead, with their reason.
    stack
        .wait_quiet(Duration::from_secs(30))
        .await
        .expect("quiet");
    let dead = broker.drain(Q_DEAD).await.expect("drain DLQ");
    for d in [&bad, &down] {
        let msg = dead
            .iter()
            .find(|m| m.json()["payload"]["delivery_id"] == d.id.to_string())
            .unwrap_or_else(|| panic!("delivery {} not in {Q_DEAD}: {dead:?}", d.id));
        assert_eq!(msg.envelope_type().as_deref(), Some("sale.forward"));
        assert!(
            msg.headers
                .get("x-dead-reason")
                .is_some_and(|r| !r.is_empty()),
            "{msg:?}"
        );
    }
    assert_eq!(
        dead.len(),
        2,
        "only the two dead deliveries are dead-lettered: {dead:?}"
    );
    broker.close().await;
}
