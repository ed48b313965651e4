//! The forwarder's batch handler: consume → decide → send → decide → record.
//!
//! For one prefetch window: decode every message (poison is dead-lettered),
//! load all their deliveries in one query, triage (duplicates are acked
//! unsent), send the rest concurrently, resolve each answer, publish every
//! retry copy in one confirmed batch, and only then record all attempts and
//! states in one transaction. If publishing or recording fails, the batch
//! fails as a whole and is handled again; the target dedupes the repeated
//! request by its Idempotency-Key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use lapin::message::Delivery;
use salesync_core::amqp::consumer::{self, BatchHandler, Outcome};
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::amqp::topology;
use salesync_core::crypto::SecretBox;
use salesync_core::domain::ids::{DeliveryId, TenantId};
use salesync_core::integration::TargetCredentials;
use salesync_core::integration_store::{IntegrationSecrets, decrypt_secrets};
use salesync_core::messages::{Envelope, ForwardCommand, Payload};
use salesync_core::metrics::Metrics;
use salesync_core::telemetry;
use sqlx::PgPool;
use tracing::Instrument;
use tracing::field::Empty;

use crate::classify::{Resolution, classify, resolve};
use crate::deliver::{Attempt, Deliverer, Request};
use crate::store::{self, AttemptRecord, DeliveryRow, DeliveryUpdate};
use crate::triage::{MessageFacts, Triage, triage};

/// How failed attempts are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The delay-queue tiers (declared by the consumer loop).
    pub delays: Vec<Duration>,
    pub max_attempts: u32,
}

pub struct ForwardHandler {
    pool: PgPool,
    deliverer: Deliverer,
    secret_box: SecretBox,
    policy: RetryPolicy,
    metrics: Metrics,
}

impl ForwardHandler {
    pub fn new(
        pool: PgPool,
        deliverer: Deliverer,
        secret_box: SecretBox,
        policy: RetryPolicy,
        metrics: Metrics,
    ) -> Self {
        Self {
            pool,
            deliverer,
            secret_box,
            policy,
            metrics,
        }
    }
}

/// One decoded message of the batch.
struct Message {
    index: usize,
    envelope: Envelope<ForwardCommand>,
    headers: BTreeMap<String, String>,
    redelivered: bool,
    span: tracing::Span,
}

/// A message that will be sent, with what it is sent with.
struct Job<'a> {
    msg: &'a Message,
    purpose: &'static str,
    body: Vec<u8>,
    secrets: IntegrationSecrets,
}

/// What the batch will do once the retries are published and the records committed.
#[derive(Default)]
struct Effects {
    retries: Vec<OutgoingMessage>,
    attempts: Vec<AttemptRecord>,
    updates: Vec<DeliveryUpdate>,
    /// Metrics and logs, applied only after the records are durable, so a
    /// batch handled twice is not counted twice.
    observations: Vec<Observation>,
}

struct Observation {
    span: tracing::Span,
    purpose: &'static str,
    request_secs: f64,
    resolution: Resolution,
    status_code: Option<u16>,
    /// For delivered forwards: seconds since ingest accepted the sale.
    sale_age_secs: Option<f64>,
}

