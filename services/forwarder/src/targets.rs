//! Per-target protection, in this process's memory: every target (scheme,
//! host and port of its URL) gets `TARGET_CONCURRENCY` slots and a circuit
//! breaker. A delivery first takes a slot (waiting only if that will be
//! short, see `target_limits`), then asks the breaker; whatever may not go
//! now is handed back as a [`Deferral`] and goes to a delay queue, so a slow
//! or dead target never holds the consumer's prefetch window for long.
//!
//! Across forwarder replicas ([`Targets::shared`]) both hold together: each
//! replica may use only its share of the slots (`set_cap`, kept by
//! `membership` once a heartbeat; a shrunk share takes slots back as their
//! requests finish), and its breakers are reconciled with the shared ones
//! by `breaker_sync` (an open breaker waits for a probe claim). The hot path
//! stays in memory: no database round trip per delivery. A single process
//! ([`Targets::new`]) has all the slots and decides its breakers alone.
//! Entries are never evicted; there are as many as configured target hosts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use salesync_core::metrics::{BreakerState, Metrics};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::breaker::{Admission, Breaker, BreakerConfig, State, Transition, health};
use crate::classify::HttpOutcome;
use crate::target_limits::{SlotDecision, slot_decision, target_key, updated_latency};

#[derive(Debug, Clone, Copy)]
pub struct TargetLimits {
    /// Requests in flight to one target at most.
    pub concurrency: usize,
    /// Longest expected wait for a slot before a delivery is deferred instead.
    pub max_wait: Duration,
    pub breaker: BreakerConfig,
}

/// Why a delivery was not sent now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeferKind {
    CircuitOpen,
    TargetBusy,
}

impl DeferKind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            DeferKind::CircuitOpen => "circuit_open",
            DeferKind::TargetBusy => "target_busy",
        }
    }
}

/// A delivery to put back: not sent, no attempt used.
#[derive(Debug, Clone, PartialEq)]
pub struct Deferral {
    pub kind: DeferKind,
    /// The earliest a retry can be useful.
    pub wait: Duration,
    /// For `last_error`; the text before ':' is a bounded label.
    pub reason: String,
}

/// The answer to "may I send to this target now?".
pub enum Entry {
    Send(Pass),
    Defer(Deferral),
}

pub struct Targets {
    limits: TargetLimits,
    metrics: Metrics,
    by_key: Mutex<HashMap<String, Arc<Target>>>,
    /// Slots of each target this process may use now (changed only with
    /// `by_key` locked, so new targets start with the current one).
    cap: AtomicUsize,
    /// `Some`: breakers shared across replicas; deliveries wait about this
    /// long for a probe claim.
    claim_wait: Option<Duration>,
}

/// A local breaker's state as `breaker_sync` sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LocalBreaker {
    Closed,
    Open { remaining: Duration },
    HalfOpen,
}

/// A transition on the hot path not yet written to the shared breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pending {
    Opened,
    Closed,
}

struct Target {
    key: String,
    slots: Arc<Semaphore>,
    state: Mutex<TargetState>,
}

struct TargetState {
    breaker: Breaker,
    /// Deliveries waiting for a slot.
    waiting: usize,
    latency: Option<Duration>,
    pending: Option<Pending>,
    /// Slots taken away by a smaller share while their requests were still
    /// in flight: that many returning slots are forgotten, not freed.
    debt: usize,
}

/// Leave to send one request: holds a slot until dropped. Report the answer
/// with [`Pass::finish`]; a pass dropped unfinished gives back its probe.
pub struct Pass {
    target: Arc<Target>,
    admission: Admission,
    metrics: Metrics,
    finished: bool,
    slot: Option<OwnedSemaphorePermit>,
}

/// Counts a delivery in a target's line while it waits (also if the wait is
/// cancelled).
struct InLine<'a>(&'a Target);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.waiting = s.waiting.saturating_sub(1);
    }
}

impl Targets {
    /// One process alone: all the slots, breakers decided here.
    pub fn new(limits: TargetLimits, metrics: Metrics) -> Self {
        Self {
            limits,
            metrics,
            by_key: Mutex::default(),
            cap: AtomicUsize::new(limits.concurrency),
            claim_wait: None,
        }
    }

