//! The coordination of forwarder replicas on a real PostgreSQL, two replicas
//! in one process (each a `Targets` with its own id): shares that never add
//! up to more than the limit while one joins and the other still has
//! requests in flight, a dead replica's share freed once its row expires,
//! and a shared breaker whose probes only one replica sends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::with_env;
use forwarder::breaker::BreakerConfig;
use forwarder::breaker_sync::{self, SyncConfig};
use forwarder::classify::{HttpOutcome, TransportError};
use forwarder::membership::{self, MembershipConfig};
use forwarder::targets::{DeferKind, Entry, Pass, TargetLimits, Targets};
use salesync_core::metrics::Metrics;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(5);
const URL: &str = "http://target.test/hook";

fn replica(limit: usize) -> Arc<Targets> {
    Arc::new(Targets::shared(
        TargetLimits {
            concurrency: limit,
            max_wait: Duration::from_secs(1),
            breaker: BreakerConfig {
                failure_rate: 100,
                min_calls: 2,
                window: Duration::from_secs(10),
                half_open_calls: 1,
                cooldown: Duration::from_millis(300),
                probe_timeout: Duration::from_secs(10),
            },
        },
        Metrics::new("coordination-test"),
        Duration::from_millis(100),
    ))
}

fn members(id: Uuid) -> MembershipConfig {
    MembershipConfig {
        replica: id,
        heartbeat: Duration::from_secs(1),
        ttl: TTL,
    }
}

fn sync(id: Uuid, claim_ttl: Duration) -> SyncConfig {
    SyncConfig {
        replica: id,
        heartbeat: Duration::from_secs(1),
        claim_ttl,
    }
}

async fn enter(t: &Targets) -> Entry {
    t.enter(URL, &CancellationToken::new())
        .await
        .expect("not shut down")
}

async fn send(t: &Targets) -> Pass {
    match enter(t).await {
        Entry::Send(p) => p,
        Entry::Defer(d) => panic!("deferred: {d:?}"),
    }
}

async fn deferred(t: &Targets) -> DeferKind {
    match enter(t).await {
        Entry::Defer(d) => d.kind,
        Entry::Send(p) => panic!("sent (probe: {})", p.is_probe()),
    }
}

async fn held_total(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(held), 0)::int8 FROM forwarder_replicas")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_hold_the_limit_through_a_join_and_come_back_after_a_death() {
    with_env(|env| async move {
        let pool = env.pool.clone();
        // Ids ordered so that the newcomer ranks first (the harder join).
        let (a_id, b_id) = (Uuid::from_u128(2), Uuid::from_u128(1));
        let (a, b) = (replica(4), replica(4));

        let beat = membership::beat(&pool, &a, members(a_id)).await.unwrap();
        assert_eq!((beat.view.count, beat.cap), (1, 4), "alone: all slots");
        slow(&a).await;
        let in_flight: Vec<Pass> = futures_take(&a, 3).await;

        // B joins while A has 3 requests in flight: B is due 2 but gets
        // nothing until A has given slots back.
        let beat = membership::beat(&pool, &b, members(b_id)).await.unwrap();
        assert_eq!((beat.view.count, beat.due, beat.cap), (2, 2, 0));
        assert_eq!(deferred(&b).await, DeferKind::TargetBusy);
        // A sees B: shrinks to 2 at once, but 3 are still in flight.
        let beat = membership::beat(&pool, &a, members(a_id)).await.unwrap();
        assert_eq!((beat.cap, beat.held), (2, 3));
        assert_eq!(
            deferred(&a).await,
            DeferKind::TargetBusy,
            "A is over its share"
        );
        let beat = membership::beat(&pool, &b, members(b_id)).await.unwrap();
        assert_eq!(beat.cap, 1, "only what A does not hold");
        assert!(held_total(&pool).await <= 4);
        // One of A's requests ends: its slot is not given back to A.
        let mut in_flight = in_flight;
        drop(in_flight.pop());
        assert_eq!(deferred(&a).await, DeferKind::TargetBusy);
        let beat = membership::beat(&pool, &a, members(a_id)).await.unwrap();
        assert_eq!((beat.cap, beat.held), (2, 2));
        let beat = membership::beat(&pool, &b, members(b_id)).await.unwrap();
        assert_eq!(beat.cap, 2, "B has its full share now");
        assert_eq!(held_total(&pool).await, 4);
        slow(&b).await;
        let b_passes = futures_take(&b, 2).await;
        assert_eq!(deferred(&b).await, DeferKind::TargetBusy);
        drop(in_flight);
        drop(b_passes);

        // A dies (no more heartbeats): once its row is TTL old, B takes all.
        last_heartbeat_ago(&pool, a_id, 4).await;
        let beat = membership::beat(&pool, &b, members(b_id)).await.unwrap();
        assert_eq!((beat.view.count, beat.cap), (2, 2), "not yet expired");
        last_heartbeat_ago(&pool, a_id, 6).await;
        let beat = membership::beat(&pool, &b, members(b_id)).await.unwrap();
        assert_eq!((beat.view.count, beat.cap), (1, 4), "expired: all slots");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM forwarder_replicas")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 1, "the dead row is deleted");
        membership::leave(&pool, b_id).await.unwrap();
        assert_eq!(held_total(&pool).await, 0);
    })
    .await;
}

