//! Whether a delivery may be replayed or discarded, and the forward command
//! a replay sends — decided without I/O, so each rule is a table test.
//!
//! A replay re-sends the request exactly as first sent: the stored body, to
//! the stored URL, with the same `target_ref` (so the target's idempotency
//! key is unchanged and a target that did book it the first time books it
//! once). The command is fresh (new message id, attempt 1).

use salesync_core::messages::{Envelope, ForwardCommand, Purpose, ROUTING_FORWARD};
use salesync_core::outbox::OutboxMessage;

use crate::store::dead_letters::LockedDelivery;

/// Why an action on a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Only dead deliveries can be replayed or discarded; this is its state.
    NotDead(String),
    AlreadyDiscarded,
    /// Created before request bodies were recorded: nothing to re-send.
    NotReplayable,
}

/// A replay is allowed for any dead delivery whose request was recorded,
/// discarded ones included (replaying one undoes the discard).
pub fn may_replay(d: &LockedDelivery) -> Result<(), Refusal> {
    if d.state != "dead" {
        return Err(Refusal::NotDead(d.state.clone()));
    }
    if d.body.is_none() {
        return Err(Refusal::NotReplayable);
    }
    Ok(())
}

/// A discard is allowed once, for a dead delivery.
pub fn may_discard(d: &LockedDelivery) -> Result<(), Refusal> {
    if d.state != "dead" {
        return Err(Refusal::NotDead(d.state.clone()));
    }
    if d.discarded_at.is_some() {
        return Err(Refusal::AlreadyDiscarded);
    }
    Ok(())
}

fn purpose(s: &str) -> Option<Purpose> {
    [Purpose::Forward, Purpose::StatusWebhook]
        .into_iter()
        .find(|p| p.as_str() == s)
}

/// The fresh forward command that re-sends a delivery (the forwarder sends
/// the body stored with it); call it inside the span that should continue
/// into the forwarder. `None` if the stored row cannot make one (no body,
/// unknown purpose).
pub fn replay_command(d: &LockedDelivery) -> Option<OutboxMessage> {
    d.body.as_ref()?;
    let command = ForwardCommand {
        delivery_id: d.id,
        purpose: purpose(&d.purpose)?,
        integration_id: d.integration_id,
        target_url: d.target_url.clone(),
        target_ref: d.target_ref.clone(),
        // When the delivery was first planned: the closest stored stand-in
        // for the original acceptance time (it only feeds latency metrics).
        accepted_at: d.created_at,
        body: None,
    };
    let envelope = Envelope::new(d.tenant_id, d.sale_id, command);
    Some(OutboxMessage::from_envelope(ROUTING_FORWARD, &envelope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId};
    use serde_json::json;

    fn delivery(state: &str, body: bool, discarded: bool) -> LockedDelivery {
        let id = DeliveryId::new();
        LockedDelivery {
            id,
            tenant_id: TenantId::new(),
            sale_id: SaleId::new(),
            integration_id: Some(IntegrationId::new()),
            purpose: "forward".into(),
            state: state.into(),
            target_url: "https://target.example/hook".into(),
            target_ref: id.to_string(),
            body: body.then(|| json!({"type": "sale.forwarded", "data": {"n": 1}})),
            discarded_at: discarded.then(Utc::now),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn who_may_be_replayed_and_discarded() {
        let not_dead = |s: &str| Err(Refusal::NotDead(s.into()));
        // (name, delivery, replay verdict, discard verdict)
        let cases = [
            ("dead", delivery("dead", true, false), Ok(()), Ok(())),
            (
                "dead and discarded",
                delivery("dead", true, true),
                Ok(()),
                Err(Refusal::AlreadyDiscarded),
            ),
            (
                "dead, body not recorded",
                delivery("dead", false, false),
                Err(Refusal::NotReplayable),
                Ok(()),
            ),
            (
                "pending",
                delivery("pending", true, false),
                not_dead("pending"),
                not_dead("pending"),
            ),
            (
                "retrying",
                delivery("retrying", true, false),
                not_dead("retrying"),
                not_dead("retrying"),
            ),
            (
                "delivered",
                delivery("delivered", true, false),
                not_dead("delivered"),
                not_dead("delivered"),
            ),
        ];
        for (name, d, replay, discard) in cases {
            assert_eq!(may_replay(&d), replay, "replay: {name}");
            assert_eq!(may_discard(&d), discard, "discard: {name}");
        }
    }

    #[test]
    fn replay_sends_the_original_request_as_a_fresh_first_attempt() {
        let d = delivery("dead", true, false);
        let m = replay_command(&d).expect("command");
        assert_eq!(m.routing_key, ROUTING_FORWARD);
        assert_eq!(m.message_type, "sale.forward");
        let env = Envelope::<ForwardCommand>::decode(&m.body).expect("decodes");
        assert_eq!(env.attempt, 1);
        assert_eq!(env.tenant_id, d.tenant_id);
        assert_eq!(env.sale_id, d.sale_id);
        let c = env.payload;
        assert_eq!(c.delivery_id, d.id);
        assert_eq!(c.purpose, Purpose::Forward);
        assert_eq!(c.integration_id, d.integration_id);
        assert_eq!(c.target_url, d.target_url);
        assert_eq!(c.target_ref, d.target_ref);
        assert_eq!(
            c.body, None,
            "the forwarder sends the body stored with the delivery"
        );
        let again = replay_command(&d).expect("command");
        assert_ne!(
            again.message_id, m.message_id,
            "each replay is a new message"
        );
    }

    #[test]
    fn status_webhooks_replay_too_and_bad_rows_do_not() {
        let mut d = delivery("dead", true, false);
        d.purpose = "status_webhook".into();
        d.integration_id = None;
        let env = Envelope::<ForwardCommand>::decode(&replay_command(&d).expect("command").body)
            .expect("decodes");
        assert_eq!(env.payload.purpose, Purpose::StatusWebhook);
        assert_eq!(env.payload.integration_id, None);

        d.purpose = "fax".into();
        assert!(replay_command(&d).is_none());
        assert!(replay_command(&delivery("dead", false, false)).is_none());
    }
}
