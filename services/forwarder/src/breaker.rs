//! The circuit breaker of one target, as a pure state machine over a clock
//! the caller passes in (so tests drive it with made-up instants). The model
//! is resilience4j's: a failure *rate* over a sliding window, not a count of
//! failures in a row.
//!
//! Closed: requests flow; their answers go into a time-based window
//! ([`FailureWindow`]). It opens when the window holds at least `min_calls`
//! answers, at least `failure_rate` % of them failures, **and the retries
//! among them fail as often** (at least a quarter of `min_calls` retries,
//! one at the least). That last rule is ours: a target that answers 503 to
//! the first attempt of each delivery and takes the retry is not down, but a
//! backlog sends it a long run of first attempts — their retries wait behind
//! the backlog in the queue — and a breaker that judged that run would open.
//! A target that is down fails its retries too.
//!
//! Open: nothing is sent until the cooldown is over (the deliveries are put
//! back to a delay queue instead, see `targets`). Then half-open: up to
//! `half_open_calls` requests — the probes — go through; once they have all
//! answered, a failure rate below `failure_rate` closes the breaker (with an
//! empty window) and any other opens it for another cooldown. Only probes
//! decide a half-open breaker; answers to requests sent before it opened are
//! ignored once open. Probes that never answer do not keep it half-open: once
//! the last one admitted is `probe_timeout` overdue, a new round of probes
//! starts.
//!
//! Shared across replicas (see `breaker_sync`), an open breaker does not
//! turn half-open by itself when its cooldown is over: it waits for a probe
//! claim ([`Breaker::grant_claim`]) that one replica at a time holds, so an
//! outage gets one replica's probes, not one round per replica. Without a
//! claim it defers, and remembers that a delivery wanted to probe.
//!
//! A failure is what says the target itself is unwell: a 5xx, a timeout, a
//! refused or broken connection. Any other answer (2xx, 4xx, also 429 — the
//! target is up and says when to come back) is health. A request that could
//! not even be built says nothing about the target.

use std::time::{Duration, Instant};

use crate::classify::{HttpOutcome, TransportError};
use crate::failure_window::{FailureWindow, Tally};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Percentage of failed calls (1..=100) that opens a closed breaker and
    /// keeps a half-open one open.
    pub failure_rate: u8,
    /// Answers the window must hold before their rate can open the breaker.
    pub min_calls: u32,
    /// How far back the closed breaker looks.
    pub window: Duration,
    /// Probes a half-open breaker lets through, and judges together.
    pub half_open_calls: u32,
    /// How long an open breaker sends nothing.
    pub cooldown: Duration,
    /// How long a probe may take before another round is allowed (a probe
    /// whose answer never comes must not keep the breaker half-open forever).
    pub probe_timeout: Duration,
}

impl BreakerConfig {
    /// Whether `failures` of `calls` reach the failure rate.
    fn failing(&self, failures: u32, calls: u32) -> bool {
        u64::from(failures) * 100 >= u64::from(self.failure_rate) * u64::from(calls)
    }

    /// Whether the closed window's answers open the breaker.
    fn opens(&self, t: Tally) -> bool {
        let min_retries = (self.min_calls / 4).max(1);
        t.all.calls >= self.min_calls.max(1)
            && self.failing(t.all.failures, t.all.calls)
            && t.retries.calls >= min_retries
            && self.failing(t.retries.failures, t.retries.calls)
    }
}

/// The probes of one half-open round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probes {
    pub admitted: u32,
    pub answered: u32,
    pub failures: u32,
    /// When the last probe admitted is overdue.
    pub overdue_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen(Probes),
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
    /// Send it as one of the half-open breaker's probes.
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

