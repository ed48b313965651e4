//! status-poller against real PostgreSQL and RabbitMQ (a private database and
//! vhost per test) and fake targets on 127.0.0.1: what the poller asks, what
//! it publishes on `sale.status`, and when it stops asking.

mod support;

use std::time::Duration;

use salesync_core::egress::EgressPolicy;
use salesync_core::messages::{Envelope, StatusUpdate};
use status_poller::client::build_http_client;
use support::{Behaviour, Target, TestEnv, eventually, next_message};
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_millis(150);
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_change_is_carried_back_once_and_a_final_status_ends_polling() {
    let env = TestEnv::new().await;
    let target = Target::start(Behaviour::Healthy, Some("tok-a")).await;
    let tenant = env.tenant().await;
    let integration = env
        .integration(tenant, "salesync", &target.url, None, Some("tok-a"))
        .await;
    let (sale, delivery) = env
        .delivered_sale(tenant, integration, Some("received"))
        .await;
    target.set(delivery, "received");

    let (_watch, mut rx) = env.watch_status_updates().await;
    let stop = CancellationToken::new();
    let tasks = env.run(env.poller(INTERVAL, 200, Duration::from_secs(2)), &stop);

    // Unchanged status: asked repeatedly, nothing published.
    assert!(
        eventually(WAIT, || target.request_count() >= 3).await,
        "the target is polled every interval"
    );
    assert!(
        next_message(&mut rx, Duration::from_millis(300))
            .await
            .is_none(),
        "an unchanged status publishes nothing"
    );

    // The target moves on to a final status: exactly one mapped update.
    target.set(delivery, "processed");
    let body = next_message(&mut rx, WAIT)
        .await
        .expect("a StatusUpdate after the change");
    let env_msg = Envelope::<StatusUpdate>::decode(&body).expect("a StatusUpdate envelope");
    assert_eq!(env_msg.tenant_id, tenant);
    assert_eq!(env_msg.sale_id, sale);
    assert_eq!(env_msg.payload.delivery_id, delivery);
    assert_eq!(env_msg.payload.integration_id, integration);
    assert_eq!(env_msg.payload.target_status, "processed");
    assert_eq!(env_msg.payload.mapped_status.as_deref(), Some("completed"));
    assert_eq!(
        env.delivery_status(delivery).await,
        (Some("processed".into()), true)
    );

    // Final: no longer asked, nothing more published.
    let asked = target.request_count();
    tokio::time::sleep(INTERVAL * 6).await;
    assert_eq!(
        target.request_count(),
        asked,
        "a final delivery is not polled"
    );
    assert!(
        next_message(&mut rx, Duration::from_millis(300))
            .await
            .is_none(),
        "exactly one update per change"
    );

    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test]
async fn lookups_are_batched_per_target_in_chunks() {
    let env = TestEnv::new().await;
    let salesync = Target::start(Behaviour::Healthy, None).await;
    let webhook = Target::start(Behaviour::Healthy, Some("tok-w")).await;
    let tenant = env.tenant().await;
    let to_salesync = env
        .integration(tenant, "salesync", &salesync.url, None, None)
        .await;
    let status_url = format!("{}/status", webhook.url);
    let to_webhook = env
        .integration(
            tenant,
            "webhook",
            &webhook.url,
            Some(&status_url),
            Some("tok-w"),
        )
        .await;
    // A webhook target without a status URL cannot be asked, and an
    // integration with polling off isn't: their deliveries are retired.
    let unaskable = env
        .integration(tenant, "webhook", &webhook.url, None, None)
        .await;
    let (_, never) = env.delivered_sale(tenant, unaskable, None).await;
    let not_polling = env
        .integration(tenant, "salesync", &salesync.url, None, None)
        .await;
    sqlx::query("UPDATE integrations SET poll_status = false WHERE id = $1")
        .bind(not_polling)
        .execute(&env.pool)
        .await
        .expect("turn polling off");
    let (_, off) = env.delivered_sale(tenant, not_polling, None).await;
    salesync.set(off, "processed");

    let mut salesync_deliveries = Vec::new();
    for _ in 0..5 {
        let (_, d) = env.delivered_sale(tenant, to_salesync, None).await;
        salesync.set(d, "processed");
        salesync_deliveries.push(d);
    }
    let (_, w1) = env.delivered_sale(tenant, to_webhook, None).await;
    let (_, w2) = env.delivered_sale(tenant, to_webhook, Some("open")).await;
    webhook.set(w1, "open");
    webhook.set(w2, "open");

    // One tick by hand, with an interval long enough that nothing is due again.
    let poller = env.poller(Duration::from_secs(3600), 2, Duration::from_secs(2));
    let report = poller.tick().await.expect("tick");
    assert_eq!(report.claimed, 7);
    assert_eq!(report.retired, 2);
    assert_eq!(report.failed_requests, 0);
    // 5 deliveries in chunks of 2 → 3 requests; 2 webhook deliveries → 1.
    assert_eq!(report.requests, 4);
    assert_eq!(salesync.request_count(), 3);
    let mut sizes = salesync.request_sizes.lock().unwrap().clone();
    sizes.sort();
    assert_eq!(sizes, vec![1, 2, 2]);
    assert_eq!(webhook.request_count(), 1);
    assert_eq!(*webhook.request_sizes.lock().unwrap(), vec![2]);

    // 5 salesync changes + w1 (new "open"); w2 was already "open".
    assert_eq!(report.updates, 6);
    let outbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE routing_key = 'sale.status'")
            .fetch_one(&env.pool)
            .await
            .expect("count outbox");
    assert_eq!(outbox, 6);
    for d in &salesync_deliveries {
        assert_eq!(
            env.delivery_status(*d).await,
            (Some("processed".into()), true)
        );
    }
    assert_eq!(env.delivery_status(w1).await, (Some("open".into()), false));
    for d in [never, off] {
        let poll_after: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT poll_after FROM deliveries WHERE id = $1")
                .bind(d)
                .fetch_one(&env.pool)
                .await
                .expect("read poll_after");
        assert_eq!(poll_after, None, "a delivery nobody asks about is retired");
        assert_eq!(env.delivery_status(d).await, (None, false));
    }

    // Nothing is due any more: the next tick asks nobody.
    let again = poller.tick().await.expect("tick");
    assert_eq!((again.claimed, again.retired), (0, 0));
    assert_eq!(salesync.request_count() + webhook.request_count(), 4);
}

