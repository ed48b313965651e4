//! What holds for one forwarder process holds for several (issue 16 item 5,
//! forwarder half): a target never sees more requests at once than its
//! `TARGET_CONCURRENCY`, however many replicas deliver to it; an outage gets
//! the probes of one process, not one round per replica; and when a replica
//! is killed, the survivor gets the whole limit back once the dead one's
//! heartbeat row expires. Two ingest and two forwarder replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use salesync_core::domain::ids::IntegrationId;
use salesync_e2e::sales::mixed;
use salesync_e2e::{
    Behaviour, Replicas, ServiceKind, Stack, StackOptions, Tenant, TestTarget, wait_until,
};

const CONCURRENCY: usize = 4;
/// `BREAKER_HALF_OPEN_CALLS`' default: probes per half-open round.
const PROBES: usize = 10;

/// Two ingests, two forwarders sharing a limit of `CONCURRENCY`, test-speed
/// retries and heartbeats.
fn two_forwarders() -> StackOptions {
    StackOptions::default()
        .replicas(
            Replicas::one_each()
                .with(ServiceKind::Ingest, 2)
                .with(ServiceKind::Forwarder, 2),
        )
        .env(
            ServiceKind::Forwarder,
            "TARGET_CONCURRENCY",
            &CONCURRENCY.to_string(),
        )
        .env(ServiceKind::Forwarder, "RETRY_DELAYS", "100ms,200ms,400ms")
        .env(ServiceKind::Forwarder, "MAX_ATTEMPTS", "40")
        .env(ServiceKind::Forwarder, "REQUEST_TIMEOUT", "2s")
        .env(ServiceKind::Forwarder, "BREAKER_WINDOW", "2s")
        .env(ServiceKind::Forwarder, "REPLICA_HEARTBEAT", "200ms")
}

async fn webhook(a: &Tenant, behaviour: Behaviour) -> (TestTarget, IntegrationId) {
    let target = TestTarget::start(behaviour).await.expect("target");
    let created = a.webhook_to(&target, "acc").await.expect("integration");
    (target, created.id)
}

/// Posts `n` sales in batches of 100, alternating between the ingests.
async fn post_sales(stack: &Stack, a: &Tenant, n: usize) {
    let ingests = stack.services.urls(ServiceKind::Ingest);
    let sales: Vec<_> = (0..n).map(|i| mixed("pos", i)).collect();
    for (i, chunk) in sales.chunks(100).enumerate() {
        let api = salesync_e2e::api::Api::new(&ingests[i % ingests.len()]).with_token(&a.token);
        let r = api.post_batch(chunk).await.expect("batch");
        assert!(r.results.iter().all(|i| i.outcome == "created"), "{r:?}");
    }
}

/// Sums a forwarder metric's samples whose line starts with `prefix`, per
/// replica (`None` for a replica that does not answer).
async fn metric(stack: &Stack, prefix: &str) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for base in stack.services.urls(ServiceKind::Forwarder) {
        let text = async { reqwest::get(format!("{base}/metrics")).await?.text().await }.await;
        out.push(text.ok().map(|t| {
            t.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        }));
    }
    out
}

