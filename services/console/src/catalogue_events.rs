//! The provider's (B's) catalogue change events (issue 17): when B writes,
//! deactivates or withdraws a product or flow, or grants or revokes one,
//! every partner subscription that can see the change gets a signed
//! `catalogue.changed` callback (docs/contracts.md, "Catalogue change
//! callbacks"). Each is a delivery row and a forwarder command filed in the
//! caller's transaction, the change's own: the change and its callbacks
//! commit together or not at all, and the change never waits for a
//! receiver — the forwarder sends, retries and dead-letters them like any
//! delivery.
//!
//! Who hears of it: for a product or flow, the subscriptions of the
//! organizations granted it now (a withdrawn product keeps its grants); for
//! a grant, the organization's own. Only subscriptions of an Agent with an
//! active token: B revoking the token stops the callbacks too.

use chrono::{DateTime, SecondsFormat, Utc};
use salesync_core::catalogue::{ProductVersion, Revision};
use salesync_core::domain::{DeliveryId, OrganizationId, TenantId};
use salesync_core::messages::{Envelope, ForwardCommand, NO_SALE, Purpose, ROUTING_FORWARD};
use salesync_core::outbox::{self, OutboxMessage};
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store;
use crate::store::catalogue::Kind;
use crate::store::subscriptions::{NewCallback, Subscriber};

/// The callback's `type`.
pub const EVENT_TYPE: &str = "catalogue.changed";

/// What changed, as a callback names it.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Updated,
    Deactivated,
    Deleted,
    Granted,
    Revoked,
}

/// One change in a callback's `changes`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct CatalogueChange {
    /// `product` or `flow`.
    pub kind: &'static str,
    pub key: String,
    pub change: ChangeKind,
    /// A product's version after the change (products only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

impl CatalogueChange {
    /// A change without a version.
    pub fn of(kind: Kind, key: &str, change: ChangeKind) -> Self {
        Self {
            kind: kind_name(kind),
            key: key.to_string(),
            change,
            version: None,
        }
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Product => "product",
        Kind::Flow => "flow",
    }
}

/// What writing a product did, as partners hear it: `None` when nothing
/// changed. `before` is the current version and whether it was withdrawn.
pub fn product_change(
    before: Option<(&ProductVersion, bool)>,
    after: &ProductVersion,
    revision: Revision,
) -> Option<CatalogueChange> {
    let change = match (revision, before) {
        (Revision::Unchanged, _) => return None,
        (_, None) | (_, Some((_, true))) => ChangeKind::Created,
        (_, Some((b, false))) if b.active && !after.active => ChangeKind::Deactivated,
        _ => ChangeKind::Updated,
    };
    Some(CatalogueChange {
        kind: kind_name(Kind::Product),
        key: after.key.clone(),
        change,
        version: Some(after.version),
    })
}

/// The grant changes of one organization: each key granted now that was
/// not, each revoked.
pub fn grant_changes(kind: Kind, granted: &[String], revoked: &[String]) -> Vec<CatalogueChange> {
    granted
        .iter()
        .map(|k| CatalogueChange::of(kind, k, ChangeKind::Granted))
        .chain(
            revoked
                .iter()
                .map(|k| CatalogueChange::of(kind, k, ChangeKind::Revoked)),
        )
        .collect()
}

/// The body POSTed to a subscription (docs/contracts.md).
pub fn event_body(
    event_id: Uuid,
    organization: OrganizationId,
    occurred_at: DateTime<Utc>,
    changes: &[CatalogueChange],
) -> serde_json::Value {
    json!({
        "type": EVENT_TYPE,
        "event_id": event_id,
        "organization_id": organization,
        "occurred_at": occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "changes": changes,
    })
}

