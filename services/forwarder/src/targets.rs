//! Per-target protection, in this process's memory: every target (scheme,
//! host and port of its URL) gets `TARGET_CONCURRENCY` slots and a circuit
//! breaker. A delivery first takes a slot (waiting only if that will be
//! short, see `target_limits`), then asks the breaker; whatever may not go
//! now is handed back as a [`Deferral`] and goes to a delay queue, so a slow
//! or dead target never holds the consumer's prefetch window for long.
//!
//! Several forwarder replicas each keep their own view: each opens its own
//! breaker after its own failures, and each sends one probe per cooldown.
//! Entries are never evicted; there are as many as configured target hosts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use salesync_core::metrics::Metrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::breaker::{Admission, Breaker, BreakerConfig, Transition, health};
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
}

/// Leave to send one request: holds a slot until dropped. Report the answer
/// with [`Pass::finish`]; a pass dropped unfinished gives back its probe.
pub struct Pass {
    target: Arc<Target>,
    admission: Admission,
    metrics: Metrics,
    finished: bool,
    _slot: OwnedSemaphorePermit,
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
    pub fn new(limits: TargetLimits, metrics: Metrics) -> Self {
        Self {
            limits,
            metrics,
            by_key: Mutex::default(),
        }
    }

    /// Asks to send to `url`. `None`: `shutdown` came while waiting for a slot
    /// (nothing was sent).
    pub async fn enter(&self, url: &str, shutdown: &CancellationToken) -> Option<Entry> {
        let target = self.target(url);
        // An open breaker answers before any slot is waited for.
        if let Some(wait) = target.lock().breaker.blocked_for(now()) {
            return Some(Entry::Defer(circuit_open(&target.key, wait)));
        }
        let slot = match Arc::clone(&target.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let in_line = {
                    let mut s = target.lock();
                    let decision = slot_decision(
                        s.waiting,
                        self.limits.concurrency,
                        s.latency,
                        self.limits.max_wait,
                    );
                    if let SlotDecision::Defer { estimate } = decision {
                        return Some(Entry::Defer(Deferral {
                            kind: DeferKind::TargetBusy,
                            wait: estimate,
                            reason: format!(
                                "target busy: all {} slots of {} taken, a slot expected in {estimate:?}",
                                self.limits.concurrency, target.key
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
                _slot: slot,
            })),
        }
    }

    fn target(&self, url: &str) -> Arc<Target> {
        let key = target_key(url);
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(key.clone()).or_insert_with(|| {
            Arc::new(Target {
                key,
                slots: Arc::new(Semaphore::new(self.limits.concurrency.max(1))),
                state: Mutex::new(TargetState {
                    breaker: Breaker::new(self.limits.breaker),
                    waiting: 0,
                    latency: None,
                }),
            })
        }))
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
            s.breaker
                .record(self.admission, health(outcome), retry, now())
        };
        observe_transition(&self.metrics, &self.target.key, transition);
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if !self.finished && self.admission == Admission::Probe {
            self.target.lock().breaker.abandon_probe();
        }
    }
}

/// The breaker's clock: tokio's, so tests can stop and advance it.
fn now() -> Instant {
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
    async fn shutdown_ends_a_wait_for_a_slot() {
        let t = targets(1);
        let stop = CancellationToken::new();
        let _held = pass(t.enter("http://a.test/", &stop).await);
        stop.cancel();
        assert!(t.enter("http://a.test/", &stop).await.is_none());
    }
}