#[tokio::test]
async fn broken_targets_do_not_block_healthy_ones() {
    let env = TestEnv::new().await;
    let healthy = Target::start(Behaviour::Healthy, None).await;
    let garbage = Target::start(Behaviour::Garbage, None).await;
    let stalling = Target::start(Behaviour::Stall, None).await;
    let tenant = env.tenant().await;
    let mut deliveries = Vec::new();
    for t in [&healthy, &garbage, &stalling] {
        let i = env
            .integration(tenant, "salesync", &t.url, None, None)
            .await;
        let (_, d) = env.delivered_sale(tenant, i, None).await;
        t.set(d, "processed");
        deliveries.push(d);
    }

    let (_watch, mut rx) = env.watch_status_updates().await;
    let poller = env.poller(INTERVAL, 200, Duration::from_millis(400));
    let metrics = poller.metrics.clone();
    let stop = CancellationToken::new();
    let tasks = env.run(poller, &stop);

    let body = next_message(&mut rx, WAIT)
        .await
        .expect("the healthy target's update");
    let update = Envelope::<StatusUpdate>::decode(&body).expect("a StatusUpdate envelope");
    assert_eq!(update.payload.delivery_id, deliveries[0]);
    assert_eq!(update.payload.mapped_status.as_deref(), Some("completed"));

    // The broken targets are asked again and again, counted each time, and
    // their deliveries keep waiting.
    assert!(
        eventually(WAIT, || garbage.request_count() >= 3
            && stalling.request_count() >= 2)
        .await,
        "broken targets are polled again next interval"
    );
    let rendered = metrics.render();
    let polls: Vec<&str> = rendered
        .lines()
        .filter(|l| l.starts_with("salesync_status_polls_total"))
        .collect();
    for outcome in ["ok", "bad_response", "timeout"] {
        assert!(
            polls
                .iter()
                .any(|l| l.contains(&format!("outcome=\"{outcome}\""))),
            "outcome {outcome} counted: {polls:?}"
        );
    }
    assert!(
        next_message(&mut rx, Duration::from_millis(300))
            .await
            .is_none(),
        "no update from broken targets"
    );
    assert_eq!(env.delivery_status(deliveries[1]).await, (None, false));
    assert_eq!(env.delivery_status(deliveries[2]).await, (None, false));

    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test]
async fn the_same_change_seen_twice_is_announced_once() {
    // Two pollers that both saw a change (a tick outliving the interval):
    // only the first write goes through, so ingest gets one update.
    let env = TestEnv::new().await;
    let tenant = env.tenant().await;
    let integration = env
        .integration(tenant, "salesync", "http://unused", None, None)
        .await;
    let (sale, delivery) = env
        .delivered_sale(tenant, integration, Some("received"))
        .await;
    let change = status_poller::plan::Change {
        delivery_id: delivery,
        tenant_id: tenant,
        sale_id: sale,
        previous_status: Some("received".into()),
        target_status: "shipped".into(),
        is_final: false,
        update: Some(StatusUpdate {
            delivery_id: delivery,
            integration_id: integration,
            target_status: "shipped".into(),
            mapped_status: None,
            observed_at: chrono::Utc::now(),
            unmapped_reason: None,
        }),
        traceparent: None,
    };
    let changes = [change];
    let first = status_poller::store::apply_changes(&env.pool, &changes)
        .await
        .expect("apply")
        .len();
    let second = status_poller::store::apply_changes(&env.pool, &changes)
        .await
        .expect("apply again")
        .len();
    assert_eq!((first, second), (1, 0));
    assert_eq!(
        env.delivery_status(delivery).await,
        (Some("shipped".into()), false)
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&env.pool)
        .await
        .expect("count outbox");
    assert_eq!(outbox, 1);
}

