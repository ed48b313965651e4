//! The forwarder's circuit breaker against real targets (issue 16, item 2):
//! a target that fails part of the time keeps getting its sales — each once —
//! while a target that is down gets only the breaker's probes, one round per
//! cooldown, and its backlog once it recovers, never more at once than its
//! concurrency limit. Retry delays are test-speed; the breaker's rate, minimum
//! calls and half-open probes are the defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use salesync_core::domain::ids::IntegrationId;
use salesync_e2e::sales::mixed;
use salesync_e2e::{Behaviour, ServiceKind, Stack, StackOptions, Tenant, TestTarget, wait_until};

/// `BREAKER_HALF_OPEN_CALLS`' default: probes per half-open round.
const PROBES: usize = 10;

/// Forwarder settings at test speed: short retries (and enough attempts that
/// a 50 % target loses nothing: 2⁻⁴⁰), a window over twice the first delay.
fn fast_retries(options: StackOptions) -> StackOptions {
    options
        .env(ServiceKind::Forwarder, "RETRY_DELAYS", "100ms,200ms,400ms")
        .env(ServiceKind::Forwarder, "MAX_ATTEMPTS", "40")
        .env(ServiceKind::Forwarder, "REQUEST_TIMEOUT", "2s")
        .env(ServiceKind::Forwarder, "BREAKER_WINDOW", "2s")
}

/// A webhook integration taking every sale, to a new target.
async fn webhook(a: &Tenant, name: &str, behaviour: Behaviour) -> (TestTarget, IntegrationId) {
    let target = TestTarget::start(behaviour).await.expect("target");
    let created = a.webhook_to(&target, name).await.expect("integration");
    (target, created.id)
}

/// Posts `n` sales in batches of 100.
async fn post_sales(a: &Tenant, n: usize) {
    let sales: Vec<_> = (0..n).map(|i| mixed("pos", i)).collect();
    for chunk in sales.chunks(100) {
        let r = a.api.post_batch(chunk).await.expect("batch");
        assert!(r.results.iter().all(|i| i.outcome == "created"), "{r:?}");
    }
}

/// The forwarder's `salesync_breaker_transitions_total` by state entered.
async fn transitions(stack: &Stack) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Some(base) = stack
        .services
        .urls(ServiceKind::Forwarder)
        .into_iter()
        .next()
    else {
        return out;
    };
    let Ok(text) = async { reqwest::get(format!("{base}/metrics")).await?.text().await }.await
    else {
        return out;
    };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("salesync_breaker_transitions_total{") else {
            continue;
        };
        let state = rest
            .split("state=\"")
            .nth(1)
            .and_then(|s| s.split('"').next());
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let (Some(state), Some(value)) = (state, value) {
            out.insert(state.to_string(), value as u64);
        }
    }
    out
}

fn count(t: &BTreeMap<String, u64>, state: &str) -> u64 {
    t.get(state).copied().unwrap_or(0)
}

/// Every one of the integration's `n` deliveries reached the target and was
/// accepted exactly once (one 2xx per Idempotency-Key), signed.
async fn assert_each_once(
    stack: &Stack,
    name: &str,
    target: &TestTarget,
    id: IntegrationId,
    n: usize,
) {
    let accepted = target.accepted_per_key();
    assert_eq!(accepted.len(), n, "{name}: keys accepted");
    let twice: Vec<_> = accepted.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        twice.is_empty(),
        "{name}: keys accepted more than once: {twice:?}"
    );
    assert_eq!(target.bad_signatures(), 0, "{name}");
    let delivered: Vec<String> = sqlx::query_scalar(
        "SELECT target_ref FROM deliveries WHERE integration_id = $1 AND state = 'delivered'",
    )
    .bind(id)
    .fetch_all(stack.db.pool())
    .await
    .expect("deliveries");
    assert_eq!(
        delivered.into_iter().collect::<BTreeSet<_>>(),
        accepted.into_keys().collect::<BTreeSet<_>>(),
        "{name}: the target's keys are the delivered deliveries"
    );
}

