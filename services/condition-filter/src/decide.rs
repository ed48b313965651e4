//! The forwarding rules, as one pure function: does this sale event go to this
//! integration, and if not, why not — in words a tenant understands, because
//! the reason is shown next to the sale (`GET /v1/sales/{id}` → `decisions`).
//!
//! Order of the checks (first failing one is the reason):
//! 1. the integration is enabled;
//! 2. for automatic triggers (created / status changed): the integration is in
//!    automatic mode and the event's status is one of its trigger statuses
//!    (none configured = every status). A manual send skips this step: a
//!    person asked for exactly this integration;
//! 3. the conditions (`integration::Conditions`), which apply to every trigger.

use salesync_core::domain::SaleInput;
use salesync_core::integration::{Conditions, ForwardingMode, IntegrationConfig};
use salesync_core::messages::{SaleEvent, Trigger};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Forward,
    /// Not forwarded, with the reason recorded for the tenant.
    Skip(String),
}

/// Decides one (event, integration) pair. Which integrations an event is
/// checked against at all is `integrations_considered`'s business.
pub fn decide(event: &SaleEvent, integration: &IntegrationConfig) -> Decision {
    if !integration.enabled {
        return skip("integration disabled");
    }
    if !matches!(event.trigger, Trigger::Manual { .. }) {
        if integration.mode == ForwardingMode::Manual {
            return skip("manual mode: sent only when requested");
        }
        let triggers = &integration.trigger_statuses;
        if !triggers.is_empty() && !triggers.contains(&event.status) {
            return Decision::Skip(format!(
                "status '{}' does not trigger forwarding (triggers: {})",
                event.status,
                triggers.join(", ")
            ));
        }
    }
    match unmet_condition(&event.sale, &integration.conditions) {
        Some(reason) => Decision::Skip(reason),
        None => Decision::Forward,
    }
}

/// The integrations an event is decided against: all of the tenant's for an
/// automatic trigger, only the requested one for a manual send. A manual send
/// to an integration that no longer exists cannot ever succeed: `Err` with the
/// dead-letter reason.
pub fn integrations_considered<'a>(
    trigger: &Trigger,
    tenant_integrations: &[&'a IntegrationConfig],
) -> Result<Vec<&'a IntegrationConfig>, String> {
    match trigger {
        Trigger::Created | Trigger::StatusChanged => Ok(tenant_integrations.to_vec()),
        Trigger::Manual { integration_id } => tenant_integrations
            .iter()
            .find(|i| i.id == *integration_id)
            .map(|i| vec![*i])
            // "not found:" first so the dead-letter metric label (text before
            // the first ':') stays one value, not one per integration id.
            .ok_or_else(|| format!("integration not found: {integration_id} (deleted?)")),
    }
}

fn skip(reason: &str) -> Decision {
    Decision::Skip(reason.to_string())
}

/// The first condition the sale does not meet, as the reason to record.
fn unmet_condition(sale: &SaleInput, c: &Conditions) -> Option<String> {
    if !c.skus_any.is_empty() && !sale.lines.iter().any(|l| c.skus_any.contains(&l.sku)) {
        return Some(format!("no line has a SKU in {}", list(&c.skus_any)));
    }
    if !c.categories_any.is_empty()
        && !sale
            .lines
            .iter()
            .filter_map(|l| l.category.as_ref())
            .any(|cat| c.categories_any.contains(cat))
    {
        return Some(format!(
            "no line is in a category in {}",
            list(&c.categories_any)
        ));
    }
    if !c.products_any.is_empty()
        && !sale
            .lines
            .iter()
            .filter_map(|l| l.product_ref.as_ref())
            .any(|p| c.products_any.contains(p))
    {
        return Some(format!(
            "no line names a product in {}",
            list(&c.products_any)
        ));
    }
    if let Some(line) = sale.lines.iter().find(|l| c.skus_none.contains(&l.sku)) {
        return Some(format!("contains excluded SKU {}", line.sku));
    }
    if !c.locations.is_empty() {
        match &sale.location_id {
            Some(loc) if c.locations.contains(loc) => {}
            Some(loc) => {
                return Some(format!("location '{loc}' not in {}", list(&c.locations)));
            }
            None => {
                return Some(format!(
                    "sale has no location (required: one of {})",
                    list(&c.locations)
                ));
            }
        }
    }
    if let Some(min) = c.min_gross
        && sale.totals.gross < min
    {
        return Some(format!("gross {} below minimum {min}", sale.totals.gross));
    }
    let currency = sale.currency.code();
    if !c.currencies.is_empty() && !c.currencies.iter().any(|x| x == currency) {
        return Some(format!(
            "currency {currency} not in {}",
            list(&c.currencies)
        ));
    }
    c.rules.as_ref().and_then(|rule| rule.check(sale).err())
}

