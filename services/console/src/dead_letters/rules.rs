//! Whether a delivery may be replayed or discarded, where a replay goes, and
//! the forward command it sends — decided without I/O, so each rule is a
//! table test.
//!
//! A replay re-sends the stored body with the same `target_ref` (so the
//! target's idempotency key is unchanged and a target that did book it the
//! first time books it once). By default it goes where the target points
//! *now* — the integration's current URL (the forwarder signs with its
//! current secrets and credentials in any case) — so fixing a broken URL and
//! replaying works; `TargetChoice::Recorded` keeps the URL stored with the
//! delivery. The command is fresh (new message id, attempt 1).

use salesync_core::integration::TargetKind;
use salesync_core::messages::{Envelope, ForwardCommand, NO_SALE, Purpose, ROUTING_FORWARD};
use salesync_core::outbox::OutboxMessage;

use crate::store::dead_letters::LockedDelivery;

/// Which URL a replay sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, utoipa::ToSchema)]
#[schema(as = ReplayTarget, rename_all = "lowercase")]
pub enum TargetChoice {
    /// The integration's current URL (the tenant's current webhook for
    /// status webhooks, the subscription's for catalogue callbacks).
    #[default]
    Current,
    /// The URL recorded with the delivery (where it was last sent).
    Recorded,
}

impl TargetChoice {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "current" => Some(Self::Current),
            "recorded" => Some(Self::Recorded),
            _ => None,
        }
    }
}

/// Why an action on a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Only dead deliveries can be replayed or discarded; this is its state.
    NotDead(String),
    AlreadyDiscarded,
    /// Created before request bodies were recorded: nothing to re-send.
    NotReplayable,
    /// Its integration was deleted: nothing signs or receives for it any more.
    IntegrationDeleted,
    /// Its integration is disabled: the tenant stopped forwarding to it.
    IntegrationDisabled,
    /// A status webhook, and the tenant has no webhook (any more).
    NoWebhook,
    /// A catalogue callback whose subscription was deleted.
    NoSubscription,
}