/// Who may send a half-open breaker's probes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gate {
    /// This process alone decides (one replica, or unit tests).
    Local,
    /// Only while this replica holds the shared probe claim, until
    /// `claim_until`; without it, deliveries wait about `wait` for one.
    Shared {
        claim_until: Option<Instant>,
        wait: Duration,
        wants_probe: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
    /// The closed breaker's answers; empty in the other states.
    window: FailureWindow,
    gate: Gate,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: State::Closed,
            window: FailureWindow::new(config.window),
            gate: Gate::Local,
        }
    }

    /// A breaker whose probes need the shared claim; without it a delivery
    /// that could probe waits `claim_wait` (about a heartbeat).
    pub fn shared(config: BreakerConfig, claim_wait: Duration) -> Self {
        Self {
            gate: Gate::Shared {
                claim_until: None,
                wait: claim_wait,
                wants_probe: false,
            },
            ..Self::new(config)
        }
    }

    /// Whether this replica may send probes now; `None` when it may not and
    /// should wait this long for a claim.
    fn claim_wait(&self, now: Instant) -> Option<Duration> {
        match self.gate {
            Gate::Local => None,
            Gate::Shared {
                claim_until: Some(until),
                ..
            } if now < until => None,
            Gate::Shared { wait, .. } => Some(wait),
        }
    }

    /// `claim_wait`, noting that a delivery wanted to probe.
    fn claim_needed(&mut self, now: Instant) -> Option<Duration> {
        let wait = self.claim_wait(now)?;
        if let Gate::Shared { wants_probe, .. } = &mut self.gate {
            *wants_probe = true;
        }
        Some(wait)
    }

    /// Whether a delivery was deferred for want of a claim since the last
    /// call (a replica with no traffic to the target does not claim).
    pub fn take_wants_probe(&mut self) -> bool {
        match &mut self.gate {
            Gate::Shared { wants_probe, .. } => std::mem::take(wants_probe),
            Gate::Local => false,
        }
    }

    /// Whether this replica holds a live probe claim.
    pub fn holds_claim(&self, now: Instant) -> bool {
        matches!(self.gate, Gate::Shared { claim_until: Some(u), .. } if now < u)
    }

    /// This replica holds the probe claim until `until` (claimed or renewed).
    pub fn grant_claim(&mut self, until: Instant) {
        if let Gate::Shared { claim_until, .. } = &mut self.gate {
            *claim_until = Some(until);
        }
    }

    /// The claim was lost (another replica took it, or opened the breaker).
    pub fn revoke_claim(&mut self) {
        if let Gate::Shared { claim_until, .. } = &mut self.gate {
            *claim_until = None;
        }
    }

    /// Another replica opened the breaker (or holds the probe claim): send
    /// nothing until `until`. Answers to requests already sent are ignored.
    pub fn adopt_open(&mut self, until: Instant) {
        self.window.clear();
        self.revoke_claim();
        self.state = State::Open { until };
    }

    /// Another replica's probes closed the breaker.
    pub fn adopt_closed(&mut self) {
        self.window.clear();
        self.revoke_claim();
        self.state = State::Closed;
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// How long nothing may be sent, without changing state (but noting a
    /// delivery that waits for a probe claim): `None` when a request could
    /// be admitted now (closed, cooldown over, a probe free or the last one
    /// overdue, and the claim held if shared).
    pub fn blocked_for(&mut self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Closed => None,
            State::Open { until } if now < until => Some(until - now),
            State::HalfOpen(p)
                if p.admitted >= self.config.half_open_calls.max(1) && now < p.overdue_at =>
            {
                Some(p.overdue_at - now)
            }
            State::Open { .. } | State::HalfOpen(_) => self.claim_needed(now),
        }
    }

    /// Decides whether a request may go now; the caller must report the
    /// answer of an admitted request with [`Breaker::record`], or give back an
    /// unsent probe with [`Breaker::abandon_probe`].
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        let overdue_at = now + self.config.probe_timeout;
        let probe_next = match self.state {
            State::Closed => false,
            State::Open { until } => now >= until,
            State::HalfOpen(p) => {
                p.admitted < self.config.half_open_calls.max(1) || now >= p.overdue_at
            }
        };
        if probe_next && let Some(wait) = self.claim_needed(now) {
            return (Admission::Defer { wait }, None);
        }
        match self.state {
            State::Closed => (Admission::Send, None),
            State::Open { until } if now < until => (Admission::Defer { wait: until - now }, None),
            State::Open { .. } => {
                self.state = State::HalfOpen(Probes::first(overdue_at));
                (Admission::Probe, Some(Transition::HalfOpened))
            }
            State::HalfOpen(mut p) if p.admitted < self.config.half_open_calls.max(1) => {
                p.admitted += 1;
                p.overdue_at = overdue_at;
                self.state = State::HalfOpen(p);
                (Admission::Probe, None)
            }
            State::HalfOpen(p) if now < p.overdue_at => (
                Admission::Defer {
                    wait: p.overdue_at - now,
                },
                None,
            ),
            State::HalfOpen(_) => {
                // Some probe never answered: start a new round.
                self.state = State::HalfOpen(Probes::first(overdue_at));
                (Admission::Probe, None)
            }
        }
    }

    /// Takes the answer to a request admitted as `admission` (`Send` or
    /// `Probe`); `retry`: the request was not its delivery's first attempt.
    pub fn record(
        &mut self,
        admission: Admission,
        health: Health,
        retry: bool,
        now: Instant,
    ) -> Option<Transition> {
        let failed = match health {
            Health::Neutral => {
                if admission == Admission::Probe {
                    self.abandon_probe();
                }
                return None;
            }
            Health::Failing => true,
            Health::Healthy => false,
        };
        match (self.state, admission) {
            (State::Closed, Admission::Send) => {
                self.window.record(now, failed, retry);
                let tally = self.window.tally(now);
                self.config.opens(tally).then(|| self.open(now))
            }
            (State::HalfOpen(mut p), Admission::Probe) => {
                p.answered += 1;
                p.failures += u32::from(failed);
                if p.answered < self.config.half_open_calls.max(1) {
                    self.state = State::HalfOpen(p);
                    None
                } else if self.config.failing(p.failures, p.answered) {
                    Some(self.open(now))
                } else {
                    self.window.clear();
                    self.revoke_claim();
                    self.state = State::Closed;
                    Some(Transition::Closed)
                }
            }
            // Open, or a probe's late answer after its round was decided:
            // answers to requests admitted earlier do not decide anything.
            _ => None,
        }
    }

    /// A probe that was admitted but not sent: another request may probe.
    pub fn abandon_probe(&mut self) {
        if let State::HalfOpen(p) = &mut self.state {
            p.admitted = p.admitted.saturating_sub(1);
        }
    }

    fn open(&mut self, now: Instant) -> Transition {
        self.window.clear();
        // A failed round ends the claim; the next one is claimed anew.
        self.revoke_claim();
        self.state = State::Open {
            until: now + self.config.cooldown,
        };
        Transition::Opened
    }
}