    /// One replica of several: no slots until [`Targets::set_cap`] grants a
    /// share; probes only on a claim (deliveries wait `claim_wait` for one).
    pub fn shared(limits: TargetLimits, metrics: Metrics, claim_wait: Duration) -> Self {
        Self {
            cap: AtomicUsize::new(0),
            claim_wait: Some(claim_wait),
            ..Self::new(limits, metrics)
        }
    }

    /// `TARGET_CONCURRENCY`: the slots of a target across all replicas.
    pub fn limit(&self) -> usize {
        self.limits.concurrency
    }

    /// The slots of each target this process may use now.
    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Acquire)
    }

    /// Most requests this process may have in flight to any one target:
    /// its share plus slots of a shrunk share still in use.
    pub fn held(&self) -> usize {
        let map = self.map();
        let debt = map.values().map(|t| t.lock().debt).max().unwrap_or(0);
        self.cap() + debt
    }

    /// Resizes every target's slots to `cap`. Growing pays back debt first;
    /// shrinking forgets free slots now and the rest as their requests end.
    pub fn set_cap(&self, cap: usize) {
        let map = self.map();
        let old = self.cap.swap(cap, Ordering::AcqRel);
        if old == cap {
            return;
        }
        for t in map.values() {
            let mut s = t.lock();
            if cap > old {
                let pay = (cap - old).min(s.debt);
                s.debt -= pay;
                t.slots.add_permits(cap - old - pay);
            } else {
                let shrink = old - cap;
                s.debt += shrink - t.slots.forget_permits(shrink);
            }
            self.metrics.target_concurrency_share(&t.key, cap);
        }
    }

    /// Makes sure `key` has an entry (a target known only from the shared
    /// breakers).
    pub fn ensure(&self, key: &str) {
        self.target_by_key(key.to_string());
    }

    /// Each target's breaker for `breaker_sync`, taking its pending
    /// transition and its "a delivery wanted to probe" mark.
    pub fn take_breaker_views(&self, now: Instant) -> Vec<(String, crate::breaker_sync::Seen)> {
        let targets: Vec<Arc<Target>> = self.map().values().cloned().collect();
        targets
            .iter()
            .map(|t| {
                let mut s = t.lock();
                let local = match s.breaker.state() {
                    State::Closed => LocalBreaker::Closed,
                    State::Open { until } => LocalBreaker::Open {
                        remaining: until.saturating_duration_since(now),
                    },
                    State::HalfOpen(_) => LocalBreaker::HalfOpen,
                };
                let seen = crate::breaker_sync::Seen {
                    local,
                    pending: s.pending.take(),
                    holds_claim: s.breaker.holds_claim(now),
                    wants_probe: s.breaker.take_wants_probe(),
                    row: None,
                };
                (t.key.clone(), seen)
            })
            .collect()
    }

    /// Exports every known target's breaker state (once a heartbeat, after
    /// the reconciliation: adopted states included; nothing on the hot path).
    pub fn report_breaker_states(&self) {
        let targets: Vec<Arc<Target>> = self.map().values().cloned().collect();
        for t in targets {
            let state = match t.lock().breaker.state() {
                State::Closed => BreakerState::Closed,
                State::HalfOpen(_) => BreakerState::HalfOpen,
                State::Open { .. } => BreakerState::Open,
            };
            self.metrics.breaker_state(&t.key, state);
        }
    }

    /// Puts back a transition that could not be written (unless a newer one
    /// came meanwhile).
    pub fn restore_pending(&self, key: &str, pending: Pending) {
        if let Some(t) = self.map().get(key) {
            t.lock().pending.get_or_insert(pending);
        }
    }

    /// Runs `f` on `key`'s breaker (no-op for an unknown target).
    pub fn with_breaker(&self, key: &str, f: impl FnOnce(&mut Breaker)) {
        if let Some(t) = self.map().get(key).cloned() {
            f(&mut t.lock().breaker);
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Target>>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks to send to `url`. `None`: `shutdown` came while waiting for a slot
    /// (nothing was sent).
    pub async fn enter(&self, url: &str, shutdown: &CancellationToken) -> Option<Entry> {
        let target = self.target(url);
        // An open breaker answers before any slot is waited for.
        if let Some(wait) = target.lock().breaker.blocked_for(now()) {
            return Some(Entry::Defer(circuit_open(&target.key, wait)));
        }
        let cap = self.cap();
        if cap == 0 {
            // More replicas than slots, or not yet (or no longer) granted a
            // share: the other replicas send.
            return Some(Entry::Defer(Deferral {
                kind: DeferKind::TargetBusy,
                wait: self.claim_wait.unwrap_or(self.limits.max_wait),
                reason: format!(
                    "target busy: this replica has no share of the {} slots of {}",
                    self.limits.concurrency, target.key
                ),
            }));
        }
        let slot = match Arc::clone(&target.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let in_line = {
                    let mut s = target.lock();
                    let decision = slot_decision(s.waiting, cap, s.latency, self.limits.max_wait);
                    if let SlotDecision::Defer { estimate } = decision {
                        return Some(Entry::Defer(Deferral {
                            kind: DeferKind::TargetBusy,
                            wait: estimate,
                            reason: format!(
                                "target busy: all {cap} slots of {} taken, a slot expected in {estimate:?}",
                                target.key
                            ),
                        }));
                    }
                    s.waiting += 1;
                    InLine(&target)
                };
                let slot = tokio::select! {
                    slot = Arc::clone(&target.slots).acquire_owned() => slot.ok(),
                    _ = shutdown.cancelled() => None,
                };
                drop(in_line);
                slot?
            }
        };
        let (admission, transition) = target.lock().breaker.admit(now());
        self.observe(&target, transition);
        match admission {
            Admission::Defer { wait } => Some(Entry::Defer(circuit_open(&target.key, wait))),
            Admission::Send | Admission::Probe => Some(Entry::Send(Pass {
                target,
                admission,
                metrics: self.metrics.clone(),
                finished: false,
                slot: Some(slot),
            })),
        }
    }

    fn target(&self, url: &str) -> Arc<Target> {
        self.target_by_key(target_key(url))
    }

    fn target_by_key(&self, key: String) -> Arc<Target> {
        let mut map = self.map();
        if let Some(t) = map.get(&key) {
            return Arc::clone(t);
        }
        let cap = self.cap();
        let breaker = match self.claim_wait {
            Some(wait) => Breaker::shared(self.limits.breaker, wait),
            None => Breaker::new(self.limits.breaker),
        };
        self.metrics.target_concurrency_share(&key, cap);
        let t = Arc::new(Target {
            key: key.clone(),
            slots: Arc::new(Semaphore::new(cap)),
            state: Mutex::new(TargetState {
                breaker,
                waiting: 0,
                latency: None,
                pending: None,
                debt: 0,
            }),
        });
        map.insert(key, Arc::clone(&t));
        t
    }

    fn observe(&self, target: &Target, transition: Option<Transition>) {
        observe_transition(&self.metrics, &target.key, transition);
    }
}

