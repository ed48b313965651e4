//! Where the campaign's sales should go: the integrations of the POS tenant
//! and, as a pure function, which of them a given sale meets the rules of —
//! the ledger's expectation, written down independently of condition-filter
//! so a wrong decision there shows up as a lost or misrouted sale.
//!
//! With `sales::mixed` (status cycles 3, first SKU 4, amount factor 7):
//!
//! | route | rules | share |
//! |---|---|---|
//! | healthy | every sale | 1 |
//! | slow | MUG-004, status paid, gross ≥ 7 × 35.10 | 1/84 |
//! | flaky A | status completed | 1/3 |
//! | flaky B | TEA-002 | 1/4 |
//! | partner (tenant B's salesync) | CAKE-003, status paid | 1/12 |

use std::collections::BTreeMap;

use salesync_core::domain::sale::SaleInput;
use salesync_core::integration::Conditions;

use crate::api::IntegrationInput;

/// One integration of the POS tenant, i.e. one downstream system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// Always answers 200 at once: must keep its pace next to `Slow`.
    Healthy,
    /// Takes seconds per request.
    Slow,
    /// Misbehaves in the windows the schedule gives it.
    FlakyA,
    FlakyB,
    /// Tenant B's own salesync (ingest as a target).
    Partner,
}

const MUG: &str = "MUG-004";
const TEA: &str = "TEA-002";
const CAKE: &str = "CAKE-003";
/// Gross of `sales::mixed`'s base sale (35.10) times its largest factor (7).
const SLOW_MIN_GROSS: i64 = 3510 * 7;

impl Route {
    pub const ALL: [Route; 5] = [
        Route::Healthy,
        Route::Slow,
        Route::FlakyA,
        Route::FlakyB,
        Route::Partner,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Route::Healthy => "healthy",
            Route::Slow => "slow",
            Route::FlakyA => "flaky-a",
            Route::FlakyB => "flaky-b",
            Route::Partner => "partner",
        }
    }

    /// The rules, as the tenant configures them (status triggers, conditions).
    fn rules(&self) -> (Vec<String>, Conditions) {
        let skus = |s: &str| vec![s.to_string()];
        match self {
            Route::Healthy => (Vec::new(), Conditions::default()),
            Route::Slow => (
                vec!["paid".into()],
                Conditions {
                    skus_any: skus(MUG),
                    min_gross: Some(SLOW_MIN_GROSS),
                    ..Conditions::default()
                },
            ),
            Route::FlakyA => (vec!["completed".into()], Conditions::default()),
            Route::FlakyB => (
                Vec::new(),
                Conditions {
                    skus_any: skus(TEA),
                    ..Conditions::default()
                },
            ),
            Route::Partner => (
                vec!["paid".into()],
                Conditions {
                    skus_any: skus(CAKE),
                    ..Conditions::default()
                },
            ),
        }
    }

    /// The webhook integration to `url` (every route but `Partner`).
    pub fn webhook_integration(&self, url: &str) -> IntegrationInput {
        let (trigger_statuses, conditions) = self.rules();
        IntegrationInput {
            trigger_statuses,
            conditions,
            ..IntegrationInput::webhook(&format!("chaos {}", self.name()), url)
        }
    }

    /// The salesync integration to tenant B at `base_url` with B's
    /// integration token; polled for status, so status-poller works too.
    pub fn partner_integration(base_url: &str, token: &str) -> IntegrationInput {
        let (trigger_statuses, conditions) = Route::Partner.rules();
        IntegrationInput {
            trigger_statuses,
            conditions,
            poll_status: true,
            status_map: BTreeMap::from([("processed".into(), "fulfilled".into())]),
            final_statuses: vec!["processed".into()],
            ..IntegrationInput::salesync("chaos partner", base_url, token)
        }
    }

    /// Whether `sale`, just created, goes to this route.
    pub fn takes(&self, sale: &SaleInput) -> bool {
        let (triggers, c) = self.rules();
        let status_ok = triggers.is_empty() || triggers.contains(&sale.status);
        let skus_ok =
            c.skus_any.is_empty() || sale.lines.iter().any(|l| c.skus_any.contains(&l.sku));
        let gross_ok = c.min_gross.is_none_or(|min| sale.totals.gross >= min);
        status_ok && skus_ok && gross_ok
    }
}

/// The routes a newly created sale goes to.
pub fn routes_of(sale: &SaleInput) -> Vec<Route> {
    Route::ALL.into_iter().filter(|r| r.takes(sale)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sales::mixed;

    #[test]
    fn shares_match_the_table() {
        let n = 84 * 10;
        let mut count: BTreeMap<Route, usize> = BTreeMap::new();
        for i in 0..n {
            for r in routes_of(&mixed("t", i)) {
                *count.entry(r).or_default() += 1;
            }
        }
        for (route, share) in [
            (Route::Healthy, n),
            (Route::Slow, n / 84),
            (Route::FlakyA, n / 3),
            (Route::FlakyB, n / 4),
            (Route::Partner, n / 12),
        ] {
            assert_eq!(count.get(&route).copied().unwrap_or(0), share, "{route:?}");
        }
    }

    #[test]
    fn single_sales_route_as_their_rules_say() {
        use crate::sales::{sale, scaled};
        for (s, want) in [
            (sale("a", "open", "COF-001"), vec![Route::Healthy]),
            (
                sale("b", "completed", "TEA-002"),
                vec![Route::Healthy, Route::FlakyA, Route::FlakyB],
            ),
            (
                sale("c", "paid", "CAKE-003"),
                vec![Route::Healthy, Route::Partner],
            ),
            (sale("d", "paid", "MUG-004"), vec![Route::Healthy]),
            (
                scaled(sale("e", "paid", "MUG-004"), 7),
                vec![Route::Healthy, Route::Slow],
            ),
        ] {
            assert_eq!(routes_of(&s), want, "{}", s.external_id);
        }
    }

    #[test]
    fn integrations_carry_the_rules() {
        let i = Route::Slow.webhook_integration("http://t/hook");
        assert_eq!(i.trigger_statuses, ["paid"]);
        assert_eq!(i.conditions.skus_any, [MUG]);
        assert_eq!(i.conditions.min_gross, Some(SLOW_MIN_GROSS));
        let p = Route::partner_integration("http://b", "sst_x");
        assert!(p.poll_status);
        assert_eq!(p.conditions.skus_any, [CAKE]);
    }
}