impl Probes {
    fn first(overdue_at: Instant) -> Self {
        Self {
            admitted: 1,
            answered: 0,
            failures: 0,
            overdue_at,
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
    const CONFIG: BreakerConfig = BreakerConfig {
        failure_rate: 75,
        min_calls: 4,
        window: Duration::from_secs(10),
        half_open_calls: 3,
        cooldown: COOLDOWN,
        probe_timeout: PROBE_TIMEOUT,
    };

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

    /// One step of a scenario, at `at` milliseconds after the start.
    enum Step {
        /// Ask to send; expect this admission (Defer's wait is checked too).
        Admit(Admission),
        /// Report the answer of a request admitted as `.0`.
        Record(Admission, Health),
        /// `n` answers to `Send`s of first attempts, `failed` of them failures.
        Answers(u32, u32),
        /// The same for retries.
        Retries(u32, u32),
        Abandon,
    }
    use Health::{Failing, Healthy, Neutral};
    use Step::{Abandon, Admit, Answers, Record, Retries};

    const SEND: Admission = Admission::Send;
    const PROBE: Admission = Admission::Probe;
    fn defer(secs: u64) -> Admission {
        Admission::Defer {
            wait: Duration::from_secs(secs),
        }
    }
    const S: u64 = 1000;

    /// Runs a scenario; returns the transitions seen (ms since the start,
    /// label) and the breaker.
    fn run(config: BreakerConfig, steps: &[(u64, Step)]) -> (Vec<(u64, &'static str)>, Breaker) {
        let t0 = Instant::now();
        let mut b = Breaker::new(config);
        let mut transitions = Vec::new();
        for (i, (at, step)) in steps.iter().enumerate() {
            let now = t0 + Duration::from_millis(*at);
            let mut seen = Vec::new();
            match step {
                Admit(want) => {
                    let (got, t) = b.admit(now);
                    assert_eq!(got, *want, "step {i} at {at} ms");
                    seen.extend(t);
                }
                Record(admission, health) => {
                    seen.extend(b.record(*admission, *health, false, now));
                }
                Answers(n, failed) | Retries(n, failed) => {
                    let retry = matches!(step, Retries(..));
                    for k in 0..*n {
                        let h = if k < *failed { Failing } else { Healthy };
                        seen.extend(b.record(SEND, h, retry, now));
                    }
                }
                Abandon => b.abandon_probe(),
            }
            transitions.extend(seen.into_iter().map(|t| (*at, t.label())));
        }
        (transitions, b)
    }

    /// Four failed first attempts, then a failed retry 5 s later opens it.
    fn open_at(at: u64) -> Vec<(u64, Step)> {
        vec![(at, Answers(4, 4)), (at + 5 * S, Retries(1, 1))]
    }

    #[test]
    fn opens_on_the_rate_when_retries_fail_too() {
        type Case = (&'static str, Vec<(u64, Step)>, Vec<(u64, &'static str)>);
        let cases: Vec<Case> = vec![
            (
                "failed first attempts alone never open it",
                vec![(0, Answers(50, 50)), (5 * S, Answers(50, 50))],
                vec![],
            ),
            (
                "a failed retry with the rate reached opens it",
                vec![(0, Answers(4, 4)), (S, Retries(1, 1))],
                vec![(S, "open")],
            ),
            (
                "retries that succeed keep it closed, however many first attempts fail",
                vec![
                    (0, Answers(50, 50)),
                    (S, Retries(3, 0)),
                    (2 * S, Answers(100, 100)),
                    (3 * S, Retries(1, 1)),
                ],
                vec![],
            ),
            (
                "two failures of every three (67 %) never open it",
                (0..40u64)
                    .map(|i| (i * 500, Retries(1, u32::from(i % 3 != 0))))
                    .collect(),
                vec![],
            ),
            (
                "the rate reached exactly opens it (3 of 4 = 75 %)",
                vec![(0, Retries(3, 3)), (S, Retries(1, 0))],
                vec![(S, "open")],
            ),
            (
                "too few calls never open it",
                vec![
                    (0, Retries(1, 1)),
                    (4 * S, Retries(1, 1)),
                    (8 * S, Retries(1, 1)),
                ],
                vec![],
            ),
            (
                "failures older than the window are forgotten",
                vec![
                    (0, Retries(3, 3)),
                    (10 * S, Retries(1, 1)),
                    (14 * S, Retries(2, 2)),
                ],
                vec![],
            ),
            (
                "neutral answers neither count nor dilute",
                vec![
                    (0, Answers(3, 3)),
                    (S, Record(SEND, Neutral)),
                    (S, Record(SEND, Neutral)),
                    (S, Retries(1, 1)),
                ],
                vec![(S, "open")],
            ),
        ];
        for (name, steps, want) in cases {
            assert_eq!(run(CONFIG, &steps).0, want, "case {name}");
        }
    }

    /// Traffic that the consecutive-failure breaker this replaced turned into
    /// an endless outage: a backlog of deliveries that each fail their first
    /// attempt, their retries (all taken) only coming back after 20 s; and a
    /// target failing half its calls at random.
    #[test]
    fn partial_failure_keeps_it_closed_with_the_defaults() {
        let config = BreakerConfig {
            failure_rate: 90,
            min_calls: 20,
            ..CONFIG
        };
        let mut first_fails = Vec::new();
        for sec in 0..60u64 {
            first_fails.push((sec * S, Answers(40, 40)));
            if sec >= 20 {
                first_fails.push((sec * S + 1, Retries(40, 0)));
            }
        }
        assert_eq!(run(config, &first_fails).0, []);
        // A fixed pseudo-random half (xorshift), 20 calls every 100 ms.
        let mut x: u32 = 0x9e37_79b9;
        let random_half: Vec<(u64, Step)> = (0..600u64)
            .map(|i| {
                let failed = (0..20)
                    .filter(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x.is_multiple_of(2)
                    })
                    .count() as u32;
                (i * 100, Retries(20, failed))
            })
            .collect();
        assert_eq!(run(config, &random_half).0, []);
        // The same window when the target is down: open at the first retries.
        let down = vec![(0, Answers(500, 500)), (S, Retries(5, 5))];
        assert_eq!(run(config, &down).0, [(S, "open")]);
    }

    #[test]
    fn half_open_lets_some_probes_through_and_judges_their_rate() {
        type Case = (&'static str, Vec<(u64, Step)>, Vec<(u64, &'static str)>);
        let probing = |answers: [Health; 3]| -> Vec<(u64, Step)> {
            let mut steps = open_at(0);
            steps.extend([
                (6 * S, Admit(defer(29))),
                (
                    35 * S - 1,
                    Admit(Admission::Defer {
                        wait: Duration::from_millis(1),
                    }),
                ),
                (35 * S, Admit(PROBE)),
                (35 * S, Admit(PROBE)),
                (36 * S, Admit(PROBE)),
                // All three out: everyone else waits for the last one's timeout.
                (36 * S, Admit(defer(11))),
                // Answers to requests sent before it opened change nothing.
                (37 * S, Record(SEND, Failing)),
                (37 * S, Record(SEND, Healthy)),
            ]);
            steps.extend(answers.map(|h| (38 * S, Record(PROBE, h))));
            steps.push((39 * S, Admit(SEND)));
            steps
        };
        let cases: Vec<Case> = vec![
            (
                "one failed probe of three does not reopen it",
                probing([Failing, Healthy, Healthy]),
                vec![(5 * S, "open"), (35 * S, "half_open"), (38 * S, "closed")],
            ),
            (
                "two of three (67 %) close it too",
                probing([Failing, Failing, Healthy]),
                vec![(5 * S, "open"), (35 * S, "half_open"), (38 * S, "closed")],
            ),
        ];
        for (name, steps, want) in cases {
            assert_eq!(run(CONFIG, &steps).0, want, "case {name}");
        }
        // All three failing: open for another cooldown, probed again after it.
        let mut steps = open_at(0);
        steps.extend([
            (35 * S, Admit(PROBE)),
            (35 * S, Admit(PROBE)),
            (35 * S, Admit(PROBE)),
            (36 * S, Record(PROBE, Failing)),
            (36 * S, Record(PROBE, Failing)),
            (36 * S, Admit(defer(10))),
            (37 * S, Record(PROBE, Failing)),
            (38 * S, Admit(defer(29))),
            (67 * S, Admit(PROBE)),
        ]);
        assert_eq!(
            run(CONFIG, &steps).0,
            [
                (5 * S, "open"),
                (35 * S, "half_open"),
                (37 * S, "open"),
                (67 * S, "half_open")
            ]
        );
    }

