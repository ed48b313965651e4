//! Pausing an integration, on the real binaries: while paused its sales are
//! held in the database (the target gets nothing), across a kill -9 of the
//! forwarder; resuming delivers every held sale exactly once. Retries that
//! were waiting in a delay queue when the pause hit are held when they come
//! back. A target that fails every request for AUTO_PAUSE_AFTER is paused
//! automatically and its tenant told through its signed webhook; nothing is
//! dropped. Another tenant cannot pause or resume it; bad input is a 4xx
//! naming the field.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use salesync_e2e::sales::mixed;
use salesync_e2e::{Behaviour, ServiceKind, Stack, StackOptions, Tenant, TestTarget, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);

async fn post_sales(tenant: &Tenant, prefix: &str, n: usize) {
    let sales: Vec<_> = (0..n).map(|i| mixed(prefix, i)).collect();
    for item in tenant.api.post_batch(&sales).await.expect("batch").results {
        assert_eq!(item.outcome, "created", "{item:?}");
    }
}

async fn count(stack: &Stack, sql: &'static str) -> i64 {
    stack.db.scalar(sql).await.expect("count")
}

/// Waits until `sql` counts `n`.
async fn wait_count(stack: &Stack, sql: &'static str, n: i64) {
    let reached = wait_until(WAIT, POLL, || async { count(stack, sql).await == n }).await;
    if let Err(e) = reached {
        panic!(
            "{sql} = {} (want {n}): {e}\n{}",
            count(stack, sql).await,
            stack.services.log_tail(ServiceKind::Forwarder, 20)
        );
    }
}

async fn call(tenant: &Tenant, path: String, body: Option<Value>) -> (StatusCode, Value) {
    tenant
        .api
        .raw(Method::POST, &path, body.as_ref())
        .await
        .expect("request")
}

/// Each key the target booked, booked by exactly one 2xx answer.
fn booked_once_each(target: &TestTarget, n: usize) {
    let mut booked: BTreeMap<String, u32> = BTreeMap::new();
    for r in target.requests() {
        if (200..300).contains(&r.answered) {
            *booked
                .entry(r.idempotency_key.clone().unwrap_or_default())
                .or_default() += 1;
        }
    }
    assert_eq!(booked.len(), n, "every sale booked");
    let twice: Vec<_> = booked.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "booked twice: {twice:?}");
    assert_eq!(target.bad_signatures(), 0);
}

const HELD: &str = "SELECT count(*) FROM deliveries WHERE state = 'held' AND held_at IS NOT NULL";
const DELIVERED: &str =
    "SELECT count(*) FROM deliveries WHERE purpose = 'forward' AND state = 'delivered'";
