//! Pausing integrations: by their tenant (`/v1/integrations/{id}/pause`),
//! by an operator (`/admin/integrations/{id}/pause`), or automatically when
//! their target has failed every request for `AUTO_PAUSE_AFTER`.
//!
//! While an integration is paused, the forwarder records each of its
//! deliveries as `held` and acks the command, sending nothing; the row is the
//! durable copy. Resuming clears the pause and, in the same transaction,
//! releases the held deliveries (back to `pending`/`retrying`) and writes a
//! fresh forward command for each to the outbox — same delivery id, same
//! `target_ref` (Idempotency-Key), the next attempt number. A periodic pass
//! (`run_periodic`, one replica at a time) auto-pauses failing integrations,
//! telling the tenant through its signed webhook, and releases held
//! deliveries that a resume did not (a hold committed just after the resume,
//! chunks beyond the first, a deleted integration's).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use salesync_core::domain::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::messages::{Envelope, ForwardCommand, Purpose, ROUTING_FORWARD};
use salesync_core::metrics::Metrics;
use salesync_core::outbox::{self, OutboxMessage};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store;
use crate::store::pause::{AutoPaused, Released};
use salesync_core::api::ApiError;
use salesync_core::api::field_checks;
use salesync_core::tenant_webhook::NewWebhookDelivery;
use salesync_core::tenant_webhook::tenant_webhook_command;

/// Held deliveries released per transaction.
pub const RELEASE_CHUNK: i64 = 500;
/// Integrations auto-paused per transaction of a pass.
const AUTO_PAUSE_CHUNK: i64 = 100;
/// Longest pause reason.
pub const MAX_REASON_CHARS: usize = 500;

/// Who paused an integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausedBy {
    Tenant,
    Operator,
    Auto,
}

impl PausedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            PausedBy::Tenant => "tenant",
            PausedBy::Operator => "operator",
            PausedBy::Auto => "auto",
        }
    }
}

/// `POST …/pause`'s body.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PauseRequest)]
pub struct PauseInput {
    /// Why: shown to the tenant and kept with the pause.
    #[schema(min_length = 1, max_length = 500, pattern = "^[^\\x00]*\\S[^\\x00]*$")]
    pub reason: String,
}

/// The reason as stored: trimmed, not blank, bounded, storable.
pub fn check_reason(reason: &str) -> Result<String, ApiError> {
    field_checks::check_reason(reason, MAX_REASON_CHARS, "the integration is paused")
        .map_err(|p| ApiError::invalid_field("reason", p))
}

/// Pauses the integration (`tenant`: `None` for an operator). Pausing a
/// paused integration changes nothing: the first pause, its author and
/// reason stand. 404 for an integration that is not the tenant's.
pub async fn pause(
    pool: &PgPool,
    tenant: Option<TenantId>,
    id: IntegrationId,
    by: PausedBy,
    reason: &str,
) -> Result<(), ApiError> {
    let reason = check_reason(reason)?;
    let mut conn = pool.acquire().await?;
    if store::pause::pause(&mut conn, tenant, id, by.as_str(), &reason).await? {
        tracing::info!(integration_id = %id, paused_by = by.as_str(), reason, "integration paused");
        return Ok(());
    }
    match store::pause::lock_paused_by(&mut conn, tenant, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound("integration")),
    }
}

#[derive(Serialize, Debug, PartialEq, utoipa::ToSchema)]
pub struct Resumed {
    /// Held deliveries sent on their way again.
    pub released: u64,
}

