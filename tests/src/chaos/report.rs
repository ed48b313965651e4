//! The campaign's result and its summary: the ledger, the POS's view, the
//! faults injected, drain and run time, readiness at the end — and the
//! verdict (`problems`: empty means the books balance and the system came
//! back whole).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::faults::{FaultLog, Injected};
use super::ledger::{Ledger, percentile};
use super::routing::Route;

#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One line saying what was run.
    pub setup: String,
    pub sales: usize,
    pub accepted: usize,
    /// Refused for good (a finding: the sales are valid).
    pub refused: BTreeMap<usize, String>,
    /// Neither accepted nor refused when the campaign ended.
    pub unconfirmed: usize,
    pub pos_retries: BTreeMap<String, u64>,
    pub batch_requests: u64,
    pub single_requests: u64,
    pub ledger: Ledger,
    pub faults: FaultLog,
    /// From the end of the load and faults to quiet; `None`: not quiet in time.
    pub drain: Option<Duration>,
    pub total: Duration,
    /// `/readyz` of each service at the end.
    pub ready_at_end: BTreeMap<String, bool>,
    pub bad_signatures: u64,
    /// Kept service logs, when something is wrong.
    pub logs: Option<PathBuf>,
    /// Deliveries still open at the end, grouped (see `collect`).
    pub in_flight: BTreeMap<String, i64>,
    /// The broker's queues at the end (`rabbitmqctl list_queues`).
    pub queues: String,
}

impl Report {
    /// Why the campaign failed (empty: it passed).
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.ledger.problems();
        if !self.refused.is_empty() {
            out.push(format!("{} sales refused by ingest", self.refused.len()));
        }
        if self.unconfirmed > 0 {
            out.push(format!(
                "{} sales never confirmed to the POS",
                self.unconfirmed
            ));
        }
        if self.drain.is_none() {
            out.push("the pipeline did not drain in time".into());
        }
        let down: Vec<&str> = self
            .ready_at_end
            .iter()
            .filter(|(_, up)| !**up)
            .map(|(k, _)| k.as_str())
            .collect();
        if !down.is_empty() {
            out.push(format!("not ready at the end: {}", down.join(", ")));
        }
        if self.bad_signatures > 0 {
            out.push(format!(
                "{} requests with bad signatures",
                self.bad_signatures
            ));
        }
        if !self.faults.findings.is_empty() {
            out.push(format!(
                "{} findings during the faults",
                self.faults.findings.len()
            ));
        }
        out
    }

    pub fn balanced(&self) -> bool {
        self.problems().is_empty()
    }
}

