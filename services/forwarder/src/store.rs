//! The forwarder's SQL, one statement per step for many messages at once:
//! load the deliveries of every waiting message with their bodies and
//! (encrypted) secrets (`row_loader`), then record a group commit's
//! attempts and the deliveries' new states in one statement.

use chrono::{DateTime, Utc};
use salesync_core::domain::ids::{DeliveryId, IntegrationId, TenantId};
use sqlx::PgConnection;

use crate::triage::DeliveryFacts;

/// Longest response excerpt kept per attempt (the attempt log is for people;
/// the rest of a big body is noise).
const EXCERPT_CHARS: usize = 2000;

/// One delivery, the body to send and the encrypted secrets its request is
/// signed with.
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub purpose: String,
    pub state: String,
    pub attempts: i32,
    pub integration_id: Option<IntegrationId>,
    pub integration_found: bool,
    pub integration_deleted: bool,
    pub integration_paused: bool,
    pub credentials_enc: Option<Vec<u8>>,
    pub signing_secrets_enc: Option<Vec<u8>>,
    /// The one secret a webhook is signed with (an encrypted JSON string):
    /// the tenant's for `status_webhook`, the partner's subscription's for
    /// `catalogue_callback`.
    pub webhook_secret_enc: Option<Vec<u8>>,
    pub dead_reason: Option<String>,
    /// What to send; `None` for deliveries made before bodies were stored
    /// (their commands carry the body instead).
    pub body: Option<serde_json::Value>,
}

impl DeliveryRow {
    pub fn facts(&self) -> DeliveryFacts {
        DeliveryFacts {
            purpose: self.purpose.clone(),
            state: self.state.clone(),
            attempts: self.attempts,
            integration_id: self.integration_id,
            integration_found: self.integration_found,
            integration_deleted: self.integration_deleted,
            integration_paused: self.integration_paused,
            tenant_secret_found: self.webhook_secret_enc.is_some(),
            dead_reason: self.dead_reason.clone(),
        }
    }
}

/// Loads the deliveries `keys` name, each only within the tenant its message
/// claims (a message can never reach another tenant's delivery or secrets).
/// The integration is joined for `forward`, the tenant's webhook secret for
/// `status_webhook`, the subscription's secret for `catalogue_callback`
/// (within the delivery's tenant too).
pub async fn load_deliveries(
    conn: &mut PgConnection,
    keys: &[(DeliveryId, TenantId)],
) -> sqlx::Result<Vec<DeliveryRow>> {
    let ids: Vec<DeliveryId> = keys.iter().map(|k| k.0).collect();
    let tenants: Vec<TenantId> = keys.iter().map(|k| k.1).collect();
    sqlx::query_as(
        "SELECT d.id, d.tenant_id, d.purpose, d.state, d.attempts, d.integration_id,
                i.id IS NOT NULL AS integration_found,
                i.deleted_at IS NOT NULL AS integration_deleted,
                i.paused_at IS NOT NULL AS integration_paused,
                i.credentials_enc, i.signing_secrets_enc,
                coalesce(t.webhook_secret_enc, cs.secret_enc) AS webhook_secret_enc,
                d.dead_reason, d.body
         FROM deliveries d
         JOIN (SELECT DISTINCT * FROM UNNEST($1::uuid[], $2::uuid[])) AS k(id, tenant_id)
              ON d.id = k.id AND d.tenant_id = k.tenant_id
         LEFT JOIN integrations i
                ON d.purpose = 'forward' AND i.id = d.integration_id AND i.tenant_id = d.tenant_id
         LEFT JOIN tenants t
                ON d.purpose = 'status_webhook' AND t.id = d.tenant_id
         LEFT JOIN catalogue_subscriptions cs
                ON d.purpose = 'catalogue_callback' AND cs.id = d.subscription_id
               AND cs.tenant_id = d.tenant_id
         -- Redundant with the join, but it pins the plan to the primary key.
         -- Without it a cached generic plan made while the table was empty
         -- may look deliveries up by the (tenant_id, dedupe_key) index, with
         -- the id as a mere filter: a scan of all the tenant's deliveries per
         -- message (seen in the benchmark as the forwarder falling to half
         -- speed, PostgreSQL's CPU per sale doubled).
         WHERE d.id = ANY($1)",
    )
    .bind(ids)
    .bind(tenants)
    .fetch_all(conn)
    .await
}

/// One HTTP attempt for the attempt log.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: DeliveryId,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// `delivered`, `retry` or `dead`.
    pub outcome: &'static str,
    pub response_excerpt: Option<String>,
}

/// A delivery's new state.
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    pub delivery_id: DeliveryId,
    /// `delivered`, `retrying`, `held` or `dead`.
    pub state: &'static str,
    /// The attempt just made; `None` when nothing was sent.
    pub attempt: Option<i32>,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Records a group's attempts and state changes atomically. A delivery that is
