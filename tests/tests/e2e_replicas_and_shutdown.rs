//! Services hold no state of their own: two forwarders and two
//! condition-filters compete for the same queues and each sale is still
//! delivered once. SIGTERM stops a service gracefully (exit 0, in-flight work
//! finished or handed back), and after a restart nothing is missing.

use std::collections::BTreeSet;
use std::time::Duration;

use salesync_e2e::sales::mixed;
use salesync_e2e::{Behaviour, Replicas, ServiceKind, Stack, StackOptions, Tenant, TestTarget};

async fn post(a: &Tenant, from: usize, to: usize, ids: &mut BTreeSet<String>) {
    let sales: Vec<_> = (from..to).map(|i| mixed("rep", i)).collect();
    for item in a.api.post_batch(&sales).await.expect("batch").results {
        assert_eq!(item.outcome, "created", "{item:?}");
        ids.insert(item.id.expect("id").to_string());
    }
}

fn delivered_sales(target: &TestTarget) -> BTreeSet<String> {
    target
        .requests()
        .iter()
        .map(|r| {
            r.body["data"]["sale_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_replicas_and_shutdown() {
    let replicas = Replicas::one_each()
        .with(ServiceKind::Forwarder, 2)
        .with(ServiceKind::ConditionFilter, 2);
    let mut stack = Stack::start(StackOptions::default().replicas(replicas).env(
        ServiceKind::Forwarder,
        "PREFETCH",
        "10",
    ))
    .await
    .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let target = TestTarget::start(Behaviour::Stall(Duration::from_millis(10)))
        .await
        .expect("target");
    a.webhook_to(&target, "acc").await.expect("integration");

    // Competing replicas: each sale once.
    let mut ids = BTreeSet::new();
    post(&a, 0, 200, &mut ids).await;
    stack
        .await_arrivals(&target, 200, Duration::from_secs(120))
        .await
        .expect("all arrive");
    assert_eq!(target.distinct_keys().len(), 200);
    assert_eq!(
        target.total_requests(),
        200,
        "competing consumers never share a message"
    );
    assert_eq!(delivered_sales(&target), ids);

    // SIGTERM both forwarders while work is queued: they exit cleanly.
    post(&a, 200, 400, &mut ids).await;
    let ended = stack.services.stop(ServiceKind::Forwarder).await;
    assert_eq!(ended.len(), 2);
    for status in &ended {
        assert!(
            status.success(),
            "forwarder did not exit cleanly on SIGTERM: {status}\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 20)
        );
    }
    stack
        .services
        .start_kind(ServiceKind::Forwarder)
        .expect("start forwarders");
    stack.services.wait_ready_kind(ServiceKind::Forwarder).await;
    stack
        .await_arrivals(&target, 400, Duration::from_secs(120))
        .await
        .expect("all arrive");
    assert_eq!(target.distinct_keys().len(), 400);
    assert_eq!(target.accepted_keys(), target.distinct_keys());
    assert_eq!(delivered_sales(&target), ids);
    assert_eq!(target.bad_signatures(), 0);

    // Every service stops gracefully on SIGTERM.
    let unclean: Vec<String> = stack
        .services
        .stop_all()
        .await
        .into_iter()
        .filter(|(_, status)| !status.success())
        .map(|(kind, status)| format!("{kind}: {status}\n{}", stack.services.log_tail(kind, 12)))
        .collect();
    assert!(
        unclean.is_empty(),
        "not every service exited cleanly on SIGTERM:\n{}",
        unclean.join("\n")
    );
}
