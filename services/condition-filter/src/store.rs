//! The SQL condition-filter runs per batch: what the database already knows
//! (one read), then everything the batch decided (one write). Each is a
//! single statement over arrays (`= ANY` / `UNNEST`), so a batch costs two
//! round trips besides loading the tenants' integrations, and the write needs
//! no explicit transaction: one statement commits all of it or nothing.

use std::collections::HashMap;

use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId};
use salesync_core::messages::Purpose;
use salesync_core::outbox::{Handoff, OutboxColumns, OutboxMessage};
use sqlx::PgConnection;

use crate::plan::{ALREADY_FORWARDED, DecisionRow, FORWARDED, Known, NewDelivery};

/// Which of these sales exist (with their tenant and the integrations
/// retention recorded as already forwarded to), and which (event,
/// integration) pairs were decided before — one query.
pub async fn known(
    conn: &mut PgConnection,
    sale_ids: &[SaleId],
    event_ids: &[uuid::Uuid],
) -> sqlx::Result<Known> {
    if sale_ids.is_empty() && event_ids.is_empty() {
        return Ok(Known::default());
    }
    let rows: Vec<(bool, uuid::Uuid, uuid::Uuid, Option<Vec<uuid::Uuid>>)> = sqlx::query_as(
        "SELECT true, id, tenant_id, settled_forwards FROM sales WHERE id = ANY($1)
         UNION ALL
         SELECT false, event_id, integration_id, NULL FROM sale_decisions WHERE event_id = ANY($2)",
    )
    .bind(sale_ids)
    .bind(event_ids)
    .fetch_all(conn)
    .await?;
    let mut known = Known::default();
    for (is_sale, a, b, settled) in rows {
        if is_sale {
            let sale = SaleId::from(a);
            known.sales.insert(sale, TenantId::from(b));
            for integration in settled.unwrap_or_default() {
                known
                    .settled_forwards
                    .insert((sale, IntegrationId::from(integration)));
            }
        } else {
            known.decided.insert((a, IntegrationId::from(b)));
        }
    }
    Ok(known)
}

/// A planned delivery and the forward command to send if it gets created.
pub struct PlannedForward<'a> {
    pub delivery: &'a NewDelivery,
    pub command: OutboxMessage,
}

/// What one batch's write recorded.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Deliveries created now, each with the outbox row of its forward
    /// command (committed under a lease, for the relay hand-off); a planned
    /// one that already existed (by `(tenant_id, dedupe_key)`) belongs to an
    /// earlier event, which also sent its forward command.
    pub created: HashMap<DeliveryId, i64>,
    /// (event, integration, forwarded, reason) of each decision recorded now;
    /// one recorded before (a redelivered event) is left as it was.
    pub decisions: Vec<(uuid::Uuid, IntegrationId, bool, String)>,
}

/// A row of `record`'s answer: a created delivery or a recorded decision.
#[derive(sqlx::FromRow)]
struct RecordedRow {
    is_delivery: bool,
    id: uuid::Uuid,
    integration_id: Option<uuid::Uuid>,
    forwarded: Option<bool>,
    reason: Option<String>,
    outbox_id: Option<i64>,
}