/// Resumes the integration: clears the pause and releases its held
/// deliveries (the first `RELEASE_CHUNK` in the same transaction, the rest
/// in further ones; whatever a crash leaves held, the periodic pass
/// releases). A tenant cannot lift an operator's pause (409
/// `paused_by_operator`). Resuming an integration that is not paused
/// releases whatever is left held.
pub async fn resume(
    pool: &PgPool,
    wake: &Notify,
    tenant: Option<TenantId>,
    id: IntegrationId,
) -> Result<Resumed, ApiError> {
    let mut tx = pool.begin().await?;
    let paused_by = store::pause::lock_paused_by(&mut tx, tenant, id)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    if tenant.is_some() && paused_by.as_deref() == Some(PausedBy::Operator.as_str()) {
        return Err(ApiError::Conflict {
            code: "paused_by_operator",
            message: format!(
                "integration {id} was paused by an operator; only an operator can resume it"
            ),
        });
    }
    store::pause::unpause(&mut tx, id).await?;
    let mut released = release_chunk(&mut tx, id).await?;
    tx.commit().await?;
    if paused_by.is_some() {
        tracing::info!(integration_id = %id, "integration resumed");
    }
    if released == RELEASE_CHUNK as u64 {
        released += release_all(pool, id).await?;
    }
    if released > 0 {
        wake.notify_one();
    }
    Ok(Resumed { released })
}

/// Releases one chunk in the caller's transaction, with its commands.
async fn release_chunk(
    conn: &mut sqlx::PgConnection,
    integration: IntegrationId,
) -> sqlx::Result<u64> {
    let released = store::pause::release_held(conn, integration, RELEASE_CHUNK).await?;
    let commands: Vec<OutboxMessage> = released.iter().map(release_command).collect();
    outbox::enqueue(conn, &commands).await?;
    Ok(released.len() as u64)
}

/// Releases chunk after chunk (a transaction each) until none is left.
async fn release_all(pool: &PgPool, integration: IntegrationId) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let n = release_chunk(&mut tx, integration).await?;
        tx.commit().await?;
        total += n;
        if n < RELEASE_CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// The forward command that sends a released delivery: its own id and
/// `target_ref`, to the integration's current URL, as the attempt after the
/// ones already made (so the forwarder neither repeats nor skips one).
pub fn release_command(d: &Released) -> OutboxMessage {
    let command = ForwardCommand {
        delivery_id: d.id,
        purpose: Purpose::Forward,
        integration_id: Some(d.integration_id),
        target_url: d.target_url.clone(),
        target_ref: d.target_ref.clone(),
        // When the delivery was planned: the closest stored stand-in for
        // the sale's acceptance (it only feeds latency metrics).
        accepted_at: d.created_at,
        body: None,
    };
    let mut envelope = Envelope::new(d.tenant_id, d.sale_id, command);
    envelope.attempt = u32::try_from(d.attempts).unwrap_or(0).saturating_add(1);
    OutboxMessage::from_envelope(ROUTING_FORWARD, &envelope)
}

/// The body POSTed to the tenant's webhook when an integration is
/// auto-paused (docs/contracts.md).
pub fn paused_event_body(p: &AutoPaused, timestamp: DateTime<Utc>) -> serde_json::Value {
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({
        "type": "integration.paused",
        "timestamp": ts(timestamp),
        "data": {
            "integration_id": p.id,
            "name": p.name,
            "paused_by": PausedBy::Auto.as_str(),
            "reason": p.reason,
            "paused_at": ts(p.paused_at),
            "failing_since": ts(p.failing_since),
            "first_failed_delivery_id": p.failing_delivery_id,
            "first_failed_sale_id": p.failing_sale_id,
        }
    })
}

/// The auto-pause's reason, naming the setting.
pub fn auto_reason(after: Duration) -> String {
    format!(
        "every request to the target failed for {} (AUTO_PAUSE_AFTER)",
        written(after)
    )
}

/// A duration in the largest unit `parse_duration` reads that writes it whole.
fn written(d: Duration) -> String {
    let (ms, s) = (d.as_millis(), d.as_secs());
    match (ms % 1000, s % 3600, s % 60) {
        (0, 0, _) if s > 0 => format!("{}h", s / 3600),
        (0, _, 0) if s > 0 => format!("{}m", s / 60),
        (0, _, _) => format!("{s}s"),
        _ => format!("{ms}ms"),
    }
}