/// `[A, B]` — how a configured list reads in a reason.
fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use salesync_core::domain::ids::{IntegrationId, TenantId};
    use salesync_core::domain::{Currency, sample_sale};
    use salesync_core::integration::{Mapping, TargetKind};
    use std::collections::BTreeMap;

    fn integration() -> IntegrationConfig {
        IntegrationConfig {
            id: IntegrationId::new(),
            tenant_id: TenantId::new(),
            name: "books".into(),
            target_kind: TargetKind::Webhook,
            target_url: "https://books.example/hook".into(),
            enabled: true,
            mode: ForwardingMode::Automatic,
            trigger_statuses: vec![],
            conditions: Conditions::default(),
            mapping: Mapping::default(),
            send_opt_in: false,
            poll_status: false,
            status_url: None,
            status_map: BTreeMap::new(),
            final_statuses: vec![],
        }
    }

    /// The sample sale: lines COF-001 (coffee) and BRD-002 (bakery), location
    /// store-amsterdam, gross 3510 EUR, status completed.
    fn event(trigger: Trigger, status: &str) -> SaleEvent {
        SaleEvent {
            trigger,
            status: status.into(),
            accepted_at: Utc::now(),
            sale: sample_sale("pos-1"),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn forward() -> Option<&'static str> {
        None
    }

    #[test]
    fn decide_table() {
        let manual = Trigger::Manual {
            integration_id: IntegrationId::new(),
        };
        type Setup = fn(&mut IntegrationConfig, &mut SaleEvent);
        // (case, trigger, status, setup, expected skip reason or None = forward)
        let cases: Vec<(&str, Trigger, &str, Setup, Option<&str>)> = vec![
            (
                "defaults forward",
                Trigger::Created,
                "completed",
                |_, _| {},
                forward(),
            ),
            (
                "status change forwards",
                Trigger::StatusChanged,
                "paid",
                |_, _| {},
                forward(),
            ),
            (
                "disabled",
                Trigger::Created,
                "completed",
                |i, _| i.enabled = false,
                Some("integration disabled"),
            ),
            (
                "disabled also blocks a manual send",
                manual.clone(),
                "completed",
                |i, _| i.enabled = false,
                Some("integration disabled"),
            ),
            (
                "manual mode ignores automatic triggers",
                Trigger::Created,
                "completed",
                |i, _| i.mode = ForwardingMode::Manual,
                Some("manual mode: sent only when requested"),
            ),
            (
                "manual mode ignores status changes",
                Trigger::StatusChanged,
                "paid",
                |i, _| i.mode = ForwardingMode::Manual,
                Some("manual mode: sent only when requested"),
            ),
            (
                "manual send in manual mode",
                manual.clone(),
                "completed",
                |i, _| i.mode = ForwardingMode::Manual,
                forward(),
            ),
            (
                "status not a trigger",
                Trigger::Created,
                "draft",
                |i, _| i.trigger_statuses = strings(&["completed", "paid"]),
                Some("status 'draft' does not trigger forwarding (triggers: completed, paid)"),
            ),
            (
                "status is a trigger",
                Trigger::StatusChanged,
                "paid",
                |i, _| i.trigger_statuses = strings(&["completed", "paid"]),
                forward(),
            ),
            (
                "manual send ignores trigger statuses",
                manual.clone(),
                "draft",
                |i, _| i.trigger_statuses = strings(&["paid"]),
                forward(),
            ),
            (
                "skus_any unmet",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.skus_any = strings(&["A", "B"]),
                Some("no line has a SKU in [A, B]"),
            ),
            (
                "skus_any met by one line",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.skus_any = strings(&["X", "BRD-002"]),
                forward(),
            ),
            (
                "manual send still needs conditions",
                manual.clone(),
                "completed",
                |i, _| i.conditions.skus_any = strings(&["A"]),
                Some("no line has a SKU in [A]"),
            ),
            (
                "categories_any unmet",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.categories_any = strings(&["tea", "wine"]),
                Some("no line is in a category in [tea, wine]"),
            ),
            (
                "categories_any unmet when lines have no category",
                Trigger::Created,
                "completed",
                |i, e| {
                    i.conditions.categories_any = strings(&["coffee"]);
                    for l in &mut e.sale.lines {
                        l.category = None;
                    }
                },
                Some("no line is in a category in [coffee]"),
            ),
            (
                "products_any unmet",
                Trigger::Created,
                "completed",
                |i, e| {
                    i.conditions.products_any = strings(&["fixed-3y"]);
                    e.sale.lines[0].product_ref = Some("solar".into());
                },
                Some("no line names a product in [fixed-3y]"),
            ),
            (
                "products_any met",
                Trigger::Created,
                "completed",
                |i, e| {
                    i.conditions.products_any = strings(&["fixed-3y"]);
                    let last = e.sale.lines.len() - 1;
                    e.sale.lines[last].product_ref = Some("fixed-3y".into());
                },
                forward(),
            ),
            (
                "rules unmet, the failing rule named",
                Trigger::Created,
                "completed",
                |i, e| {
                    i.conditions.rules = Some(
                        serde_json::from_value(serde_json::json!({"all": [
                            {"currency": {"equals": "EUR"}},
                            {"flow": {"in": ["door"]}},
                        ]}))
                        .expect("rules"),
                    );
                    e.sale.flow = Some("web".into());
                },
                Some("rules.all[1]: flow in [door] does not hold"),
            ),
            (
                "rules met",
                Trigger::Created,
                "completed",
                |i, e| {
                    i.conditions.rules = Some(
                        serde_json::from_value(
                            serde_json::json!({"not": {"flow": {"in": ["door"]}}}),
                        )
                        .expect("rules"),
                    );
                    e.sale.flow = Some("web".into());
                },
                forward(),
            ),
            (
                "categories_any met",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.categories_any = strings(&["bakery"]),
                forward(),
            ),
            (
                "excluded SKU present",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.skus_none = strings(&["GIFT", "BRD-002"]),
                Some("contains excluded SKU BRD-002"),
            ),
            (
                "excluded SKU absent",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.skus_none = strings(&["GIFT"]),
                forward(),
            ),
            (
                "location not allowed",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.locations = strings(&["store-utrecht", "web"]),
                Some("location 'store-amsterdam' not in [store-utrecht, web]"),
            ),
            (
                "location missing",
                Trigger::Created,
                "completed",
                |i, e| {
                    i.conditions.locations = strings(&["web"]);
                    e.sale.location_id = None;
                },
                Some("sale has no location (required: one of [web])"),
            ),
            (
                "location allowed",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.locations = strings(&["web", "store-amsterdam"]),
                forward(),
            ),
            (
                "gross below minimum",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.min_gross = Some(5000),
                Some("gross 3510 below minimum 5000"),
            ),
            (
                "gross exactly the minimum",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.min_gross = Some(3510),
                forward(),
            ),
            (
                "currency not allowed",
                Trigger::Created,
                "completed",
                |i, e| {
                    i.conditions.currencies = strings(&["EUR"]);
                    e.sale.currency = Currency::USD;
                },
                Some("currency USD not in [EUR]"),
            ),
            (
                "currency allowed",
                Trigger::Created,
                "completed",
                |i, _| i.conditions.currencies = strings(&["USD", "EUR"]),
                forward(),
            ),
            (
                "enabled is checked before mode",
                Trigger::Created,
                "completed",
                |i, _| {
                    i.enabled = false;
                    i.mode = ForwardingMode::Manual;
                },
                Some("integration disabled"),
            ),
            (
                "status is checked before conditions",
                Trigger::Created,
                "draft",
                |i, _| {
                    i.trigger_statuses = strings(&["paid"]);
                    i.conditions.currencies = strings(&["USD"]);
                },
                Some("status 'draft' does not trigger forwarding (triggers: paid)"),
            ),
            (
                "first unmet condition is the reason",
                Trigger::Created,
                "completed",
                |i, _| {
                    i.conditions.skus_none = strings(&["COF-001"]);
                    i.conditions.currencies = strings(&["USD"]);
                },
                Some("contains excluded SKU COF-001"),
            ),
        ];
        for (case, trigger, status, setup, expected) in cases {
            let mut i = integration();
            let mut e = event(trigger, status);
            setup(&mut i, &mut e);
            let want = match expected {
                None => Decision::Forward,
                Some(r) => Decision::Skip(r.to_string()),
            };
            assert_eq!(decide(&e, &i), want, "{case}");
        }
    }

    #[test]
    fn considered_integrations() {
        let a = integration();
        let b = integration();
        let all = [&a, &b];
        let ids = |r: Result<Vec<&IntegrationConfig>, String>| {
            r.map(|v| v.iter().map(|i| i.id).collect::<Vec<_>>())
        };
        assert_eq!(
            ids(integrations_considered(&Trigger::Created, &all)),
            Ok(vec![a.id, b.id])
        );
        assert_eq!(
            ids(integrations_considered(&Trigger::StatusChanged, &all)),
            Ok(vec![a.id, b.id])
        );
        assert_eq!(
            ids(integrations_considered(&Trigger::Created, &[])),
            Ok(vec![])
        );
        let manual_b = Trigger::Manual {
            integration_id: b.id,
        };
        assert_eq!(
            ids(integrations_considered(&manual_b, &all)),
            Ok(vec![b.id])
        );
        let gone = IntegrationId::new();
        assert_eq!(
            ids(integrations_considered(
                &Trigger::Manual {
                    integration_id: gone
                },
                &all
            )),
            Err(format!("integration not found: {gone} (deleted?)"))
        );
    }
}
