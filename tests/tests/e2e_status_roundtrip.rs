//! A status travels back: A's sale goes to B's salesync; B marks its copy
//! `processed`; status-poller sees that through B's lookup API, maps it to
//! `completed` (status_map), and ingest applies it to A's sale (history
//! entry with origin `integration`) and tells A's own webhook, signed. And
//! B's custom status comes back only once A maps it; until then A's sale
//! keeps its status and its history says why.

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

/// B's own word "processed" means nothing to A until A maps it: unmapped, A's
/// sale keeps its status and its history says why; mapped to `completed`, the
/// next sale B processes becomes completed. Each step through the five
/// service binaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_custom_status_is_synchronised_only_once_mapped() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant A");
    let b = stack.tenant("tenant-b").await.expect("tenant B");
    let b_token = stack.integration_token(&b).await.expect("B token");

    // No status map: only the system statuses come back.
    let to_b = a
        .api
        .create_integration(&IntegrationInput {
            poll_status: true,
            ..IntegrationInput::salesync("to-b", &stack.ingest_url(), &b_token)
        })
        .await
        .expect("integration to B");

    // A sale is delivered to B; B processes it; A's copy says why nothing changed.
    let process_at_b = |external_id: &'static str| {
        let (a, b, stack) = (&a, &b, &stack);
        async move {
            let posted = a
                .api
                .post_sale(&sale(external_id, "accepted", "COF-001"))
                .await
                .expect("post sale");
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
                    "{external_id} never delivered to B ({e})\n{}",
                    stack.services.log_tail(ServiceKind::Forwarder, 30)
                )
            });
            let b_sales = b
                .api
                .lookup(std::slice::from_ref(&target_ref))
                .await
                .expect("B lookup");
            assert_eq!(b_sales.len(), 1, "{b_sales:?}");
            let changed = b
                .api
                .set_status(b_sales[0].id, "processed", None)
                .await
                .expect("B sets processed");
            assert!(changed.changed);
            posted.id
        }
    };
    let history_of = |id, target_status: &'static str| {
        let (a, stack) = (&a, &stack);
        async move {
            wait_for(
                Duration::from_secs(30),
                Duration::from_millis(200),
                || async {
                    let v = a.api.get_sale(id).await.ok()?;
                    v.status_history
                        .iter()
                        .any(|h| h.target_status.as_deref() == Some(target_status))
                        .then_some(v)
                },
            )
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "B's '{target_status}' never reached A's sale ({e})\nstatus-poller:\n{}\ningest:\n{}",
                    stack.services.log_tail(ServiceKind::StatusPoller, 30),
                    stack.services.log_tail(ServiceKind::Ingest, 30)
                )
            })
        }
    };

    let first = process_at_b("a-1").await;
    let view = history_of(first, "processed").await;
    assert_eq!(view.status, "accepted", "not synchronised: {view:#?}");
    let entry = view
        .status_history
        .iter()
        .find(|h| h.target_status.as_deref() == Some("processed"))
        .expect("the skipped status is recorded");
    assert_eq!(entry.origin, "integration");
    assert_eq!(entry.integration_id, Some(to_b.id));
    assert_eq!(entry.status, "accepted", "{view:#?}");
    assert_eq!(
        entry.note.as_deref(),
        Some(
            "B's status 'processed' is not a system status and is not mapped to one of yours: not synchronised"
        ),
        "{view:#?}"
    );
    let log = stack.services.log_tail(ServiceKind::StatusPoller, 5000);
    assert!(
        log.contains("target status not synchronised") && log.contains("processed"),
        "the poller says it skipped it:\n{log}"
    );

    // A maps B's "processed" to its "completed": the next one comes through.
    let (status, body) = a
        .api
        .raw(
            reqwest::Method::PATCH,
            &format!("/v1/integrations/{}", to_b.id),
            Some(&serde_json::json!({"status_map": {"processed": "completed"}})),
        )
        .await
        .expect("PATCH integration");
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let second = process_at_b("a-2").await;
    // The history row and the status change are written together.
    let view = history_of(second, "processed").await;
    assert_eq!(view.status, "completed", "{view:#?}");
    let entry = view
        .status_history
        .iter()
        .find(|h| h.target_status.as_deref() == Some("processed"))
        .expect("the applied status is recorded");
    assert_eq!(
        (entry.status.as_str(), entry.note.as_deref()),
        ("completed", None),
        "{view:#?}"
    );
}
