//! Forward commands bundled as condition-filter's relay sends one commit's
//! (`amqp::bundle`): the forwarder takes each part on its own — sent,
//! deduplicated and dead-lettered as if it had come alone — and acks the
//! bundle once every part is settled. A bundle cut off by shutdown comes
//! back whole and sends only what was left.
//! Runs with RETRY_DELAYS=200ms,400ms,1s, MAX_ATTEMPTS=3.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{DeadLetter, assert_well_formed, commands, with_env};
use salesync_core::amqp::bundle::{self, BUNDLE_TYPE};
use salesync_core::amqp::topology::Q_FORWARD;
use salesync_core::domain::ids::DeliveryId;
use salesync_core::messages::Purpose;

const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `salesync.dead` has held `want` messages in all, then a
/// little longer for any extra; returns everything taken.
async fn dead_letters(env: &common::TestEnv, want: usize) -> Vec<DeadLetter> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(env.take_dead().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    got.extend(env.take_dead().await);
    got
}

fn reason(dead: &DeadLetter) -> &str {
    dead.1.get("x-dead-reason").map_or("", String::as_str)
}

fn contains(body: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(body).contains(needle)
}

/// Messages the forwarder counted as consumed with `outcome` (Prometheus text).
fn consumed(forwarder: &common::ForwarderHandle, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    forwarder
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("salesync_messages_consumed_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundles_commands_are_handled_one_by_one_and_dead_lettered_alone() {
    with_env(|env| async move {
        let forwarder = env.start_forwarder();
        let ok1 = env.delivery("ok", Purpose::Forward).await;
        let ok2 = env.delivery("ok", Purpose::Forward).await;
        let bad = env.delivery("bad", Purpose::Forward).await;
        let unknown = {
            let mut cmd = env.delivery("ok", Purpose::Forward).await;
            cmd.payload.delivery_id = DeliveryId::new();
            cmd
        };
        let poison = br#"{"poison-marker":1}"#.to_vec();
        // ok1 twice: a copy of one delivery in the same bundle is a duplicate.
        let bodies = [
            ok1.to_bytes(),
            bad.to_bytes(),
            poison.clone(),
            unknown.to_bytes(),
            ok2.to_bytes(),
            ok1.to_bytes(),
        ];
        let bundled = bundle::bundle(commands(&bodies), |_| true);
        assert_eq!(bundled.len(), 1, "all six parts in one bundle");
        assert_eq!(bundled[0].message_type, BUNDLE_TYPE);
        let mut broken = commands(&[br#"{"parts":1}"#.to_vec()]).remove(0);
        broken.message_type = BUNDLE_TYPE.into();
        env.publish_messages(&[bundled[0].clone(), broken]).await;

        for cmd in [&ok1, &ok2] {
            env.wait_for_state(cmd.payload.delivery_id, "delivered", PATIENCE)
                .await;
        }
        let bad_row = env
            .wait_for_state(bad.payload.delivery_id, "dead", PATIENCE)
            .await;
        assert_eq!(bad_row.attempts, 1);

        // Four dead letters, each alone: three parts and the broken bundle.
        let dead = dead_letters(&env, 4).await;
        assert_eq!(
            dead.len(),
            4,
            "{:?}",
            dead.iter().map(reason).collect::<Vec<_>>()
        );
        let of = |pick: &dyn Fn(&DeadLetter) -> bool| {
            let found: Vec<&DeadLetter> = dead.iter().filter(|d| pick(d)).collect();
            assert_eq!(found.len(), 1, "exactly one such dead letter");
            found[0]
        };
        let poison_dead = of(&|d| d.0 == poison);
        assert!(
            reason(poison_dead).starts_with("poison: "),
            "{}",
            reason(poison_dead)
        );
        assert!(
            poison_dead.1.contains_key("traceparent"),
            "a part keeps its own headers"
        );
        let unknown_id = unknown.payload.delivery_id.to_string();
        let unknown_dead = of(&|d| contains(&d.0, &unknown_id));
        assert_eq!(
            reason(unknown_dead),
            format!("delivery not found: {unknown_id}")
        );
        let bad_dead = of(&|d| contains(&d.0, &bad.payload.delivery_id.to_string()));
        assert_eq!(Some(reason(bad_dead)), bad_row.dead_reason.as_deref());
        let broken_dead = of(&|d| d.0 == br#"{"parts":1}"#);
        assert!(
            reason(broken_dead).starts_with("poison: undecodable bundle"),
            "{}",
            reason(broken_dead)
        );

        // Each delivery reached the target once; ok1's copy was not sent.
        let seen = env.target.seen();
        assert_well_formed(&seen);
        let counts = env.request_counts();
        assert_eq!(counts.get(&ok1.payload.target_ref), Some(&1));
        assert_eq!(counts.get(&ok2.payload.target_ref), Some(&1));
        assert_eq!(counts.get(&bad.payload.target_ref), Some(&1));
        assert_eq!(seen.len(), 3, "{counts:?}");

        // Counted per message: three acked (one a duplicate), four dead.
        assert_eq!(consumed(&forwarder, "ack"), 3);
        assert_eq!(consumed(&forwarder, "dead"), 4);

        // Both bundles were acked: nothing returns to the queue on stop.
        forwarder.stop().await;
        assert_eq!(env.queue_depth(Q_FORWARD).await, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_cut_off_by_shutdown_comes_back_and_sends_only_what_was_left() {
    with_env(|env| async move {
        // One slot for the slow target (another host name: its own limits),
        // so one slow part is in flight and the other waits for the slot.
        let args = [
            "--target-concurrency",
            "1",
            "--target-max-wait",
            "30s",
            "--request-timeout",
            "5s",
        ];
        let forwarder = env.start_forwarder_with(&args);
        let slow_url = env.target.url("slow").replace("127.0.0.1", "localhost");
        let ok1 = env.delivery("ok", Purpose::Forward).await;
        let ok2 = env.delivery("ok", Purpose::Forward).await;
        let bad = env.delivery("bad", Purpose::Forward).await;
        let slow_a = env.delivery_to(&slow_url, Purpose::Forward).await;
        let slow_b = env.delivery_to(&slow_url, Purpose::Forward).await;
        let bodies = [&ok1, &slow_a, &bad, &slow_b, &ok2].map(|c| c.to_bytes());
        let bundled = bundle::bundle(commands(&bodies), |_| true);
        assert_eq!(bundled.len(), 1);
        env.publish_messages(&bundled).await;

        for cmd in [&ok1, &ok2] {
            env.wait_for_state(cmd.payload.delivery_id, "delivered", PATIENCE)
                .await;
        }
        env.wait_for_state(bad.payload.delivery_id, "dead", PATIENCE)
            .await;
        let deadline = Instant::now() + PATIENCE;
        let in_flight = loop {
            let seen: Vec<_> = [&slow_a, &slow_b]
                .into_iter()
                .filter(|c| !env.target.seen_for(&c.payload.target_ref).is_empty())
                .collect();
            if let [one] = seen[..] {
                break one;
            }
            assert!(seen.len() < 2, "both slow parts were sent at once");
            assert!(Instant::now() < deadline, "no slow part was sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let waiting = if in_flight.payload.delivery_id == slow_a.payload.delivery_id {
            &slow_b
        } else {
            &slow_a
        };

        // Shutdown: the request in flight finishes and is recorded; the part
        // waiting for its slot is not sent, so the bundle stays unacked and
        // returns to the queue whole — with the dead part's letter not yet
        // sent (it goes when the bundle is settled).
        assert_eq!(
            consumed(&forwarder, "dead"),
            0,
            "counted as its letter goes out"
        );
        forwarder.stop().await;
        assert_eq!(
            env.delivery_row(in_flight.payload.delivery_id).await.state,
            "delivered"
        );
        let left = env.delivery_row(waiting.payload.delivery_id).await;
        assert_eq!((left.delivered, left.attempts), (false, 0), "{left:?}");
        assert_eq!(env.queue_depth(Q_FORWARD).await, 1, "the bundle is back");
        assert!(
            env.take_dead().await.is_empty(),
            "no dead letter before the bundle is settled"
        );

        // Started again: the redelivered bundle sends only the waiting part;
        // the dead part is dead-lettered once in all.
        let forwarder = env.start_forwarder_with(&args);
        env.wait_for_state(waiting.payload.delivery_id, "delivered", PATIENCE)
            .await;
        let dead = dead_letters(&env, 1).await;
        assert_eq!(
            dead.len(),
            1,
            "{:?}",
            dead.iter().map(reason).collect::<Vec<_>>()
        );
        assert!(contains(&dead[0].0, &bad.payload.delivery_id.to_string()));
        assert_eq!(consumed(&forwarder, "dead"), 1);
        forwarder.stop().await;
        assert_eq!(env.queue_depth(Q_FORWARD).await, 0, "the bundle was acked");

        let counts: HashMap<String, usize> = env.request_counts();
        for cmd in [&ok1, &ok2, &bad, &slow_a, &slow_b] {
            assert_eq!(
                counts.get(&cmd.payload.target_ref),
                Some(&1),
                "each sent exactly once: {counts:?}"
            );
        }
        assert_well_formed(&env.target.seen());
    })
    .await;
}