impl Target {
    fn lock(&self) -> MutexGuard<'_, TargetState> {
        // The state stays consistent at every step; a panic elsewhere while
        // holding the lock must not take every later delivery down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pass {
    /// Whether this request is the half-open breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.admission == Admission::Probe
    }

    /// Reports the answer: feeds the breaker and the latency estimate, then
    /// frees the slot. `retry`: the request was not its delivery's first
    /// attempt (the breaker opens only when retries fail too).
    pub fn finish(mut self, outcome: &HttpOutcome, duration: Duration, retry: bool) {
        self.finished = true;
        let transition = {
            let mut s = self.target.lock();
            s.latency = Some(updated_latency(s.latency, duration));
            let t = s
                .breaker
                .record(self.admission, health(outcome), retry, now());
            match t {
                Some(Transition::Opened) => s.pending = Some(Pending::Opened),
                Some(Transition::Closed) => s.pending = Some(Pending::Closed),
                _ => {}
            }
            t
        };
        observe_transition(&self.metrics, &self.target.key, transition);
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut s = self.target.lock();
        if !self.finished && self.admission == Admission::Probe {
            s.breaker.abandon_probe();
        }
        // A slot of a shrunk share is not given back. Either way under the
        // lock, so `set_cap` sees the slot taken or free, not in between.
        if let Some(slot) = self.slot.take() {
            if s.debt > 0 {
                s.debt -= 1;
                slot.forget();
            } else {
                drop(slot);
            }
        }
    }
}

