//! Per-target protection on real PostgreSQL, RabbitMQ and HTTP targets: a
//! slow target does not hold back a healthy one (no batch barrier), and a
//! dead target opens its circuit breaker — no requests until the cooldown,
//! then one probe (configured so) — without using up the deliveries' attempts.

mod common;

use std::time::{Duration, Instant};

use common::{TestEnv, with_env};
use salesync_core::domain::ids::DeliveryId;
use salesync_core::messages::Purpose;

const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it holds; fails the test after `PATIENCE`.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn states(env: &TestEnv, ids: &[DeliveryId]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        out.push(env.delivery_row(*id).await.state);
    }
    out
}

async fn count_in(env: &TestEnv, ids: &[DeliveryId], state: &str) -> usize {
    states(env, ids)
        .await
        .iter()
        .filter(|s| s.as_str() == state)
        .count()
}

/// A breaker that opens once 3 answers in 400 ms have all failed, a retry
/// among them, and sends one probe per cooldown.
const STRICT_BREAKER: [&str; 8] = [
    "--breaker-min-calls",
    "3",
    "--breaker-failure-rate",
    "100",
    "--breaker-window",
    "400ms",
    "--breaker-half-open-calls",
    "1",
];

/// The sum of a counter's samples whose labels contain `label`.
fn counter(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_does_not_hold_back_a_healthy_one() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder_with(&["--request-timeout", "5s"]);
        let mut slow = Vec::new();
        for _ in 0..4 {
            slow.push(env.delivery("slow", Purpose::Forward).await);
        }
        let mut healthy = Vec::new();
        for _ in 0..8 {
            healthy.push(env.delivery("ok", Purpose::Forward).await);
        }
        let slow_ids: Vec<DeliveryId> = slow.iter().map(|c| c.payload.delivery_id).collect();
        let healthy_ids: Vec<DeliveryId> = healthy.iter().map(|c| c.payload.delivery_id).collect();

        // The slow requests go first and are in flight (each takes 2 s) …
        env.publish(&slow.iter().collect::<Vec<_>>()).await;
        wait_until("the slow requests are in flight", || async {
            env.target
                .seen()
                .iter()
                .filter(|s| s.route == "slow")
                .count()
                == slow.len()
        })
        .await;
        // … then the healthy ones come: neither their sending nor their
        // recording waits for the slow ones.
        env.publish(&healthy.iter().collect::<Vec<_>>()).await;
        wait_until("every healthy delivery is recorded", || async {
            count_in(&env, &healthy_ids, "delivered").await == healthy_ids.len()
        })
        .await;
        assert_eq!(
            count_in(&env, &slow_ids, "pending").await,
            slow_ids.len(),
            "the healthy deliveries were recorded while every slow one was still in flight"
        );
        wait_until("every slow delivery is recorded", || async {
            count_in(&env, &slow_ids, "delivered").await == slow_ids.len()
        })
        .await;

        let seen = env.target.seen();
        let last_healthy_arrival = seen
            .iter()
            .filter(|s| s.route == "ok")
            .map(|s| s.at)
            .max()
            .expect("healthy requests arrived");
        let answered = env.target.answered();
        assert_eq!(answered.len(), slow.len());
        let first_slow_answer = answered.iter().map(|a| a.1).min().expect("slow answers");
        assert!(
            last_healthy_arrival < first_slow_answer,
            "every healthy request arrived before the first slow one was answered"
        );
        // Each delivery was sent exactly once.
        let counts = env.request_counts();
        for cmd in slow.iter().chain(&healthy) {
            assert_eq!(counts.get(&cmd.payload.target_ref), Some(&1));
        }
        forwarder.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_sees_no_requests_while_its_breaker_is_open_then_one_probe() {
    with_env(|env| async move {
        // A port nothing listens on: every connection is refused.
        let dead_url = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/hook", l.local_addr().unwrap())
        };
        let cooldown = Duration::from_secs(2);
        let mut args = STRICT_BREAKER.to_vec();
        args.extend([
            "--breaker-cooldown",
            "2s",
            // One request at a time: once open, only the probe goes.
            "--target-concurrency",
            "1",
            "--max-attempts",
            "50",
        ]);
        let forwarder = env.start_forwarder_with(&args);
        let mut cmds = Vec::new();
        for _ in 0..5 {
            cmds.push(env.delivery_to(&dead_url, Purpose::Forward).await);
        }
        let ids: Vec<DeliveryId> = cmds.iter().map(|c| c.payload.delivery_id).collect();
        env.publish(&cmds.iter().collect::<Vec<_>>()).await;

        // The failures (retries 200 ms – 1 s apart) open it; then one probe
        // per cooldown, each failing. (Wall-clock timestamps: allow the
        // clocks a few ms.)
        let slack = Duration::from_millis(20);
        let gaps = |attempts: &[common::AttemptRow]| -> Vec<Duration> {
            let mut starts: Vec<_> = attempts.iter().map(|a| a.started_at).collect();
            starts.sort();
            starts
                .windows(2)
                .map(|w| (w[1] - w[0]).to_std().unwrap_or_default())
                .collect()
        };
        wait_until("two probes a cooldown apart", || async {
            let attempts = env.all_attempts().await;
            gaps(&attempts)
                .iter()
                .filter(|g| **g + slack >= cooldown)
                .count()
                >= 2
        })
        .await;
        let attempts = env.all_attempts().await;
        for a in &attempts {
            let error = a.error.as_deref().unwrap_or_default();
            assert!(error.starts_with("cannot connect"), "{a:?}");
        }
        // From the first probe on, nothing but probes: every request a full
        // cooldown after the one before (a failed probe re-opens it).
        let gaps = gaps(&attempts);
        let first_probe = gaps
            .iter()
            .position(|g| *g + slack >= cooldown)
            .expect("a probe");
        assert!(
            gaps[first_probe..].iter().all(|g| *g + slack >= cooldown),
            "a request between probes: {gaps:?}"
        );

        // Meanwhile the deliveries waited without using attempts. Once the
        // forwarder has stopped (everything in flight recorded), each row's
        // attempt count is exactly its logged requests, numbered 1..n.
        let metrics = forwarder.metrics.render();
        forwarder.stop().await;
        let mut deferred = 0;
        for id in &ids {
            let row = env.delivery_row(*id).await;
            assert_eq!(row.state, "retrying", "nothing dead or delivered: {row:?}");
            let numbers: Vec<i32> = env.attempts(*id).await.iter().map(|a| a.attempt).collect();
            let expected: Vec<i32> = (1..=numbers.len() as i32).collect();
            assert_eq!(numbers, expected);
            assert_eq!(row.attempts as usize, numbers.len(), "{row:?}");
            if row
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("circuit open: "))
            {
                deferred += 1;
            }
        }
        assert!(deferred >= 1, "the rows say why they wait");
        assert!(counter(&metrics, "salesync_breaker_transitions", "state=\"open\"") >= 2.0);
        assert!(
            counter(
                &metrics,
                "salesync_deliveries_deferred",
                "reason=\"circuit_open\""
            ) >= 1.0
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_probe_closes_the_breaker_and_no_attempt_was_wasted() {
    with_env(|env| async move {
        let cooldown = Duration::from_secs(1);
        let mut args = STRICT_BREAKER.to_vec();
        args.extend([
            "--breaker-cooldown",
            "1s",
            "--target-concurrency",
            "1",
            "--max-attempts",
            "10",
        ]);
        let forwarder = env.start_forwarder_with(&args);
        let mut cmds = Vec::new();
        for _ in 0..4 {
            cmds.push(env.delivery("switch", Purpose::Forward).await);
        }
        let ids: Vec<DeliveryId> = cmds.iter().map(|c| c.payload.delivery_id).collect();
        env.publish(&cmds.iter().collect::<Vec<_>>()).await;

        // The 500s (first attempts and their retries) open the breaker; a
        // delivery is put back unsent.
        wait_until("the breaker defers a delivery", || async {
            let mut deferred = false;
            for id in &ids {
                let row = env.delivery_row(*id).await;
                deferred |= row
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("circuit open: "));
            }
            deferred
        })
        .await;
        let failed = env.target.seen().len();
        assert!(failed >= 3, "{failed}");
        env.target.heal();

        wait_until("every delivery is delivered", || async {
            count_in(&env, &ids, "delivered").await == ids.len()
        })
        .await;
        let seen = env.target.seen();
        // The failed ones + 4 delivered (no request while open): deferred
        // deliveries were sent once healthy, and the first request after the
        // failures came a cooldown later.
        assert_eq!(seen.len(), failed + 4);
        let probe_gap = seen[failed].at.duration_since(seen[failed - 1].at);
        assert!(probe_gap >= cooldown, "probe after {probe_gap:?}");
        // Waiting out the breaker used no attempt: the logs hold exactly the
        // requests made, numbered without gaps.
        let mut logged = 0;
        for (cmd, id) in cmds.iter().zip(&ids) {
            let attempts = env.attempts(*id).await;
            let numbers: Vec<i32> = attempts.iter().map(|a| a.attempt).collect();
            let expected: Vec<i32> = (1..=numbers.len() as i32).collect();
            assert_eq!(numbers, expected, "{attempts:?}");
            assert_eq!(
                env.target.seen_for(&cmd.payload.target_ref).len(),
                attempts.len()
            );
            assert_eq!(
                env.delivery_row(*id).await.attempts as usize,
                attempts.len()
            );
            logged += attempts.len();
        }
        assert_eq!(logged, failed + 4);
        let metrics = forwarder.metrics.render();
        assert!(counter(&metrics, "salesync_breaker_transitions", "state=\"closed\"") >= 1.0);
        assert!(
            counter(
                &metrics,
                "salesync_breaker_transitions",
                "state=\"half_open\""
            ) >= 1.0
        );
        forwarder.stop().await;
    })
    .await;
}