const DEAD: &str = "SELECT count(*) FROM deliveries WHERE state = 'dead'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_sales_are_held_across_a_kill_and_delivered_once_on_resume() {
    const SALES: usize = 40;
    let stack = Stack::start(StackOptions::default().env(
        ServiceKind::Console,
        "PAUSE_CHECK_INTERVAL",
        "200ms",
    ))
    .await
    .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant a");
    let b = stack.tenant("pos-b").await.expect("tenant b");
    let target = TestTarget::start(Behaviour::Ok).await.expect("target");
    let created = a.webhook_to(&target, "acc").await.expect("integration");
    let id = created.id;
    assert_eq!(created.view["pause"], Value::Null);

    // Bad input: 4xx naming the field.
    for (body, field) in [
        (json!({}), "reason"),
        (json!({"reason": "  "}), "reason"),
        (json!({"reason": "x".repeat(501)}), "reason"),
        (json!({"reason": 5}), "reason"),
        (json!({"reason": "ok", "until": "tomorrow"}), "until"),
    ] {
        let (status, answer) = call(
            &a,
            format!("/v1/integrations/{id}/pause"),
            Some(body.clone()),
        )
        .await;
        assert!(status.is_client_error(), "{body}: {status} {answer}");
        assert!(
            answer["error"].to_string().contains(field),
            "{body}: the answer names `{field}`: {answer}"
        );
    }
    // Another tenant's integration is not found, for pausing or resuming.
    for action in ["pause", "resume"] {
        let (status, _) = call(
            &b,
            format!("/v1/integrations/{id}/{action}"),
            Some(json!({"reason": "not mine"})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }

    let (status, paused) = call(
        &a,
        format!("/v1/integrations/{id}/pause"),
        Some(json!({"reason": "target migrating"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["pause"]["paused_by"], "tenant");
    assert_eq!(paused["pause"]["reason"], "target migrating");

    post_sales(&a, "p", SALES).await;
    wait_count(&stack, HELD, SALES as i64).await;
    assert_eq!(target.total_requests(), 0, "nothing sent while paused");

    // The held deliveries are in the database, not in a process: kill -9.
    let mut stack = stack;
    stack.services.kill(ServiceKind::Forwarder).await;
    stack
        .services
        .restart(ServiceKind::Forwarder)
        .await
        .expect("forwarder restarts");
    let (_, shown) = a
        .api
        .raw(Method::GET, &format!("/v1/integrations/{id}"), None)
        .await
        .expect("get");
    assert_eq!(shown["pause"]["paused_by"], "tenant", "{shown}");
    assert_eq!(count(&stack, HELD).await, SALES as i64);

    let (status, resumed) = call(&a, format!("/v1/integrations/{id}/resume"), None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["released"], SALES as u64);
    assert_eq!(resumed["pause"], Value::Null);

    wait_count(&stack, DELIVERED, SALES as i64).await;
    stack.wait_quiet(WAIT).await.expect("quiet");
    booked_once_each(&target, SALES);
    assert_eq!(target.total_requests(), SALES, "one request per sale");
    assert_eq!(count(&stack, HELD).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_waiting_in_a_delay_queue_are_held_when_they_come_back() {
    const SALES: usize = 20;
    let stack = Stack::start(
        StackOptions::default()
            .env(ServiceKind::Forwarder, "RETRY_DELAYS", "3s")
            .env(ServiceKind::Forwarder, "MAX_ATTEMPTS", "100")
            .env(ServiceKind::Console, "PAUSE_CHECK_INTERVAL", "200ms"),
    )
    .await
    .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let target = TestTarget::start(Behaviour::Always(503))
        .await
        .expect("target");
    let created = a.webhook_to(&target, "acc").await.expect("integration");
    let id = created.id;

    post_sales(&a, "r", SALES).await;
    // Every delivery has failed and waits in the delay queue (as a retry, or
    // put back by the open breaker).
    wait_count(
        &stack,
        "SELECT count(*) FROM deliveries WHERE state = 'retrying'",
        SALES as i64,
    )
    .await;
    let (status, _) = call(
        &a,
        format!("/v1/integrations/{id}/pause"),
        Some(json!({"reason": "maintenance"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_count(&stack, HELD, SALES as i64).await;
    let requests_when_held = target.total_requests();
    target.set_behaviour(Behaviour::Ok);
    // Held means nothing is on its way: after another full delay period
    // nothing more arrived.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(target.total_requests(), requests_when_held);
    assert_eq!(count(&stack, HELD).await, SALES as i64);

    let (status, resumed) = call(&a, format!("/v1/integrations/{id}/resume"), None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["released"], SALES as u64);
    wait_count(&stack, DELIVERED, SALES as i64).await;
    stack.wait_quiet(WAIT).await.expect("quiet");
    booked_once_each(&target, SALES);
    assert_eq!(count(&stack, DEAD).await, 0, "nothing dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_failing_for_auto_pause_after_is_paused_and_its_tenant_told() {
    const SALES: usize = 10;
    let stack = Stack::start(
        StackOptions::default()
            .env(ServiceKind::Console, "AUTO_PAUSE_AFTER", "2s")
            .env(ServiceKind::Console, "PAUSE_CHECK_INTERVAL", "200ms")
            .env(ServiceKind::Forwarder, "RETRY_DELAYS", "300ms,1s")
            .env(ServiceKind::Forwarder, "MAX_ATTEMPTS", "1000"),
    )
    .await
    .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let hook = TestTarget::start(Behaviour::Ok).await.expect("webhook");
    let set = a
        .api
        .set_webhook(&hook.url("/events"))
        .await
        .expect("webhook");
    hook.set_secret(&set.secret);
    let target = TestTarget::start(Behaviour::Always(503))
        .await
        .expect("target");
    let created = a.webhook_to(&target, "acc").await.expect("integration");
    let id = created.id;

    post_sales(&a, "f", SALES).await;
    let path = format!("/v1/integrations/{id}");
    let paused = wait_until(WAIT, POLL, || async {
        let (_, v) = a.api.raw(Method::GET, &path, None).await.expect("get");
        v["pause"]["paused_by"] == "auto"
    })
    .await;
    paused.expect("auto-paused");

    // The tenant hears of it through its webhook, signed with its secret.
    let events = || {
        hook.requests()
            .into_iter()
            .filter(|r| r.body["type"] == "integration.paused")
            .collect::<Vec<_>>()
    };
    wait_until(WAIT, POLL, || async { !events().is_empty() })
        .await
        .expect("integration.paused event");
    let event = &events()[0];
    assert_eq!(event.signature_ok, Some(true), "signature verifies");
    assert_eq!(hook.bad_signatures(), 0);
    assert_eq!(event.body["data"]["integration_id"], id.to_string());
    assert_eq!(event.body["data"]["paused_by"], "auto");
    assert!(
        event.body["data"]["failing_since"].is_string(),
        "{}",
        event.body
    );

    // Nothing dropped: every sale is held (or still coming back to be held).
    wait_count(&stack, HELD, SALES as i64).await;
    assert_eq!(count(&stack, DEAD).await, 0);

    target.set_behaviour(Behaviour::Ok);
    let (status, resumed) = call(&a, format!("/v1/integrations/{id}/resume"), None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(
        resumed["failing_since"],
        Value::Null,
        "the streak starts afresh"
    );
    wait_count(&stack, DELIVERED, SALES as i64).await;
    stack.wait_quiet(WAIT).await.expect("quiet");
    booked_once_each(&target, SALES);
    let keys: BTreeSet<String> = target.accepted_keys();
    assert_eq!(keys.len(), SALES);
    assert_eq!(count(&stack, DEAD).await, 0, "nothing dropped");
    assert_eq!(events().len(), 1, "one notice per pause");
}
