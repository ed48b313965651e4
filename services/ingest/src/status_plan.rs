//! What a batch of `StatusUpdate`s (statuses carried back from targets) does
//! to the source sales — decided without I/O, so every rule is a table test.
//!
//! Each update becomes one status-history row keyed
//! `integration:<integration_id>:<target_status>`; a key already recorded (a
//! redelivery, or the same message twice in the batch) changes nothing. A
//! mapped status that differs from the sale's current one is applied and
//! announced to the tenant's webhook; an unmapped one is only recorded with a
//! note: the poller's reason when the message carries one, else a generic one. Updates to a sale are applied in message order, so two updates of
//! one sale in one batch chain (`a → b → c`) as they would one by one.
//! Nothing here re-triggers forwarding: a status that came back from a target
//! must not be sent out again (that would ping-pong between tenants).

use std::collections::{BTreeMap, HashMap, HashSet};

use salesync_core::domain::{IntegrationId, SaleId, TenantId};
use salesync_core::integration::unmapped_note;
use salesync_core::messages::StatusUpdate;

use crate::events::StatusNotice;
use salesync_core::api::field_checks::is_valid_status;

/// A sale as locked for the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct SaleState {
    pub tenant_id: TenantId,
    pub external_id: String,
    pub status: String,
}

/// One decoded message: the envelope's tenant and sale, and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub tenant_id: TenantId,
    pub sale_id: SaleId,
    pub update: StatusUpdate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub sale_id: SaleId,
    pub status: String,
    pub integration_id: IntegrationId,
    pub target_status: String,
    pub dedupe_key: String,
    pub note: Option<String>,
}

/// A status change to apply and announce.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// Position of the message in the batch (its span continues the trace).
    pub item: usize,
    pub tenant_id: TenantId,
    /// Identifies the history row (with `notice.sale_id`) whose id keys the webhook delivery.
    pub dedupe_key: String,
    pub notice: StatusNotice,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The sale's status changed.
    Applied,
    /// Recorded in the history only (unmapped, or already the current status).
    Recorded,
    /// Seen before: nothing to do.
    Duplicate,
    /// Poison: dead-letter with this reason.
    Dead(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// One per input item, in order.
    pub verdicts: Vec<Verdict>,
    pub history: Vec<HistoryRow>,
    pub applied: Vec<Applied>,
    /// The final status of every sale that changed.
    pub new_status: BTreeMap<SaleId, String>,
}

pub fn dedupe_key(integration_id: IntegrationId, target_status: &str) -> String {
    format!("integration:{integration_id}:{target_status}")
}

/// Plans a batch. `items` holds each decoded message or the reason it could
/// not be decoded; `existing` the `(sale, dedupe_key)` pairs already recorded.
pub fn plan(
    items: &[Result<Incoming, String>],
    sales: &HashMap<SaleId, SaleState>,
    existing: &HashSet<(SaleId, String)>,
) -> Plan {
    let mut plan = Plan::default();
    let mut current: HashMap<SaleId, String> = HashMap::new();
    let mut seen: HashSet<(SaleId, String)> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let verdict = match item {
            Err(reason) => Verdict::Dead(reason.clone()),
            Ok(incoming) => decide(
                i,
                incoming,
                sales,
                existing,
                &mut seen,
                &mut current,
                &mut plan,
            ),
        };
        plan.verdicts.push(verdict);
    }
    for (sale_id, status) in current {
        if sales.get(&sale_id).is_some_and(|s| s.status != status) {
            plan.new_status.insert(sale_id, status);
        }
    }
    plan
}

/// Longest target status kept (the status-poller refuses longer ones too).
const MAX_TARGET_STATUS_BYTES: usize = 200;
/// Longest reason for an unmapped status kept as a note (the poller's are
/// a sentence with a clipped status in it).
const MAX_REASON_BYTES: usize = 1000;

