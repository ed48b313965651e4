//! Before anything is sent: what the database says about each message's
//! delivery decides whether to send it, ack it as a duplicate, or dead-letter
//! it, or hold it while its integration is paused. Pure, so the duplicate rules — the heart of "nothing booked twice" on
//! our side — are pinned down by a table of cases.

use salesync_core::domain::ids::{DeliveryId, IntegrationId};

/// What the database says about one delivery (secrets aside).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryFacts {
    /// `forward`, `status_webhook` or `catalogue_callback`.
    pub purpose: String,
    /// `pending`, `retrying`, `held`, `delivered` or `dead`.
    pub state: String,
    /// Attempts recorded so far.
    pub attempts: i32,
    pub integration_id: Option<IntegrationId>,
    /// For `forward`: the integration row exists in the delivery's tenant.
    pub integration_found: bool,
    pub integration_deleted: bool,
    /// For `forward`: the integration is paused (its deliveries are held).
    pub integration_paused: bool,
    /// For `status_webhook`: the tenant has a webhook secret; for
    /// `catalogue_callback`: the subscription (and its secret) exists.
    pub tenant_secret_found: bool,
    pub dead_reason: Option<String>,
}

/// What to do with one message before sending.
#[derive(Debug, Clone, PartialEq)]
pub enum Triage {
    Send,
    /// Send nothing; record the delivery as held and ack: its integration
    /// is paused, and resuming it re-sends every held delivery.
    Hold,
    /// Ack without sending: the work is done or under way elsewhere.
    Duplicate(String),
    /// Dead-letter. `mark_dead`: the delivery row exists and should say so.
    Dead {
        reason: String,
        mark_dead: bool,
    },
}

/// One message as triage sees it. Copies of one delivery reach triage one at
/// a time (see `claims`), each after the previous one's outcome is committed.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts {
    pub delivery_id: DeliveryId,
    pub attempt: u32,
    /// The broker delivered it before without an ack.
    pub redelivered: bool,
}

/// Decides one message.
pub fn triage(msg: MessageFacts, facts: Option<&DeliveryFacts>) -> Triage {
    let MessageFacts {
        delivery_id,
        attempt,
        redelivered,
    } = msg;
    let Some(f) = facts else {
        // Reason text before ':' becomes a metric label; the id stays after it.
        return dead(format!("delivery not found: {delivery_id}"), false);
    };
    match f.state.as_str() {
        // The dead state is committed before the consumer loop dead-letters
        // the message; if that publish failed, the message comes back
        // redelivered and must still reach the DLQ. (A redelivered copy whose
        // dead letter did get through only duplicates an entry there.)
        "dead" if redelivered => {
            let reason = f
                .dead_reason
                .clone()
                .unwrap_or_else(|| "delivery already dead: no reason recorded".into());
            return dead(reason, false);
        }
        "delivered" | "dead" => return Triage::Duplicate(format!("delivery already {}", f.state)),
        // Already held: the row is the durable record, and only ingest's
        // release (on resume, or its sweep) takes a delivery out of `held`,
        // with a fresh command. This copy (a retry or deferral that was
        // waiting in a delay queue, or a duplicate) is not needed.
        "held" => return Triage::Duplicate("delivery held: its integration is paused".into()),
        // A copy of an attempt that was already made and recorded (e.g. the
        // original redelivered after its retry copy was published): sending
        // it would start a second retry chain.
        "retrying" if i64::from(attempt) <= i64::from(f.attempts) => {
            return Triage::Duplicate(format!(
                "attempt {attempt} was already made ({} recorded)",
                f.attempts
            ));
        }
        _ => {}
    }
    match f.purpose.as_str() {
        "forward" => match f.integration_id {
            None => dead("no integration: forward delivery without one".into(), true),
            Some(id) if !f.integration_found => dead(format!("integration not found: {id}"), true),
            Some(id) if f.integration_deleted => dead(format!("integration deleted: {id}"), true),
            Some(_) if f.integration_paused => Triage::Hold,
            Some(_) => Triage::Send,
        },
        "status_webhook" if !f.tenant_secret_found => dead(
            "tenant webhook not configured: no webhook secret".into(),
            true,
        ),
        "status_webhook" => Triage::Send,
        // Deleted (or never there): nobody asked for it any more.
        "catalogue_callback" if !f.tenant_secret_found => dead(
            "catalogue subscription not found: deleted since the change".into(),
            true,
        ),
        "catalogue_callback" => Triage::Send,
        other => dead(format!("unknown purpose: {other}"), true),
    }
}

