//! A status travels back: A's sale goes to B's salesync; B marks its copy
//! `processed`; status-poller sees that through B's lookup API, maps it to
//! `completed` (status_map), and ingest applies it to A's sale (history
//! entry with origin `integration`) and tells A's own webhook, signed.

use std::collections::BTreeMap;
use std::time::Duration;

use salesync_e2e::sales::sale;
use salesync_e2e::{
    Behaviour, IntegrationInput, ServiceKind, Stack, StackOptions, TestTarget, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_status_roundtrip() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant A");
    let b = stack.tenant("tenant-b").await.expect("tenant B");
    let b_token = stack.integration_token(&b).await.expect("B token");

    let to_b = a
        .api
        .create_integration(&IntegrationInput {
            poll_status: true,
            status_map: BTreeMap::from([("processed".to_string(), "completed".to_string())]),
            final_statuses: vec!["processed".into()],
            ..IntegrationInput::salesync("to-b", &stack.ingest_url(), &b_token)
        })
        .await
        .expect("integration to B");
    let hook = TestTarget::start(Behaviour::Ok)
        .await
        .expect("webhook target");
    let set = a
        .api
        .set_webhook(&hook.url("/a-status"))
        .await
        .expect("PUT /v1/webhook");
    hook.set_secret(&set.secret);

    let posted = a
        .api
        .post_sale(&sale("a-1", "paid", "COF-001"))
        .await
        .expect("post sale");

    // The delivery's target_ref is B's external id.
    let target_ref = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let view = a.api.get_sale(posted.id).await.ok()?;
            view.deliveries
                .iter()
                .find(|d| d.integration_id == Some(to_b.id) && d.state == "delivered")
                .map(|d| d.id.to_string())
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "sale never delivered to B ({e})\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        )
    });
    let b_sales = b
        .api
        .lookup(std::slice::from_ref(&target_ref))
        .await
        .expect("B lookup");
    assert_eq!(b_sales.len(), 1, "{b_sales:?}");
    let b_sale = b.api.get_sale(b_sales[0].id).await.expect("B's sale");
    assert_eq!(b_sale.external_id, target_ref);
    assert_eq!(b_sale.sale["sale_number"], "a-1");

    let changed = b
        .api
        .set_status(b_sales[0].id, "processed", Some("booked"))
        .await
        .expect("B sets processed");
    assert!(changed.changed);

    let view = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let v = a.api.get_sale(posted.id).await.ok()?;
            (v.status == "completed").then_some(v)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "A's sale never became completed ({e})\nstatus-poller:\n{}\ningest:\n{}",
            stack.services.log_tail(ServiceKind::StatusPoller, 30),
            stack.services.log_tail(ServiceKind::Ingest, 30)
        )
    });
    let entry = view
        .status_history
        .iter()
        // An unmapped target status seen earlier (B's copy starts as `paid`)
        // may be recorded too; the applied one is the mapped `processed`.
        .find(|h| h.origin == "integration" && h.status == "completed")
        .unwrap_or_else(|| panic!("no applied integration history entry: {view:#?}"));
    assert_eq!(entry.status, "completed", "{view:#?}");
    assert_eq!(entry.integration_id, Some(to_b.id), "{view:#?}");
    assert_eq!(
        entry.target_status.as_deref(),
        Some("processed"),
        "{view:#?}"
    );
    let forward = view
        .deliveries
        .iter()
        .find(|d| d.integration_id == Some(to_b.id))
        .expect("forward delivery");
    assert_eq!(forward.target_status.as_deref(), Some("processed"));

    let notified = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            hook.requests()
                .into_iter()
                .find(|r| r.body["type"] == "sale.status_changed")
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "A's webhook never heard of it ({e})\nforwarder:\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        )
    });
    let data = &notified.body["data"];
    assert_eq!(data["sale_id"], posted.id.to_string());
    assert_eq!(data["external_id"], "a-1");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["previous_status"], "paid");
    assert_eq!(data["origin"], "integration");
    assert_eq!(data["integration_id"], to_b.id.to_string());
    assert_eq!(data["target_status"], "processed");
    assert_eq!(notified.signature_ok, Some(true));

    // A's own status change does not send the sale to B a second time.
    stack
        .wait_quiet(Duration::from_secs(30))
        .await
        .expect("quiet");
    assert_eq!(hook.bad_signatures(), 0);
    let b_count: i64 = sqlx::query_scalar("SELECT count(*) FROM sales WHERE tenant_id = $1")
        .bind(b.id)
        .fetch_one(stack.db.pool())
        .await
        .expect("count");
    assert_eq!(b_count, 1);
}
