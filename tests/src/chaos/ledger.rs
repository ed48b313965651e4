//! The ledger check, as a pure function over what the campaign collected:
//! the sales the POS got accepted (and where each should go), what each
//! target booked, the dead deliveries and dead-letter messages. It answers
//! the campaign's one question — did every accepted sale reach every target
//! it should, exactly once?
//!
//! An *effect* is a target booking a sale: a webhook target answering 2xx,
//! or tenant B's ingest storing the forwarded sale. Effects are counted by
//! idempotency key, the way a receiver honouring `Idempotency-Key` books
//! them: a key the target accepted twice (a retry after a timeout, or a
//! redelivery after a `kill -9` between the answer and the commit — what
//! at-least-once means) is one effect, reported as a *repeat*. A sale
//! booked under two different keys at one target is a *duplicate*: no
//! receiver could tell those apart. A sale that should have arrived and did
//! not, and is not dead-lettered either, is *lost*.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::routing::Route;

/// A sale the POS got a 2xx for.
#[derive(Clone, Debug)]
pub struct Expected {
    pub sale_id: String,
    pub routes: Vec<Route>,
    pub accepted_at: DateTime<Utc>,
}

/// One request a target received (or one row tenant B stored).
#[derive(Clone, Debug)]
pub struct Effect {
    pub route: Route,
    /// The source sale it carries.
    pub sale_id: String,
    pub key: String,
    /// The status the caller received; 0 = none.
    pub answered: u16,
    pub at: DateTime<Utc>,
}

impl Effect {
    fn booked(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// A delivery the forwarder gave up on.
#[derive(Clone, Debug)]
pub struct Dead {
    pub route: Option<Route>,
    pub sale_id: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub expected: Vec<Expected>,
    /// Every sale of the POS tenant in the database, with its routes (also
    /// those the POS never got an answer for).
    pub in_database: BTreeMap<String, Vec<Route>>,
    pub effects: Vec<Effect>,
    pub dead: Vec<Dead>,
    /// `x-dead-reason` of each message in `salesync.dead`.
    pub dead_letter_messages: Vec<Option<String>>,
}

/// The tally of one route.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteTally {
    pub expected: usize,
    /// Booked at least once.
    pub delivered: usize,
    /// Extra keys booked for a sale that already had one.
    pub duplicates: usize,
    /// Not booked, not dead.
    pub lost: usize,
    /// Not booked, dead-lettered (with or without a reason).
    pub dead: usize,
    /// Booked though its rules say the sale does not go here.
    pub misrouted: usize,
    /// Keys booked more than once (absorbed by the idempotency key).
    pub repeats: usize,
    /// Requests that did not book anything (failures the target answered with).
    pub failed_requests: usize,
    /// Seconds from acceptance to the first booking, per delivered sale.
    pub delays: Vec<f64>,
}

#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub routes: BTreeMap<Route, RouteTally>,
    /// Accepted (2xx with an id) but not in the database.
    pub accepted_not_stored: usize,
    /// One key carrying two different sales.
    pub key_conflicts: usize,
    pub dead_reasons: BTreeMap<String, usize>,
    pub dead_without_reason: usize,
    pub dead_letter_messages: usize,
    pub dead_letter_messages_without_reason: usize,
    /// A few (route, sale) pairs per problem, to start an investigation with.
    pub examples: BTreeMap<&'static str, Vec<String>>,
}

const EXAMPLES: usize = 10;

impl Ledger {
    pub fn total(&self, f: impl Fn(&RouteTally) -> usize) -> usize {
        self.routes.values().map(f).sum()
    }