/// The notification of one auto-pause: its delivery row and its command;
/// `None` when the tenant has no webhook or the failed sale is gone.
fn notification(p: &AutoPaused, now: DateTime<Utc>) -> Option<(NewWebhookDelivery, OutboxMessage)> {
    let (url, sale_id): (&String, SaleId) = (p.webhook_url.as_ref()?, p.failing_sale_id?);
    let id = DeliveryId::new();
    let delivery = NewWebhookDelivery {
        id,
        tenant_id: p.tenant_id,
        sale_id,
        dedupe_key: format!(
            "integration.paused:{}:{}",
            p.id,
            p.paused_at.timestamp_micros()
        ),
        target_url: url.clone(),
        body: paused_event_body(p, now),
    };
    let command = tenant_webhook_command(p.tenant_id, sale_id, id, url, now);
    Some((delivery, command))
}

/// One periodic pass: auto-pause what is due (telling each tenant), then
/// release what is held but no longer paused. Auto-pausing runs only on the
/// replica that gets the pass's advisory lock; releases may run on several
/// at once (each row is taken by one, `SKIP LOCKED`). Returns (paused,
/// released).
pub async fn pass(pool: &PgPool, after: Duration) -> sqlx::Result<(usize, u64)> {
    let reason = auto_reason(after);
    let mut paused = 0;
    loop {
        let mut tx = pool.begin().await?;
        if !store::pause::try_lock_pass(&mut tx).await? {
            return Ok((paused, 0));
        }
        let due = store::pause::auto_pause_due(&mut tx, after, &reason, AUTO_PAUSE_CHUNK).await?;
        let now = Utc::now();
        let (deliveries, commands): (Vec<_>, Vec<_>) =
            due.iter().filter_map(|p| notification(p, now)).unzip();
        salesync_core::tenant_webhook::insert_webhook_deliveries(&mut tx, &deliveries).await?;
        outbox::enqueue(&mut tx, &commands).await?;
        tx.commit().await?;
        for p in &due {
            tracing::warn!(
                integration_id = %p.id, tenant_id = %p.tenant_id, failing_since = %p.failing_since,
                notified = p.webhook_url.is_some() && p.failing_sale_id.is_some(),
                "integration auto-paused: its target has failed every request"
            );
        }
        paused += due.len();
        if (due.len() as i64) < AUTO_PAUSE_CHUNK {
            break;
        }
    }
    let mut released = 0;
    let leftovers = {
        let mut conn = pool.acquire().await?;
        store::pause::released_with_held(&mut conn, AUTO_PAUSE_CHUNK).await?
    };
    for id in leftovers {
        released += release_all(pool, id).await?;
    }
    Ok((paused, released))
}

/// Paused integrations exported per integration at most: more than this
/// many at once is an incident the count already shows.
const PAUSED_EXPORTED: i64 = 1000;

/// Exports the integrations paused now (`salesync_integration_paused`), on
/// every replica whether or not it ran the pass.
pub async fn report_paused(pool: &PgPool, metrics: &Metrics) -> sqlx::Result<()> {
    let mut conn = pool.acquire().await?;
    let paused = store::pause::paused_now(&mut conn, PAUSED_EXPORTED).await?;
    let labels: Vec<(String, String, String)> = paused
        .into_iter()
        .map(|(id, tenant, by)| (id.to_string(), tenant.to_string(), by))
        .collect();
    metrics.integrations_paused(&labels);
    Ok(())
}

