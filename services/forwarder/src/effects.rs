//! What handling one message leaves to be made durable in its group commit:
//! the outcome for the consumer loop, the delayed copy to publish (confirmed
//! before the commit), the attempt-log row, the delivery's new state, and
//! what to count and log once all of that is durable. Built here from the
//! decisions of `triage`, `classify` and `targets`; no I/O.

use std::time::Duration;

use salesync_core::amqp::consumer::Outcome;
use salesync_core::amqp::publisher::OutgoingMessage;
use salesync_core::domain::ids::{DeliveryId, IntegrationId};
use salesync_core::metrics::Metrics;

use crate::claims::Claim;
use crate::classify::{Resolution, Step, classify, defer_step, resolve};
use crate::deliver::Attempt;
use crate::handler::RetryPolicy;
use crate::message::Message;
use crate::store::{AttemptRecord, DeliveryUpdate};
use crate::targets::{DeferKind, Deferral};

/// One message, handled and waiting for its group commit.
#[derive(Debug)]
pub struct Prepared {
    pub outcome: Outcome,
    pub delayed_copy: Option<OutgoingMessage>,
    pub attempt: Option<AttemptRecord>,
    pub update: Option<DeliveryUpdate>,
    pub observation: Option<Observation>,
    /// Held until the outcome is committed and acked (see `claims`).
    pub claim: Option<Claim>,
}

/// Metrics and logs, applied only after the commit, so a group committed
/// twice is not counted twice.
#[derive(Debug)]
pub enum Observation {
    Sent {
        span: tracing::Span,
        purpose: &'static str,
        /// The integration delivered to (none for a tenant's webhook).
        integration: Option<IntegrationId>,
        request_secs: f64,
        resolution: Resolution,
        status_code: Option<u16>,
        /// For delivered forwards: seconds since ingest accepted the sale.
        sale_age_secs: Option<f64>,
    },
    Deferred {
        span: tracing::Span,
        kind: DeferKind,
        reason: String,
        queue_delay: Duration,
    },
    Held {
        span: tracing::Span,
        purpose: &'static str,
    },
}

impl Prepared {
    /// Nothing to record: ack (a duplicate).
    pub fn ack() -> Self {
        Self {
            outcome: Outcome::Ack,
            delayed_copy: None,
            attempt: None,
            update: None,
            observation: None,
            claim: None,
        }
    }

    /// Dead-letter with `reason`; `mark` names the delivery whose row should
    /// say so (none for poison or a delivery that does not exist).
    pub fn dead(reason: String, mark: Option<DeliveryId>) -> Self {
        let update = mark.map(|delivery_id| DeliveryUpdate {
            delivery_id,
            state: "dead",
            attempt: None,
            last_error: Some(reason.clone()),
            dead_reason: Some(reason.clone()),
            delivered_at: None,
        });
        Self {
            outcome: Outcome::Dead(reason),
            update,
            ..Self::ack()
        }
    }

    /// Held while the integration is paused: the row says so (and keeps its
    /// attempt count, so the resumed delivery goes on where it was), nothing
    /// is sent or queued, and the message is acked — the row is the durable
    /// copy (see `triage::Triage::Hold`).
    pub fn hold(msg: &Message) -> Self {
        Self {
            update: Some(DeliveryUpdate {
                delivery_id: msg.envelope.payload.delivery_id,
                state: "held",
                attempt: None,
                last_error: None,
                dead_reason: None,
                delivered_at: None,
            }),
            observation: Some(Observation::Held {
                span: msg.span.clone(),
                purpose: msg.envelope.payload.purpose.as_str(),
            }),
            ..Self::ack()
        }
    }

    pub fn with_claim(mut self, claim: Claim) -> Self {
        self.claim = Some(claim);
        self
    }
}