    /// Why the ledger does not balance (empty: it does).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |n: usize, what: &str| {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        };
        check(self.total(|t| t.lost), "lost");
        check(self.total(|t| t.duplicates), "duplicated");
        check(self.total(|t| t.misrouted), "misrouted");
        check(self.accepted_not_stored, "accepted but not stored");
        check(self.key_conflicts, "idempotency keys used for two sales");
        check(self.dead_without_reason, "dead deliveries without a reason");
        check(
            self.dead_letter_messages_without_reason,
            "dead-letter messages without a reason",
        );
        out
    }

    fn example(&mut self, what: &'static str, route: Route, sale: &str) {
        let list = self.examples.entry(what).or_default();
        if list.len() < EXAMPLES {
            list.push(format!("{} {sale}", route.name()));
        }
    }
}

/// Per idempotency key of one sale at one target: how often it was booked,
/// and when first.
type Bookings<'a> = BTreeMap<&'a str, (usize, DateTime<Utc>)>;

/// Balances the books.
pub fn reconcile(inputs: &Inputs) -> Ledger {
    let mut ledger = Ledger::default();
    for route in Route::ALL {
        ledger.routes.insert(route, RouteTally::default());
    }

    let mut booked: BTreeMap<Route, BTreeMap<&str, Bookings>> = BTreeMap::new();
    let mut sale_of_key: BTreeMap<(Route, &str), &str> = BTreeMap::new();
    for e in &inputs.effects {
        if let Some(prev) = sale_of_key.insert((e.route, &e.key), &e.sale_id)
            && prev != e.sale_id
        {
            ledger.key_conflicts += 1;
        }
        if !e.booked() {
            if let Some(t) = ledger.routes.get_mut(&e.route) {
                t.failed_requests += 1;
            }
            continue;
        }
        let slot = booked
            .entry(e.route)
            .or_default()
            .entry(&e.sale_id)
            .or_default()
            .entry(&e.key)
            .or_insert((0, e.at));
        slot.0 += 1;
        slot.1 = slot.1.min(e.at);
    }

    let dead: BTreeSet<(Route, &str)> = inputs
        .dead
        .iter()
        .filter_map(|d| d.route.map(|r| (r, d.sale_id.as_str())))
        .collect();
    for d in &inputs.dead {
        match d.reason.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => {
                *ledger.dead_reasons.entry(reason_class(r)).or_default() += 1;
            }
            _ => ledger.dead_without_reason += 1,
        }
    }

    for x in &inputs.expected {
        if !inputs.in_database.contains_key(&x.sale_id) {
            ledger.accepted_not_stored += 1;
        }
        for route in &x.routes {
            let keys = booked.get(route).and_then(|m| m.get(x.sale_id.as_str()));
            let (delivered, duplicates, first) = match keys {
                Some(keys) if !keys.is_empty() => {
                    let first = keys.values().map(|(_, at)| *at).min();
                    (true, keys.len() - 1, first)
                }
                _ => (false, 0, None),
            };
            let is_dead = dead.contains(&(*route, x.sale_id.as_str()));
            let tally = ledger.routes.entry(*route).or_default();
            tally.expected += 1;
            if delivered {
                tally.delivered += 1;
                tally.duplicates += duplicates;
                if let Some(at) = first {
                    let secs = (at - x.accepted_at).num_milliseconds().max(0) as f64 / 1000.0;
                    tally.delays.push(secs);
                }
                if duplicates > 0 {
                    ledger.example("duplicated", *route, &x.sale_id);
                }
            } else if is_dead {
                tally.dead += 1;
            } else {
                tally.lost += 1;
                ledger.example("lost", *route, &x.sale_id);
            }
        }
    }

    for (route, sales) in &booked {
        for (sale, keys) in sales {
            let should = inputs
                .in_database
                .get(*sale)
                .is_some_and(|routes| routes.contains(route));
            let tally = ledger.routes.entry(*route).or_default();
            tally.repeats += keys.values().filter(|(n, _)| *n > 1).count();
            if !should {
                tally.misrouted += 1;
                ledger.example("misrouted", *route, sale);
            }
        }
    }

    ledger.dead_letter_messages = inputs.dead_letter_messages.len();
    ledger.dead_letter_messages_without_reason = inputs
        .dead_letter_messages
        .iter()
        .filter(|r| r.as_deref().is_none_or(|r| r.trim().is_empty()))
        .count();
    ledger
}

