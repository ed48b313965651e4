//! One command whose outcome the database refuses to record — a trigger in
//! the test's own database raises for one delivery — among good ones, as a
//! bundle's part, in one group commit: it is dead-lettered with the
//! database's reason and its own body, every other delivery is sent and
//! recorded exactly once, and the queue drains. A database that goes down
//! while requests are in flight is no refusal: their group commits wait out
//! the outage, nothing is dead-lettered, and each is recorded once after it.

mod common;

use std::time::{Duration, Instant};

use common::{DeadLetter, TestEnv, commands, with_env};
use salesync_core::amqp::bundle;
use salesync_core::amqp::topology::Q_FORWARD;
use salesync_core::domain::ids::DeliveryId;
use salesync_core::messages::{Envelope, ForwardCommand, Purpose};

const PATIENCE: Duration = Duration::from_secs(30);

/// Takes `salesync.dead` until it has held `want` messages (or
/// [`PATIENCE`] passed), then a second longer for any extra.
async fn dead_letters(env: &TestEnv, want: usize) -> Vec<DeadLetter> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(env.take_dead().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    got.extend(env.take_dead().await);
    got
}

/// Commands for `deliveries` as condition-filter's relay sends a commit's:
/// the first six as one bundle, the rest one by one.
async fn publish_bundled(env: &TestEnv, deliveries: &[Envelope<ForwardCommand>]) {
    let all = commands(&deliveries.iter().map(|d| d.to_bytes()).collect::<Vec<_>>());
    let (bundled, single) = all.split_at(all.len().min(6));
    let mut messages = bundle::bundle(bundled.to_vec(), |_| true);
    messages.extend_from_slice(single);
    env.publish_messages(&messages).await;
}

fn id(d: &Envelope<ForwardCommand>) -> DeliveryId {
    d.payload.delivery_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_database_refuses_is_dead_lettered_and_the_rest_delivered_once() {
    with_env(|env| async move {
        let mut deliveries = Vec::new();
        for _ in 0..10 {
            deliveries.push(env.delivery("ok", Purpose::Forward).await);
        }
        let poison = id(&deliveries[4]);
        sqlx::query(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'delivery % is poison', NEW.delivery_id; END $$",
        )
        .execute(&env.pool)
        .await
        .unwrap();
        // A uuid, so formatting it into the DDL is safe.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON delivery_attempts FOR EACH ROW
             WHEN (NEW.delivery_id = '{poison}') EXECUTE FUNCTION refuse()"
        )))
        .execute(&env.pool)
        .await
        .unwrap();
        publish_bundled(&env, &deliveries).await;
        // A long linger: all ten finish their requests into one group commit.
        let forwarder = env.start_forwarder_with(&["--commit-linger", "300ms"]);
        for d in deliveries.iter().filter(|d| id(d) != poison) {
            env.wait_for_state(id(d), "delivered", PATIENCE).await;
        }
        let dead = dead_letters(&env, 1).await;
        forwarder.stop().await;

        assert_eq!(dead.len(), 1, "{dead:?}");
        let (body, headers) = &dead[0];
        assert_eq!(
            headers.get("x-dead-reason").map(String::as_str),
            Some(
                format!("refused by the database: delivery {poison} is poison (SQLSTATE P0001)")
                    .as_str()
            )
        );
        assert_eq!(
            body,
            &deliveries[4].to_bytes(),
            "its own body, not the bundle"
        );
        assert_eq!(
            headers.get("x-original-queue").map(String::as_str),
            Some(Q_FORWARD)
        );
        // Sent once each — the poison too: its commit is retried, its
        // request is not — and recorded once each, but the poison.
        let counts = env.request_counts();
        for d in &deliveries {
            let key = id(d).to_string();
            assert_eq!(counts.get(&key), Some(&1), "requests for {key}");
            let attempts = env.attempts(id(d)).await.len();
            assert_eq!(attempts, usize::from(id(d) != poison), "attempts of {key}");
        }
        assert_eq!(env.delivery_row(poison).await.state, "pending");
        assert_eq!(env.queue_depth(Q_FORWARD).await, 0, "the queue drained");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_during_commits_dead_letters_nothing() {
    with_env(|env| async move {
        // `slow` answers after 2 s: the database goes down while the
        // requests are in flight, so their group commits meet the outage.
        let mut deliveries = Vec::new();
        for _ in 0..8 {
            deliveries.push(env.delivery("slow", Purpose::Forward).await);
        }
        let forwarder = env.start_forwarder_with(&["--request-timeout", "10s"]);
        publish_bundled(&env, &deliveries).await;
        let deadline = Instant::now() + PATIENCE;
        while env.target.seen().len() < deliveries.len() {
            assert!(Instant::now() < deadline, "requests not sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        env.set_database_up(false).await;
        // Answers arrive and their commits fail, round after round.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let dead_in_outage = env.take_dead().await;
        env.set_database_up(true).await;

        for d in &deliveries {
            env.wait_for_state(id(d), "delivered", PATIENCE).await;
        }
        let dead_after = dead_letters(&env, 0).await;
        forwarder.stop().await;

        assert_eq!(dead_in_outage.len(), 0, "dead-lettered in the outage");
        assert_eq!(dead_after.len(), 0, "dead-lettered after the outage");
        let counts = env.request_counts();
        for d in &deliveries {
            let key = id(d).to_string();
            assert_eq!(counts.get(&key), Some(&1), "requests for {key}");
            assert_eq!(env.attempts(id(d)).await.len(), 1, "attempts of {key}");
        }
        assert_eq!(env.queue_depth(Q_FORWARD).await, 0, "the queue drained");
    })
    .await;
}