#[tokio::test]
async fn a_target_on_a_forbidden_address_is_never_asked() {
    let env = TestEnv::new().await;
    let target = Target::start(Behaviour::Healthy, None).await;
    let tenant = env.tenant().await;
    let port = reqwest::Url::parse(&target.url).unwrap().port().unwrap();
    let mut deliveries = Vec::new();
    // By address and by a name that resolves to loopback.
    for url in [target.url.clone(), format!("http://localhost:{port}/")] {
        let i = env.integration(tenant, "salesync", &url, None, None).await;
        let (_, d) = env.delivered_sale(tenant, i, None).await;
        target.set(d, "processed");
        deliveries.push(d);
    }

    // No allow-list: loopback is refused at connect time.
    let mut poller = env.poller(INTERVAL, 200, Duration::from_millis(400));
    poller.http = build_http_client(Duration::from_millis(400), EgressPolicy::default()).unwrap();
    let metrics = poller.metrics.clone();
    let stop = CancellationToken::new();
    let tasks = env.run(poller, &stop);
    let refused = || {
        metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("salesync_status_polls_total") && l.contains("refused"))
            .count()
    };
    assert!(
        eventually(WAIT, || refused() >= 1).await,
        "refused polls counted: {}",
        metrics.render()
    );
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    assert_eq!(target.request_count(), 0, "the target was never asked");
    for d in deliveries {
        assert_eq!(env.delivery_status(d).await, (None, false));
    }
}

#[tokio::test]
async fn an_unmapped_custom_status_is_skipped_once_with_its_reason() {
    // A salesync target (status_map {"processed": "completed"}) reports its
    // own "on_hold": not a system status, not mapped.
    let env = TestEnv::database_only().await;
    let target = Target::start(Behaviour::Healthy, None).await;
    let tenant = env.tenant().await;
    let integration = env
        .integration(tenant, "salesync", &target.url, None, None)
        .await;
    let (_, held) = env.delivered_sale(tenant, integration, Some("new")).await;
    let (_, accepted) = env.delivered_sale(tenant, integration, Some("new")).await;
    target.set(held, "on_hold");
    // A system status needs no mapping.
    target.set(accepted, "accepted");

    let poller = env.poller(Duration::from_millis(1), 200, Duration::from_secs(2));
    let metrics = poller.metrics.clone();
    let report = poller.tick().await.expect("tick");
    assert_eq!((report.updates, report.unmapped), (2, 1), "{report:?}");

    let payloads: Vec<StatusUpdate> = sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT body FROM outbox WHERE routing_key = 'sale.status' ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .expect("read outbox")
    .iter()
    .map(|b| {
        Envelope::<StatusUpdate>::decode(b)
            .expect("envelope")
            .payload
    })
    .collect();
    let by = |d| {
        payloads
            .iter()
            .find(|u| u.delivery_id == d)
            .unwrap_or_else(|| panic!("no update for {d}: {payloads:?}"))
    };
    let skipped = by(held);
    assert_eq!(skipped.target_status, "on_hold");
    assert_eq!(skipped.mapped_status, None);
    assert_eq!(
        skipped.unmapped_reason.as_deref(),
        Some(
            "B's status 'on_hold' is not a system status and is not mapped to one of yours: not synchronised"
        )
    );
    assert_eq!(by(accepted).mapped_status.as_deref(), Some("accepted"));
    assert_eq!(by(accepted).unmapped_reason, None);
    // Still watched: a later mapped status would be carried back.
    assert_eq!(
        env.delivery_status(held).await,
        (Some("on_hold".into()), false)
    );
    let counted = metrics.render();
    assert!(
        counted
            .lines()
            .any(|l| l.starts_with("salesync_status_updates_unmapped_total")
                && l.contains("target_kind=\"salesync\"")
                && l.ends_with(" 1")),
        "{counted}"
    );

    // The target keeps saying "on_hold": asked again, announced never again.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = poller.tick().await.expect("tick");
    assert_eq!(again.claimed, 2, "{again:?}");
    assert_eq!((again.updates, again.unmapped), (0, 0), "{again:?}");
    let outbox: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE routing_key = 'sale.status'")
            .fetch_one(&env.pool)
            .await
            .expect("count outbox");
    assert_eq!(outbox, 2);
}