/// A message whose request was sent: the verdict on its answer, the retry
/// copy or the dead letter, the attempt log row and the delivery's state.
pub fn sent(
    msg: &Message,
    purpose: &'static str,
    attempt: Attempt,
    policy: &RetryPolicy,
    jitter: f64,
) -> Prepared {
    let env = &msg.envelope;
    let number = env.attempt;
    let resolution = resolve(
        classify(&attempt.outcome),
        number,
        policy.max_attempts,
        &policy.delays,
        jitter,
    );
    let status_code = attempt.status_code();
    let http_error = match &resolution {
        Resolution::Delivered => None,
        Resolution::Retry { reason, .. } | Resolution::Dead { reason } => Some(reason.clone()),
    };
    let error = match (http_error, &attempt.body_error) {
        (Some(e), Some(b)) => Some(format!("{e}; {b}")),
        (e, b) => e.or_else(|| b.clone()),
    };
    let mut delayed_copy = None;
    let (outcome_label, state, outcome) = match &resolution {
        Resolution::Delivered => ("delivered", "delivered", Outcome::Ack),
        Resolution::Retry {
            queue_delay,
            expiration_ms,
            ..
        } => {
            delayed_copy =
                Some(msg.delayed_copy(number.saturating_add(1), *queue_delay, *expiration_ms));
            // Acked: the retry copy is confirmed in its delay queue.
            ("retry", "retrying", Outcome::Ack)
        }
        Resolution::Dead { reason } => ("dead", "dead", Outcome::Dead(reason.clone())),
    };
    let finished_at =
        attempt.started_at + chrono::Duration::from_std(attempt.duration).unwrap_or_default();
    let attempt_no = i32::try_from(number).unwrap_or(i32::MAX);
    let record = AttemptRecord {
        delivery_id: env.payload.delivery_id,
        attempt: attempt_no,
        started_at: attempt.started_at,
        duration_ms: i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX),
        status_code: status_code.map(i32::from),
        error: error.clone(),
        outcome: outcome_label,
        response_excerpt: attempt.response_excerpt.clone(),
    };
    let update = DeliveryUpdate {
        delivery_id: env.payload.delivery_id,
        state,
        attempt: Some(attempt_no),
        last_error: error,
        dead_reason: match &resolution {
            Resolution::Dead { reason } => Some(reason.clone()),
            _ => None,
        },
        delivered_at: matches!(resolution, Resolution::Delivered).then_some(finished_at),
    };
    let sale_age_secs =
        (matches!(resolution, Resolution::Delivered) && purpose == "forward").then(|| {
            (finished_at - env.payload.accepted_at)
                .as_seconds_f64()
                .max(0.0)
        });
    Prepared {
        outcome,
        delayed_copy,
        attempt: Some(record),
        update: Some(update),
        observation: Some(Observation::Sent {
            span: msg.span.clone(),
            purpose,
            integration: env.payload.integration_id,
            request_secs: attempt.duration.as_secs_f64(),
            resolution,
            status_code,
            sale_age_secs,
        }),
        claim: None,
    }
}

/// A message that was not sent (its target's breaker is open, or the target
/// is too busy): a copy with the SAME attempt number waits in the delay
/// queue that covers the wait — putting it back uses none of its attempts.
/// Its row goes to `retrying` with the reason as `last_error`; no attempt is
/// logged, since no request was made.
pub fn deferred(msg: &Message, deferral: &Deferral, delays: &[Duration], jitter: f64) -> Prepared {
    let Some(Step::RetryIn {
        queue_delay,
        expiration_ms,
    }) = defer_step(deferral.wait, delays, jitter)
    else {
        // Without delay queues there is nowhere to wait: give up on it.
        let reason = format!("no retry delays configured: {}", deferral.reason);
        return Prepared::dead(reason, Some(msg.envelope.payload.delivery_id));
    };
    let env = &msg.envelope;
    Prepared {
        outcome: Outcome::Ack,
        delayed_copy: Some(msg.delayed_copy(env.attempt, queue_delay, expiration_ms)),
        attempt: None,
        update: Some(DeliveryUpdate {
            delivery_id: env.payload.delivery_id,
            state: "retrying",
            attempt: None,
            last_error: Some(deferral.reason.clone()),
            dead_reason: None,
            delivered_at: None,
        }),
        observation: Some(Observation::Deferred {
            span: msg.span.clone(),
            kind: deferral.kind,
            reason: deferral.reason.clone(),
            queue_delay,
        }),
        claim: None,
    }
}