/// In ONE statement: inserts the deliveries that do not exist yet, a forward
/// command (outbox, leased for the relay hand-off) for each one created, and
/// the decisions — a decision that
/// planned a delivery reads "forwarded" only if the database created it, and
/// "already forwarded" otherwise.
pub async fn record(
    conn: &mut PgConnection,
    forwards: &[PlannedForward<'_>],
    decisions: &[DecisionRow],
) -> sqlx::Result<Recorded> {
    if forwards.is_empty() && decisions.is_empty() {
        return Ok(Recorded::default());
    }
    // A fixed order keeps two replicas inserting overlapping keys from
    // deadlocking on each other's unique-index locks.
    let mut sorted: Vec<&PlannedForward> = forwards.iter().collect();
    sorted.sort_by(|a, b| {
        let (a, b) = (a.delivery, b.delivery);
        (a.tenant_id, &a.dedupe_key).cmp(&(b.tenant_id, &b.dedupe_key))
    });
    let deliveries: Vec<&NewDelivery> = sorted.iter().map(|f| f.delivery).collect();
    let commands = OutboxColumns::new(sorted.iter().map(|f| &f.command));
    let rows: Vec<RecordedRow> = sqlx::query_as(
        "WITH created AS (
                 INSERT INTO deliveries
                     (id, tenant_id, sale_id, integration_id, purpose, dedupe_key, target_url,
                      target_ref, body, traceparent)
                 -- the sale's trace, from its forward command's headers
                 SELECT id, tenant_id, sale_id, integration_id, $8, dedupe_key, target_url,
                        target_ref, body, headers->>'traceparent'
                 FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],
                             $6::text[], $7::text[], $9::jsonb[], $13::jsonb[])
                      AS t(id, tenant_id, sale_id, integration_id, dedupe_key, target_url,
                           target_ref, body, headers)
                 ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
                 RETURNING id),
             commands AS (
                 INSERT INTO outbox (message_id, routing_key, message_type, headers, body,
                                     leased_until)
                 SELECT m.message_id, m.routing_key, m.message_type, m.headers, m.body,
                        now() + make_interval(secs => $24)
                 FROM UNNEST($1::uuid[], $10::uuid[], $11::text[], $12::text[], $13::jsonb[],
                             $14::bytea[]) WITH ORDINALITY
                      AS m(delivery_id, message_id, routing_key, message_type, headers, body, n)
                 WHERE m.delivery_id IN (SELECT id FROM created)
                 ORDER BY m.n
                 RETURNING id, message_id),
             decided AS (
                 INSERT INTO sale_decisions
                     (sale_id, integration_id, event_id, trigger, status, forwarded, reason)
                 SELECT x.sale_id, x.integration_id, x.event_id, x.trigger, x.status,
                        c.id IS NOT NULL,
                        CASE WHEN x.delivery_id IS NULL THEN x.reason
                             WHEN c.id IS NOT NULL THEN $22
                             ELSE $23 END
                 FROM UNNEST($15::uuid[], $16::uuid[], $17::uuid[], $18::text[], $19::text[],
                             $20::uuid[], $21::text[])
                      AS x(sale_id, integration_id, event_id, trigger, status, delivery_id, reason)
                 LEFT JOIN created c ON c.id = x.delivery_id
                 ON CONFLICT (event_id, integration_id) DO NOTHING
                 RETURNING event_id, integration_id, forwarded, reason)
             SELECT true AS is_delivery, c.id, NULL::uuid AS integration_id,
                    NULL::bool AS forwarded, NULL::text AS reason, cmd.id AS outbox_id
             FROM created c
             LEFT JOIN UNNEST($1::uuid[], $10::uuid[]) AS k(delivery_id, message_id)
                    ON k.delivery_id = c.id
             LEFT JOIN commands cmd ON cmd.message_id = k.message_id
             UNION ALL
             SELECT false, event_id, integration_id, forwarded, reason, NULL::int8 FROM decided",
    )
    .bind(deliveries.iter().map(|d| d.id).collect::<Vec<_>>())
    .bind(deliveries.iter().map(|d| d.tenant_id).collect::<Vec<_>>())
    .bind(deliveries.iter().map(|d| d.sale_id).collect::<Vec<_>>())
    .bind(
        deliveries
            .iter()
            .map(|d| d.integration_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        deliveries
            .iter()
            .map(|d| d.dedupe_key.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        deliveries
            .iter()
            .map(|d| d.request.url.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        deliveries
            .iter()
            .map(|d| d.id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(Purpose::Forward.as_str())
    // Kept so a dead delivery can be replayed exactly as first sent.
    .bind(
        deliveries
            .iter()
            .map(|d| &d.request.body)
            .collect::<Vec<_>>(),
    )
    .bind(commands.message_ids)
    .bind(commands.routing_keys)
    .bind(commands.message_types)
    .bind(commands.headers)
    .bind(commands.bodies)
    .bind(decisions.iter().map(|r| r.sale_id).collect::<Vec<_>>())
    .bind(
        decisions
            .iter()
            .map(|r| r.integration_id)
            .collect::<Vec<_>>(),
    )
    .bind(decisions.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind(decisions.iter().map(|r| r.trigger).collect::<Vec<_>>())
    .bind(
        decisions
            .iter()
            .map(|r| r.status.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(decisions.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
    .bind(
        decisions
            .iter()
            .map(|r| r.skip_reason.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(FORWARDED)
    .bind(ALREADY_FORWARDED)
    .bind(Handoff::lease_secs())
    .fetch_all(conn)
    .await?;
    let mut recorded = Recorded::default();
    for r in rows {
        let id = r.id;
        match (r.is_delivery, r.integration_id, r.forwarded, r.reason) {
            (true, ..) => {
                let outbox_id = r
                    .outbox_id
                    .ok_or_else(|| sqlx::Error::Protocol("delivery without a command".into()))?;
                recorded.created.insert(DeliveryId::from(id), outbox_id);
            }
            (false, Some(integration), Some(forwarded), Some(reason)) => {
                recorded
                    .decisions
                    .push((id, IntegrationId::from(integration), forwarded, reason));
            }
            _ => return Err(sqlx::Error::Protocol("unexpected decision row".into())),
        }
    }
    Ok(recorded)
}