    #[test]
    fn a_closed_breaker_starts_with_an_empty_window() {
        let mut steps = open_at(0);
        steps.extend([
            (35 * S, Admit(PROBE)),
            (35 * S, Admit(PROBE)),
            (35 * S, Admit(PROBE)),
            (36 * S, Record(PROBE, Healthy)),
            (36 * S, Record(PROBE, Healthy)),
            (36 * S, Record(PROBE, Healthy)),
            // The failures before the opening are gone: three are too few.
            (37 * S, Retries(3, 3)),
            (38 * S, Retries(1, 1)),
        ]);
        assert_eq!(
            run(CONFIG, &steps).0,
            [
                (5 * S, "open"),
                (35 * S, "half_open"),
                (36 * S, "closed"),
                (38 * S, "open")
            ]
        );
    }

    #[test]
    fn unanswered_or_unsent_probes_do_not_wedge_it() {
        let mut steps = open_at(0);
        steps.extend([
            (35 * S, Admit(PROBE)),
            (35 * S, Admit(PROBE)),
            (36 * S, Admit(PROBE)),
            (36 * S, Admit(defer(11))),
            // Given back unsent: the next request may probe at once.
            (37 * S, Abandon),
            (37 * S, Admit(PROBE)),
            // A neutral answer (never sent) also gives the probe back.
            (38 * S, Record(PROBE, Neutral)),
            (38 * S, Admit(PROBE)),
            (38 * S, Admit(defer(11))),
            // None answers: once the last one is overdue a new round starts.
            (49 * S, Admit(PROBE)),
            (49 * S, Admit(PROBE)),
            (49 * S, Admit(PROBE)),
            (49 * S, Admit(defer(11))),
            (50 * S, Record(PROBE, Healthy)),
            (50 * S, Record(PROBE, Healthy)),
            (50 * S, Record(PROBE, Failing)),
        ]);
        let (transitions, b) = run(CONFIG, &steps);
        assert_eq!(
            transitions,
            [(5 * S, "open"), (35 * S, "half_open"), (50 * S, "closed")]
        );
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn reports_how_long_it_blocks_without_changing_state() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Breaker::new(CONFIG);
        assert_eq!(b.blocked_for(t0), None);
        for at in [0, 0, 0, 5] {
            b.record(SEND, Failing, at == 5, t0 + s(at));
        }
        assert_eq!(b.blocked_for(t0 + s(15)), Some(s(20)));
        assert_eq!(b.blocked_for(t0 + s(35)), None);
        assert!(matches!(b.state(), State::Open { .. }));
        assert_eq!(b.admit(t0 + s(35)).0, PROBE);
        // Probes left: not blocked.
        assert_eq!(b.blocked_for(t0 + s(35)), None);
        b.admit(t0 + s(36));
        b.admit(t0 + s(37));
        assert_eq!(b.blocked_for(t0 + s(38)), Some(s(10)));
        assert_eq!(b.blocked_for(t0 + s(48)), None);
    }