/// Backdates `replica`'s last heartbeat by `secs` seconds.
async fn last_heartbeat_ago(pool: &PgPool, replica: Uuid, secs: i32) {
    sqlx::query(
        "UPDATE forwarder_replicas SET heartbeat_at = now() - make_interval(secs => $2) \
         WHERE id = $1",
    )
    .bind(replica)
    .bind(f64::from(secs))
    .execute(pool)
    .await
    .unwrap();
}

/// The target is known to take 5 s a request: a delivery finding no free
/// slot is deferred rather than waiting.
async fn slow(t: &Targets) {
    send(t).await.finish(&ok(), Duration::from_secs(5), false);
}

/// Takes `n` slots of the target.
async fn futures_take(t: &Targets, n: usize) -> Vec<Pass> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(send(t).await);
    }
    out
}

fn refused() -> HttpOutcome {
    HttpOutcome::Transport(TransportError::Connect("refused".into()))
}

fn ok() -> HttpOutcome {
    HttpOutcome::Response {
        status: 200,
        retry_after: None,
        body_excerpt: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_probes_a_shared_breaker_and_its_verdict_holds_for_all() {
    with_env(|env| async move {
        let pool = env.pool.clone();
        let (a_id, b_id) = (Uuid::new_v4(), Uuid::new_v4());
        let (a, b) = (replica(4), replica(4));
        // Twice: the second to join gets its share once the first shrank.
        for (t, id) in [(&a, a_id), (&b, b_id), (&a, a_id), (&b, b_id)] {
            membership::beat(&pool, t, members(id)).await.unwrap();
        }
        let claim = Duration::from_secs(5);
        let (sa, sb) = (sync(a_id, claim), sync(b_id, claim));

        // A's requests fail: its breaker opens and the row says so.
        for _ in 0..2 {
            send(&a).await.finish(&refused(), Duration::ZERO, true);
        }
        assert_eq!(deferred(&a).await, DeferKind::CircuitOpen);
        assert!(send(&b).await.is_probe().eq(&false), "B not told yet");
        assert_eq!(breaker_sync::sync_once(&pool, &a, sa).await.unwrap(), 1);
        breaker_sync::sync_once(&pool, &b, sb).await.unwrap();
        assert_eq!(deferred(&b).await, DeferKind::CircuitOpen, "B adopted it");

        // Cooldown over: both have deliveries that would probe; neither
        // sends before a claim, and only one claim wins.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(deferred(&a).await, DeferKind::CircuitOpen);
        assert_eq!(deferred(&b).await, DeferKind::CircuitOpen);
        breaker_sync::sync_once(&pool, &b, sb).await.unwrap();
        breaker_sync::sync_once(&pool, &a, sa).await.unwrap();
        let owner: Option<Uuid> = sqlx::query_scalar("SELECT probe_owner FROM target_breakers")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(owner, Some(b_id), "the first to ask claims");
        assert_eq!(
            deferred(&a).await,
            DeferKind::CircuitOpen,
            "A does not probe"
        );
        let probe = send(&b).await;
        assert!(probe.is_probe());
        assert_eq!(
            deferred(&b).await,
            DeferKind::CircuitOpen,
            "one probe a round"
        );

        // The probe succeeds: closed here, then for A too.
        probe.finish(&ok(), Duration::ZERO, false);
        assert!(!send(&b).await.is_probe(), "closed on B");
        assert_eq!(deferred(&a).await, DeferKind::CircuitOpen, "A not told yet");
        breaker_sync::sync_once(&pool, &b, sb).await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM target_breakers")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 0, "closed for all");
        breaker_sync::sync_once(&pool, &a, sa).await.unwrap();
        assert!(!send(&a).await.is_probe(), "closed on A");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_not_renewed_lapses_and_another_replica_probes() {
    with_env(|env| async move {
        let pool = env.pool.clone();
        let (a_id, b_id) = (Uuid::new_v4(), Uuid::new_v4());
        let (a, b) = (replica(4), replica(4));
        let claim = Duration::from_millis(400);
        let (sa, sb) = (sync(a_id, claim), sync(b_id, claim));
        // Twice: the second to join gets its share once the first shrank.
        for (t, id) in [(&a, a_id), (&b, b_id), (&a, a_id), (&b, b_id)] {
            membership::beat(&pool, t, members(id)).await.unwrap();
        }
        for _ in 0..2 {
            send(&a).await.finish(&refused(), Duration::ZERO, true);
        }
        breaker_sync::sync_once(&pool, &a, sa).await.unwrap();
        breaker_sync::sync_once(&pool, &b, sb).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(deferred(&a).await, DeferKind::CircuitOpen);
        breaker_sync::sync_once(&pool, &a, sa).await.unwrap();
        // A holds the claim and sends its probe, then dies mid-round.
        let lost = send(&a).await;
        assert!(lost.is_probe());
        std::mem::forget(lost);
        assert_eq!(deferred(&b).await, DeferKind::CircuitOpen);
        breaker_sync::sync_once(&pool, &b, sb).await.unwrap();
        assert_eq!(
            deferred(&b).await,
            DeferKind::CircuitOpen,
            "A's claim holds"
        );
        // The claim lapses unrenewed (its local end comes first, so A
        // would not probe any more either).
        tokio::time::sleep(claim + Duration::from_millis(100)).await;
        assert_eq!(
            deferred(&a).await,
            DeferKind::CircuitOpen,
            "A's claim lapsed here"
        );
        assert_eq!(deferred(&b).await, DeferKind::CircuitOpen);
        breaker_sync::sync_once(&pool, &b, sb).await.unwrap();
        assert!(send(&b).await.is_probe(), "B took the probes over");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_replicas_claiming_at_once_one_wins_until_its_claim_lapses() {
    with_env(|env| async move {
        let pool = env.pool.clone();
        let key = "http://target.test:80";
        sqlx::query(
            "INSERT INTO target_breakers (target_key, state, until) VALUES ($1, 'open', now())",
        )
        .bind(key)
        .execute(&pool)
        .await
        .unwrap();
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let ttl = Duration::from_millis(500);
        let tries = ids
            .iter()
            .map(|id| breaker_sync::claim(&pool, key, *id, ttl));
        let won: Vec<bool> = futures::future::try_join_all(tries).await.unwrap();
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        let owner = ids[won.iter().position(|w| *w).unwrap()];
        let other = *ids.iter().find(|id| **id != owner).unwrap();
        assert!(
            breaker_sync::claim(&pool, key, owner, ttl).await.unwrap(),
            "renewed"
        );
        assert!(!breaker_sync::claim(&pool, key, other, ttl).await.unwrap());
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;
        assert!(
            breaker_sync::claim(&pool, key, other, ttl).await.unwrap(),
            "lapsed: another takes it"
        );
        assert!(!breaker_sync::claim(&pool, key, owner, ttl).await.unwrap());
    })
    .await;
}

/// The heartbeat's DELETE has no index to use, so with sequential scans
/// ruled out (shared `db`) it is costed above `jit_above_cost`: it must not
/// be JIT-compiled on every heartbeat (~360 ms of CPU each, measured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_is_never_jit_compiled() {
    with_env(|env| async move {
        let plan: (serde_json::Value,) = sqlx::query_as(
            "EXPLAIN (ANALYZE, FORMAT JSON) \
             DELETE FROM forwarder_replicas WHERE heartbeat_at < now() - make_interval(secs => 5.0)",
        )
        .fetch_one(&env.pool)
        .await
        .expect("explain");
        let plan = &plan.0[0];
        assert!(
            plan["Plan"]["Total Cost"].as_f64().unwrap_or(0.0) > 100_000.0,
            "the premise: the plan costs more than jit_above_cost: {plan}"
        );
        assert!(plan.get("JIT").is_none(), "JIT-compiled: {}", plan["JIT"]);
    })
    .await;
}

/// Samples `t.cap()` every 10 ms for `how_long`: the lowest seen.
async fn lowest_cap(t: &Targets, how_long: Duration) -> usize {
    let until = tokio::time::Instant::now() + how_long;
    let mut lowest = t.cap();
    while tokio::time::Instant::now() < until {
        lowest = lowest.min(t.cap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lowest
}

/// How long until `cond` holds, polled every 10 ms; `None` after `limit`.
async fn within(limit: Duration, cond: impl Fn() -> bool) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Holds `forwarder_replicas` locked (every heartbeat blocks on it) for
/// `how_long`, from a connection of its own.
async fn stall_heartbeats(pool: &PgPool, how_long: Duration) -> tokio::task::JoinHandle<()> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE forwarder_replicas IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(how_long).await;
        tx.rollback().await.unwrap();
    })
}

/// The heartbeat loop against a database that stalls: a heartbeat that is
/// late but within its budget costs nothing (deliveries keep their slots);
/// one that stalls until the row could have expired stops this replica
/// sending (another may have taken its slots), and it sends again as soon
/// as a heartbeat gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_heartbeat_stops_sending_only_once_the_row_could_expire() {
    with_env(|env| async move {
        let pool = env.pool.clone();
        let cfg = MembershipConfig {
            replica: Uuid::new_v4(),
            heartbeat: Duration::from_millis(100),
            ttl: Duration::from_millis(1000),
        };
        let t = replica(4);
        let started = std::time::Instant::now();
        membership::beat(&pool, &t, cfg).await.unwrap();
        assert_eq!(t.cap(), 4);
        let stop = CancellationToken::new();
        let run = tokio::spawn(membership::run(
            pool.clone(),
            Arc::clone(&t),
            Metrics::new("coordination-test"),
            cfg,
            started,
            stop.clone(),
        ));

        // Late by 500 ms: under the budget (TTL less a heartbeat).
        let stall = stall_heartbeats(&pool, Duration::from_millis(500)).await;
        let lowest = lowest_cap(&t, Duration::from_millis(900)).await;
        stall.await.unwrap();
        assert_eq!(lowest, 4, "a late heartbeat took the slots away");
        drop(send(&t).await);

        // Stalled for 2.5 TTLs: no sending once the row could expire.
        let stall = stall_heartbeats(&pool, Duration::from_millis(2500)).await;
        let after = within(Duration::from_secs(2), || t.cap() == 0)
            .await
            .expect("still sending with no heartbeat for 2 s");
        assert!(
            after >= Duration::from_millis(600),
            "stopped after {after:?}, before the budget was spent"
        );
        assert_eq!(deferred(&t).await, DeferKind::TargetBusy);
        stall.await.unwrap();
        within(Duration::from_secs(2), || t.cap() == 4)
            .await
            .expect("the heartbeat got through but the slots did not come back");
        drop(send(&t).await);
        stop.cancel();
        run.await.unwrap();
        membership::leave(&pool, cfg.replica).await.unwrap();
    })
    .await;
}