/// Counts and logs a committed group's observations.
pub fn observe(metrics: &Metrics, group: &[Prepared]) {
    for p in group {
        if let Some(copy) = &p.delayed_copy {
            metrics.published(&copy.routing_key, 1);
        }
        match &p.observation {
            None => {}
            Some(Observation::Sent {
                span,
                purpose,
                integration,
                request_secs,
                resolution,
                status_code,
                sale_age_secs,
            }) => {
                let _entered = span.enter();
                metrics.target_request(purpose, *request_secs);
                match resolution {
                    Resolution::Delivered => {
                        metrics.delivery(purpose, "delivered");
                        if let Some(age) = sale_age_secs {
                            metrics.sale_delivered_after(*age);
                        }
                        tracing::info!(status = status_code, "delivered");
                    }
                    Resolution::Retry {
                        queue_delay,
                        reason,
                        kind,
                        ..
                    } => {
                        metrics.delivery(purpose, "retry");
                        metrics.retried(kind);
                        count_failure(metrics, integration, "retry");
                        tracing::warn!(status = status_code, reason, retry_in = ?queue_delay, "attempt failed, retry scheduled");
                    }
                    Resolution::Dead { reason } => {
                        metrics.delivery(purpose, "dead");
                        count_failure(metrics, integration, "dead");
                        tracing::warn!(status = status_code, reason, "delivery failed for good");
                    }
                }
            }
            Some(Observation::Deferred {
                span,
                kind,
                reason,
                queue_delay,
            }) => {
                let _entered = span.enter();
                metrics.deferred(kind.label());
                tracing::info!(reason, retry_in = ?queue_delay, "not sent now, put back without using an attempt");
            }
            Some(Observation::Held { span, purpose }) => {
                let _entered = span.enter();
                metrics.delivery(purpose, "held");
                tracing::info!("integration paused: delivery held until it is resumed");
            }
        }
    }
}