/// The deliveries and commands for `changes`, one per subscriber; the
/// subscribers of one organization share one event (one `event_id`), each
/// delivery has its own id (its `webhook-id`).
pub fn plan(
    tenant: TenantId,
    subscribers: &[Subscriber],
    changes: &[CatalogueChange],
    now: DateTime<Utc>,
) -> (Vec<NewCallback>, Vec<OutboxMessage>) {
    let mut events: Vec<(OrganizationId, Uuid)> = Vec::new();
    let mut callbacks = Vec::with_capacity(subscribers.len());
    let mut commands = Vec::with_capacity(subscribers.len());
    for s in subscribers {
        let event_id = match events.iter().find(|(o, _)| *o == s.organization_id) {
            Some((_, e)) => *e,
            None => {
                let e = Uuid::now_v7();
                events.push((s.organization_id, e));
                e
            }
        };
        let id = DeliveryId::new();
        callbacks.push(NewCallback {
            id,
            tenant_id: tenant,
            subscription_id: s.id,
            dedupe_key: format!("{EVENT_TYPE}:{event_id}:{}", s.id),
            target_url: s.url.clone(),
            body: event_body(event_id, s.organization_id, now, changes),
        });
        commands.push(callback_command(tenant, id, &s.url, now));
    }
    (callbacks, commands)
}

/// The forwarder command that sends one callback (signed with its
/// subscription's secret); `delivery_id`'s string form is the `target_ref`
/// (Idempotency-Key / webhook-id).
pub fn callback_command(
    tenant: TenantId,
    delivery_id: DeliveryId,
    target_url: &str,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let envelope = Envelope::new(
        tenant,
        NO_SALE,
        ForwardCommand {
            delivery_id,
            purpose: Purpose::CatalogueCallback,
            integration_id: None,
            target_url: target_url.to_string(),
            target_ref: delivery_id.to_string(),
            accepted_at: now,
            body: None,
        },
    );
    OutboxMessage::from_envelope(ROUTING_FORWARD, &envelope)
}

/// Who hears of a change.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// The organizations granted this product or flow now.
    Granted(Kind, &'a str),
    /// One organization (its grants changed).
    Organization(OrganizationId),
}