/// Runs `pass` every `interval` until `shutdown`; a failed pass is logged
/// and tried again at the next tick. Each tick also refreshes the paused
/// integrations' gauge.
pub async fn run_periodic(
    pool: PgPool,
    wake: Arc<Notify>,
    metrics: Metrics,
    after: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match pass(&pool, after).await {
            Ok((paused, released)) => {
                if paused > 0 || released > 0 {
                    tracing::info!(paused, released, "pause pass");
                    wake.notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pause pass failed; trying again at the next tick")
            }
        }
        if let Err(e) = report_paused(&pool, &metrics).await {
            tracing::debug!(error = %e, "paused integrations not exported this tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(attempts: i32) -> Released {
        Released {
            id: DeliveryId::new(),
            tenant_id: TenantId::new(),
            sale_id: SaleId::new(),
            integration_id: IntegrationId::new(),
            target_url: "https://new.example/hook".into(),
            target_ref: "ref-1".into(),
            attempts,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_released_delivery_goes_on_with_its_next_attempt() {
        for (attempts, next) in [(0, 1), (1, 2), (7, 8)] {
            let d = released(attempts);
            let m = release_command(&d);
            assert_eq!(m.routing_key, "sale.forward");
            let env = Envelope::<ForwardCommand>::decode(&m.body).unwrap();
            assert_eq!(env.attempt, next, "after {attempts} attempts");
            assert_eq!(
                (env.payload.delivery_id, env.payload.target_ref.as_str()),
                (d.id, "ref-1"),
                "same delivery, same idempotency key"
            );
            assert_eq!(env.payload.target_url, "https://new.example/hook");
            assert_eq!((env.tenant_id, env.sale_id), (d.tenant_id, d.sale_id));
        }
    }

    #[test]
    fn durations_are_written_as_configured() {
        for (d, w) in [
            (Duration::from_secs(86_400), "24h"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(written(d), w);
        }
    }

    #[test]
    fn reasons_are_checked() {
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        for (reason, ok) in [
            ("target migrating", Some("target migrating")),
            ("  padded ", Some("padded")),
            ("", None),
            ("  ", None),
            (long.as_str(), None),
            ("a\0b", None),
        ] {
            match (check_reason(reason), ok) {
                (Ok(got), Some(want)) => assert_eq!(got, want),
                (Err(ApiError::Validation(f)), None) => assert_eq!(f[0].field, "reason"),
                (got, want) => panic!("{reason:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_paused_event_follows_the_contract() {
        let t = DateTime::parse_from_rfc3339("2025-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = AutoPaused {
            id: IntegrationId::new(),
            tenant_id: TenantId::new(),
            name: "accounting".into(),
            paused_at: t,
            reason: auto_reason(Duration::from_secs(86_400)),
            failing_since: t - chrono::Duration::days(1),
            failing_delivery_id: Some(DeliveryId::new()),
            failing_sale_id: Some(SaleId::new()),
            webhook_url: Some("https://hook.example/x".into()),
        };
        let body = paused_event_body(&p, t);
        assert_eq!(body["type"], "integration.paused");
        assert_eq!(body["data"]["paused_by"], "auto");
        assert_eq!(body["data"]["failing_since"], "2025-02-28T12:00:00.000Z");
        assert_eq!(
            body["data"]["reason"],
            "every request to the target failed for 24h (AUTO_PAUSE_AFTER)"
        );
        let keys: Vec<&str> = body["data"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "failing_since",
                "first_failed_delivery_id",
                "first_failed_sale_id",
                "integration_id",
                "name",
                "paused_at",
                "paused_by",
                "reason"
            ]
        );
        let (d, m) = notification(&p, t).expect("a webhook and a sale: notified");
        assert!(d.dedupe_key.starts_with("integration.paused:"));
        let env = Envelope::<ForwardCommand>::decode(&m.body).unwrap();
        assert_eq!(env.payload.purpose, Purpose::StatusWebhook);
        assert_eq!(env.payload.delivery_id, d.id);
        let silent = AutoPaused {
            webhook_url: None,
            ..p.clone()
        };
        assert!(
            notification(&silent, t).is_none(),
            "no webhook: nobody to tell"
        );
    }
}
