//! The decide step, pure: given the deliveries claimed for one integration and
//! what its target answered, which deliveries changed status, what that status
//! means on our side (the integration's status map; for another salesync, the
//! system statuses too) or why it is not synchronised, and whether polling
//! can stop (final statuses). No I/O — `store` writes the result.
//!
//! A status is announced once, when it changes: an unmapped status the target
//! keeps reporting is skipped (and recorded) once, not on every tick.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use salesync_core::catalogue::StatusMapping;
use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::integration::{self, IntegrationConfig};
use salesync_core::messages::StatusUpdate;

/// A delivered forward whose target status is not final, claimed for this tick.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub sale_id: SaleId,
    pub integration_id: IntegrationId,
    /// What the target knows the sale by (its external id / idempotency key).
    pub target_ref: String,
    /// The last status the target reported (`None`: never asked yet).
    pub target_status: Option<String>,
    /// The sale's trace (W3C `traceparent`) when its delivery was planned.
    pub traceparent: Option<String>,
}

/// What to write for one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub delivery_id: DeliveryId,
    pub tenant_id: TenantId,
    pub sale_id: SaleId,
    /// The status the row held when claimed; the write applies only if it
    /// still does, so a racing poller cannot announce the same change twice.
    pub previous_status: Option<String>,
    pub target_status: String,
    /// The target status is final: stop polling this delivery.
    pub is_final: bool,
    /// The event for ingest; `None` when only the final flag changes (the
    /// status itself was already carried back).
    pub update: Option<StatusUpdate>,
    /// The sale's trace, which the change continues.
    pub traceparent: Option<String>,
}