/// Files the callbacks of `changes` in the caller's transaction; how many.
/// Wake the outbox relay after the commit when it is more than 0.
pub async fn file(
    conn: &mut PgConnection,
    tenant: TenantId,
    audience: Audience<'_>,
    changes: &[CatalogueChange],
) -> sqlx::Result<usize> {
    if changes.is_empty() {
        return Ok(0);
    }
    let subscribers = match audience {
        Audience::Granted(kind, key) => {
            store::subscriptions::granted_subscribers(conn, tenant, kind_name(kind), key).await?
        }
        Audience::Organization(org) => {
            store::subscriptions::organization_subscribers(conn, tenant, org).await?
        }
    };
    let (callbacks, commands) = plan(tenant, &subscribers, changes, Utc::now());
    store::subscriptions::insert_callbacks(conn, &callbacks).await?;
    outbox::enqueue(conn, &commands).await?;
    Ok(callbacks.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::catalogue::ProductInput;

    fn version(active: bool, v: u32) -> ProductVersion {
        let input: ProductInput = serde_json::from_value(json!({
            "name": "Fixed 3y",
            "price": {"amount": 1200, "currency": "EUR", "vat_rate": "21"},
            "active": active,
        }))
        .expect("product input");
        input.into_version("fixed-3y", v)
    }

    #[test]
    fn a_product_write_is_named_by_what_it_did() {
        let (v1, off1) = (version(true, 1), version(false, 1));
        let (v2, off2) = (version(true, 2), version(false, 2));
        // (name, before, after, revision, what partners hear)
        type Case<'a> = (
            &'a str,
            Option<(&'a ProductVersion, bool)>,
            &'a ProductVersion,
            Revision,
            Option<ChangeKind>,
        );
        let cases: Vec<Case> = vec![
            (
                "first write",
                None,
                &v1,
                Revision::Created,
                Some(ChangeKind::Created),
            ),
            (
                "same again",
                Some((&v1, false)),
                &v1,
                Revision::Unchanged,
                None,
            ),
            (
                "new rate",
                Some((&v1, false)),
                &v2,
                Revision::Changed,
                Some(ChangeKind::Updated),
            ),
            (
                "switched off",
                Some((&v1, false)),
                &off2,
                Revision::Changed,
                Some(ChangeKind::Deactivated),
            ),
            (
                "still off, changed",
                Some((&off1, false)),
                &off2,
                Revision::Changed,
                Some(ChangeKind::Updated),
            ),
            (
                "back on",
                Some((&off1, false)),
                &v2,
                Revision::Changed,
                Some(ChangeKind::Updated),
            ),
            (
                "withdrawn, written again",
                Some((&v1, true)),
                &v2,
                Revision::Changed,
                Some(ChangeKind::Created),
            ),
        ];
        for (name, before, after, revision, want) in cases {
            let got = product_change(before, after, revision);
            assert_eq!(got.as_ref().map(|c| c.change), want, "{name}");
            if let Some(c) = got {
                assert_eq!((c.kind, c.key.as_str()), ("product", "fixed-3y"));
                assert_eq!(c.version, Some(after.version), "{name}");
            }
        }
    }

    #[test]
    fn the_body_follows_the_contract() {
        let org = OrganizationId::new();
        let at = DateTime::parse_from_rfc3339("2025-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let event = Uuid::now_v7();
        let mut changes = vec![product_change(None, &version(true, 1), Revision::Created).unwrap()];
        changes.extend(grant_changes(Kind::Flow, &["door".into()], &["web".into()]));
        let body = event_body(event, org, at, &changes);
        assert_eq!(
            body,
            json!({
                "type": "catalogue.changed",
                "event_id": event,
                "organization_id": org,
                "occurred_at": "2025-03-01T12:00:00.000Z",
                "changes": [
                    {"kind": "product", "key": "fixed-3y", "change": "created", "version": 1},
                    {"kind": "flow", "key": "door", "change": "granted"},
                    {"kind": "flow", "key": "web", "change": "revoked"},
                ],
            })
        );
    }

    #[test]
    fn each_subscriber_gets_its_delivery_and_an_organization_one_event() {
        let tenant = TenantId::new();
        let (org_a, org_b) = (OrganizationId::new(), OrganizationId::new());
        let sub = |org, url: &str| Subscriber {
            id: Uuid::now_v7(),
            organization_id: org,
            url: url.into(),
        };
        let subs = [
            sub(org_a, "https://a.example/1"),
            sub(org_a, "https://a.example/2"),
            sub(org_b, "https://b.example/1"),
        ];
        let changes = [CatalogueChange::of(Kind::Flow, "door", ChangeKind::Deleted)];
        let (callbacks, commands) = plan(tenant, &subs, &changes, Utc::now());
        assert_eq!((callbacks.len(), commands.len()), (3, 3));
        let events: Vec<&serde_json::Value> =
            callbacks.iter().map(|c| &c.body["event_id"]).collect();
        assert_eq!(events[0], events[1], "one event per organization");
        assert_ne!(events[0], events[2]);
        assert_eq!(callbacks[2].body["organization_id"], json!(org_b));
        for ((c, m), s) in callbacks.iter().zip(&commands).zip(&subs) {
            assert_eq!(
                (c.subscription_id, c.target_url.as_str()),
                (s.id, s.url.as_str())
            );
            assert!(c.dedupe_key.starts_with("catalogue.changed:"));
            let env = Envelope::<ForwardCommand>::decode(&m.body).expect("a forward command");
            assert_eq!(m.routing_key, "sale.forward");
            assert_eq!((env.tenant_id, env.sale_id), (tenant, NO_SALE));
            let p = env.payload;
            assert_eq!(p.purpose, Purpose::CatalogueCallback);
            assert_eq!((p.delivery_id, p.target_ref), (c.id, c.id.to_string()));
            assert_eq!(
                (p.target_url.as_str(), p.integration_id),
                (s.url.as_str(), None)
            );
        }
        assert!(plan(tenant, &[], &changes, Utc::now()).0.is_empty());
    }
}