impl Refusal {
    /// The replay is refused because of where it would go, not because of
    /// the dead letter itself (a bulk replay counts these apart).
    pub fn is_target_unavailable(&self) -> bool {
        matches!(
            self,
            Refusal::IntegrationDeleted
                | Refusal::IntegrationDisabled
                | Refusal::NoWebhook
                | Refusal::NoSubscription
        )
    }
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

/// Where a replay of `d` goes, or why it may not be replayed: the dead
/// letter's own rules (`may_replay`) first, then its target. A deleted or
/// disabled integration (a webhook removed) refuses either choice — the
/// forwarder would dead-letter a deleted one at once, and a disabled one is
/// the tenant saying "send nothing there"; re-enable it, or discard.
pub fn replay_target(d: &LockedDelivery, choice: TargetChoice) -> Result<String, Refusal> {
    may_replay(d)?;
    let now = &d.now;
    let current = if d.purpose == "status_webhook" {
        now.webhook_url.clone().ok_or(Refusal::NoWebhook)?
    } else if d.purpose == "catalogue_callback" {
        now.subscription_url
            .clone()
            .ok_or(Refusal::NoSubscription)?
    } else {
        // An integration that does not exist in the tenant counts as deleted
        // (the forwarder treats both alike).
        let (Some(kind), Some(url)) = (&now.integration_kind, &now.integration_url) else {
            return Err(Refusal::IntegrationDeleted);
        };
        if now.integration_deleted {
            return Err(Refusal::IntegrationDeleted);
        }
        if !now.integration_enabled {
            return Err(Refusal::IntegrationDisabled);
        }
        TargetKind::parse(kind)
            .ok_or(Refusal::IntegrationDeleted)?
            .request_url(url)
    };
    Ok(match choice {
        TargetChoice::Current => current,
        TargetChoice::Recorded => d.target_url.clone(),
    })
}

/// The fresh forward command that re-sends a delivery to `url` (the
/// forwarder sends the body stored with it); call it inside the span that
/// should continue into the forwarder. `None` if the stored row cannot make
/// one (no body, unknown purpose).
pub fn replay_command(d: &LockedDelivery, url: &str) -> Option<OutboxMessage> {
    d.body.as_ref()?;
    let command = ForwardCommand {
        delivery_id: d.id,
        purpose: Purpose::parse(&d.purpose)?,
        integration_id: d.integration_id,
        target_url: url.to_string(),
        target_ref: d.target_ref.clone(),
        // When the delivery was first planned: the closest stored stand-in
        // for the original acceptance time (it only feeds latency metrics).
        accepted_at: d.created_at,
        body: None,
    };
    let envelope = Envelope::new(d.tenant_id, d.sale_id.unwrap_or(NO_SALE), command);
    Some(OutboxMessage::from_envelope(ROUTING_FORWARD, &envelope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId};
    use serde_json::json;

    use crate::store::dead_letters::CurrentTarget;

    const RECORDED: &str = "https://old.example/hook";

    fn delivery(state: &str, body: bool, discarded: bool) -> LockedDelivery {
        let id = DeliveryId::new();
        LockedDelivery {
            id,
            tenant_id: TenantId::new(),
            sale_id: Some(SaleId::new()),
            integration_id: Some(IntegrationId::new()),
            purpose: "forward".into(),
            state: state.into(),
            target_url: RECORDED.into(),
            target_ref: id.to_string(),
            body: body.then(|| json!({"type": "sale.forwarded", "data": {"n": 1}})),
            dead_reason: Some("target answered 404".into()),
            discarded_at: discarded.then(Utc::now),
            created_at: Utc::now(),
            now: CurrentTarget {
                integration_kind: Some("webhook".into()),
                integration_url: Some("https://new.example/hook".into()),
                integration_enabled: true,
                integration_deleted: false,
                webhook_url: None,
                subscription_url: None,
            },
        }
    }

    #[test]
    fn a_replay_goes_where_the_target_points_now_unless_asked_otherwise() {
        let live = delivery("dead", true, false);
        let with = |f: &dyn Fn(&mut LockedDelivery)| {
            let mut d = live.clone();
            f(&mut d);
            d
        };
        let salesync = with(&|d| {
            d.now.integration_kind = Some("salesync".into());
            d.now.integration_url = Some("https://peer.example/".into());
        });
        let deleted = with(&|d| d.now.integration_deleted = true);
        let disabled = with(&|d| d.now.integration_enabled = false);
        let missing = with(&|d| d.now = CurrentTarget::default());
        let webhook = with(&|d| {
            d.purpose = "status_webhook".into();
            d.integration_id = None;
            d.now = CurrentTarget {
                webhook_url: Some("https://shop.example/status".into()),
                ..CurrentTarget::default()
            };
        });
        let no_webhook = with(&|d| {
            d.purpose = "status_webhook".into();
            d.now = CurrentTarget::default();
        });
        let callback = with(&|d| {
            d.purpose = "catalogue_callback".into();
            d.integration_id = None;
            d.sale_id = None;
            d.now = CurrentTarget {
                subscription_url: Some("https://partner.example/cb".into()),
                ..CurrentTarget::default()
            };
        });
        let unsubscribed = with(&|d| {
            d.purpose = "catalogue_callback".into();
            d.now = CurrentTarget::default();
        });
        let ok = |s: &str| Ok(s.to_string());
        use TargetChoice::{Current, Recorded};
        // (name, delivery, choice, verdict)
        let cases = [
            (
                "webhook, current",
                &live,
                Current,
                ok("https://new.example/hook"),
            ),
            ("webhook, recorded", &live, Recorded, ok(RECORDED)),
            (
                "salesync peer: its sales endpoint",
                &salesync,
                Current,
                ok("https://peer.example/v1/sales"),
            ),
            (
                "deleted",
                &deleted,
                Current,
                Err(Refusal::IntegrationDeleted),
            ),
            (
                "deleted, recorded",
                &deleted,
                Recorded,
                Err(Refusal::IntegrationDeleted),
            ),
            (
                "not in the tenant",
                &missing,
                Current,
                Err(Refusal::IntegrationDeleted),
            ),
            (
                "disabled",
                &disabled,
                Current,
                Err(Refusal::IntegrationDisabled),
            ),
            (
                "disabled, recorded",
                &disabled,
                Recorded,
                Err(Refusal::IntegrationDisabled),
            ),
            (
                "status webhook",
                &webhook,
                Current,
                ok("https://shop.example/status"),
            ),
            ("status webhook, recorded", &webhook, Recorded, ok(RECORDED)),
            (
                "webhook removed",
                &no_webhook,
                Current,
                Err(Refusal::NoWebhook),
            ),
            (
                "catalogue callback",
                &callback,
                Current,
                ok("https://partner.example/cb"),
            ),
            (
                "subscription deleted",
                &unsubscribed,
                Recorded,
                Err(Refusal::NoSubscription),
            ),
        ];
        for (name, d, choice, want) in cases {
            assert_eq!(replay_target(d, choice), want, "{name}");
        }
        // The dead letter's own rules come first.
        let old = delivery("dead", false, false);
        assert_eq!(replay_target(&old, Current), Err(Refusal::NotReplayable));
        assert!(Refusal::NoWebhook.is_target_unavailable());
        assert!(!Refusal::NotReplayable.is_target_unavailable());
        assert_eq!(TargetChoice::parse("recorded"), Some(Recorded));
        assert_eq!(TargetChoice::parse("Current"), None);
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
        let m = replay_command(&d, "https://new.example/hook").expect("command");
        assert_eq!(m.routing_key, ROUTING_FORWARD);
        assert_eq!(m.message_type, "sale.forward");
        let env = Envelope::<ForwardCommand>::decode(&m.body).expect("decodes");
        assert_eq!(env.attempt, 1);
        assert_eq!(env.tenant_id, d.tenant_id);
        assert_eq!(Some(env.sale_id), d.sale_id);
        let c = env.payload;
        assert_eq!(c.delivery_id, d.id);
        assert_eq!(c.purpose, Purpose::Forward);
        assert_eq!(c.integration_id, d.integration_id);
        assert_eq!(c.target_url, "https://new.example/hook");
        assert_eq!(c.target_ref, d.target_ref);
        assert_eq!(
            c.body, None,
            "the forwarder sends the body stored with the delivery"
        );
        let again = replay_command(&d, RECORDED).expect("command");
        assert_ne!(
            again.message_id, m.message_id,
            "each replay is a new message"
        );
    }

    #[test]
    fn webhooks_and_callbacks_replay_too_and_bad_rows_do_not() {
        let mut d = delivery("dead", true, false);
        d.purpose = "status_webhook".into();
        d.integration_id = None;
        let m = replay_command(&d, RECORDED).expect("command");
        let env = Envelope::<ForwardCommand>::decode(&m.body).expect("decodes");
        assert_eq!(env.payload.purpose, Purpose::StatusWebhook);
        assert_eq!(env.payload.integration_id, None);

        d.purpose = "catalogue_callback".into();
        d.sale_id = None;
        let m = replay_command(&d, RECORDED).expect("command");
        let env = Envelope::<ForwardCommand>::decode(&m.body).expect("decodes");
        assert_eq!(env.payload.purpose, Purpose::CatalogueCallback);
        assert_eq!(env.sale_id, NO_SALE, "about no sale");

        d.purpose = "fax".into();
        assert!(replay_command(&d, RECORDED).is_none());
        assert!(replay_command(&delivery("dead", false, false), RECORDED).is_none());
    }
}