impl BatchHandler for ForwardHandler {
    async fn handle(
        &self,
        batch: &[Delivery],
        publisher: &Publisher,
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut outcomes = vec![Outcome::Ack; batch.len()];
        let messages = decode(batch, &mut outcomes);
        if messages.is_empty() {
            return Ok(outcomes);
        }

        let keys: Vec<(DeliveryId, TenantId)> = messages
            .iter()
            .map(|m| (m.envelope.payload.delivery_id, m.envelope.tenant_id))
            .collect();
        let rows: HashMap<(DeliveryId, TenantId), DeliveryRow> =
            store::load_deliveries(&self.pool, &keys)
                .await
                .map_err(|e| anyhow::anyhow!("loading deliveries: {e}"))?
                .into_iter()
                .map(|r| ((r.id, r.tenant_id), r))
                .collect();

        let mut effects = Effects::default();
        let jobs = self.triage_all(&messages, &rows, &mut outcomes, &mut effects);

        let results = futures::future::join_all(jobs.iter().map(|job| {
            let req = Request {
                url: &job.msg.envelope.payload.target_url,
                target_ref: &job.msg.envelope.payload.target_ref,
                body: &job.body,
                secrets: &job.secrets,
            };
            // The span is entered while the request runs, so `traceparent`
            // on the request continues this message's trace.
            let deliverer = &self.deliverer;
            async move { deliverer.send(&req).await }.instrument(job.msg.span.clone())
        }))
        .await;

        for (job, attempt) in jobs.iter().zip(results) {
            let outcome = self.settle(job, attempt, &mut effects);
            outcomes[job.msg.index] = outcome;
        }

        // Retry copies first: once they are confirmed in their delay queues,
        // acking the originals cannot lose a delivery.
        if !effects.retries.is_empty() {
            publisher
                .publish_all(&effects.retries)
                .await
                .map_err(|e| anyhow::anyhow!("publishing retries: {e}"))?;
        }
        store::record(&self.pool, &effects.attempts, &effects.updates)
            .await
            .map_err(|e| anyhow::anyhow!("recording attempts: {e}"))?;

        self.observe(&effects);
        Ok(outcomes)
    }
}