/// Each recovery step of the faults of `kind` with its slowest time, in the
/// order they happen (a step one fault skipped goes where another had it).
fn slowest_steps(injected: &[Injected], kind: &str) -> Vec<(String, f64)> {
    let mut steps: Vec<(String, f64)> = Vec::new();
    for i in injected.iter().filter(|i| i.kind == kind) {
        let mut after = 0;
        for (step, d) in &i.milestones {
            let secs = d.as_secs_f64();
            after = match steps.iter().position(|(s, _)| s == step) {
                Some(at) => {
                    steps[at].1 = steps[at].1.max(secs);
                    at + 1
                }
                None => {
                    steps.insert(after, (step.clone(), secs));
                    after + 1
                }
            };
        }
    }
    steps
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn delays(values: &[f64]) -> String {
    match (
        percentile(values, 0.5),
        percentile(values, 0.99),
        percentile(values, 1.0),
    ) {
        (Some(p50), Some(p99), Some(max)) => {
            format!("p50 {p50:.2}s  p99 {p99:.2}s  max {max:.2}s")
        }
        _ => "no deliveries".into(),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.ledger;
        writeln!(f, "salesync chaos campaign: {}", self.setup)?;
        writeln!(
            f,
            "  sales sent            {:>7}  ({} batch requests, {} single requests)",
            self.sales, self.batch_requests, self.single_requests
        )?;
        let retries: u64 = self.pos_retries.values().sum();
        writeln!(
            f,
            "  sales accepted        {:>7}  (POS retries with the same payload: {retries}{})",
            self.accepted,
            if self.pos_retries.is_empty() {
                String::new()
            } else {
                format!(
                    " — {}",
                    self.pos_retries
                        .iter()
                        .map(|(k, v)| format!("{v} {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )?;
        if !self.refused.is_empty() || self.unconfirmed > 0 {
            writeln!(
                f,
                "  refused / unconfirmed {:>7} / {}",
                self.refused.len(),
                self.unconfirmed
            )?;
            for (i, why) in self.refused.iter().take(5) {
                writeln!(f, "      sale #{i}: {why}")?;
            }
        }
        writeln!(
            f,
            "  deliveries owed       {:>7}  ({})",
            l.total(|t| t.expected),
            Route::ALL
                .iter()
                .map(|r| format!("{} {}", r.name(), l.routes.get(r).map_or(0, |t| t.expected)))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        writeln!(f, "  delivered             {:>7}", l.total(|t| t.delivered))?;
        writeln!(
            f,
            "  duplicates            {:>7}",
            l.total(|t| t.duplicates)
        )?;
        writeln!(f, "  lost                  {:>7}", l.total(|t| t.lost))?;
        writeln!(f, "  misrouted             {:>7}", l.total(|t| t.misrouted))?;
        writeln!(
            f,
            "  dead-lettered         {:>7}  (deliveries; {} messages in salesync.dead, {} without a reason)",
            l.total(|t| t.dead),
            l.dead_letter_messages,
            l.dead_letter_messages_without_reason
        )?;
        for (reason, n) in &l.dead_reasons {
            writeln!(f, "      {n:>6}  {reason}")?;
        }
        writeln!(
            f,
            "  repeats absorbed      {:>7}  (keys a target accepted more than once: at-least-once retries after a timeout or kill, one effect each)",
            l.total(|t| t.repeats)
        )?;
        writeln!(
            f,
            "  failed requests       {:>7}  (answered with a failure or cut off, then retried)",
            l.total(|t| t.failed_requests)
        )?;
        for (what, examples) in &l.examples {
            writeln!(f, "  {what}, e.g.: {}", examples.join("; "))?;
        }
        let by_kind = self.faults.by_kind();
        writeln!(
            f,
            "  faults injected       {:>7}",
            self.faults.injected.len()
        )?;
        for (kind, n) in &by_kind {
            let recoveries: Vec<f64> = self
                .faults
                .injected
                .iter()
                .filter(|i| &i.kind == kind)
                .filter_map(|i| i.recovered_in.map(|d| d.as_secs_f64()))
                .collect();
            let rec = match percentile(&recoveries, 1.0) {
                Some(max) => format!("  (ready again within {max:.1}s)"),
                None => String::new(),
            };
            writeln!(f, "      {n:>6}  {kind}{rec}")?;
            for (step, max) in slowest_steps(&self.faults.injected, kind) {
                writeln!(f, "              {step:<22} within {max:.1}s")?;
            }
        }
        for finding in &self.faults.findings {
            writeln!(f, "  FINDING: {finding}")?;
        }
        for route in [Route::Healthy, Route::Slow] {
            if let Some(t) = l.routes.get(&route) {
                writeln!(
                    f,
                    "  arrival delay {:<8} {}",
                    route.name(),
                    delays(&t.delays)
                )?;
            }
        }
        writeln!(
            f,
            "  drain time            {:>7}",
            self.drain.map_or("did not drain".into(), secs)
        )?;
        writeln!(f, "  total run time        {:>7}", secs(self.total))?;
        writeln!(
            f,
            "  ready at the end      {}",
            self.ready_at_end
                .iter()
                .map(|(k, up)| format!("{k} {}", if *up { "yes" } else { "NO" }))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if self.bad_signatures > 0 {
            writeln!(f, "  bad signatures        {:>7}", self.bad_signatures)?;
        }
        if !self.in_flight.is_empty() {
            writeln!(f, "  still in flight at the end:")?;
            for (what, n) in &self.in_flight {
                writeln!(f, "      {n:>6}  {what}")?;
            }
        }
        if !self.balanced() && !self.queues.trim().is_empty() {
            writeln!(f, "  queues at the end (ready messages):")?;
            for line in self.queues.lines() {
                writeln!(f, "      {line}")?;
            }
        }
        if let Some(logs) = &self.logs {
            writeln!(f, "  service logs kept in  {}", logs.display())?;
        }
        let problems = self.problems();
        if problems.is_empty() {
            write!(f, "  LEDGER BALANCED: 0 lost, 0 duplicated")
        } else {
            write!(f, "  LEDGER NOT BALANCED: {}", problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::ledger::RouteTally;

    fn report() -> Report {
        let mut ledger = Ledger::default();
        ledger.routes.insert(
            Route::Healthy,
            RouteTally {
                expected: 10,
                delivered: 10,
                delays: vec![0.1, 0.2, 3.0],
                ..RouteTally::default()
            },
        );
        Report {
            setup: "10 sales".into(),
            sales: 10,
            accepted: 10,
            ledger,
            faults: FaultLog {
                injected: vec![
                    Injected {
                        kind: "kill -9 forwarder".into(),
                        at: Duration::from_secs(3),
                        recovered_in: Some(Duration::from_millis(1500)),
                        milestones: Vec::new(),
                    },
                    node_kill(20, &[("new leaders elected", 4.0), ("node rejoined", 30.0)]),
                    node_kill(
                        90,
                        &[
                            ("new leaders elected", 6.5),
                            ("deliveries flowing", 7.0),
                            ("node rejoined", 25.0),
                        ],
                    ),
                ],
                findings: Vec::new(),
            },
            drain: Some(Duration::from_secs(2)),
            total: Duration::from_secs(60),
            ready_at_end: BTreeMap::from([("ingest".to_string(), true)]),
            ..Report::default()
        }
    }

    fn node_kill(at: u64, steps: &[(&str, f64)]) -> Injected {
        Injected {
            kind: "kill -9 rabbitmq node leading the work queues".into(),
            at: Duration::from_secs(at),
            recovered_in: Some(Duration::from_secs(30)),
            milestones: steps
                .iter()
                .map(|(s, d)| ((*s).to_string(), Duration::from_secs_f64(*d)))
                .collect(),
        }
    }

    #[test]
    fn a_clean_run_balances_and_says_so() {
        let r = report();
        assert!(r.balanced(), "{:?}", r.problems());
        let text = r.to_string();
        for line in [
            "sales accepted             10",
            "delivered                  10",
            "lost                        0",
            "duplicates                  0",
            "1  kill -9 forwarder  (ready again within 1.5s)",
            "2  kill -9 rabbitmq node leading the work queues  (ready again within 30.0s)",
            "new leaders elected    within 6.5s\n              deliveries flowing     within 7.0s\n              node rejoined          within 30.0s",
            "arrival delay healthy  p50 0.20s  p99 3.00s  max 3.00s",
            "drain time               2.0s",
            "LEDGER BALANCED",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn every_kind_of_trouble_fails_the_run() {
        type Spoil = Box<dyn Fn(&mut Report)>;
        let cases: Vec<(&str, Spoil)> = vec![
            (
                "lost",
                Box::new(|r| {
                    if let Some(t) = r.ledger.routes.get_mut(&Route::Healthy) {
                        t.lost = 1;
                    }
                }),
            ),
            (
                "refused",
                Box::new(|r| {
                    r.refused.insert(3, "422".into());
                }),
            ),
            ("unconfirmed", Box::new(|r| r.unconfirmed = 2)),
            ("drain", Box::new(|r| r.drain = None)),
            (
                "not ready",
                Box::new(|r| {
                    r.ready_at_end.insert("forwarder".into(), false);
                }),
            ),
            ("signatures", Box::new(|r| r.bad_signatures = 1)),
            (
                "finding",
                Box::new(|r| r.faults.findings.push("crash".into())),
            ),
        ];
        for (name, spoil) in cases {
            let mut r = report();
            spoil(&mut r);
            assert!(!r.balanced(), "{name}");
            assert!(r.to_string().contains("LEDGER NOT BALANCED"), "{name}");
        }
    }
}