/// The changes the target's `answers` (target ref → status) imply for
/// `deliveries` of integration `cfg`. A delivery missing from the answer is
/// left alone (the target may not have processed it yet).
pub fn plan(
    cfg: &IntegrationConfig,
    deliveries: &[ClaimedDelivery],
    answers: &BTreeMap<String, String>,
    observed_at: DateTime<Utc>,
) -> Vec<Change> {
    deliveries
        .iter()
        // Another integration's answer says nothing about these deliveries.
        .filter(|d| d.integration_id == cfg.id)
        .filter_map(|d| {
            let reported = answers.get(&d.target_ref)?;
            let is_final = integration::is_final_status(cfg, reported);
            let changed = d.target_status.as_deref() != Some(reported.as_str());
            // Same status, not final: nothing to do. Same status but final
            // (the integration's final set grew since): only stop polling.
            if !changed && !is_final {
                return None;
            }
            let update = changed.then(|| {
                let (mapped_status, unmapped_reason) =
                    match integration::map_target_status(cfg, reported) {
                        StatusMapping::Mapped { status } => (Some(status), None),
                        StatusMapping::Unmapped { reason } => (None, Some(reason)),
                    };
                StatusUpdate {
                    delivery_id: d.id,
                    integration_id: cfg.id,
                    target_status: reported.clone(),
                    mapped_status,
                    observed_at,
                    unmapped_reason,
                }
            });
            Some(Change {
                delivery_id: d.id,
                tenant_id: d.tenant_id,
                sale_id: d.sale_id,
                previous_status: d.target_status.clone(),
                target_status: reported.clone(),
                is_final,
                update,
                traceparent: d.traceparent.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::integration::{ForwardingMode, TargetKind};

    fn cfg() -> IntegrationConfig {
        IntegrationConfig {
            id: IntegrationId::new(),
            tenant_id: TenantId::new(),
            name: "acc".into(),
            target_kind: TargetKind::Salesync,
            target_url: "http://t".into(),
            enabled: true,
            mode: ForwardingMode::Automatic,
            trigger_statuses: vec![],
            conditions: Default::default(),
            mapping: Default::default(),
            send_opt_in: false,
            poll_status: true,
            status_url: None,
            status_map: [
                ("processed".to_string(), "completed".to_string()),
                ("rejected".to_string(), "cancelled".to_string()),
            ]
            .into(),
            final_statuses: vec!["processed".into(), "rejected".into()],
        }
    }

    fn delivery(cfg: &IntegrationConfig, stored: Option<&str>) -> ClaimedDelivery {
        let id = DeliveryId::new();
        ClaimedDelivery {
            id,
            tenant_id: cfg.tenant_id,
            sale_id: SaleId::new(),
            integration_id: cfg.id,
            target_ref: id.to_string(),
            target_status: stored.map(Into::into),
            traceparent: None,
        }
    }

    /// (stored status, reported status, expected: None = no change, or
    /// Some((final, emits, mapped status)))
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        Option<(bool, bool, Option<&'static str>)>,
    );

    #[test]
    fn decides_per_delivery() {
        let cases: &[Case] = &[
            // Not in the answer: the target doesn't know it (yet).
            (None, None, None),
            (Some("received"), None, None),
            // First status ever, unmapped and not final: carried back, unmapped.
            (None, Some("received"), Some((false, true, None))),
            // Unchanged: nothing.
            (Some("received"), Some("received"), None),
            // Changed to a mapped final status.
            (
                Some("received"),
                Some("processed"),
                Some((true, true, Some("completed"))),
            ),
            (
                None,
                Some("rejected"),
                Some((true, true, Some("cancelled"))),
            ),
            // Changed to an unmapped non-final status.
            (Some("received"), Some("queued"), Some((false, true, None))),
            // Status unchanged but (now) final: stop polling, emit nothing.
            (
                Some("processed"),
                Some("processed"),
                Some((true, false, None)),
            ),
            // Status names are compared exactly.
            (
                Some("Processed"),
                Some("processed"),
                Some((true, true, Some("completed"))),
            ),
        ];
        let c = cfg();
        let at = Utc::now();
        for (i, (stored, reported, want)) in cases.iter().enumerate() {
            let d = delivery(&c, *stored);
            let answers: BTreeMap<String, String> = reported
                .map(|r| (d.target_ref.clone(), r.to_string()))
                .into_iter()
                .collect();
            let got = plan(&c, std::slice::from_ref(&d), &answers, at);
            match want {
                None => assert!(got.is_empty(), "case {i}: {got:?}"),
                Some((is_final, emits, mapped)) => {
                    assert_eq!(got.len(), 1, "case {i}");
                    let ch = &got[0];
                    assert_eq!(ch.delivery_id, d.id, "case {i}");
                    assert_eq!(ch.previous_status.as_deref(), *stored, "case {i}");
                    assert_eq!(Some(ch.target_status.as_str()), *reported, "case {i}");
                    assert_eq!(ch.is_final, *is_final, "case {i}");
                    assert_eq!(ch.update.is_some(), *emits, "case {i}");
                    if let Some(u) = &ch.update {
                        assert_eq!(u.delivery_id, d.id, "case {i}");
                        assert_eq!(u.integration_id, c.id, "case {i}");
                        assert_eq!(Some(u.target_status.as_str()), *reported, "case {i}");
                        assert_eq!(u.mapped_status.as_deref(), *mapped, "case {i}");
                        // Unmapped ⇔ a reason to record.
                        assert_eq!(u.unmapped_reason.is_some(), mapped.is_none(), "case {i}");
                        assert_eq!(u.observed_at, at, "case {i}");
                    }
                }
            }
        }
    }

    /// The update for `reported` on a delivery last seen as `stored`.
    fn update_for(
        c: &IntegrationConfig,
        stored: Option<&str>,
        reported: &str,
    ) -> Option<StatusUpdate> {
        let d = delivery(c, stored);
        let answers = BTreeMap::from([(d.target_ref.clone(), reported.to_string())]);
        plan(c, std::slice::from_ref(&d), &answers, Utc::now())
            .pop()
            .and_then(|ch| ch.update)
    }

    /// Expected mapping: `Ok(our status)` or `Err(part of the reason)`.
    type Want = Result<&'static str, &'static str>;

    fn check(c: &IntegrationConfig, cases: &[(&str, Want)]) {
        for (reported, want) in cases {
            let u = update_for(c, Some("before"), reported).expect("a changed status");
            match want {
                Ok(ours) => {
                    assert_eq!(u.mapped_status.as_deref(), Some(*ours), "{reported}");
                    assert_eq!(u.unmapped_reason, None, "{reported}");
                }
                Err(why) => {
                    assert_eq!(u.mapped_status, None, "{reported}");
                    let reason = u.unmapped_reason.expect("a reason");
                    assert!(reason.contains(why), "{reported}: {reason}");
                }
            }
        }
    }

    #[test]
    fn salesync_targets_share_the_system_statuses() {
        // status_map: processed → completed (custom), rejected → cancelled (override).
        let c = cfg();
        check(
            &c,
            &[
                // System statuses map to themselves…
                ("new", Ok("new")),
                ("pending", Ok("pending")),
                ("accepted", Ok("accepted")),
                ("completed", Ok("completed")),
                ("cancelled", Ok("cancelled")),
                // …unless A overrides one.
                ("rejected", Ok("cancelled")),
                // B's custom statuses only through the map.
                ("processed", Ok("completed")),
                (
                    "received",
                    Err("B's status 'received' is not a system status and is not mapped"),
                ),
                ("Accepted", Err("'Accepted' is not a system status")),
            ],
        );
        // Without a map, a custom status is skipped and a system one still maps.
        let bare = IntegrationConfig {
            status_map: BTreeMap::new(),
            ..cfg()
        };
        check(
            &bare,
            &[
                ("processed", Err("'processed' is not a system status")),
                ("rejected", Ok("rejected")),
            ],
        );
    }

    #[test]
    fn other_targets_map_only_through_the_status_map() {
        let c = IntegrationConfig {
            target_kind: TargetKind::Webhook,
            ..cfg()
        };
        check(
            &c,
            &[
                ("processed", Ok("completed")),
                ("rejected", Ok("cancelled")),
                // A webhook's "accepted" is its own word, not a system status.
                (
                    "accepted",
                    Err("unmapped target status 'accepted': not synchronised"),
                ),
            ],
        );
    }

    #[test]
    fn a_skipped_status_is_announced_once() {
        let c = cfg();
        // First seen: announced (with its reason) …
        let first = update_for(&c, Some("accepted"), "on_hold").expect("announced");
        assert!(first.unmapped_reason.is_some());
        // … then stored as the delivery's status: the next ticks see no change.
        assert_eq!(update_for(&c, Some("on_hold"), "on_hold"), None);
        let d = delivery(&c, Some("on_hold"));
        let answers = BTreeMap::from([(d.target_ref.clone(), "on_hold".to_string())]);
        assert!(plan(&c, &[d], &answers, Utc::now()).is_empty());
    }

    #[test]
    fn many_deliveries_one_answer() {
        let c = cfg();
        let a = delivery(&c, Some("received"));
        let b = delivery(&c, Some("received"));
        let missing = delivery(&c, None);
        let mut foreign = delivery(&c, None);
        foreign.integration_id = IntegrationId::new();
        let answers: BTreeMap<String, String> = [
            (a.target_ref.clone(), "processed".to_string()),
            (b.target_ref.clone(), "received".to_string()),
            (foreign.target_ref.clone(), "processed".to_string()),
            ("unasked".to_string(), "processed".to_string()),
        ]
        .into();
        let got = plan(&c, &[a.clone(), b, missing, foreign], &answers, Utc::now());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].delivery_id, a.id);
        assert_eq!(got[0].sale_id, a.sale_id);
        assert_eq!(got[0].tenant_id, a.tenant_id);
    }
}