impl ForwardHandler {
    /// Triage every message; returns the ones to send. Duplicates stay `Ack`,
    /// refusals become `Dead` (and their delivery row says so).
    fn triage_all<'a>(
        &self,
        messages: &'a [Message],
        rows: &HashMap<(DeliveryId, TenantId), DeliveryRow>,
        outcomes: &mut [Outcome],
        effects: &mut Effects,
    ) -> Vec<Job<'a>> {
        let mut sending: HashSet<DeliveryId> = HashSet::new();
        let mut jobs = Vec::new();
        for msg in messages {
            let _entered = msg.span.enter();
            let cmd = &msg.envelope.payload;
            let row = rows.get(&(cmd.delivery_id, msg.envelope.tenant_id));
            let decision = triage(
                MessageFacts {
                    delivery_id: cmd.delivery_id,
                    attempt: msg.envelope.attempt,
                    redelivered: msg.redelivered,
                    copy_in_flight: sending.contains(&cmd.delivery_id),
                },
                row.map(DeliveryRow::facts).as_ref(),
            );
            let dead = |reason: String, mark: bool, effects: &mut Effects| {
                if mark {
                    effects.updates.push(DeliveryUpdate {
                        delivery_id: cmd.delivery_id,
                        state: "dead",
                        attempt: None,
                        last_error: Some(reason.clone()),
                        dead_reason: Some(reason.clone()),
                        delivered_at: None,
                    });
                }
                Outcome::Dead(reason)
            };
            match (decision, row) {
                (Triage::Duplicate(why), _) => {
                    tracing::info!(why, "duplicate message, acked without sending");
                }
                (Triage::Dead { reason, mark_dead }, _) => {
                    outcomes[msg.index] = dead(reason, mark_dead, effects);
                }
                (Triage::Send, None) => {
                    // triage only says Send for a loaded row; be safe anyway.
                    let id = cmd.delivery_id;
                    outcomes[msg.index] = dead(format!("delivery not found: {id}"), false, effects);
                }
                (Triage::Send, Some(row)) => match self.prepare(msg, row) {
                    Ok(job) => {
                        sending.insert(cmd.delivery_id);
                        jobs.push(job);
                    }
                    Err(reason) => outcomes[msg.index] = dead(reason, true, effects),
                },
            }
        }
        jobs
    }

    /// Decrypts the secrets and serialises the body of a message to send.
    fn prepare<'a>(&self, msg: &'a Message, row: &DeliveryRow) -> Result<Job<'a>, String> {
        let undecryptable =
            |e: salesync_core::crypto::CryptoError| format!("secrets undecryptable: {e}");
        let (purpose, secrets) = if row.purpose == "status_webhook" {
            let enc = row
                .webhook_secret_enc
                .as_deref()
                .ok_or("tenant webhook not configured: no webhook secret")?;
            // Ingest stores the tenant's secret as an encrypted JSON string.
            let secret: String = self.secret_box.decrypt_json(enc).map_err(undecryptable)?;
            let secrets = IntegrationSecrets {
                credentials: TargetCredentials::default(),
                signing_secrets: vec![secret],
            };
            ("status_webhook", secrets)
        } else {
            let signing = row
                .signing_secrets_enc
                .as_deref()
                .ok_or("integration not found: no signing secrets")?;
            let secrets =
                decrypt_secrets(&self.secret_box, row.credentials_enc.as_deref(), signing)
                    .map_err(undecryptable)?;
            ("forward", secrets)
        };
        let body = serde_json::to_vec(&msg.envelope.payload.body)
            .map_err(|e| format!("unserialisable body: {e}"))?;
        Ok(Job {
            msg,
            purpose,
            body,
            secrets,
        })
    }

    /// Resolves one sent attempt into the batch's effects; returns the outcome.
    fn settle(&self, job: &Job<'_>, attempt: Attempt, effects: &mut Effects) -> Outcome {
        let env = &job.msg.envelope;
        let number = env.attempt;
        let resolution = resolve(
            classify(&attempt.outcome),
            number,
            self.policy.max_attempts,
            &self.policy.delays,
            rand::random::<f64>(),
        );
        let status_code = attempt.status_code();
        let http_error = match (&resolution, status_code) {
            (Resolution::Delivered, _) => None,
            (Resolution::Retry { reason, .. }, _) | (Resolution::Dead { reason }, _) => {
                Some(reason.clone())
            }
        };
        let error = match (http_error, &attempt.body_error) {
            (Some(e), Some(b)) => Some(format!("{e}; {b}")),
            (e, b) => e.or_else(|| b.clone()),
        };
        let (outcome_label, state, outcome) = match &resolution {
            Resolution::Delivered => ("delivered", "delivered", Outcome::Ack),
            Resolution::Retry {
                queue_delay,
                expiration_ms,
                ..
            } => {
                let mut next = env.clone();
                next.attempt = number.saturating_add(1);
                effects.retries.push(OutgoingMessage {
                    exchange: String::new(),
                    routing_key: topology::retry_queue(*queue_delay),
                    message_id: env.id.to_string(),
                    message_type: ForwardCommand::TYPE.to_string(),
                    headers: retry_headers(&job.msg.headers),
                    body: next.to_bytes(),
                    expiration_ms: Some(*expiration_ms),
                });
                // Acked: the retry copy is confirmed in its delay queue.
                ("retry", "retrying", Outcome::Ack)
            }
            Resolution::Dead { reason } => ("dead", "dead", Outcome::Dead(reason.clone())),
        };
        let finished_at =
            attempt.started_at + chrono::Duration::from_std(attempt.duration).unwrap_or_default();
        let attempt_no = i32::try_from(number).unwrap_or(i32::MAX);
        effects.attempts.push(AttemptRecord {
            delivery_id: env.payload.delivery_id,
            attempt: attempt_no,
            started_at: attempt.started_at,
            duration_ms: i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX),
            status_code: status_code.map(i32::from),
            error: error.clone(),
            outcome: outcome_label,
            response_excerpt: attempt.response_excerpt.clone(),
        });
        effects.updates.push(DeliveryUpdate {
            delivery_id: env.payload.delivery_id,
            state,
            attempt: Some(attempt_no),
            last_error: error,
            dead_reason: match &resolution {
                Resolution::Dead { reason } => Some(reason.clone()),
                _ => None,
            },
            delivered_at: matches!(resolution, Resolution::Delivered).then_some(finished_at),
        });
        let sale_age_secs =
            (matches!(resolution, Resolution::Delivered) && job.purpose == "forward").then(|| {
                (finished_at - env.payload.accepted_at)
                    .as_seconds_f64()
                    .max(0.0)
            });
        effects.observations.push(Observation {
            span: job.msg.span.clone(),
            purpose: job.purpose,
            request_secs: attempt.duration.as_secs_f64(),
            resolution,
            status_code,
            sale_age_secs,
        });
        outcome
    }

    fn observe(&self, effects: &Effects) {
        for o in &effects.observations {
            let _entered = o.span.enter();
            self.metrics.target_request(o.purpose, o.request_secs);
            match &o.resolution {
                Resolution::Delivered => {
                    self.metrics.delivery(o.purpose, "delivered");
                    if let Some(age) = o.sale_age_secs {
                        self.metrics.sale_delivered_after(age);
                    }
                    tracing::info!(status = o.status_code, "delivered");
                }
                Resolution::Retry {
                    queue_delay,
                    reason,
                    kind,
                    ..
                } => {
                    self.metrics.delivery(o.purpose, "retry");
                    self.metrics.retried(kind);
                    tracing::warn!(status = o.status_code, reason, retry_in = ?queue_delay, "attempt failed, retry scheduled");
                }
                Resolution::Dead { reason } => {
                    self.metrics.delivery(o.purpose, "dead");
                    tracing::warn!(status = o.status_code, reason, "delivery failed for good");
                }
            }
        }
        for retry in &effects.retries {
            self.metrics.published(&retry.routing_key, 1);
        }
    }
}

