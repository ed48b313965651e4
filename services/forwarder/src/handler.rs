//! The forwarder's handler, pipelined (see `consumer::run_pipelined`): each
//! message is handled on its own as soon as it arrives — decode, claim its
//! delivery, load the row, triage, pass the target's limits, send, decide —
//! so a slow target holds back nothing but its own deliveries. Finished
//! messages are made durable in group commits: every delayed copy published
//! and confirmed first, then every attempt and state change in one
//! transaction; only then does the consumer loop dead-letter and ack. If
//! publishing or recording fails, the group is committed again (the sends are
//! not repeated); a copy published twice is deduplicated by triage.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use salesync_core::amqp::consumer::{self, Outcome, PipelineHandler};
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::crypto::SecretBox;
use salesync_core::db::HeldConnection;
use salesync_core::integration::TargetCredentials;
use salesync_core::integration_store::{IntegrationSecrets, decrypt_secrets};
use salesync_core::metrics::Metrics;
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::claims::Claims;
use crate::deliver::{Deliverer, Request};
use crate::effects::{self, Prepared};
use crate::message::{self, Message};
use crate::row_loader::RowLoader;
use crate::store::{self, AttemptRecord, DeliveryRow, DeliveryUpdate};
use crate::targets::{Entry, Targets};
use crate::triage::{MessageFacts, Triage, triage};

/// How failed attempts are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The delay-queue tiers (declared by the consumer loop).
    pub delays: Vec<Duration>,
    pub max_attempts: u32,
}

pub struct ForwardHandler {
    /// Records each group's attempts (groups are committed one at a time).
    db: Mutex<HeldConnection>,
    rows: RowLoader,
    claims: Claims,
    targets: Arc<Targets>,
    deliverer: Deliverer,
    secret_box: SecretBox,
    policy: RetryPolicy,
    metrics: Metrics,
    /// Ends waits for a target's slot: at shutdown, what was not sent yet is
    /// left for redelivery rather than started.
    shutdown: CancellationToken,
}

/// What a message is sent with.
struct Job {
    purpose: &'static str,
    body: Vec<u8>,
    secrets: IntegrationSecrets,
}

impl ForwardHandler {
    /// Must be called inside a Tokio runtime (starts the row loader).
    pub fn new(
        pool: PgPool,
        deliverer: Deliverer,
        secret_box: SecretBox,
        policy: RetryPolicy,
        targets: Arc<Targets>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            rows: RowLoader::spawn(pool.clone()),
            db: Mutex::new(HeldConnection::new(pool)),
            claims: Claims::default(),
            targets,
            deliverer,
            secret_box,
            policy,
            metrics,
            shutdown,
        }
    }
}

impl PipelineHandler for ForwardHandler {
    type Prepared = Prepared;

    async fn prepare(&self, delivered: &consumer::Message) -> anyhow::Result<Prepared> {
        let (span, decoded) = message::decode(delivered);
        match decoded {
            Ok(msg) => self.handle(msg).instrument(span).await,
            Err(reason) => {
                span.in_scope(|| tracing::warn!(reason, "poison message"));
                Ok(Prepared::dead(reason, None))
            }
        }
    }

    async fn commit(
        &self,
        group: &[Prepared],
        publisher: &Publisher,
    ) -> anyhow::Result<Vec<Outcome>> {
        let copies: Vec<OutgoingMessage> = group
            .iter()
            .filter_map(|p| p.delayed_copy.clone())
            .collect();
        let attempts: Vec<AttemptRecord> = group.iter().filter_map(|p| p.attempt.clone()).collect();
        let updates: Vec<DeliveryUpdate> = group.iter().filter_map(|p| p.update.clone()).collect();
        // Delayed copies first: once they are confirmed in their delay
        // queues, acking the originals cannot lose a delivery.
        if !copies.is_empty() {
            publisher
                .publish_all(&copies)
                .await
                .map_err(|e| anyhow::anyhow!("publishing retries: {e}"))?;
        }
        self.db
            .lock()
            .await
            .run(async |conn| store::record(conn, &attempts, &updates).await)
            .await
            // The sqlx error stays in the chain: a refusal isolates the
            // message it is about (see `consumer::PipelineHandler::commit`).
            .context("recording attempts")?;
        effects::observe(&self.metrics, group);
        Ok(group.iter().map(|p| p.outcome.clone()).collect())
    }
}

