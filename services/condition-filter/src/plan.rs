//! Planning a batch, without I/O: given the decoded events, the tenants'
//! integrations and which sales exist, what becomes of each message — dead
//! (with the reason) or a list of decisions, some of which create a delivery.
//! The handler loads the inputs and writes the plan in one statement
//! (`store::record`), which also settles whether a planned delivery was
//! really new.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use salesync_core::catalogue::ProviderMapping;
use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::integration::IntegrationConfig;
use salesync_core::messages::{Envelope, SaleEvent};

use crate::decide::{Decision, decide, integrations_considered};
use crate::mapping::{Source, TargetRequest, target_request};

/// Reason recorded when the rules say "forward" but the sale already went (or
/// is going) to this integration: one delivery per (sale, integration), ever.
pub const ALREADY_FORWARDED: &str = "already forwarded";
/// Reason recorded on the decision that created the delivery.
pub const FORWARDED: &str = "forwarded";

/// What becomes of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum MessagePlan {
    /// Can never succeed: dead-letter with this reason.
    Dead(String),
    /// One entry per integration considered (none if the tenant has none).
    Decide(Vec<PlannedDecision>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDecision {
    pub integration_id: IntegrationId,
    pub outcome: PlannedOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlannedOutcome {
    Skip(String),
    /// Create this delivery, unless one with its dedupe key exists already.
    Forward(NewDelivery),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub sale_id: SaleId,
    pub integration_id: IntegrationId,
    pub dedupe_key: String,
    pub request: TargetRequest,
}

/// The key that makes a sale go to an integration at most once.
pub fn forward_dedupe_key(sale: SaleId, integration: IntegrationId) -> String {
    format!("forward:{sale}:{integration}")
}

/// What the database already holds that planning must respect.
#[derive(Debug, Default)]
pub struct Known {
    /// Each existing sale of the batch, with its tenant.
    pub sales: HashMap<SaleId, TenantId>,
    /// (event id, integration) pairs decided before: a redelivered event is
    /// not decided again, so a rule changed in between cannot make it forward
    /// a sale whose recorded decision says it did not.
    pub decided: HashSet<(uuid::Uuid, IntegrationId)>,
    /// (sale, integration) pairs whose forward delivery retention removed
    /// after it settled (`sales.settled_forwards`): forwarded already, as
    /// surely as if the delivery row were still there.
    pub settled_forwards: HashSet<(SaleId, IntegrationId)>,
    /// What each salesync integration with imported products knows of its
    /// provider: its sales go as the provider's orders.
    pub provider_mappings: HashMap<IntegrationId, ProviderMapping>,
}

/// Plans every message of a batch, in order. `messages[i]` is the decoded
/// envelope or why it could not be decoded.
pub fn plan_batch(
    messages: &[Result<&Envelope<SaleEvent>, String>],
    integrations: &[IntegrationConfig],
    known: &Known,
    now: DateTime<Utc>,
) -> Vec<MessagePlan> {
    let mut by_tenant: HashMap<TenantId, Vec<&IntegrationConfig>> = HashMap::new();
    for i in integrations {
        by_tenant.entry(i.tenant_id).or_default().push(i);
    }
    // Deliveries planned earlier in this batch: a later event for the same
    // (sale, integration) must not plan a second one.
    let mut planned_keys = HashSet::new();
    messages
        .iter()
        .map(|m| match m {
            Err(reason) => MessagePlan::Dead(reason.clone()),
            Ok(env) => plan_message(env, &by_tenant, known, now, &mut planned_keys),
        })
        .collect()
}

fn plan_message(
    env: &Envelope<SaleEvent>,
    by_tenant: &HashMap<TenantId, Vec<&IntegrationConfig>>,
    known: &Known,
    now: DateTime<Utc>,
    planned_keys: &mut HashSet<String>,
) -> MessagePlan {
    // A sale of another tenant is as good as missing: never act across tenants.
    if known.sales.get(&env.sale_id) != Some(&env.tenant_id) {
        return MessagePlan::Dead(format!("sale not found: {}", env.sale_id));
    }
    let tenant_integrations = by_tenant
        .get(&env.tenant_id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let considered = match integrations_considered(&env.payload.trigger, tenant_integrations) {
        Ok(c) => c,
        Err(reason) => return MessagePlan::Dead(reason),
    };
    let event_id = *env.id.as_uuid();
    let decisions = considered
        .into_iter()
        .filter(|i| !known.decided.contains(&(event_id, i.id)))
        .map(|integration| PlannedDecision {
            integration_id: integration.id,
            outcome: plan_one(env, integration, known, now, planned_keys),
        })
        .collect();
    MessagePlan::Decide(decisions)
}

fn plan_one(
    env: &Envelope<SaleEvent>,
    integration: &IntegrationConfig,
    known: &Known,
    now: DateTime<Utc>,
    planned_keys: &mut HashSet<String>,
) -> PlannedOutcome {
    if let Decision::Skip(reason) = decide(&env.payload, integration) {
        return PlannedOutcome::Skip(reason);
    }
    let dedupe_key = forward_dedupe_key(env.sale_id, integration.id);
    if planned_keys.contains(&dedupe_key)
        || known
            .settled_forwards
            .contains(&(env.sale_id, integration.id))
    {
        return PlannedOutcome::Skip(ALREADY_FORWARDED.into());
    }
    let id = DeliveryId::new();
    let source = Source {
        tenant_id: env.tenant_id,
        sale_id: env.sale_id,
        status: &env.payload.status,
        sale: &env.payload.sale,
    };
    let provider = known.provider_mappings.get(&integration.id);
    match target_request(source, integration, provider, &id.to_string(), now) {
        Err(reason) => PlannedOutcome::Skip(reason),
        Ok(request) => {
            planned_keys.insert(dedupe_key.clone());
            PlannedOutcome::Forward(NewDelivery {
                id,
                tenant_id: env.tenant_id,
                sale_id: env.sale_id,
                integration_id: integration.id,
                dedupe_key,
                request,
            })
        }
    }
}

/// One decision to record in `sale_decisions`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    pub sale_id: SaleId,
    pub integration_id: IntegrationId,
    pub event_id: uuid::Uuid,
    pub trigger: &'static str,
    pub status: String,
    /// The delivery the decision planned. Whether the sale was forwarded is
    /// known only once the database said if it created that delivery (else
    /// an earlier event already sent the sale there); `store::record` writes
    /// `FORWARDED` or `ALREADY_FORWARDED` accordingly.
    pub delivery_id: Option<DeliveryId>,
    /// Why the sale is not forwarded (decisions without a delivery).
    pub skip_reason: Option<String>,
}

/// The decisions to record for one planned message.
pub fn decision_rows(env: &Envelope<SaleEvent>, decisions: &[PlannedDecision]) -> Vec<DecisionRow> {
    decisions
        .iter()
        .map(|d| {
            let (delivery_id, skip_reason) = match &d.outcome {
                PlannedOutcome::Skip(reason) => (None, Some(reason.clone())),
                PlannedOutcome::Forward(nd) => (Some(nd.id), None),
            };
            DecisionRow {
                sale_id: env.sale_id,
                integration_id: d.integration_id,
                event_id: *env.id.as_uuid(),
                trigger: env.payload.trigger.name(),
                status: env.payload.status.clone(),
                delivery_id,
                skip_reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::domain::sample_sale;
    use salesync_core::integration::{Conditions, ForwardingMode, Mapping, TargetKind};
    use salesync_core::messages::Trigger;
    use std::collections::BTreeMap;

    fn integration(tenant: TenantId, kind: TargetKind) -> IntegrationConfig {
        IntegrationConfig {
            id: IntegrationId::new(),
            tenant_id: tenant,
            name: "target".into(),
            target_kind: kind,
            target_url: "https://t.example".into(),
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

    fn envelope(tenant: TenantId, sale: SaleId, trigger: Trigger) -> Envelope<SaleEvent> {
        Envelope::new(
            tenant,
            sale,
            SaleEvent {
                trigger,
                status: "completed".into(),
                accepted_at: Utc::now(),
                sale: sample_sale("pos-1"),
            },
        )
    }

    fn known(sale: SaleId, tenant: TenantId) -> Known {
        Known {
            sales: HashMap::from([(sale, tenant)]),
            ..Known::default()
        }
    }

    /// A plan in a shape a table can spell: "dead: reason" or one
    /// "forward" / "skip: reason" per decision.
    fn summary(p: &MessagePlan) -> Vec<String> {
        match p {
            MessagePlan::Dead(r) => vec![format!("dead: {r}")],
            MessagePlan::Decide(ds) => ds
                .iter()
                .map(|d| match &d.outcome {
                    PlannedOutcome::Skip(r) => format!("skip: {r}"),
                    PlannedOutcome::Forward(_) => "forward".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn plan_batch_table() {
        let tenant = TenantId::new();
        let lonely_tenant = TenantId::new();
        let other_tenant = TenantId::new();
        let sale = SaleId::new();
        let sale2 = SaleId::new();
        let retired_sale = SaleId::new();
        let lonely_sale = SaleId::new();
        let missing_sale = SaleId::new();
        let other_sale = SaleId::new();
        let webhook = integration(tenant, TargetKind::Webhook);
        let mut usd_only = integration(tenant, TargetKind::Salesync);
        usd_only.conditions.currencies = vec!["USD".into()];
        let mut bad_mapping = integration(other_tenant, TargetKind::Salesync);
        bad_mapping.mapping.skus = BTreeMap::from([("COF-001".into(), String::new())]);
        let gone = IntegrationId::new();
        let integrations = vec![webhook.clone(), usd_only.clone(), bad_mapping.clone()];
        let redelivered = envelope(tenant, sale2, Trigger::StatusChanged);
        let known = Known {
            sales: HashMap::from([
                (sale, tenant),
                (sale2, tenant),
                (retired_sale, tenant),
                (lonely_sale, lonely_tenant),
                (other_sale, other_tenant),
            ]),
            // The redelivered event was decided for the webhook before.
            decided: HashSet::from([(*redelivered.id.as_uuid(), webhook.id)]),
            // Retention removed this sale's settled delivery to the webhook.
            settled_forwards: HashSet::from([(retired_sale, webhook.id)]),
            ..Known::default()
        };

        let created = envelope(tenant, sale, Trigger::Created);
        let status_changed = envelope(tenant, sale, Trigger::StatusChanged);
        let sale2_created = envelope(tenant, sale2, Trigger::Created);
        let retired_changed = envelope(tenant, retired_sale, Trigger::StatusChanged);
        let manual_usd = envelope(
            tenant,
            sale,
            Trigger::Manual {
                integration_id: usd_only.id,
            },
        );
        let manual_gone = envelope(
            tenant,
            sale,
            Trigger::Manual {
                integration_id: gone,
            },
        );
        let missing = envelope(tenant, missing_sale, Trigger::Created);
        let wrong_tenant = envelope(other_tenant, sale, Trigger::Created);
        let no_integrations = envelope(lonely_tenant, lonely_sale, Trigger::Created);
        let invalid_mapping = envelope(other_tenant, other_sale, Trigger::Created);

        let currency_skip = "skip: currency EUR not in [USD]".to_string();
        // (message, expected plan summary)
        type Case<'a> = (Result<&'a Envelope<SaleEvent>, String>, Vec<String>);
        let batch: Vec<Case> = vec![
            (
                Err("poison: unknown schema version 7".into()),
                vec!["dead: poison: unknown schema version 7".into()],
            ),
            (Ok(&created), vec!["forward".into(), currency_skip.clone()]),
            // Same sale, same batch: the first event's delivery is the only one.
            (
                Ok(&status_changed),
                vec![format!("skip: {ALREADY_FORWARDED}"), currency_skip.clone()],
            ),
            // Another sale is independent.
            (
                Ok(&sale2_created),
                vec!["forward".into(), currency_skip.clone()],
            ),
            // A delivery removed by retention still counts as sent.
            (
                Ok(&retired_changed),
                vec![format!("skip: {ALREADY_FORWARDED}"), currency_skip.clone()],
            ),
            // Only what was not decided before is decided now.
            (Ok(&redelivered), vec![currency_skip.clone()]),
            (Ok(&manual_usd), vec![currency_skip]),
            (
                Ok(&manual_gone),
                vec![format!("dead: integration not found: {gone} (deleted?)")],
            ),
            (
                Ok(&missing),
                vec![format!("dead: sale not found: {missing_sale}")],
            ),
            (
                Ok(&wrong_tenant),
                vec![format!("dead: sale not found: {sale}")],
            ),
            (Ok(&no_integrations), vec![]),
            (
                Ok(&invalid_mapping),
                vec!["skip: mapped sale is invalid: lines[0].sku: must not be empty".into()],
            ),
        ];
        let (messages, want): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let plans = plan_batch(&messages, &integrations, &known, Utc::now());
        let got: Vec<Vec<String>> = plans.iter().map(summary).collect();
        assert_eq!(got, want);

        // Decisions name their integrations in the tenant's order.
        let MessagePlan::Decide(ds) = &plans[1] else {
            panic!("planned")
        };
        assert_eq!(ds[0].integration_id, webhook.id);
        assert_eq!(ds[1].integration_id, usd_only.id);
        let PlannedOutcome::Forward(nd) = &ds[0].outcome else {
            panic!("forward")
        };
        assert_eq!(nd.dedupe_key, format!("forward:{sale}:{}", webhook.id));
        assert_eq!(
            (nd.tenant_id, nd.sale_id, nd.integration_id),
            (tenant, sale, webhook.id)
        );
        assert_eq!(nd.request.url, "https://t.example");
    }

    #[test]
    fn salesync_body_uses_the_delivery_id() {
        let tenant = TenantId::new();
        let sale = SaleId::new();
        let target = integration(tenant, TargetKind::Salesync);
        let env = envelope(tenant, sale, Trigger::Created);
        let plans = plan_batch(&[Ok(&env)], &[target], &known(sale, tenant), Utc::now());
        let [MessagePlan::Decide(ds)] = plans.as_slice() else {
            panic!("one plan")
        };
        let PlannedOutcome::Forward(nd) = &ds[0].outcome else {
            panic!("forward")
        };
        assert_eq!(nd.request.body["external_id"], nd.id.to_string());
        assert_eq!(nd.request.url, "https://t.example/v1/sales");
    }

    #[test]
    fn decision_rows_table() {
        let tenant = TenantId::new();
        let sale = SaleId::new();
        let a = integration(tenant, TargetKind::Webhook);
        let b = integration(tenant, TargetKind::Webhook);
        let mut skipper = integration(tenant, TargetKind::Webhook);
        skipper.enabled = false;
        let env = envelope(tenant, sale, Trigger::StatusChanged);
        let plans = plan_batch(
            &[Ok(&env)],
            &[a.clone(), b.clone(), skipper.clone()],
            &known(sale, tenant),
            Utc::now(),
        );
        let [MessagePlan::Decide(ds)] = plans.as_slice() else {
            panic!("one plan")
        };
        let new_ids: Vec<DeliveryId> = ds
            .iter()
            .filter_map(|d| match &d.outcome {
                PlannedOutcome::Forward(nd) => Some(nd.id),
                PlannedOutcome::Skip(_) => None,
            })
            .collect();
        assert_eq!(new_ids.len(), 2);
        let rows = decision_rows(&env, ds);
        let got: Vec<(IntegrationId, Option<DeliveryId>, Option<&str>)> = rows
            .iter()
            .map(|r| (r.integration_id, r.delivery_id, r.skip_reason.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (a.id, Some(new_ids[0]), None),
                (b.id, Some(new_ids[1]), None),
                (skipper.id, None, Some("integration disabled")),
            ]
        );
        for r in &rows {
            assert_eq!(r.sale_id, sale);
            assert_eq!(r.event_id, *env.id.as_uuid());
            assert_eq!(r.trigger, "status_changed");
            assert_eq!(r.status, "completed");
        }
    }
}