/// already `delivered` or `dead` is never moved (a late duplicate cannot undo
/// a success); its attempt is still logged, since the request did happen.
/// An integration's `failing_since` is set at its target's first failed
/// request after a success and cleared at the next success (deferrals and
/// holds send nothing and change nothing): the auto-pause check
/// (ingest's `pause`) reads it.
pub async fn record(
    conn: &mut PgConnection,
    attempts: &[AttemptRecord],
    updates: &[DeliveryUpdate],
) -> sqlx::Result<()> {
    if attempts.is_empty() && updates.is_empty() {
        return Ok(());
    }
    // One statement (its own transaction): the attempt log, the state
    // changes and the integrations' health commit together in a single
    // round trip.
    sqlx::query(
        "WITH logged AS (
             INSERT INTO delivery_attempts
                 (delivery_id, attempt, started_at, duration_ms, status_code, error, outcome, response_excerpt)
             SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::timestamptz[], $4::int4[],
                                  $5::int4[], $6::text[], $7::text[], $8::text[])),
         moved AS (
             UPDATE deliveries d SET
                 state        = u.state,
                 attempts     = GREATEST(d.attempts, u.attempt),
                 last_error   = COALESCE(u.last_error, d.last_error),
                 dead_reason  = COALESCE(u.dead_reason, d.dead_reason),
                 delivered_at = COALESCE(u.delivered_at, d.delivered_at),
                 -- a delivered sale is the status-poller's to watch from now on, if
                 -- its target can be asked (else it never enters the poller's queue)
                 poll_after   = CASE WHEN u.state = 'delivered' AND d.purpose = 'forward'
                                          AND EXISTS (SELECT 1 FROM integrations i
                                                      WHERE i.id = d.integration_id AND i.pollable)
                                     THEN now() ELSE d.poll_after END,
                 -- set exactly while dead / held (CHECKs hold it): the keys of
                 -- the dead-letter list and of resume's index, so that the
                 -- common update touches no indexed column
                 dead_at      = CASE WHEN u.state = 'dead' THEN now() END,
                 held_at      = CASE WHEN u.state = 'held' THEN COALESCE(d.held_at, now()) END,
                 updated_at   = now()
             FROM UNNEST($9::uuid[], $10::text[], $11::int4[], $12::text[], $13::text[], $14::timestamptz[])
                  AS u(id, state, attempt, last_error, dead_reason, delivered_at)
             WHERE d.id = u.id AND d.state NOT IN ('delivered', 'dead')
             RETURNING d.id, d.integration_id, u.state, u.attempt),
         -- Per integration whose target was asked: did any request succeed?
         health AS (
             SELECT integration_id, bool_or(state = 'delivered') AS ok,
                    min(id::text) FILTER (WHERE state <> 'delivered')::uuid AS failed_id
             FROM moved WHERE integration_id IS NOT NULL AND attempt IS NOT NULL
             GROUP BY integration_id),
         -- Only integrations whose health flips are written (and locked, in
         -- id order so that concurrent groups cannot deadlock on them).
         flips AS (
             SELECT i.id, h.ok, h.failed_id FROM integrations i JOIN health h ON h.integration_id = i.id
             WHERE (h.ok AND i.failing_since IS NOT NULL) OR (NOT h.ok AND i.failing_since IS NULL)
             ORDER BY i.id FOR UPDATE OF i)
         UPDATE integrations i SET
             failing_since       = CASE WHEN f.ok THEN NULL ELSE now() END,
             failing_delivery_id = CASE WHEN f.ok THEN NULL ELSE f.failed_id END
         FROM flips f WHERE i.id = f.id",
    )
    .bind(attempts.iter().map(|a| a.delivery_id).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.attempt).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.started_at).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.duration_ms).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.status_code).collect::<Vec<_>>())
    .bind(
        attempts
            .iter()
            .map(|a| a.error.as_deref().map(pg_text))
            .collect::<Vec<_>>(),
    )
    .bind(attempts.iter().map(|a| a.outcome).collect::<Vec<_>>())
    .bind(
        attempts
            .iter()
            .map(|a| a.response_excerpt.as_deref().map(excerpt))
            .collect::<Vec<_>>(),
    )
    .bind(updates.iter().map(|u| u.delivery_id).collect::<Vec<_>>())
    .bind(updates.iter().map(|u| u.state).collect::<Vec<_>>())
    .bind(updates.iter().map(|u| u.attempt).collect::<Vec<_>>())
    .bind(
        updates
            .iter()
            .map(|u| u.last_error.as_deref().map(pg_text))
            .collect::<Vec<_>>(),
    )
    .bind(
        updates
            .iter()
            .map(|u| u.dead_reason.as_deref().map(pg_text))
            .collect::<Vec<_>>(),
    )
    .bind(updates.iter().map(|u| u.delivered_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// PostgreSQL text cannot hold NUL; a target's garbage must not make the
/// insert fail (and the batch retry forever).
fn pg_text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

fn excerpt(s: &str) -> String {
    pg_text(crate::classify::truncate_chars(s, EXCERPT_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_storable() {
        assert_eq!(pg_text("a\0b"), "a\u{fffd}b");
        assert_eq!(excerpt(&"é".repeat(5000)).chars().count(), EXCERPT_CHARS);
    }
}