    #[test]
    fn a_shared_breaker_probes_only_on_a_claim_and_follows_the_others() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let wait = Duration::from_millis(200);
        let mut b = Breaker::shared(CONFIG, wait);
        for at in [0, 0, 0, 5] {
            b.record(SEND, Failing, at == 5, t0 + s(at));
        }
        assert!(matches!(b.state(), State::Open { .. }));
        assert!(!b.take_wants_probe(), "nobody asked yet");
        // Cooldown over: no claim, no probe; the ask is noted.
        assert_eq!(b.blocked_for(t0 + s(35)), Some(wait));
        assert_eq!(b.admit(t0 + s(35)), (Admission::Defer { wait }, None));
        assert!(b.take_wants_probe());
        assert!(!b.take_wants_probe(), "taken once");
        // Claimed until 40 s: probes go, up to the round's count.
        b.grant_claim(t0 + s(40));
        assert!(b.holds_claim(t0 + s(36)));
        assert_eq!(b.blocked_for(t0 + s(36)), None);
        assert_eq!(b.admit(t0 + s(36)).0, PROBE);
        assert_eq!(b.admit(t0 + s(36)).0, PROBE);
        // The claim lapses: no more probes of this round.
        assert!(!b.holds_claim(t0 + s(41)));
        assert_eq!(b.admit(t0 + s(41)), (Admission::Defer { wait }, None));
        // The round's answers still decide: a failure opens it, ending the claim.
        b.grant_claim(t0 + s(50));
        assert_eq!(b.admit(t0 + s(42)).0, PROBE);
        for _ in 0..3 {
            b.record(PROBE, Failing, false, t0 + s(43));
        }
        assert!(matches!(b.state(), State::Open { .. }));
        assert!(!b.holds_claim(t0 + s(43)));
        // Another replica's verdicts are taken as they come.
        b.adopt_closed();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(t0 + s(44)).0, SEND);
        b.adopt_open(t0 + s(60));
        assert_eq!(b.blocked_for(t0 + s(45)), Some(s(15)));
        // A single process's breaker needs no claim.
        let mut alone = Breaker::new(CONFIG);
        alone.adopt_open(t0 + s(1));
        assert_eq!(alone.admit(t0 + s(2)).0, PROBE);
        assert!(!alone.take_wants_probe());
    }

    #[test]
    fn one_failed_retry_is_enough_when_configured_so() {
        let config = BreakerConfig {
            failure_rate: 1,
            min_calls: 1,
            ..CONFIG
        };
        let t0 = Instant::now();
        let mut b = Breaker::new(config);
        assert_eq!(b.record(SEND, Failing, false, t0), None, "a first attempt");
        assert_eq!(b.record(SEND, Failing, true, t0), Some(Transition::Opened));
    }
}
