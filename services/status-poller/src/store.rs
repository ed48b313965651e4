//! The poller's PostgreSQL side: claim the deliveries due for a status check,
//! load their integrations (with decrypted credentials), and write a tick's
//! changes together with the `StatusUpdate` messages announcing them.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use salesync_core::crypto::SecretBox;
use salesync_core::domain::ids::IntegrationId;
use salesync_core::integration::IntegrationConfig;
use salesync_core::integration_store::{self, IntegrationSecrets};
use salesync_core::messages::{Envelope, ROUTING_STATUS, StatusUpdate};
use salesync_core::outbox::{self, OutboxMessage};
use salesync_core::telemetry;
use sqlx::{PgPool, Row};

use crate::plan::{Change, ClaimedDelivery};

/// What one claim took: the deliveries to ask about now, and how many due
/// deliveries were retired because their integration can't be polled.
#[derive(Debug, Default)]
pub struct Claim {
    pub deliveries: Vec<ClaimedDelivery>,
    pub retired: usize,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    delivery: ClaimedDelivery,
    pollable: bool,
}

/// Claims up to `limit` due deliveries in one statement. Row locks with
/// `SKIP LOCKED` make replicas claim disjoint sets.
///
/// A delivery is due when it was forwarded and delivered, its target status
/// isn't final and its `poll_after` has passed (the forwarder sets it on
/// delivery, only if the integration is `pollable`; NULL means "not
/// watched"). A due delivery whose integration is still pollable (live,
/// `poll_status`, and a target that can be asked: salesync, or webhook with a
/// status URL; see migration 0003) gets `poll_after` one `interval`
/// ahead: it is asked about now and again one interval later whatever
/// happens to this tick (a failing target is simply polled again, a crashed
/// poller loses nothing). A due delivery whose integration stopped being
/// pollable is retired (`poll_after` NULL): otherwise it would stay due
/// forever and each tick would scan past it. (Turning polling
/// on later re-arms an integration's deliveries by setting `poll_after`.)
pub async fn claim_due(pool: &PgPool, interval: Duration, limit: i64) -> sqlx::Result<Claim> {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "WITH due AS (
             SELECT d.id, i.pollable
             FROM deliveries d
             JOIN integrations i ON i.id = d.integration_id
             -- poll_after is set only on delivered forwards whose status is
             -- not final (a CHECK holds it; migration 0005)
             WHERE d.poll_after <= now()
             ORDER BY d.poll_after
             LIMIT $1
             FOR UPDATE OF d SKIP LOCKED)
         UPDATE deliveries d
         SET poll_after = CASE WHEN due.pollable
                               THEN now() + ($2::bigint * interval '1 millisecond') END
         FROM due
         WHERE d.id = due.id
         RETURNING d.id, d.tenant_id, d.sale_id, d.integration_id, d.target_ref,
                   d.target_status, d.traceparent, due.pollable",
    )
    .bind(limit)
    .bind(interval_ms)
    .fetch_all(pool)
    .await?;
    let mut claim = Claim::default();
    for r in rows {
        if r.pollable {
            claim.deliveries.push(r.delivery);
        } else {
            claim.retired += 1;
        }
    }
    Ok(claim)
}

/// An integration as loaded for polling: its config, or why it can't be polled.
pub struct LoadedIntegration {
    pub config: IntegrationConfig,
    pub secrets: Result<IntegrationSecrets, salesync_core::crypto::CryptoError>,
}

/// The live integrations with these ids, their secrets decrypted (a secret
/// that doesn't decrypt — key rotated out, tampered row — fails only that
/// integration).
pub async fn load_integrations(
    pool: &PgPool,
    secret_box: &SecretBox,
    ids: &[IntegrationId],
) -> sqlx::Result<Vec<LoadedIntegration>> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| *i.as_uuid()).collect();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {cols}, credentials_enc, signing_secrets_enc FROM integrations
         WHERE id = ANY($1) AND deleted_at IS NULL",
        cols = integration_store::COLUMNS
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let config = integration_store::from_row(row)?;
            let credentials: Option<Vec<u8>> = row.try_get("credentials_enc")?;
            let signing: Vec<u8> = row.try_get("signing_secrets_enc")?;
            let secrets =
                integration_store::decrypt_secrets(secret_box, credentials.as_deref(), &signing);
            Ok(LoadedIntegration { config, secrets })
        })
        .collect()
}

/// Writes a tick's changes in ONE transaction: the deliveries' new target
/// status (only where the row still holds the status the change was planned
/// from) and, for those rows, one `StatusUpdate` per change into the outbox.
/// Returns the updates queued (a racing poller's are not); the caller wakes
/// the relay.
pub async fn apply_changes<'a>(
    pool: &PgPool,
    changes: &'a [Change],
) -> sqlx::Result<Vec<&'a StatusUpdate>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<uuid::Uuid> = changes.iter().map(|c| *c.delivery_id.as_uuid()).collect();
    let statuses: Vec<String> = changes.iter().map(|c| c.target_status.clone()).collect();
    let finals: Vec<bool> = changes.iter().map(|c| c.is_final).collect();
    let previous: Vec<Option<String>> = changes.iter().map(|c| c.previous_status.clone()).collect();

    let mut tx = pool.begin().await?;
    let written: Vec<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE deliveries d
         SET target_status = u.status, target_status_final = u.final,
             -- a final status ends the watch (a CHECK holds it)
             poll_after = CASE WHEN u.final THEN NULL ELSE d.poll_after END,
             updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[], $3::bool[], $4::text[]) AS u(id, status, final, previous)
         WHERE d.id = u.id
           AND NOT d.target_status_final
           AND d.target_status IS NOT DISTINCT FROM u.previous
         RETURNING d.id",
    )
    .bind(ids)
    .bind(statuses)
    .bind(finals)
    .bind(previous)
    .fetch_all(&mut *tx)
    .await?;
    let written: HashSet<uuid::Uuid> = written.into_iter().collect();

    let (queued, messages): (Vec<&StatusUpdate>, Vec<OutboxMessage>) = changes
        .iter()
        .filter(|c| written.contains(c.delivery_id.as_uuid()))
        .filter_map(|c| {
            let update = c.update.as_ref()?;
            // A span per update, in the sale's own trace (stored with its
            // delivery): its context, carried in the outbox headers, takes
            // the change on to ingest — one trace from POST to status back.
            let span = tracing::info_span!(
                "status_update",
                delivery_id = %c.delivery_id,
                sale_id = %c.sale_id,
                target_status = %c.target_status,
            );
            if let Some(traceparent) = &c.traceparent {
                let headers = BTreeMap::from([("traceparent".to_string(), traceparent.clone())]);
                telemetry::set_parent_from_headers(&span, &headers);
            }
            let message = span.in_scope(|| {
                OutboxMessage::from_envelope(
                    ROUTING_STATUS,
                    &Envelope::new(c.tenant_id, c.sale_id, update.clone()),
                )
            });
            Some((update, message))
        })
        .unzip();
    outbox::enqueue(&mut tx, &messages).await?;
    tx.commit().await?;
    Ok(queued)
}