fn decide(
    item: usize,
    incoming: &Incoming,
    sales: &HashMap<SaleId, SaleState>,
    existing: &HashSet<(SaleId, String)>,
    seen: &mut HashSet<(SaleId, String)>,
    current: &mut HashMap<SaleId, String>,
    plan: &mut Plan,
) -> Verdict {
    let Some(sale) = sales.get(&incoming.sale_id) else {
        return Verdict::Dead(format!(
            "unknown_sale: sale {} does not exist",
            incoming.sale_id
        ));
    };
    if sale.tenant_id != incoming.tenant_id {
        return Verdict::Dead(format!(
            "tenant_mismatch: sale {} does not belong to tenant {}",
            incoming.sale_id, incoming.tenant_id
        ));
    }
    let u = &incoming.update;
    // A target's status goes into a text column and a unique key: one that
    // PostgreSQL cannot store (NUL) or index (huge) would fail the batch forever.
    if u.target_status.is_empty()
        || u.target_status.len() > MAX_TARGET_STATUS_BYTES
        || u.target_status.chars().any(char::is_control)
    {
        return Verdict::Dead(format!(
            "invalid_status: target status of {} bytes is empty, too long or has control characters",
            u.target_status.len()
        ));
    }
    if let Some(mapped) = &u.mapped_status
        && !is_valid_status(mapped)
    {
        return Verdict::Dead(format!(
            "invalid_status: mapped status '{mapped}' is not a valid status"
        ));
    }
    // The reason becomes the history note (a text column): same care.
    if let Some(reason) = &u.unmapped_reason
        && (reason.is_empty()
            || reason.len() > MAX_REASON_BYTES
            || reason.chars().any(char::is_control))
    {
        return Verdict::Dead(format!(
            "invalid_reason: unmapped reason of {} bytes is empty, too long or has control characters",
            reason.len()
        ));
    }
    let key = dedupe_key(u.integration_id, &u.target_status);
    let pair = (incoming.sale_id, key.clone());
    if existing.contains(&pair) || !seen.insert(pair) {
        return Verdict::Duplicate;
    }
    let now = current
        .entry(incoming.sale_id)
        .or_insert_with(|| sale.status.clone());
    let (status, note, verdict) = match &u.mapped_status {
        // The poller's own words when it gave them (older messages did not).
        None => (
            now.clone(),
            Some(
                u.unmapped_reason
                    .clone()
                    .unwrap_or_else(|| unmapped_note(&u.target_status)),
            ),
            Verdict::Recorded,
        ),
        Some(mapped) if mapped == now => (mapped.clone(), None, Verdict::Recorded),
        Some(mapped) => {
            plan.applied.push(Applied {
                item,
                tenant_id: incoming.tenant_id,
                dedupe_key: key.clone(),
                notice: StatusNotice {
                    sale_id: incoming.sale_id,
                    external_id: sale.external_id.clone(),
                    status: mapped.clone(),
                    previous_status: now.clone(),
                    origin: "integration",
                    integration_id: Some(u.integration_id),
                    target_status: Some(u.target_status.clone()),
                },
            });
            *now = mapped.clone();
            (mapped.clone(), None, Verdict::Applied)
        }
    };
    plan.history.push(HistoryRow {
        sale_id: incoming.sale_id,
        status,
        integration_id: u.integration_id,
        target_status: u.target_status.clone(),
        dedupe_key: key,
        note,
    });
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use salesync_core::domain::DeliveryId;

    struct World {
        tenant: TenantId,
        sale: SaleId,
        integration: IntegrationId,
        sales: HashMap<SaleId, SaleState>,
    }

    fn world() -> World {
        let tenant = TenantId::new();
        let sale = SaleId::new();
        let sales = HashMap::from([(
            sale,
            SaleState {
                tenant_id: tenant,
                external_id: "pos-1".into(),
                status: "completed".into(),
            },
        )]);
        World {
            tenant,
            sale,
            integration: IntegrationId::new(),
            sales,
        }
    }

    fn update(w: &World, target: &str, mapped: Option<&str>) -> Result<Incoming, String> {
        Ok(Incoming {
            tenant_id: w.tenant,
            sale_id: w.sale,
            update: StatusUpdate {
                delivery_id: DeliveryId::new(),
                integration_id: w.integration,
                target_status: target.into(),
                mapped_status: mapped.map(str::to_string),
                observed_at: Utc::now(),
                unmapped_reason: None,
            },
        })
    }

    #[test]
    fn verdicts_table() {
        let w = world();
        let recorded_before = HashSet::from([(w.sale, dedupe_key(w.integration, "seen"))]);
        let mut other_tenant = update(&w, "x", Some("paid")).unwrap();
        other_tenant.tenant_id = TenantId::new();
        let mut unknown_sale = update(&w, "x", Some("paid")).unwrap();
        unknown_sale.sale_id = SaleId::new();
        let cases: Vec<(Result<Incoming, String>, Verdict)> = vec![
            (update(&w, "processed", Some("paid")), Verdict::Applied),
            (update(&w, "booked", Some("completed")), Verdict::Recorded),
            (update(&w, "weird", None), Verdict::Recorded),
            (update(&w, "seen", Some("paid")), Verdict::Duplicate),
            (
                Err("poison: bad".into()),
                Verdict::Dead("poison: bad".into()),
            ),
            (
                update(&w, "bad\u{0}status", Some("paid")),
                Verdict::Dead(
                    "invalid_status: target status of 10 bytes is empty, too long or has control characters".into(),
                ),
            ),
            (
                update(&w, &"x".repeat(5000), Some("paid")),
                Verdict::Dead(
                    "invalid_status: target status of 5000 bytes is empty, too long or has control characters".into(),
                ),
            ),
            (
                update(&w, "x", Some("Not Valid")),
                Verdict::Dead(
                    "invalid_status: mapped status 'Not Valid' is not a valid status".into(),
                ),
            ),
        ];
        for (item, want) in cases {
            let p = plan(std::slice::from_ref(&item), &w.sales, &recorded_before);
            assert_eq!(p.verdicts, vec![want], "{item:?}");
        }
        for item in [other_tenant, unknown_sale] {
            let p = plan(&[Ok(item)], &w.sales, &recorded_before);
            assert!(matches!(&p.verdicts[0], Verdict::Dead(_)), "{p:?}");
            assert!(p.history.is_empty());
        }
    }

    #[test]
    fn applied_change_records_history_and_notice() {
        let w = world();
        let p = plan(
            &[update(&w, "processed", Some("paid"))],
            &w.sales,
            &HashSet::new(),
        );
        assert_eq!(p.new_status, BTreeMap::from([(w.sale, "paid".to_string())]));
        assert_eq!(p.history.len(), 1);
        assert_eq!(p.history[0].status, "paid");
        assert_eq!(p.history[0].note, None);
        assert_eq!(
            p.history[0].dedupe_key,
            format!("integration:{}:processed", w.integration)
        );
        assert_eq!(p.applied.len(), 1);
        let n = &p.applied[0].notice;
        assert_eq!(
            (n.previous_status.as_str(), n.status.as_str()),
            ("completed", "paid")
        );
        assert_eq!(n.target_status.as_deref(), Some("processed"));
    }

    #[test]
    fn unmapped_is_recorded_with_a_note_and_keeps_the_status() {
        let w = world();
        let p = plan(&[update(&w, "limbo", None)], &w.sales, &HashSet::new());
        assert!(p.new_status.is_empty());
        assert!(p.applied.is_empty());
        assert_eq!(p.history[0].status, "completed");
        assert_eq!(
            p.history[0].note.as_deref(),
            Some("unmapped target status 'limbo': not synchronised")
        );
    }

    #[test]
    fn the_pollers_reason_becomes_the_note() {
        let w = world();
        let mut item = update(&w, "processed", None).unwrap();
        item.update.unmapped_reason = Some("B's status 'processed' is not mapped".into());
        let p = plan(&[Ok(item)], &w.sales, &HashSet::new());
        assert_eq!(p.verdicts, vec![Verdict::Recorded]);
        assert!(p.new_status.is_empty());
        assert_eq!(p.history[0].status, "completed");
        assert_eq!(
            p.history[0].note.as_deref(),
            Some("B's status 'processed' is not mapped")
        );
        // A reason PostgreSQL could not store (or that is absurdly long) is poison.
        for bad in ["", "nul\u{0}", "x".repeat(MAX_REASON_BYTES + 1).as_str()] {
            let mut item = update(&w, "processed", None).unwrap();
            item.update.unmapped_reason = Some(bad.to_string());
            let p = plan(&[Ok(item)], &w.sales, &HashSet::new());
            assert!(
                matches!(&p.verdicts[0], Verdict::Dead(r) if r.starts_with("invalid_reason")),
                "{:?}",
                p.verdicts
            );
        }
    }

    #[test]
    fn one_batch_chains_changes_and_drops_repeats() {
        let w = world();
        let p = plan(
            &[
                update(&w, "processed", Some("paid")),
                update(&w, "processed", Some("paid")),
                update(&w, "refunded", Some("refunded")),
            ],
            &w.sales,
            &HashSet::new(),
        );
        assert_eq!(
            p.verdicts,
            vec![Verdict::Applied, Verdict::Duplicate, Verdict::Applied]
        );
        assert_eq!(p.history.len(), 2);
        assert_eq!(p.applied[1].notice.previous_status, "paid");
        assert_eq!((p.applied[0].item, p.applied[1].item), (0, 2));
        assert_eq!(p.new_status[&w.sale], "refunded");
    }

    #[test]
    fn a_change_back_to_the_original_status_is_no_net_change() {
        let w = world();
        let p = plan(
            &[
                update(&w, "processed", Some("paid")),
                update(&w, "reverted", Some("completed")),
            ],
            &w.sales,
            &HashSet::new(),
        );
        assert_eq!(p.applied.len(), 2);
        assert!(p.new_status.is_empty());
    }
}
