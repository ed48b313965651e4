//! The batch handler on `salesync.sale-events`: decode → load (integrations,
//! sales, earlier decisions) → plan (pure, `plan.rs`) → write deliveries,
//! forward commands (outbox) and decisions in ONE statement → wake the outbox
//! relay.
//!
//! Idempotent under redelivery: decisions are unique per (event, integration)
//! and deliveries per (sale, integration), and a forward command is written
//! only together with the delivery it creates — so a redelivered or repeated
//! event records nothing twice and sends nothing twice.

use std::collections::HashMap;

use salesync_core::amqp::consumer::{BatchHandler, Message, Outcome};
use salesync_core::amqp::publisher::Publisher;
use salesync_core::catalogue_store;
use salesync_core::db::HeldConnection;
use salesync_core::domain::IntegrationId;
use salesync_core::domain::ids::{DeliveryId, SaleId, TenantId};
use salesync_core::integration::TargetKind;
use salesync_core::integration_store;
use salesync_core::messages::{Envelope, ForwardCommand, Purpose, ROUTING_FORWARD, SaleEvent};
use salesync_core::metrics::Metrics;
use salesync_core::outbox::{Committed, Handoff, OutboxMessage};
use salesync_core::telemetry;
use tokio::sync::Mutex;
use tracing::Span;

use crate::plan::{self, MessagePlan, NewDelivery, PlannedOutcome};
use crate::store::{self, PlannedForward};

pub struct FilterHandler {
    /// Batches are handled one at a time, each on this connection.
    pub db: Mutex<HeldConnection>,
    /// Takes the forward commands each commit wrote, to publish them at once.
    pub handoff: Handoff,
    pub metrics: Metrics,
}

impl BatchHandler for FilterHandler {
    async fn handle(
        &self,
        batch: &[Message],
        _publisher: &Publisher,
    ) -> anyhow::Result<Vec<Outcome>> {
        self.handle_batch(batch).await
    }
}

impl FilterHandler {
    async fn handle_batch(&self, batch: &[Message]) -> anyhow::Result<Vec<Outcome>> {
        let spans: Vec<Span> = batch.iter().map(message_span).collect();
        let decoded: Vec<Result<Envelope<SaleEvent>, String>> = batch
            .iter()
            .zip(&spans)
            .map(|(m, span)| decode(m, span))
            .collect();
        let envelopes: Vec<&Envelope<SaleEvent>> =
            decoded.iter().filter_map(|d| d.as_ref().ok()).collect();
        let mut tenants: Vec<TenantId> = envelopes.iter().map(|e| e.tenant_id).collect();
        tenants.sort();
        tenants.dedup();
        let mut sale_ids: Vec<SaleId> = envelopes.iter().map(|e| e.sale_id).collect();
        sale_ids.sort();
        sale_ids.dedup();

        // No explicit transaction: the reads only steer planning (the write
        // below settles every race through its unique keys), and the write is
        // one statement.
        let mut db = self.db.lock().await;
        let event_ids: Vec<uuid::Uuid> = envelopes.iter().map(|e| *e.id.as_uuid()).collect();
        let (integrations, known) = db
            .run(async |conn| -> sqlx::Result<_> {
                let integrations = if tenants.is_empty() {
                    Vec::new()
                } else {
                    integration_store::load_for_tenants(&mut *conn, &tenants).await?
                };
                let mut known = store::known(conn, &sale_ids, &event_ids).await?;
                let providers: Vec<IntegrationId> = integrations
                    .iter()
                    .filter(|i| i.target_kind == TargetKind::Salesync)
                    .map(|i| i.id)
                    .collect();
                known.provider_mappings =
                    catalogue_store::provider_mappings(conn, &providers).await?;
                Ok((integrations, known))
            })
            .await?;
        let inputs: Vec<Result<&Envelope<SaleEvent>, String>> = decoded
            .iter()
            .map(|d| d.as_ref().map_err(Clone::clone))
            .collect();
        let plans = plan::plan_batch(&inputs, &integrations, &known, chrono::Utc::now());

        // Forward commands are built now, inside each message's span, so the
        // outbox row carries that message's trace on to the forwarder.
        let mut forwards: Vec<PlannedForward> = Vec::new();
        let mut rows = Vec::new();
        for ((plan, env), span) in plans.iter().zip(&decoded).zip(&spans) {
            let (MessagePlan::Decide(decisions), Ok(env)) = (plan, env) else {
                continue;
            };
            let _entered = span.enter();
            for d in decisions {
                if let PlannedOutcome::Forward(nd) = &d.outcome {
                    forwards.push(PlannedForward {
                        delivery: nd,
                        command: forward_message(env, nd),
                    });
                }
            }
            rows.extend(plan::decision_rows(env, decisions));
        }
        let recorded = db
            .run(async |conn| store::record(conn, &forwards, &rows).await)
            .await?;
        drop(db);
        let mut commands: Vec<Committed> = forwards
            .into_iter()
            .filter_map(|f| {
                let outbox_id = *recorded.created.get(&f.delivery.id)?;
                Some(Committed {
                    outbox_id,
                    message: f.command,
                })
            })
            .collect();
        commands.sort_unstable_by_key(|c| c.outbox_id);
        self.handoff.committed(commands);

        // Count only what was recorded now: a redelivery decided nothing new.
        for (_, _, forwarded, reason) in &recorded.decisions {
            self.metrics.decision(decision_label(*forwarded, reason));
        }
        let created = recorded.created;
        Ok(plans
            .into_iter()
            .zip(&decoded)
            .zip(&spans)
            .map(|((plan, env), span)| outcome(plan, env, span, &created))
            .collect())
    }
}

