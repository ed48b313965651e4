//! The forwarder end to end on real PostgreSQL, RabbitMQ and HTTP targets:
//! retries through the delay queues, dead-lettering with a reason, duplicates
//! that never reach a target twice, and signatures a customer can verify.
//! Runs with RETRY_DELAYS=200ms,400ms,1s, MAX_ATTEMPTS=3, REQUEST_TIMEOUT=500ms.

mod common;

use std::time::Duration;

use common::{BEARER, assert_well_formed, with_env};
use salesync_core::domain::ids::DeliveryId;
use salesync_core::messages::Purpose;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_on_the_third_attempt_after_two_503s() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let cmd = env.delivery("flaky", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        env.publish(&[&cmd]).await;

        let row = env.wait_for_state(id, "delivered", PATIENCE).await;
        assert_eq!(row.attempts, 3);
        assert!(row.delivered, "delivered_at is set");
        assert!(row.poll_scheduled, "the status-poller is told to look");
        assert_eq!(
            row.last_error.as_deref(),
            Some("target answered 503 Service Unavailable")
        );

        let attempts = env.attempts(id).await;
        let summary: Vec<(i32, Option<i32>, &str)> = attempts
            .iter()
            .map(|a| (a.attempt, a.status_code, a.outcome.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, Some(503), "retry"),
                (2, Some(503), "retry"),
                (3, Some(201), "delivered")
            ]
        );

        let seen = env.target.seen_for(&cmd.payload.target_ref);
        assert_eq!(seen.len(), 3);
        assert_well_formed(&seen);
        for s in &seen {
            assert_eq!(
                s.authorization.as_deref(),
                Some(&*format!("Bearer {BEARER}"))
            );
        }
        // Each retry waited in its tier (200 ms, then 400 ms; jitter ≥ 80 %).
        let gap = |a: usize, b: usize| seen[b].at.duration_since(seen[a].at);
        assert!(gap(0, 1) >= Duration::from_millis(160), "{:?}", gap(0, 1));
        assert!(gap(1, 2) >= Duration::from_millis(320), "{:?}", gap(1, 2));
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_dead_at_once_with_its_reason() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let cmd = env.delivery("bad", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        env.publish(&[&cmd]).await;

        let row = env.wait_for_state(id, "dead", PATIENCE).await;
        let reason = "target answered 400 Bad Request: missing field lines";
        assert_eq!(row.dead_reason.as_deref(), Some(reason));
        assert_eq!(row.attempts, 1);
        let attempts = env.attempts(id).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status_code, Some(400));
        assert_eq!(attempts[0].outcome, "dead");
        assert_eq!(
            attempts[0].response_excerpt.as_deref(),
            Some("missing field lines")
        );

        let headers = env.dead_letter_of(&id.to_string()).await;
        assert_eq!(
            headers.get("x-dead-reason").map(String::as_str),
            Some(reason)
        );
        assert_eq!(
            headers.get("x-original-queue").map(String::as_str),
            Some("salesync.forward")
        );
        assert_eq!(env.target.seen_for(&cmd.payload.target_ref).len(), 1);
        assert_well_formed(&env.target.seen());
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_on_a_forbidden_address_is_dead_at_once_and_never_contacted() {
    with_env(|env| async move {
        // No allow-list: loopback is what a tenant must never reach. The
        // deliveries were stored while it was allowed (or a name resolved
        // elsewhere then): the connect-time check is the last word.
        let forwarder = env.start_forwarder_with(&["--target-allow-nets", ""]);
        let port = reqwest::Url::parse(&env.target.url("ok"))
            .unwrap()
            .port()
            .unwrap();
        let urls = [
            env.target.url("ok"),
            format!("http://localhost:{port}/ok"),
            format!("http://[::ffff:127.0.0.1]:{port}/ok"),
            format!("http://2130706433:{port}/ok"),
        ];
        let mut ids = Vec::new();
        for url in &urls {
            let cmd = env.delivery_to(url, Purpose::Forward).await;
            ids.push(cmd.payload.delivery_id);
            env.publish(&[&cmd]).await;
        }
        for (id, url) in ids.iter().zip(&urls) {
            let row = env.wait_for_state(*id, "dead", PATIENCE).await;
            let reason = row.dead_reason.unwrap_or_default();
            assert!(
                reason.starts_with("invalid request: target refused by salesync: ")
                    && reason.contains("a loopback address salesync does not call"),
                "{url}: {reason}"
            );
            assert_eq!(row.attempts, 1, "{url}");
        }
        assert!(env.target.seen().is_empty(), "{:?}", env.target.seen());
        forwarder.stop().await;

        // Allowed by the operator, the same target is reached.
        let forwarder = env.start_forwarder();
        let cmd = env.delivery_to(&urls[1], Purpose::Forward).await;
        env.publish(&[&cmd]).await;
        env.wait_for_state(cmd.payload.delivery_id, "delivered", PATIENCE)
            .await;
        assert_eq!(env.target.seen().len(), 1);
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_target_is_retried_then_dead_after_max_attempts() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let cmd = env.delivery("stall", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        env.publish(&[&cmd]).await;

        let row = env.wait_for_state(id, "dead", PATIENCE).await;
        assert_eq!(row.attempts, 3);
        assert_eq!(
            row.dead_reason.as_deref(),
            Some("gave up after 3 attempts: request timed out")
        );
        let attempts = env.attempts(id).await;
        let summary: Vec<(i32, Option<i32>, &str)> = attempts
            .iter()
            .map(|a| (a.attempt, a.status_code, a.outcome.as_str()))
            .collect();
        assert_eq!(
            summary,
            [(1, None, "retry"), (2, None, "retry"), (3, None, "dead")]
        );
        for a in &attempts {
            assert!(
                a.error.as_deref().unwrap_or_default().contains("timed out"),
                "{a:?}"
            );
            // The 500 ms request timeout cut each attempt short of the 3 s stall.
            assert!((400..2000).contains(&a.duration_ms), "{a:?}");
        }
        let headers = env.dead_letter_of(&id.to_string()).await;
        assert_eq!(
            headers.get("x-dead-reason").map(String::as_str),
            Some("gave up after 3 attempts: request timed out")
        );
        assert_eq!(env.target.seen_for(&cmd.payload.target_ref).len(), 3);
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_twice_reaches_the_target_once() {
    with_env(|env| async move {
        let cmd = env.delivery("ok", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        // Two copies waiting before the forwarder starts (likely one batch) …
        env.publish(&[&cmd, &cmd]).await;
        let forwarder = env.start_forwarder();
        env.wait_for_state(id, "delivered", PATIENCE).await;
        // … and a late copy after delivery, followed by a sentinel: once the
        // sentinel is delivered, the copy before it has been handled too.
        let sentinel = env.delivery("ok", Purpose::Forward).await;
        env.publish(&[&cmd, &sentinel]).await;
        env.wait_for_state(sentinel.payload.delivery_id, "delivered", PATIENCE)
            .await;

        let counts = env.request_counts();
        assert_eq!(counts.get(&cmd.payload.target_ref), Some(&1), "{counts:?}");
        assert_eq!(env.attempts(id).await.len(), 1);
        let row = env.delivery_row(id).await;
        assert_eq!((row.state.as_str(), row.attempts), ("delivered", 1));
        assert_well_formed(&env.target.seen());
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_waits_at_least_that_long() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let cmd = env.delivery("throttle", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        env.publish(&[&cmd]).await;

        let row = env.wait_for_state(id, "delivered", PATIENCE).await;
        assert_eq!(row.attempts, 2);
        let seen = env.target.seen_for(&cmd.payload.target_ref);
        assert_eq!(seen.len(), 2);
        // Retry-After: 1 lifts the retry from the 200 ms tier to the 1 s tier,
        // and the jitter never undercuts the target's wish.
        let gap = seen[1].at.duration_since(seen[0].at);
        assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
        let attempts = env.attempts(id).await;
        assert_eq!(attempts[0].status_code, Some(429));
        assert_eq!(attempts[1].status_code, Some(204));
        assert_well_formed(&seen);
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_with_a_garbage_body_is_delivered() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let cmd = env.delivery("garbage", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        env.publish(&[&cmd]).await;

        let row = env.wait_for_state(id, "delivered", PATIENCE).await;
        assert_eq!(row.attempts, 1);
        let attempts = env.attempts(id).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status_code, Some(200));
        // NUL and invalid UTF-8 are stored as replacement characters.
        let excerpt = attempts[0].response_excerpt.clone().unwrap_or_default();
        assert!(excerpt.contains("not json"), "{excerpt:?}");
        assert!(!excerpt.contains('\0'));
        forwarder.stop().await;
    })
    .await;
}

/// The body sent is the one stored with the delivery; a command from an older
/// producer that carries one is still served, its body used only for a row
/// that has none; with neither, the delivery is dead without a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_sent_is_the_one_stored_with_the_delivery() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let url = env.target.url("ok");
        let stored = serde_json::json!({"from": "row", "n": [1, 2], "ü": null});
        let carried = serde_json::json!({"from": "message"});
        let current = env
            .delivery_with(&url, Purpose::Forward, Some(stored.clone()), None)
            .await;
        let legacy_row = env
            .delivery_with(&url, Purpose::Forward, None, Some(carried.clone()))
            .await;
        let both = env
            .delivery_with(
                &url,
                Purpose::Forward,
                Some(stored.clone()),
                Some(carried.clone()),
            )
            .await;
        let neither = env.delivery_with(&url, Purpose::Forward, None, None).await;
        env.publish(&[&current, &legacy_row, &both, &neither]).await;

        for (cmd, want) in [
            (&current, &stored),
            (&legacy_row, &carried),
            (&both, &stored),
        ] {
            env.wait_for_state(cmd.payload.delivery_id, "delivered", PATIENCE)
                .await;
            let seen = env.target.seen_for(&cmd.payload.target_ref);
            assert_eq!(seen.len(), 1);
            assert_well_formed(&seen);
            assert_eq!(
                seen[0].body,
                serde_json::to_vec(want).unwrap(),
                "sent byte for byte as serialised"
            );
        }
        let id = neither.payload.delivery_id;
        let row = env.wait_for_state(id, "dead", PATIENCE).await;
        assert_eq!(row.attempts, 0);
        assert_eq!(
            row.dead_reason.as_deref(),
            Some("no body stored with the delivery")
        );
        let h = env.dead_letter_of(&id.to_string()).await;
        assert_eq!(
            h.get("x-dead-reason").map(String::as_str),
            Some("no body stored with the delivery")
        );
        assert!(env.target.seen_for(&neither.payload.target_ref).is_empty());
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_delivered_to_an_integration_that_does_not_poll_is_not_watched() {
    with_env(|env| async move {
        env.stop_polling().await;
        let forwarder = env.start_forwarder();
        let cmd = env.delivery("ok", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        env.publish(&[&cmd]).await;

        let row = env.wait_for_state(id, "delivered", PATIENCE).await;
        assert!(
            !row.poll_scheduled,
            "nobody can be asked about it: it never enters the status-poller's queue"
        );
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_webhooks_are_signed_with_the_tenants_secret() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let cmd = env.delivery("status", Purpose::StatusWebhook).await;
        let id = cmd.payload.delivery_id;
        env.publish(&[&cmd]).await;

        let row = env.wait_for_state(id, "delivered", PATIENCE).await;
        assert!(!row.poll_scheduled, "status webhooks are not polled");
        let seen = env.target.seen_for(&cmd.payload.target_ref);
        assert_eq!(seen.len(), 1);
        assert_well_formed(&seen);
        assert_eq!(seen[0].authorization, None);
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_unknown_and_deleted_are_dead_lettered_without_sending() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();

        let poison = b"{\"poison-marker\": not json".to_vec();
        let unknown = {
            let mut cmd = env.delivery("ok", Purpose::Forward).await;
            cmd.payload.delivery_id = DeliveryId::new();
            cmd
        };
        let for_deleted = env.delivery("ok", Purpose::Forward).await;
        sqlx::query("UPDATE integrations SET deleted_at = now() WHERE id = $1")
            .bind(env.integration_id)
            .execute(&env.pool)
            .await
            .unwrap();
        env.publish_raw(&[poison, unknown.to_bytes(), for_deleted.to_bytes()])
            .await;

        let h = env.dead_letter_of("poison-marker").await;
        let reason = h.get("x-dead-reason").cloned().unwrap_or_default();
        assert!(reason.starts_with("poison: "), "{reason}");

        let unknown_id = unknown.payload.delivery_id;
        let h = env.dead_letter_of(&unknown_id.to_string()).await;
        assert_eq!(
            h.get("x-dead-reason").cloned(),
            Some(format!("delivery not found: {unknown_id}"))
        );

        let deleted_reason = format!("integration deleted: {}", env.integration_id);
        let row = env
            .wait_for_state(for_deleted.payload.delivery_id, "dead", PATIENCE)
            .await;
        assert_eq!(row.dead_reason.as_deref(), Some(&*deleted_reason));
        assert_eq!(row.attempts, 0);
        let h = env
            .dead_letter_of(&for_deleted.payload.delivery_id.to_string())
            .await;
        assert_eq!(h.get("x-dead-reason"), Some(&deleted_reason));

        assert!(env.target.seen().is_empty(), "nothing was sent");
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_batch_in_flight() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let cmd = env.delivery("stall", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        env.publish(&[&cmd]).await;
        let deadline = std::time::Instant::now() + PATIENCE;
        while env.target.seen_for(&cmd.payload.target_ref).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "request never arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Stop while the request is in flight: it still times out, is
        // recorded, and its retry copy is published before the process ends.
        forwarder.stop().await;
        let row = env.delivery_row(id).await;
        assert_eq!((row.state.as_str(), row.attempts), ("retrying", 1));
        assert_eq!(env.attempts(id).await.len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_copy_back_before_its_predecessor_is_acked_is_still_sent() {
    with_env(|env| async move {
        // Retry copies are published before the attempt is recorded and
        // acked; with 1 ms tiers each is back while its predecessor still
        // holds the delivery. It must wait its turn, not count as a duplicate.
        let forwarder = env.start_forwarder_with(&[
            "--retry-delays",
            "1ms",
            "--commit-linger",
            "20ms",
            // Ten 503s in a row must not open the breaker here.
            "--breaker-min-calls",
            "100",
        ]);
        let mut cmds = Vec::new();
        for _ in 0..5 {
            cmds.push(env.delivery("flaky", Purpose::Forward).await);
        }
        env.publish(&cmds.iter().collect::<Vec<_>>()).await;
        for cmd in &cmds {
            let id = cmd.payload.delivery_id;
            let row = env.wait_for_state(id, "delivered", PATIENCE).await;
            assert_eq!(row.attempts, 3);
            let numbers: Vec<i32> = env.attempts(id).await.iter().map(|a| a.attempt).collect();
            assert_eq!(numbers, [1, 2, 3]);
            assert_eq!(env.target.seen_for(&cmd.payload.target_ref).len(), 3);
        }
        forwarder.stop().await;
    })
    .await;
}

/// The row loader answers every asker of a batch: a delivery asked for twice
/// reaches both (one moved, one copied), an unknown one and one asked for
/// under another tenant come back as `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_loader_answers_every_asker_of_a_batch() {
    with_env(|env| async move {
        let loader = forwarder::row_loader::RowLoader::spawn(env.pool.clone());
        let cmd = env.delivery("ok", Purpose::Forward).await;
        let id = cmd.payload.delivery_id;
        let other_tenant = salesync_core::domain::ids::TenantId::new();
        // Sent together, so the loader finds them waiting as one batch.
        let (a, b, unknown, foreign) = tokio::join!(
            loader.load(id, env.tenant_id),
            loader.load(id, env.tenant_id),
            loader.load(DeliveryId::new(), env.tenant_id),
            loader.load(id, other_tenant),
        );
        for row in [a.unwrap(), b.unwrap()] {
            let row = row.expect("the delivery, to both askers");
            assert_eq!((row.id, row.tenant_id), (id, env.tenant_id));
            assert_eq!(row.body, Some(env.body()));
        }
        assert!(unknown.unwrap().is_none());
        assert!(foreign.unwrap().is_none(), "never across tenants");
    })
    .await;
}

/// The forwarder's state changes (delivered, retrying) are HOT updates: no
/// column an index uses changes, so the new row version adds no index entry
/// (migration 0005). Counted in one transaction by
/// `pg_stat_xact_user_tables`, which sees only that transaction's own work.
/// (A delivery the status-poller will watch gets `poll_after`, which is
/// indexed; the integration here does not poll.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_state_change_touches_no_index() {
    use forwarder::store::{AttemptRecord, DeliveryUpdate, record};
    with_env(|env| async move {
        env.stop_polling().await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(
                env.delivery("ok", Purpose::Forward)
                    .await
                    .payload
                    .delivery_id,
            );
        }
        let now = chrono::Utc::now();
        let attempt = |id, outcome| AttemptRecord {
            delivery_id: id,
            attempt: 1,
            started_at: now,
            duration_ms: 3,
            status_code: Some(200),
            error: None,
            outcome,
            response_excerpt: None,
        };
        let update = |id, state, delivered_at| DeliveryUpdate {
            delivery_id: id,
            state,
            attempt: Some(1),
            last_error: None,
            dead_reason: None,
            delivered_at,
        };
        let mut tx = env.pool.begin().await.unwrap();
        record(
            &mut tx,
            &[attempt(ids[0], "delivered"), attempt(ids[1], "retry")],
            &[
                update(ids[0], "delivered", Some(now)),
                update(ids[1], "retrying", None),
            ],
        )
        .await
        .unwrap();
        let (updated, hot): (i64, i64) = sqlx::query_as(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables
             WHERE relname = 'deliveries'",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!((updated, hot), (2, 2), "both updates HOT");
        assert_eq!(env.delivery_row(ids[0]).await.state, "delivered");
        assert_eq!(env.delivery_row(ids[1]).await.state, "retrying");
        assert_eq!(env.delivery_row(ids[2]).await.state, "pending");
    })
    .await;
}