fn count_failure(metrics: &Metrics, integration: &Option<IntegrationId>, outcome: &str) {
    if let Some(id) = integration {
        metrics.integration_failure(&id.to_string(), outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{HttpOutcome, TransportError};
    use chrono::Utc;
    use salesync_core::domain::ids::{SaleId, TenantId};
    use salesync_core::messages::{Envelope, ForwardCommand, Purpose};
    use std::collections::BTreeMap;

    fn message(attempt: u32) -> Message {
        let delivery_id = DeliveryId::new();
        let mut envelope = Envelope::new(
            TenantId::new(),
            SaleId::new(),
            ForwardCommand {
                delivery_id,
                purpose: Purpose::Forward,
                integration_id: None,
                target_url: "http://127.0.0.1:1/".into(),
                target_ref: delivery_id.to_string(),
                accepted_at: Utc::now(),
                body: None,
            },
        );
        envelope.attempt = attempt;
        Message {
            envelope,
            headers: BTreeMap::from([("traceparent".to_string(), "00-a-b-01".to_string())]),
            redelivered: false,
            span: tracing::Span::none(),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            delays: vec![Duration::from_secs(1), Duration::from_secs(5)],
            max_attempts: 3,
        }
    }

    fn attempt(outcome: HttpOutcome) -> Attempt {
        Attempt {
            started_at: Utc::now(),
            duration: Duration::from_millis(12),
            outcome,
            response_excerpt: None,
            body_error: None,
        }
    }

    fn copy_attempt(p: &Prepared) -> Option<(u32, String)> {
        p.delayed_copy.as_ref().map(|c| {
            let env = Envelope::<ForwardCommand>::decode(&c.body).unwrap();
            (env.attempt, c.routing_key.clone())
        })
    }

    #[test]
    fn turns_answers_into_effects() {
        let ok = HttpOutcome::Response {
            status: 200,
            retry_after: None,
            body_excerpt: String::new(),
        };
        let timeout = HttpOutcome::Transport(TransportError::Timeout);
        // (name, attempt number, answer, outcome, state, logged outcome, copy's attempt)
        type Case = (
            &'static str,
            u32,
            HttpOutcome,
            Outcome,
            &'static str,
            &'static str,
            Option<u32>,
        );
        let cases: Vec<Case> = vec![
            (
                "delivered",
                1,
                ok,
                Outcome::Ack,
                "delivered",
                "delivered",
                None,
            ),
            (
                "retried as the next attempt",
                2,
                timeout.clone(),
                Outcome::Ack,
                "retrying",
                "retry",
                Some(3),
            ),
            (
                "last attempt dead",
                3,
                timeout,
                Outcome::Dead("gave up after 3 attempts: request timed out".into()),
                "dead",
                "dead",
                None,
            ),
        ];
        for (name, number, answer, outcome, state, logged, copy) in cases {
            let p = sent(&message(number), "forward", attempt(answer), &policy(), 0.0);
            assert_eq!(p.outcome, outcome, "case {name}");
            assert_eq!(
                p.update.as_ref().map(|u| u.state),
                Some(state),
                "case {name}"
            );
            assert_eq!(
                p.update.as_ref().and_then(|u| u.attempt),
                Some(number as i32),
                "case {name}"
            );
            assert_eq!(
                p.attempt.as_ref().map(|a| a.outcome),
                Some(logged),
                "case {name}"
            );
            assert_eq!(copy_attempt(&p).map(|c| c.0), copy, "case {name}");
        }
    }

    #[test]
    fn failures_are_counted_per_integration() {
        let integration = IntegrationId::new();
        let with_integration = |attempt_no| {
            let mut m = message(attempt_no);
            m.envelope.payload.integration_id = Some(integration);
            m
        };
        let timeout = || attempt(HttpOutcome::Transport(TransportError::Timeout));
        let ok = attempt(HttpOutcome::Response {
            status: 200,
            retry_after: None,
            body_excerpt: String::new(),
        });
        let metrics = Metrics::new("forwarder");
        let group = [
            sent(&with_integration(1), "forward", ok, &policy(), 0.0),
            sent(&with_integration(2), "forward", timeout(), &policy(), 0.0),
            sent(&with_integration(3), "forward", timeout(), &policy(), 0.0),
            // A tenant webhook has no integration: not counted per integration.
            sent(&message(3), "forward", timeout(), &policy(), 0.0),
        ];
        observe(&metrics, &group);
        let text = metrics.render();
        for outcome in ["retry", "dead"] {
            let line = format!(
                "salesync_integration_delivery_failures_total{{service=\"forwarder\",integration=\"{integration}\",outcome=\"{outcome}\"}} 1"
            );
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
        assert_eq!(
            text.matches("salesync_integration_delivery_failures_total{")
                .count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn a_deferral_uses_no_attempt_and_logs_none() {
        let deferral = Deferral {
            kind: DeferKind::CircuitOpen,
            wait: Duration::from_secs(3),
            reason: "circuit open: http://x:80 is failing, next probe in 3s".into(),
        };
        let p = deferred(&message(2), &deferral, &policy().delays, 0.0);
        assert_eq!(p.outcome, Outcome::Ack);
        assert!(p.attempt.is_none(), "no request, no attempt row");
        assert_eq!(
            copy_attempt(&p),
            Some((2, "salesync.forward.retry.5000ms".into())),
            "same attempt number, in the tier that covers the wait"
        );
        let u = p.update.expect("the row says why");
        assert_eq!((u.state, u.attempt), ("retrying", None));
        assert_eq!(u.last_error.as_deref(), Some(&*deferral.reason));
        assert_eq!(
            p.delayed_copy
                .map(|c| c.headers.contains_key("traceparent")),
            Some(true)
        );
    }

    #[test]
    fn a_hold_sends_queues_and_logs_nothing() {
        let m = message(3);
        let p = Prepared::hold(&m);
        assert_eq!(p.outcome, Outcome::Ack);
        assert!(p.delayed_copy.is_none() && p.attempt.is_none());
        let u = p.update.expect("the row says held");
        assert_eq!(
            (u.delivery_id, u.state, u.attempt),
            (m.envelope.payload.delivery_id, "held", None)
        );
    }

    #[test]
    fn dead_marks_the_row_only_when_asked() {
        let id = DeliveryId::new();
        let p = Prepared::dead("integration deleted: x".into(), Some(id));
        assert_eq!(p.outcome, Outcome::Dead("integration deleted: x".into()));
        assert_eq!(
            p.update.map(|u| (u.delivery_id, u.state)),
            Some((id, "dead"))
        );
        assert!(Prepared::dead("poison: x".into(), None).update.is_none());
    }
}