/// The breaker's clock: tokio's, so tests can stop and advance it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn circuit_open(key: &str, wait: Duration) -> Deferral {
    Deferral {
        kind: DeferKind::CircuitOpen,
        wait,
        reason: format!("circuit open: {key} is failing, next probe in {wait:?}"),
    }
}

fn observe_transition(metrics: &Metrics, key: &str, transition: Option<Transition>) {
    let Some(t) = transition else { return };
    metrics.breaker_transition(t.label());
    match t {
        Transition::Opened => {
            tracing::warn!(
                target_host = key,
                "circuit breaker opened: target is failing"
            )
        }
        Transition::HalfOpened => {
            tracing::info!(
                target_host = key,
                "circuit breaker half-open: sending a probe"
            )
        }
        Transition::Closed => {
            tracing::info!(
                target_host = key,
                "circuit breaker closed: target answers again"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::TransportError;

    fn targets(concurrency: usize) -> Targets {
        Targets::new(
            TargetLimits {
                concurrency,
                max_wait: Duration::from_secs(1),
                breaker: BreakerConfig {
                    failure_rate: 100,
                    min_calls: 2,
                    window: Duration::from_secs(2),
                    half_open_calls: 2,
                    cooldown: Duration::from_secs(60),
                    probe_timeout: Duration::from_secs(10),
                },
            },
            Metrics::new("targets-test"),
        )
    }

    fn refused() -> HttpOutcome {
        HttpOutcome::Transport(TransportError::Connect("refused".into()))
    }

    fn pass(e: Option<Entry>) -> Pass {
        match e {
            Some(Entry::Send(p)) => p,
            Some(Entry::Defer(d)) => panic!("deferred: {d:?}"),
            None => panic!("shut down"),
        }
    }

    fn deferral(e: Option<Entry>) -> Deferral {
        match e {
            Some(Entry::Defer(d)) => d,
            Some(Entry::Send(_)) => panic!("sent"),
            None => panic!("shut down"),
        }
    }

    #[test]
    fn breaker_states_are_exported_per_target() {
        let t = targets(1);
        t.ensure("up:443");
        t.ensure("down:443");
        t.with_breaker("down:443", |b| {
            b.adopt_open(now() + Duration::from_secs(30))
        });
        t.report_breaker_states();
        let text = t.metrics.render();
        let state = |key: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("salesync_target_breaker_state{")
                        && l.contains(&format!("target=\"{key}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(state("down:443").as_deref(), Some("2"), "{text}");
        assert_eq!(state("up:443").as_deref(), Some("0"), "{text}");
        t.with_breaker("down:443", |b| b.adopt_closed());
        t.report_breaker_states();
        let text = t.metrics.render();
        assert!(
            text.contains(
                r#"salesync_target_breaker_state{service="targets-test",target="down:443"} 0"#
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_full_target_makes_its_own_deliveries_wait_not_others() {
        let t = targets(1);
        let stop = CancellationToken::new();
        let first = pass(t.enter("http://a.test/x", &stop).await);
        // Another target is not affected by a's only slot being taken.
        let other = pass(t.enter("http://b.test/x", &stop).await);
        // A second delivery to a waits (no latency known yet) until the slot frees.
        let waiter = {
            let stop = stop.clone();
            let t = Arc::new(t);
            let t2 = Arc::clone(&t);
            (
                t,
                tokio::spawn(async move { t2.enter("http://a.test/y", &stop).await.is_some() }),
            )
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.1.is_finished(), "waits while the slot is taken");
        first.finish(
            &HttpOutcome::Response {
                status: 200,
                retry_after: None,
                body_excerpt: String::new(),
            },
            Duration::from_secs(5),
            false,
        );
        assert!(waiter.1.await.unwrap(), "got the slot once it was freed");
        drop(other);
        // Now a is known to take 5 s a request and its slot is taken (the
        // waiter's pass was dropped, so take it again): the next is deferred.
        let t = waiter.0;
        let again = pass(t.enter("http://a.test/x", &stop).await);
        let d = deferral(t.enter("http://a.test/z", &stop).await);
        assert_eq!(d.kind, DeferKind::TargetBusy);
        assert!(d.reason.starts_with("target busy: "), "{}", d.reason);
        drop(again);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_open_the_breaker_for_that_target_only() {
        let t = targets(4);
        let stop = CancellationToken::new();
        for _ in 0..2 {
            pass(t.enter("http://dead.test/", &stop).await).finish(
                &refused(),
                Duration::ZERO,
                true,
            );
        }
        let d = deferral(t.enter("http://dead.test/other", &stop).await);
        assert_eq!(d.kind, DeferKind::CircuitOpen);
        assert!(d.wait > Duration::from_secs(59), "{d:?}");
        assert!(
            d.reason.starts_with("circuit open: http://dead.test:80"),
            "{}",
            d.reason
        );
        assert!(!pass(t.enter("http://alive.test/", &stop).await).is_probe());

        // After the cooldown, two probes; a dropped (unsent) one is given back.
        tokio::time::advance(Duration::from_secs(60)).await;
        let first = pass(t.enter("http://dead.test/", &stop).await);
        assert!(first.is_probe());
        drop(pass(t.enter("http://dead.test/", &stop).await));
        let second = pass(t.enter("http://dead.test/", &stop).await);
        assert!(second.is_probe());
        let d = deferral(t.enter("http://dead.test/", &stop).await);
        assert_eq!(d.kind, DeferKind::CircuitOpen);
        let ok = HttpOutcome::Response {
            status: 200,
            retry_after: None,
            body_excerpt: String::new(),
        };
        first.finish(&refused(), Duration::ZERO, false);
        second.finish(&ok, Duration::ZERO, false);
        // One failure of two is below 100 %: closed again.
        assert!(!pass(t.enter("http://dead.test/", &stop).await).is_probe());
    }

    #[tokio::test]
    async fn a_shrunk_share_takes_slots_back_as_their_requests_end() {
        let t = targets(4);
        let stop = CancellationToken::new();
        // A slow target: a delivery finding no free slot is deferred.
        let ok = HttpOutcome::Response {
            status: 200,
            retry_after: None,
            body_excerpt: String::new(),
        };
        for key in ["http://a.test/", "http://b.test/"] {
            pass(t.enter(key, &stop).await).finish(&ok, Duration::from_secs(5), false);
        }
        let mut busy: Vec<Pass> = Vec::new();
        for _ in 0..3 {
            busy.push(pass(t.enter("http://a.test/", &stop).await));
        }
        t.set_cap(2);
        assert_eq!((t.cap(), t.held()), (2, 3), "one in flight over the share");
        // The free slot went at once, and the returning one is not reused.
        assert_eq!(
            deferral(t.enter("http://a.test/", &stop).await).kind,
            DeferKind::TargetBusy
        );
        drop(busy.pop());
        assert_eq!(t.held(), 2);
        assert_eq!(
            deferral(t.enter("http://a.test/", &stop).await).kind,
            DeferKind::TargetBusy
        );
        // Growing back pays nothing owed and frees slots.
        t.set_cap(3);
        busy.push(pass(t.enter("http://a.test/", &stop).await));
        t.set_cap(0);
        assert_eq!(t.held(), 3);
        let d = deferral(t.enter("http://b.test/", &stop).await);
        assert!(d.reason.contains("no share"), "{}", d.reason);
        busy.clear();
        assert_eq!(t.held(), 0);
        t.set_cap(1);
        drop(pass(t.enter("http://a.test/", &stop).await));
        drop(pass(t.enter("http://b.test/", &stop).await));
    }

    #[tokio::test]
    async fn shutdown_ends_a_wait_for_a_slot() {
        let t = targets(1);
        let stop = CancellationToken::new();
        let _held = pass(t.enter("http://a.test/", &stop).await);
        stop.cancel();
        assert!(t.enter("http://a.test/", &stop).await.is_none());
    }
}
