//! The circuit breaker of one target, as a pure state machine over a clock
//! the caller passes in (so tests drive it with made-up instants).
//!
//! Closed: requests flow; `failures` consecutive failing answers open it.
//! Open: nothing is sent until the cooldown is over (the deliveries are put
//! back to a delay queue instead, see `targets`). Then half-open: exactly one
//! request — the probe — goes through; its success closes the breaker, its
//! failure opens it for another cooldown. Only the probe decides a half-open
//! breaker; answers to requests sent before it opened are ignored once open.
//!
//! A failure is what says the target itself is unwell: a 5xx, a timeout, a
//! refused or broken connection. Any other answer (2xx, 4xx, also 429 — the
//! target is up and says when to come back) is health. A request that could
//! not even be built says nothing about the target.

use std::time::{Duration, Instant};

use crate::classify::{HttpOutcome, TransportError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (≥ 1).
    pub failures: u32,
    /// How long an open breaker sends nothing.
    pub cooldown: Duration,
    /// How long a probe may take before another one is allowed (a probe
    /// whose answer never comes must not keep the breaker half-open forever).
    pub probe_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out; another is allowed from `probe_until` on.
    HalfOpen {
        probe_until: Instant,
    },
}

/// What the target's health says about one answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Health {
    Healthy,
    Failing,
    /// Says nothing about the target (the request was never sent).
    Neutral,
}

/// Whether a request may go now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    Send,
    /// Send it as the half-open breaker's one probe.
    Probe,
    /// Do not send; the breaker lets something through again in `wait` at
    /// the earliest.
    Defer {
        wait: Duration,
    },
}

/// A change of state worth a metric and a log line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    Opened,
    HalfOpened,
    Closed,
}

impl Transition {
    /// The metric label of the state entered.
    pub fn label(self) -> &'static str {
        match self {
            Transition::Opened => "open",
            Transition::HalfOpened => "half_open",
            Transition::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: State::Closed { failures: 0 },
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// How long nothing may be sent, without changing state: `None` when a
    /// request could be admitted now (closed, cooldown over, probe overdue).
    pub fn blocked_for(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Closed { .. } => None,
            State::Open { until: t } | State::HalfOpen { probe_until: t } => {
                (now < t).then(|| t - now)
            }
        }
    }

    /// Decides whether a request may go now; the caller must report the
    /// answer of an admitted request with [`Breaker::record`], or give back an
    /// unsent probe with [`Breaker::abandon_probe`].
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        match self.state {
            State::Closed { .. } => (Admission::Send, None),
            State::Open { until } if now < until => (Admission::Defer { wait: until - now }, None),
            State::Open { .. } => {
                self.state = self.probing(now);
                (Admission::Probe, Some(Transition::HalfOpened))
            }
            State::HalfOpen { probe_until } if now < probe_until => (
                Admission::Defer {
                    wait: probe_until - now,
                },
                None,
            ),
            State::HalfOpen { .. } => {
                // The last probe never answered: try another.
                self.state = self.probing(now);
                (Admission::Probe, None)
            }
        }
    }

    /// Takes the answer to a request admitted as `admission` (`Send` or `Probe`).
    pub fn record(
        &mut self,
        admission: Admission,
        health: Health,
        now: Instant,
    ) -> Option<Transition> {
        let probe = admission == Admission::Probe;
        match (self.state, health) {
            (_, Health::Neutral) => {
                if probe {
                    self.abandon_probe(now);
                }
                None
            }
            (State::Closed { .. }, Health::Healthy) => {
                self.state = State::Closed { failures: 0 };
                None
            }
            (State::Closed { failures }, Health::Failing) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failures {
                    self.state = self.opened(now);
                    Some(Transition::Opened)
                } else {
                    self.state = State::Closed { failures };
                    None
                }
            }
            (State::HalfOpen { .. }, Health::Healthy) if probe => {
                self.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            (State::HalfOpen { .. }, Health::Failing) if probe => {
                self.state = self.opened(now);
                Some(Transition::Opened)
            }
            // Open, or half-open with someone else's probe out: answers to
            // requests admitted earlier do not decide anything.
            _ => None,
        }
    }

    /// A probe that was admitted but not sent: the next request may probe.
    pub fn abandon_probe(&mut self, now: Instant) {
        if let State::HalfOpen { .. } = self.state {
            self.state = State::HalfOpen { probe_until: now };
        }
    }

    fn opened(&self, now: Instant) -> State {
        State::Open {
            until: now + self.config.cooldown,
        }
    }

    fn probing(&self, now: Instant) -> State {
        State::HalfOpen {
            probe_until: now + self.config.probe_timeout,
        }
    }
}