async fn transitions(stack: &Stack, state: &str) -> u64 {
    let prefix = "salesync_breaker_transitions_total{";
    let mut total = 0;
    for base in stack.services.urls(ServiceKind::Forwarder) {
        let Ok(text) = async { reqwest::get(format!("{base}/metrics")).await?.text().await }.await
        else {
            continue;
        };
        total += text
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(&format!("state=\"{state}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
    }
    total
}

/// Every sale reached the target and each key was booked once; the
/// delivered rows are the target's keys.
async fn assert_each_once(stack: &Stack, target: &TestTarget, id: IntegrationId, n: usize) {
    let accepted = target.accepted_per_key();
    assert_eq!(accepted.len(), n, "keys accepted");
    let twice: BTreeMap<_, _> = accepted.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "keys accepted more than once: {twice:?}");
    assert_eq!(target.bad_signatures(), 0);
    let delivered: Vec<String> = sqlx::query_scalar(
        "SELECT target_ref FROM deliveries WHERE integration_id = $1 AND state = 'delivered'",
    )
    .bind(id)
    .fetch_all(stack.db.pool())
    .await
    .expect("deliveries");
    assert_eq!(
        delivered.into_iter().collect::<BTreeSet<_>>(),
        accepted.into_keys().collect::<BTreeSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_forwarders_never_exceed_a_targets_concurrency() {
    const SALES: usize = 300;
    let stack = Stack::start(two_forwarders()).await.expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let (target, id) = webhook(&a, Behaviour::Stall(Duration::from_millis(200))).await;
    post_sales(&stack, &a, SALES).await;

    stack
        .await_arrivals(&target, SALES, Duration::from_secs(180))
        .await
        .expect("all arrive");
    let live = metric(&stack, "salesync_forwarder_replicas_live").await;
    let shares = metric(&stack, "salesync_target_concurrency_share{").await;
    println!(
        "max in flight {} (limit {CONCURRENCY}); replicas live {live:?}, shares {shares:?}",
        target.max_in_flight()
    );
    assert!(
        target.max_in_flight() <= CONCURRENCY,
        "the target saw {} at once, limit {CONCURRENCY}",
        target.max_in_flight()
    );
    assert_eq!(live, vec![Some(2.0), Some(2.0)], "each sees both");
    assert_eq!(shares, vec![Some(2.0), Some(2.0)], "the limit split");
    assert_each_once(&stack, &target, id, SALES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_gets_one_processs_probes_from_two_forwarders() {
    const SALES: usize = 200;
    const COOLDOWN: Duration = Duration::from_secs(1);
    const WATCH: Duration = Duration::from_secs(4);
    let stack =
        Stack::start(two_forwarders().env(ServiceKind::Forwarder, "BREAKER_COOLDOWN", "1s"))
            .await
            .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let (target, id) = webhook(&a, Behaviour::Always(503)).await;
    post_sales(&stack, &a, SALES).await;

    let opened = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async { transitions(&stack, "open").await >= 1 },
    )
    .await;
    assert!(
        opened.is_ok(),
        "the breaker never opened: {} requests\nforwarder:\n{}",
        target.total_requests(),
        stack.services.log_tail(ServiceKind::Forwarder, 30)
    );
    let since_open = Instant::now();
    let at_open = target.total_requests();
    tokio::time::sleep(WATCH).await;
    let requests = target.total_requests() - at_open;
    let elapsed = since_open.elapsed();
    let rounds = transitions(&stack, "half_open").await;
    // One process: a round of PROBES per cooldown at most, one more round
    // possibly under way, and the requests in flight when it opened.
    // Each replica probing on its own would send about twice the rounds.
    let rounds_bound = (elapsed.as_secs_f64() / COOLDOWN.as_secs_f64()).floor() as usize + 1;
    let most = rounds_bound * PROBES + CONCURRENCY;
    println!(
        "open for {elapsed:?}: {requests} requests, {rounds} half-open transitions in all \
         (one process's bound {most})"
    );
    assert!(
        requests <= most,
        "{requests} requests in {elapsed:?} (one process: at most {most})"
    );
    assert!(requests > 0, "the outage was probed");

    // The target recovers: the backlog arrives, each sale once, never more
    // than the limit at once.
    target.set_behaviour(Behaviour::Stall(Duration::from_millis(30)));
    stack
        .await_arrivals(&target, SALES, Duration::from_secs(120))
        .await
        .expect("all arrive");
    assert!(transitions(&stack, "closed").await >= 1);
    assert_each_once(&stack, &target, id, SALES).await;
    assert!(target.max_in_flight() <= CONCURRENCY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_forwarders_share_goes_to_the_survivor_after_the_ttl() {
    const SALES: usize = 300;
    const TTL: Duration = Duration::from_secs(5);
    let mut stack = Stack::start(two_forwarders().env(ServiceKind::Forwarder, "PREFETCH", "8"))
        .await
        .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let (target, _id) = webhook(&a, Behaviour::Stall(Duration::from_millis(100))).await;
    post_sales(&stack, &a, SALES).await;
    let share = "salesync_target_concurrency_share{";
    let both = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async { metric(&stack, share).await == vec![Some(2.0), Some(2.0)] },
    )
    .await;
    assert!(both.is_ok(), "shares {:?}", metric(&stack, share).await);

    stack.services.kill_one(ServiceKind::Forwarder, 1).await;
    let killed = Instant::now();
    let back = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { metric(&stack, share).await[0] == Some(CONCURRENCY as f64) },
    )
    .await;
    let after = killed.elapsed();
    println!("the survivor has all {CONCURRENCY} slots {after:?} after the kill (TTL {TTL:?})");
    assert!(back.is_ok(), "shares {:?}", metric(&stack, share).await);
    assert!(
        after >= TTL - Duration::from_millis(500),
        "the share came back before the dead row expired ({after:?})"
    );
    assert!(after <= TTL + Duration::from_secs(2), "{after:?}");

    stack
        .await_arrivals(&target, SALES, Duration::from_secs(120))
        .await
        .expect("all arrive");
    // A request cut off by the kill may be repeated, under its own key.
    assert_eq!(target.accepted_keys(), target.distinct_keys());
    assert_eq!(target.accepted_keys().len(), SALES);
    assert!(target.max_in_flight() <= CONCURRENCY);
}