/// The span of one message, continuing the trace its producer started.
fn message_span(m: &Message) -> Span {
    let span = tracing::info_span!(
        "sale_event",
        message_id = tracing::field::Empty,
        tenant_id = tracing::field::Empty,
        sale_id = tracing::field::Empty,
        trigger = tracing::field::Empty,
    );
    telemetry::set_parent_from_headers(&span, &m.headers);
    span
}

fn decode(m: &Message, span: &Span) -> Result<Envelope<SaleEvent>, String> {
    match Envelope::<SaleEvent>::decode(&m.data) {
        Ok(env) => {
            span.record("message_id", tracing::field::display(env.id));
            span.record("tenant_id", tracing::field::display(env.tenant_id));
            span.record("sale_id", tracing::field::display(env.sale_id));
            span.record("trigger", env.payload.trigger.name());
            Ok(env)
        }
        Err(e) => Err(format!("poison: {e}")),
    }
}

fn forward_message(env: &Envelope<SaleEvent>, nd: &NewDelivery) -> OutboxMessage {
    let command = ForwardCommand {
        delivery_id: nd.id,
        purpose: Purpose::Forward,
        integration_id: Some(nd.integration_id),
        target_url: nd.request.url.clone(),
        target_ref: nd.id.to_string(),
        accepted_at: env.payload.accepted_at,
        // The body is stored with the delivery; the forwarder reads it there.
        body: None,
    };
    let envelope = Envelope::new(env.tenant_id, env.sale_id, command);
    OutboxMessage::from_envelope(ROUTING_FORWARD, &envelope)
}

/// The metric label of a decision: a small fixed set, never the free text.
fn decision_label(forwarded: bool, reason: &str) -> &'static str {
    if forwarded {
        "forwarded"
    } else if reason == plan::ALREADY_FORWARDED {
        "already_forwarded"
    } else {
        "skipped"
    }
}

/// The message's outcome, logged in its span.
fn outcome(
    plan: MessagePlan,
    env: &Result<Envelope<SaleEvent>, String>,
    span: &Span,
    created: &HashMap<DeliveryId, i64>,
) -> Outcome {
    let _entered = span.enter();
    match plan {
        MessagePlan::Dead(reason) => Outcome::Dead(reason),
        MessagePlan::Decide(decisions) => {
            if decisions.is_empty() {
                tracing::debug!(
                    "nothing to decide: the tenant has no integrations (or a redelivery)"
                );
            }
            if let Ok(env) = env {
                for d in &decisions {
                    match &d.outcome {
                        PlannedOutcome::Forward(nd) if created.contains_key(&nd.id) => {
                            tracing::info!(integration_id = %d.integration_id, delivery_id = %nd.id, status = %env.payload.status, "forwarding");
                        }
                        PlannedOutcome::Forward(_) => {
                            tracing::debug!(integration_id = %d.integration_id, "already forwarded");
                        }
                        PlannedOutcome::Skip(reason) => {
                            tracing::debug!(integration_id = %d.integration_id, reason, "not forwarded");
                        }
                    }
                }
            }
            Outcome::Ack
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_labels_are_a_fixed_set() {
        let cases = [
            (true, "forwarded", "forwarded"),
            (false, plan::ALREADY_FORWARDED, "already_forwarded"),
            (false, "integration disabled", "skipped"),
            (false, "gross 500 below minimum 1000", "skipped"),
        ];
        for (forwarded, reason, want) in cases {
            assert_eq!(decision_label(forwarded, reason), want, "{reason}");
        }
    }
}