impl ForwardHandler {
    /// Handles one decoded message (inside its span). `Err` only for a
    /// transient failure before anything was sent.
    async fn handle(&self, msg: Message) -> anyhow::Result<Prepared> {
        let cmd = &msg.envelope.payload;
        // Claimed before the row is read: see `claims`.
        let claim = self
            .claims
            .claim(cmd.delivery_id, &self.shutdown)
            .await
            .ok_or_else(|| anyhow::anyhow!("shutting down while another copy was in flight"))?;
        let row = self
            .rows
            .load(cmd.delivery_id, msg.envelope.tenant_id)
            .await?;
        let decision = triage(
            MessageFacts {
                delivery_id: cmd.delivery_id,
                attempt: msg.envelope.attempt,
                redelivered: msg.redelivered,
            },
            row.as_ref().map(DeliveryRow::facts).as_ref(),
        );
        let prepared = match (decision, row) {
            (Triage::Duplicate(why), _) => {
                tracing::info!(why, "duplicate message, acked without sending");
                Prepared::ack()
            }
            (Triage::Hold, _) => Prepared::hold(&msg),
            (Triage::Dead { reason, mark_dead }, _) => {
                Prepared::dead(reason, mark_dead.then_some(cmd.delivery_id))
            }
            (Triage::Send, None) => {
                // triage only says Send for a loaded row; be safe anyway.
                let id = cmd.delivery_id;
                Prepared::dead(format!("delivery not found: {id}"), None)
            }
            (Triage::Send, Some(row)) => match self.job(&msg, &row) {
                Ok(job) => self.send(&msg, job).await?,
                Err(reason) => Prepared::dead(reason, Some(cmd.delivery_id)),
            },
        };
        Ok(prepared.with_claim(claim))
    }

    /// Passes the target's limits and sends, or puts the message back.
    async fn send(&self, msg: &Message, job: Job) -> anyhow::Result<Prepared> {
        let url = &msg.envelope.payload.target_url;
        tracing::Span::current().record("target", url.as_str());
        let entry = self
            .targets
            .enter(url, &self.shutdown)
            .await
            .ok_or_else(|| anyhow::anyhow!("shutting down before the request was sent"))?;
        let pass = match entry {
            Entry::Send(pass) => pass,
            Entry::Defer(deferral) => {
                return Ok(effects::deferred(
                    msg,
                    &deferral,
                    &self.policy.delays,
                    rand::random::<f64>(),
                ));
            }
        };
        if pass.is_probe() {
            tracing::info!("sending the circuit breaker's probe");
        }
        let req = Request {
            url,
            target_ref: &msg.envelope.payload.target_ref,
            body: &job.body,
            secrets: &job.secrets,
        };
        // Runs inside the message's span, so `traceparent` continues its trace.
        let attempt = self.deliverer.send(&req).await;
        pass.finish(&attempt.outcome, attempt.duration, msg.envelope.attempt > 1);
        Ok(effects::sent(
            msg,
            job.purpose,
            attempt,
            &self.policy,
            rand::random::<f64>(),
        ))
    }

    /// Decrypts the secrets and serialises the body to send;
    /// `Err` is a reason to dead-letter it.
    fn job(&self, msg: &Message, row: &DeliveryRow) -> Result<Job, String> {
        let undecryptable =
            |e: salesync_core::crypto::CryptoError| format!("secrets undecryptable: {e}");
        let webhook = match row.purpose.as_str() {
            "status_webhook" => Some((
                "status_webhook",
                "tenant webhook not configured: no webhook secret",
            )),
            "catalogue_callback" => Some((
                "catalogue_callback",
                "catalogue subscription not found: no secret",
            )),
            _ => None,
        };
        let (purpose, secrets) = if let Some((purpose, missing)) = webhook {
            let enc = row.webhook_secret_enc.as_deref().ok_or(missing)?;
            // Console stores the tenant's (or subscription's) secret as an
            // encrypted JSON string.
            let secret: String = self.secret_box.decrypt_json(enc).map_err(undecryptable)?;
            let secrets = IntegrationSecrets {
                credentials: TargetCredentials::default(),
                signing_secrets: vec![secret],
            };
            (purpose, secrets)
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
        // Commands from older producers carry the body; current ones leave it
        // to the row (the one copy of it, also what a replay re-sends).
        let body = row
            .body
            .as_ref()
            .or(msg.envelope.payload.body.as_ref())
            .ok_or("no body stored with the delivery")?;
        let body = serde_json::to_vec(body).map_err(|e| format!("unserialisable body: {e}"))?;
        Ok(Job {
            purpose,
            body,
            secrets,
        })
    }
}