/// The start of a reason (up to the first ':' or digit run of a URL…), so
/// thousands of "target answered 500 …" group into one line.
pub fn reason_class(reason: &str) -> String {
    let head = reason.split(':').next().unwrap_or(reason).trim();
    head.chars().take(80).collect()
}

/// The `q`-quantile (0..=1) of `values` by nearest rank; `None` if empty.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .unwrap_or_default()
    }

    fn expected(sale: &str, routes: &[Route]) -> Expected {
        Expected {
            sale_id: sale.into(),
            routes: routes.to_vec(),
            accepted_at: at(0),
        }
    }

    fn effect(route: Route, sale: &str, key: &str, answered: u16, secs: i64) -> Effect {
        Effect {
            route,
            sale_id: sale.into(),
            key: key.into(),
            answered,
            at: at(secs),
        }
    }

    fn inputs(expected: Vec<Expected>, effects: Vec<Effect>, dead: Vec<Dead>) -> Inputs {
        let in_database = expected
            .iter()
            .map(|x| (x.sale_id.clone(), x.routes.clone()))
            .collect();
        Inputs {
            expected,
            in_database,
            effects,
            dead,
            dead_letter_messages: Vec::new(),
        }
    }

    use Route::{FlakyA, Healthy};

    #[test]
    fn tallies_per_case() {
        struct Case {
            name: &'static str,
            effects: Vec<Effect>,
            dead: Vec<Dead>,
            // delivered, duplicates, lost, dead, misrouted, repeats, failed
            want: (usize, usize, usize, usize, usize, usize, usize),
            balanced: bool,
        }
        let dead = |reason: Option<&str>| Dead {
            route: Some(FlakyA),
            sale_id: "s1".into(),
            reason: reason.map(str::to_string),
        };
        let cases = vec![
            Case {
                name: "booked once",
                effects: vec![effect(FlakyA, "s1", "k1", 200, 1)],
                dead: vec![],
                want: (1, 0, 0, 0, 0, 0, 0),
                balanced: true,
            },
            Case {
                name: "failures, then booked",
                effects: vec![
                    effect(FlakyA, "s1", "k1", 500, 1),
                    effect(FlakyA, "s1", "k1", 0, 2),
                    effect(FlakyA, "s1", "k1", 200, 3),
                ],
                dead: vec![],
                want: (1, 0, 0, 0, 0, 0, 2),
                balanced: true,
            },
            Case {
                name: "same key booked twice is a repeat, not a duplicate",
                effects: vec![
                    effect(FlakyA, "s1", "k1", 200, 1),
                    effect(FlakyA, "s1", "k1", 200, 2),
                ],
                dead: vec![],
                want: (1, 0, 0, 0, 0, 1, 0),
                balanced: true,
            },
            Case {
                name: "two keys for one sale is a duplicate",
                effects: vec![
                    effect(FlakyA, "s1", "k1", 200, 1),
                    effect(FlakyA, "s1", "k2", 201, 2),
                ],
                dead: vec![],
                want: (1, 1, 0, 0, 0, 0, 0),
                balanced: false,
            },
            Case {
                name: "never booked is lost",
                effects: vec![effect(FlakyA, "s1", "k1", 0, 1)],
                dead: vec![],
                want: (0, 0, 1, 0, 0, 0, 1),
                balanced: false,
            },
            Case {
                name: "dead with a reason is accounted for",
                effects: vec![effect(FlakyA, "s1", "k1", 500, 1)],
                dead: vec![dead(Some("attempts exhausted: target answered 500"))],
                want: (0, 0, 0, 1, 0, 0, 1),
                balanced: true,
            },
            Case {
                name: "dead without a reason is not",
                effects: vec![],
                dead: vec![dead(Some("  "))],
                want: (0, 0, 0, 1, 0, 0, 0),
                balanced: false,
            },
        ];
        for c in cases {
            let mut effects = c.effects;
            effects.push(effect(Healthy, "s1", "h1", 200, 1));
            let l = reconcile(&inputs(
                vec![expected("s1", &[Healthy, FlakyA])],
                effects,
                c.dead,
            ));
            let t = &l.routes[&FlakyA];
            assert_eq!(
                (
                    t.delivered,
                    t.duplicates,
                    t.lost,
                    t.dead,
                    t.misrouted,
                    t.repeats,
                    t.failed_requests
                ),
                c.want,
                "{}",
                c.name
            );
            assert_eq!(t.expected, 1, "{}", c.name);
            assert_eq!(l.routes[&Healthy].delivered, 1, "{}", c.name);
            assert_eq!(
                l.problems().is_empty(),
                c.balanced,
                "{}: {:?}",
                c.name,
                l.problems()
            );
        }
    }

    #[test]
    fn bookings_against_the_rules_are_misrouted() {
        let l = reconcile(&inputs(
            vec![expected("s1", &[Healthy])],
            vec![
                effect(Healthy, "s1", "h1", 200, 1),
                effect(FlakyA, "s1", "a1", 200, 1),
                effect(FlakyA, "stranger", "a2", 200, 1),
            ],
            vec![],
        ));
        assert_eq!(l.routes[&FlakyA].misrouted, 2);
        assert_eq!(l.routes[&FlakyA].expected, 0);
        assert!(!l.problems().is_empty());
    }

    #[test]
    fn unconfirmed_sales_may_arrive_but_are_not_owed() {
        // In the database (a POST whose answer was lost), never accepted.
        let mut i = inputs(vec![], vec![effect(Healthy, "s9", "h9", 200, 1)], vec![]);
        i.in_database.insert("s9".into(), vec![Healthy]);
        let l = reconcile(&i);
        assert!(l.problems().is_empty(), "{:?}", l.problems());
        assert_eq!(l.routes[&Healthy].expected, 0);
    }

    #[test]
    fn accepted_sales_missing_from_the_database_and_key_conflicts_fail() {
        let mut i = inputs(
            vec![expected("s1", &[Healthy])],
            vec![
                effect(Healthy, "s1", "k", 200, 1),
                effect(Healthy, "s2", "k", 200, 1),
            ],
            vec![],
        );
        i.in_database.clear();
        i.in_database.insert("s2".into(), vec![Healthy]);
        let l = reconcile(&i);
        assert_eq!(l.accepted_not_stored, 1);
        assert_eq!(l.key_conflicts, 1);
    }

    #[test]
    fn delays_run_from_acceptance_to_the_first_booking() {
        let l = reconcile(&inputs(
            vec![expected("s1", &[Healthy])],
            vec![
                effect(Healthy, "s1", "h1", 500, 1),
                effect(Healthy, "s1", "h1", 200, 4),
                effect(Healthy, "s1", "h1", 200, 9),
            ],
            vec![],
        ));
        assert_eq!(l.routes[&Healthy].delays, [4.0]);
    }

    #[test]
    fn dead_letter_messages_need_a_reason() {
        let mut i = inputs(vec![], vec![], vec![]);
        i.dead_letter_messages = vec![Some("poison: undecodable".into()), None, Some("".into())];
        let l = reconcile(&i);
        assert_eq!(l.dead_letter_messages, 3);
        assert_eq!(l.dead_letter_messages_without_reason, 2);
        assert!(!l.problems().is_empty());
    }

    #[test]
    fn reasons_group_by_their_head() {
        for (reason, class) in [
            (
                "target answered 500 Internal Server Error",
                "target answered 500 Internal Server Error",
            ),
            (
                "attempts exhausted: target answered 500",
                "attempts exhausted",
            ),
            ("integration not found: 0190", "integration not found"),
        ] {
            assert_eq!(reason_class(reason), class);
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        for (q, want) in [(0.5, 50.0), (0.99, 99.0), (1.0, 100.0), (0.0, 1.0)] {
            assert_eq!(percentile(&v, q), Some(want), "q {q}");
        }
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