/// (a) and (b): 1,000 sales to a target failing every first attempt (503,
/// then 200) and to one failing half its requests at random. Under the
/// consecutive-failure breaker the first got a handful an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partly_failing_targets_get_every_sale_once() {
    const SALES: usize = 1000;
    let stack = Stack::start(fast_retries(StackOptions::default()))
        .await
        .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let (first_fails, first_id) = webhook(&a, "first-fails", Behaviour::FailTimes(1, 503)).await;
    let (random, random_id) = webhook(&a, "random-half", Behaviour::FailRandomly(50, 503)).await;

    post_sales(&a, SALES).await;
    // The retry schedule (40 attempts at ≤ 400 ms) plus the drain.
    let arrived = wait_until(
        Duration::from_secs(240),
        Duration::from_millis(500),
        || async {
            first_fails.accepted_keys().len() >= SALES && random.accepted_keys().len() >= SALES
        },
    )
    .await;
    let seen = transitions(&stack).await;
    if let Err(e) = arrived {
        panic!(
            "not everything arrived ({e}): first-fails {} of {SALES}, random {} of {SALES}; \
             breaker transitions {seen:?}\nforwarder:\n{}",
            first_fails.accepted_keys().len(),
            random.accepted_keys().len(),
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        );
    }
    stack
        .wait_quiet(Duration::from_secs(60))
        .await
        .expect("drained");
    println!(
        "first-fails: {} requests, random: {} requests, breaker transitions {seen:?}",
        first_fails.total_requests(),
        random.total_requests()
    );
    assert_each_once(&stack, "first-fails", &first_fails, first_id, SALES).await;
    assert_eq!(
        first_fails.total_requests(),
        2 * SALES,
        "each delivery: one 503, one 200"
    );
    assert_each_once(&stack, "random", &random, random_id, SALES).await;
}

/// (c) and (d): a target that is down opens the breaker and then gets only
/// its probes, a round per cooldown; when it recovers, its backlog arrives,
/// each sale once, never more at once than TARGET_CONCURRENCY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_opens_the_breaker_and_the_recovered_target_gets_its_backlog() {
    const SALES: usize = 200;
    const CONCURRENCY: usize = 4;
    const COOLDOWN: Duration = Duration::from_secs(1);
    const ROUNDS: u64 = 3;
    let stack = Stack::start(
        fast_retries(StackOptions::default())
            .env(ServiceKind::Forwarder, "BREAKER_COOLDOWN", "1s")
            .env(
                ServiceKind::Forwarder,
                "TARGET_CONCURRENCY",
                &CONCURRENCY.to_string(),
            ),
    )
    .await
    .expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant");
    let (target, id) = webhook(&a, "down", Behaviour::Always(503)).await;
    post_sales(&a, SALES).await;

    let opened = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async { count(&transitions(&stack).await, "open") >= 1 },
    )
    .await;
    assert!(
        opened.is_ok(),
        "the breaker never opened: {} requests\nforwarder:\n{}",
        target.total_requests(),
        stack.services.log_tail(ServiceKind::Forwarder, 30)
    );
    let since_open = Instant::now();
    let requests_at_open = target.total_requests();
    let half_opened_at_open = count(&transitions(&stack).await, "half_open");
    let probed = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async { count(&transitions(&stack).await, "half_open") >= half_opened_at_open + ROUNDS },
    )
    .await;
    assert!(
        probed.is_ok(),
        "no {ROUNDS} probe rounds: {:?}",
        transitions(&stack).await
    );
    // Requests first, then the rounds: every request counted has its round.
    let requests = target.total_requests() - requests_at_open;
    let seen = transitions(&stack).await;
    let rounds = count(&seen, "half_open") - half_opened_at_open;
    let elapsed = since_open.elapsed();
    println!("open for {elapsed:?}: {requests} requests in {rounds} probe rounds, {seen:?}");
    // Each round lets PROBES through; one more may have been under way when
    // the breaker was seen open, with the sends admitted before it opened.
    // (Without the breaker: 200 deliveries every ≤ 400 ms, thousands.)
    let most = (rounds as usize + 1) * PROBES + CONCURRENCY;
    assert!(
        requests <= most,
        "{requests} requests in {rounds} rounds (at most {most})"
    );
    // A round at most per cooldown (slowness only makes fewer).
    let most_rounds = elapsed.as_secs_f64() / COOLDOWN.as_secs_f64() + 1.0;
    assert!(
        rounds as f64 <= most_rounds,
        "{rounds} rounds in {elapsed:?}: probed before the cooldown"
    );
    assert!(
        count(&seen, "open") >= ROUNDS,
        "failed probes reopen it: {seen:?}"
    );
    assert_eq!(count(&seen, "closed"), 0, "{seen:?}");

    // The target recovers, taking 30 ms an answer: the backlog arrives.
    target.set_behaviour(Behaviour::Stall(Duration::from_millis(30)));
    stack
        .await_arrivals(&target, SALES, Duration::from_secs(120))
        .await
        .expect("the backlog arrives");
    assert!(count(&transitions(&stack).await, "closed") >= 1);
    assert_each_once(&stack, "recovered", &target, id, SALES).await;
    assert_eq!(
        target.max_in_flight(),
        CONCURRENCY,
        "the backlog goes at the target's concurrency limit, never above"
    );
}