/// What one attempt's outcome says about the target's health.
pub fn health(outcome: &HttpOutcome) -> Health {
    match outcome {
        HttpOutcome::Response { status, .. } if (500..=599).contains(status) => Health::Failing,
        HttpOutcome::Response { .. } => Health::Healthy,
        HttpOutcome::Transport(TransportError::InvalidRequest(_)) => Health::Neutral,
        HttpOutcome::Transport(_) => Health::Failing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);
    const PROBE_TIMEOUT: Duration = Duration::from_secs(11);

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            cooldown: COOLDOWN,
            probe_timeout: PROBE_TIMEOUT,
        })
    }

    fn resp(status: u16) -> HttpOutcome {
        HttpOutcome::Response {
            status,
            retry_after: None,
            body_excerpt: String::new(),
        }
    }

    #[test]
    fn classifies_health() {
        let cases: Vec<(&str, HttpOutcome, Health)> = vec![
            ("200", resp(200), Health::Healthy),
            ("204", resp(204), Health::Healthy),
            ("400 is the target answering", resp(400), Health::Healthy),
            ("404", resp(404), Health::Healthy),
            ("408 is a 4xx", resp(408), Health::Healthy),
            ("429 is alive and throttling", resp(429), Health::Healthy),
            ("301", resp(301), Health::Healthy),
            ("500", resp(500), Health::Failing),
            ("503", resp(503), Health::Failing),
            ("599", resp(599), Health::Failing),
            (
                "timeout",
                HttpOutcome::Transport(TransportError::Timeout),
                Health::Failing,
            ),
            (
                "refused",
                HttpOutcome::Transport(TransportError::Connect("refused".into())),
                Health::Failing,
            ),
            (
                "closed mid-response",
                HttpOutcome::Transport(TransportError::Connection("closed".into())),
                Health::Failing,
            ),
            (
                "unbuildable request",
                HttpOutcome::Transport(TransportError::InvalidRequest("bad url".into())),
                Health::Neutral,
            ),
        ];
        for (name, outcome, want) in cases {
            assert_eq!(health(&outcome), want, "case {name}");
        }
    }

    /// One step of a scenario, at `at` seconds after the start.
    enum Step {
        /// Ask to send; expect this admission (Defer's wait is checked too).
        Admit(Admission),
        /// Report the answer of a request admitted as `.0`.
        Record(Admission, Health),
        Abandon,
    }
    use Health::{Failing, Healthy, Neutral};
    use Step::{Abandon, Admit, Record};

    const SEND: Admission = Admission::Send;
    const PROBE: Admission = Admission::Probe;
    fn defer(secs: u64) -> Admission {
        Admission::Defer {
            wait: Duration::from_secs(secs),
        }
    }

    /// Runs a scenario; returns the transitions seen and the final state,
    /// both in seconds since the start.
    fn run(steps: &[(u64, Step)]) -> (Vec<(u64, &'static str)>, Breaker, Instant) {
        let t0 = Instant::now();
        let mut b = breaker();
        let mut transitions = Vec::new();
        for (i, (at, step)) in steps.iter().enumerate() {
            let now = t0 + Duration::from_secs(*at);
            let t = match step {
                Admit(want) => {
                    let (got, t) = b.admit(now);
                    assert_eq!(got, *want, "step {i} at {at}s");
                    t
                }
                Record(admission, health) => b.record(*admission, *health, now),
                Abandon => {
                    b.abandon_probe(now);
                    None
                }
            };
            if let Some(t) = t {
                transitions.push((*at, t.label()));
            }
        }
        (transitions, b, t0)
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let (transitions, b, t0) = run(&[
            (0, Admit(SEND)),
            (1, Record(SEND, Failing)),
            (2, Record(SEND, Failing)),
            // A success in between resets the count …
            (3, Record(SEND, Healthy)),
            (4, Record(SEND, Failing)),
            (5, Record(SEND, Failing)),
            // … a neutral one neither resets nor counts.
            (6, Record(SEND, Neutral)),
            (7, Admit(SEND)),
            (8, Record(SEND, Failing)),
        ]);
        assert_eq!(transitions, [(8, "open")]);
        assert_eq!(
            b.state(),
            State::Open {
                until: t0 + Duration::from_secs(8) + COOLDOWN
            }
        );
    }

    #[test]
    fn open_defers_until_the_cooldown_then_lets_one_probe_through() {
        let (transitions, b, _) = run(&[
            (0, Record(SEND, Failing)),
            (0, Record(SEND, Failing)),
            (0, Record(SEND, Failing)),
            (1, Admit(defer(29))),
            (29, Admit(defer(1))),
            (30, Admit(PROBE)),
            // While the probe is out, everyone else waits for its timeout.
            (30, Admit(defer(11))),
            (35, Admit(defer(6))),
            // Answers to requests sent before the breaker opened change nothing.
            (36, Record(SEND, Healthy)),
            (36, Record(SEND, Failing)),
            (37, Record(PROBE, Healthy)),
            (37, Admit(SEND)),
        ]);
        assert_eq!(
            transitions,
            [(0, "open"), (30, "half_open"), (37, "closed")]
        );
        assert_eq!(b.state(), State::Closed { failures: 0 });
    }

    #[test]
    fn a_failed_probe_opens_for_another_cooldown() {
        let (transitions, _, _) = run(&[
            (0, Record(SEND, Failing)),
            (0, Record(SEND, Failing)),
            (0, Record(SEND, Failing)),
            (30, Admit(PROBE)),
            (32, Record(PROBE, Failing)),
            (33, Admit(defer(29))),
            (62, Admit(PROBE)),
            (63, Record(PROBE, Healthy)),
        ]);
        assert_eq!(
            transitions,
            [
                (0, "open"),
                (30, "half_open"),
                (32, "open"),
                (62, "half_open"),
                (63, "closed")
            ]
        );
    }

    #[test]
    fn an_unanswered_or_unsent_probe_does_not_wedge_it() {
        let (transitions, b, t0) = run(&[
            (0, Record(SEND, Failing)),
            (0, Record(SEND, Failing)),
            (0, Record(SEND, Failing)),
            (30, Admit(PROBE)),
            // The probe never answers: after its timeout another one goes.
            (41, Admit(PROBE)),
            // That one is given back unsent: the next request probes at once.
            (42, Abandon),
            (42, Admit(PROBE)),
            // A neutral answer (never sent) also gives the probe back.
            (43, Record(PROBE, Neutral)),
            (43, Admit(PROBE)),
        ]);
        assert_eq!(transitions, [(0, "open"), (30, "half_open")]);
        assert_eq!(
            b.state(),
            State::HalfOpen {
                probe_until: t0 + Duration::from_secs(43) + PROBE_TIMEOUT
            }
        );
    }

    #[test]
    fn reports_how_long_it_blocks_without_changing_state() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = breaker();
        assert_eq!(b.blocked_for(t0), None);
        for _ in 0..3 {
            b.record(SEND, Failing, t0);
        }
        assert_eq!(b.blocked_for(t0 + s(10)), Some(s(20)));
        assert_eq!(b.blocked_for(t0 + s(30)), None);
        assert!(matches!(b.state(), State::Open { .. }));
        assert_eq!(b.admit(t0 + s(30)).0, PROBE);
        assert_eq!(b.blocked_for(t0 + s(31)), Some(s(10)));
        assert_eq!(b.blocked_for(t0 + s(41)), None);
    }

    #[test]
    fn one_failure_is_enough_when_configured_so() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerConfig {
            failures: 1,
            cooldown: COOLDOWN,
            probe_timeout: PROBE_TIMEOUT,
        });
        assert_eq!(b.record(SEND, Failing, t0), Some(Transition::Opened));
    }
}
