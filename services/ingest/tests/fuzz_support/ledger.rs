//! After the campaign: proof that nothing half-written reached the database.
//! Every stored sale is a valid sale (its JSON re-validated with
//! `validate_sale`, its columns and payload hash agreeing with it), it has
//! exactly one initial history row and exactly one `sale.ingested` event in
//! the outbox, every outbox row decodes and belongs to a stored sale, the set
//! of stored sales is exactly the set the API said it created, and stored
//! integrations and tenants still pass the checks that admitted them.

use std::collections::{BTreeMap, BTreeSet};

use salesync_core::api::field_checks::{check_http_url, check_name};
use salesync_core::domain::{SaleInput, validate_sale};
use salesync_core::integration::{Conditions, Mapping};
use salesync_core::messages::{Envelope, SaleEvent, Trigger};
use sqlx::PgPool;

/// What the database holds, and everything wrong with it.
#[derive(Debug, Default)]
pub struct Ledger {
    pub sales: usize,
    pub history_rows: i64,
    pub outbox_rows: usize,
    pub integrations: usize,
    pub tenants: usize,
    pub problems: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct SaleRow {
    id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    external_id: String,
    payload_hash: Vec<u8>,
    sale: serde_json::Value,
    currency: String,
    gross: i64,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    message_id: uuid::Uuid,
    routing_key: String,
    message_type: String,
    body: Vec<u8>,
}

pub async fn check(pool: &PgPool, created: &BTreeSet<String>) -> sqlx::Result<Ledger> {
    let mut l = Ledger::default();
    let sales: Vec<SaleRow> = sqlx::query_as(
        "SELECT id, tenant_id, external_id, payload_hash, sale, currency, gross FROM sales",
    )
    .fetch_all(pool)
    .await?;
    l.sales = sales.len();
    let mut stored: BTreeMap<uuid::Uuid, (uuid::Uuid, SaleInput)> = BTreeMap::new();
    for row in sales {
        let id = row.id;
        let sale: SaleInput = match serde_json::from_value(row.sale) {
            Ok(s) => s,
            Err(e) => {
                l.problems
                    .push(format!("sale {id}: stored JSON does not parse: {e}"));
                continue;
            }
        };
        if let Err(errors) = validate_sale(&sale) {
            l.problems
                .push(format!("sale {id}: stored sale is invalid: {errors:?}"));
        }
        if sale.external_id != row.external_id
            || sale.currency.code() != row.currency
            || sale.totals.gross != row.gross
        {
            l.problems
                .push(format!("sale {id}: columns disagree with the stored JSON"));
        }
        if sale.payload_hash().as_slice() != row.payload_hash.as_slice() {
            l.problems.push(format!(
                "sale {id}: payload hash does not match the stored sale (a resend would conflict)"
            ));
        }
        stored.insert(id, (row.tenant_id, sale));
    }

    // The API's word against the database's.
    let in_db: BTreeSet<String> = stored.keys().map(ToString::to_string).collect();
    for missing in created.difference(&in_db) {
        l.problems
            .push(format!("sale {missing}: reported created but not stored"));
    }
    for extra in in_db.difference(created) {
        l.problems
            .push(format!("sale {extra}: stored but never reported created"));
    }

    // Exactly one initial history row per sale; no history without a sale.
    let initial: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "SELECT s.id, count(h.id) FILTER (WHERE h.dedupe_key = 'source:initial')
         FROM sales s LEFT JOIN sale_status_history h ON h.sale_id = s.id
         GROUP BY s.id",
    )
    .fetch_all(pool)
    .await?;
    for (id, n) in initial {
        if n != 1 {
            l.problems
                .push(format!("sale {id}: {n} initial history rows, expected 1"));
        }
    }
    l.history_rows = sqlx::query_scalar("SELECT count(*) FROM sale_status_history")
        .fetch_one(pool)
        .await?;
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sale_status_history h
         WHERE NOT EXISTS (SELECT 1 FROM sales s WHERE s.id = h.sale_id)",
    )
    .fetch_one(pool)
    .await?;
    if orphans != 0 {
        l.problems.push(format!("{orphans} orphan history rows"));
    }
    let later_changes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sale_status_history
         WHERE origin = 'source' AND dedupe_key <> 'source:initial'",
    )
    .fetch_one(pool)
    .await?;

    // Every outbox row decodes, belongs to a stored sale of the same tenant,
    // and carries that sale; one `sale.ingested` per sale.
    let outbox: Vec<OutboxRow> =
        sqlx::query_as("SELECT id, message_id, routing_key, message_type, body FROM outbox")
            .fetch_all(pool)
            .await?;
    l.outbox_rows = outbox.len();
    let mut ingested: BTreeMap<uuid::Uuid, usize> = BTreeMap::new();
    let mut status_events = 0i64;
    let mut message_ids = BTreeSet::new();
    for row in outbox {
        let n = row.id;
        if !message_ids.insert(row.message_id) {
            l.problems.push(format!(
                "outbox {n}: message id {} used twice",
                row.message_id
            ));
        }
        let env = match Envelope::<SaleEvent>::decode(&row.body) {
            Ok(e) if row.message_type == "sale.event" => e,
            Ok(_) => {
                l.problems
                    .push(format!("outbox {n}: type column '{}'", row.message_type));
                continue;
            }
            Err(e) => {
                l.problems.push(format!("outbox {n}: does not decode: {e}"));
                continue;
            }
        };
        let sale_id = *env.sale_id.as_uuid();
        if env.payload.trigger.routing_key() != row.routing_key {
            l.problems.push(format!(
                "outbox {n}: routing key {} for trigger {}",
                row.routing_key,
                env.payload.trigger.name()
            ));
        }
        match stored.get(&sale_id) {
            None => l.problems.push(format!(
                "outbox {n}: event for sale {sale_id} that is not stored"
            )),
            Some((tenant, sale)) => {
                if env.tenant_id.as_uuid() != tenant {
                    l.problems
                        .push(format!("outbox {n}: tenant differs from sale {sale_id}'s"));
                }
                let mut carried = env.payload.sale.clone();
                carried.status = sale.status.clone();
                if carried != *sale {
                    l.problems.push(format!(
                        "outbox {n}: carries a different sale than {sale_id}"
                    ));
                }
            }
        }
        match env.payload.trigger {
            Trigger::Created => *ingested.entry(sale_id).or_default() += 1,
            Trigger::StatusChanged => status_events += 1,
            Trigger::Manual { .. } => {}
        }
    }
    for id in stored.keys() {
        let n = ingested.get(id).copied().unwrap_or(0);
        if n != 1 {
            l.problems
                .push(format!("sale {id}: {n} sale.ingested events, expected 1"));
        }
    }
    if status_events != later_changes {
        l.problems.push(format!(
            "{status_events} status_changed events for {later_changes} status changes"
        ));
    }

    // Integrations and tenants still pass the checks that let them in.
    let integrations: Vec<(
        uuid::Uuid,
        String,
        String,
        Option<String>,
        serde_json::Value,
        serde_json::Value,
    )> = sqlx::query_as(
        "SELECT id, name, target_url, status_url, conditions, mapping FROM integrations",
    )
    .fetch_all(pool)
    .await?;
    l.integrations = integrations.len();
    for (id, name, url, status_url, conditions, mapping) in integrations {
        let url_problem = check_http_url(&url)
            .err()
            .or_else(|| status_url.as_deref().and_then(|u| check_http_url(u).err()));
        if let Some(p) = check_name(&name).err().or(url_problem) {
            l.problems.push(format!("integration {id}: {p}"));
        }
        if serde_json::from_value::<Conditions>(conditions).is_err()
            || serde_json::from_value::<Mapping>(mapping).is_err()
        {
            l.problems.push(format!(
                "integration {id}: conditions or mapping do not parse"
            ));
        }
    }
    let tenants: Vec<(uuid::Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT id, name, webhook_url FROM tenants")
            .fetch_all(pool)
            .await?;
    l.tenants = tenants.len();
    for (id, name, webhook) in tenants {
        let problem = check_name(&name)
            .err()
            .or_else(|| webhook.as_deref().and_then(|u| check_http_url(u).err()));
        if let Some(p) = problem {
            l.problems.push(format!("tenant {id}: {p}"));
        }
    }
    Ok(l)
}