fn dead(reason: String, mark_dead: bool) -> Triage {
    Triage::Dead { reason, mark_dead }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(purpose: &str, state: &str, attempts: i32) -> DeliveryFacts {
        DeliveryFacts {
            purpose: purpose.into(),
            state: state.into(),
            attempts,
            integration_id: Some(IntegrationId::from_uuid(uuid::Uuid::nil())),
            integration_found: true,
            integration_deleted: false,
            integration_paused: false,
            tenant_secret_found: false,
            dead_reason: None,
        }
    }

    fn msg(attempt: u32, redelivered: bool) -> MessageFacts {
        MessageFacts {
            delivery_id: DeliveryId::new(),
            attempt,
            redelivered,
        }
    }

    /// (verdict word, whether the row should be marked dead)
    fn kind(t: &Triage) -> (&'static str, bool) {
        match t {
            Triage::Send => ("send", false),
            Triage::Hold => ("hold", false),
            Triage::Duplicate(_) => ("duplicate", false),
            Triage::Dead { mark_dead, .. } => ("dead", *mark_dead),
        }
    }

    #[test]
    fn decides_each_message() {
        let fwd = |state, attempts| Some(facts("forward", state, attempts));
        let deleted = Some(DeliveryFacts {
            integration_deleted: true,
            ..facts("forward", "pending", 0)
        });
        let missing = Some(DeliveryFacts {
            integration_found: false,
            ..facts("forward", "pending", 0)
        });
        let paused = |state, attempts| {
            Some(DeliveryFacts {
                integration_paused: true,
                ..facts("forward", state, attempts)
            })
        };
        let paused_and_deleted = Some(DeliveryFacts {
            integration_deleted: true,
            ..paused("pending", 0).unwrap()
        });
        let no_integration = Some(DeliveryFacts {
            integration_id: None,
            ..facts("forward", "pending", 0)
        });
        let webhook_ok = Some(DeliveryFacts {
            integration_id: None,
            integration_found: false,
            tenant_secret_found: true,
            ..facts("status_webhook", "pending", 0)
        });
        let webhook_unset = Some(DeliveryFacts {
            tenant_secret_found: false,
            ..webhook_ok.clone().unwrap()
        });
        let callback_ok = Some(DeliveryFacts {
            purpose: "catalogue_callback".into(),
            ..webhook_ok.clone().unwrap()
        });
        let callback_unsubscribed = Some(DeliveryFacts {
            tenant_secret_found: false,
            ..callback_ok.clone().unwrap()
        });
        // (name, attempt, facts, expected)
        type Case = (
            &'static str,
            u32,
            Option<DeliveryFacts>,
            (&'static str, bool),
        );
        let cases: Vec<Case> = vec![
            ("fresh delivery", 1, fwd("pending", 0), ("send", false)),
            ("retry copy", 3, fwd("retrying", 2), ("send", false)),
            (
                "stale copy of a made attempt",
                2,
                fwd("retrying", 2),
                ("duplicate", false),
            ),
            ("older copy", 1, fwd("retrying", 2), ("duplicate", false)),
            (
                "pending is sent whatever the attempt",
                4,
                fwd("pending", 5),
                ("send", false),
            ),
            (
                "already delivered",
                1,
                fwd("delivered", 1),
                ("duplicate", false),
            ),
            ("already dead", 5, fwd("dead", 4), ("duplicate", false)),
            ("delivery missing", 1, None, ("dead", false)),
            (
                "paused: fresh delivery held",
                1,
                paused("pending", 0),
                ("hold", false),
            ),
            (
                "paused: retry copy held",
                3,
                paused("retrying", 2),
                ("hold", false),
            ),
            (
                "paused: stale copy still a duplicate",
                2,
                paused("retrying", 2),
                ("duplicate", false),
            ),
            ("already held", 3, paused("held", 2), ("duplicate", false)),
            (
                "held, integration resumed: the release re-sends it",
                3,
                fwd("held", 2),
                ("duplicate", false),
            ),
            ("paused but deleted", 1, paused_and_deleted, ("dead", true)),
            (
                "paused, already delivered",
                1,
                paused("delivered", 1),
                ("duplicate", false),
            ),
            ("integration deleted", 1, deleted, ("dead", true)),
            ("integration missing", 1, missing, ("dead", true)),
            (
                "forward without integration",
                1,
                no_integration,
                ("dead", true),
            ),
            ("status webhook", 1, webhook_ok, ("send", false)),
            (
                "status webhook without secret",
                1,
                webhook_unset,
                ("dead", true),
            ),
            ("catalogue callback", 1, callback_ok, ("send", false)),
            (
                "catalogue callback, subscription deleted",
                1,
                callback_unsubscribed,
                ("dead", true),
            ),
            (
                "unknown purpose",
                1,
                Some(facts("fax", "pending", 0)),
                ("dead", true),
            ),
        ];
        for (name, attempt, f, want) in cases {
            let got = triage(msg(attempt, false), f.as_ref());
            assert_eq!(kind(&got), want, "case {name}: {got:?}");
        }
    }

    #[test]
    fn redelivered_dead_goes_to_the_dlq_again() {
        let dead_row = DeliveryFacts {
            dead_reason: Some("target answered 400 Bad Request: x".into()),
            ..facts("forward", "dead", 1)
        };
        // (name, state row, redelivered, expected)
        let cases = [
            ("redelivered dead", dead_row.clone(), true, ("dead", false)),
            (
                "plain duplicate of dead",
                dead_row,
                false,
                ("duplicate", false),
            ),
            (
                "redelivered delivered",
                facts("forward", "delivered", 1),
                true,
                ("duplicate", false),
            ),
            (
                "redelivered pending is sent",
                facts("forward", "pending", 0),
                true,
                ("send", false),
            ),
        ];
        for (name, f, redelivered, want) in cases {
            let got = triage(msg(1, redelivered), Some(&f));
            assert_eq!(kind(&got), want, "case {name}: {got:?}");
        }
        let again = triage(
            msg(1, true),
            Some(&DeliveryFacts {
                dead_reason: Some("gave up after 8 attempts: request timed out".into()),
                ..facts("forward", "dead", 8)
            }),
        );
        assert_eq!(
            again,
            Triage::Dead {
                reason: "gave up after 8 attempts: request timed out".into(),
                mark_dead: false
            }
        );
    }

    #[test]
    fn reasons_start_with_a_bounded_label() {
        let m = msg(1, false);
        let id = m.delivery_id;
        let Triage::Dead { reason, .. } = triage(m, None) else {
            panic!("expected dead");
        };
        assert_eq!(reason, format!("delivery not found: {id}"));
        let f = DeliveryFacts {
            integration_deleted: true,
            ..facts("forward", "pending", 0)
        };
        let Triage::Dead { reason, .. } = triage(m, Some(&f)) else {
            panic!("expected dead");
        };
        assert!(reason.starts_with("integration deleted: "), "{reason}");
    }
}