/// Decodes the batch; poison is marked `Dead` in `outcomes` and left out.
fn decode(batch: &[Delivery], outcomes: &mut [Outcome]) -> Vec<Message> {
    let mut messages = Vec::with_capacity(batch.len());
    for (index, delivery) in batch.iter().enumerate() {
        let headers = consumer::headers(delivery);
        let span = tracing::info_span!(
            "forward",
            delivery_id = Empty,
            attempt = Empty,
            purpose = Empty,
            tenant_id = Empty,
            sale_id = Empty,
        );
        telemetry::set_parent_from_headers(&span, &headers);
        match Envelope::<ForwardCommand>::decode(&delivery.data) {
            Ok(envelope) => {
                span.record(
                    "delivery_id",
                    tracing::field::display(envelope.payload.delivery_id),
                );
                span.record("attempt", envelope.attempt);
                span.record("purpose", envelope.payload.purpose.as_str());
                span.record("tenant_id", tracing::field::display(envelope.tenant_id));
                span.record("sale_id", tracing::field::display(envelope.sale_id));
                messages.push(Message {
                    index,
                    envelope,
                    headers,
                    redelivered: delivery.redelivered,
                    span,
                });
            }
            Err(e) => {
                span.in_scope(|| tracing::warn!(error = %e, "poison message"));
                outcomes[index] = Outcome::Dead(format!("poison: {e}"));
            }
        }
    }
    messages
}

/// The headers a retry copy carries: the trace context and other application
/// headers, without what the broker added on the way (`x-death`, `x-first-death-*` …).
fn retry_headers(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(k, _)| !k.starts_with("x-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_copies_keep_trace_context_only() {
        let headers: BTreeMap<String, String> = [
            ("traceparent", "00-abc-def-01"),
            ("tracestate", "x=1"),
            ("x-first-death-queue", "salesync.forward.retry.1000ms"),
            ("x-delivery-count", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let kept: Vec<&str> = retry_headers(&headers)
            .into_keys()
            .map(|k| match k.as_str() {
                "traceparent" => "traceparent",
                "tracestate" => "tracestate",
                _ => "other",
            })
            .collect();
        assert_eq!(kept, ["traceparent", "tracestate"]);
    }
}
