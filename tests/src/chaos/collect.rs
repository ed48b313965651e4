//! Reads back what happened, for the ledger: the POS tenant's sales in the
//! database, every request each webhook target recorded, the sales tenant B
//! stored as the partner target, the dead deliveries, and the messages in
//! `salesync.dead` (taken off the queue: the campaign is over).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use salesync_core::amqp::topology::Q_DEAD;
use salesync_core::domain::ids::IntegrationId;
use serde_json::Value;

use super::ledger::{Dead, Effect, Expected, Inputs};
use super::pos::PosLog;
use super::routing::{Route, routes_of};
use super::world::World;
use crate::broker::Broker;
use crate::sales::mixed;

/// Deliveries still open at the end, grouped by what they wait for.
#[derive(sqlx::FromRow)]
struct OpenGroup {
    integration_id: Option<IntegrationId>,
    state: String,
    attempts: i32,
    last_error: Option<String>,
    n: i64,
}

/// Everything the ledger needs, plus the targets' signature failures and
/// what is still in flight (to start an investigation with).
pub struct Collected {
    pub inputs: Inputs,
    pub bad_signatures: u64,
    /// Deliveries neither delivered nor dead, grouped: "route state (n
    /// attempts): last error" → count.
    pub in_flight: BTreeMap<String, i64>,
    /// Every queue of the broker with its ready and unacked messages.
    pub queues: String,
}

pub async fn collect(
    world: &World,
    pos: &PosLog,
    prefix: &str,
    sales: usize,
) -> anyhow::Result<Collected> {
    let db = world.stack.db.pool();
    // Where each sale the POS could have sent should go, by external id.
    let routes_by_external: BTreeMap<String, Vec<Route>> = (0..sales)
        .map(|i| {
            let s = mixed(prefix, i);
            (s.external_id.clone(), routes_of(&s))
        })
        .collect();

    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT id::text, external_id FROM sales WHERE tenant_id = $1")
            .bind(world.pos.id)
            .fetch_all(db)
            .await?;
    let mut in_database = BTreeMap::new();
    let mut sale_of_external = BTreeMap::new();
    for (id, external) in stored {
        let routes = routes_by_external
            .get(&external)
            .cloned()
            .unwrap_or_default();
        sale_of_external.insert(external, id.clone());
        in_database.insert(id, routes);
    }

    let expected = pos
        .accepted
        .iter()
        .map(|(i, a)| Expected {
            sale_id: a.sale_id.clone(),
            routes: routes_of(&mixed(prefix, *i)),
            accepted_at: a.accepted_at,
        })
        .collect();

    let mut effects = Vec::new();
    let mut bad_signatures = 0;
    for (route, target) in &world.targets {
        bad_signatures += target.bad_signatures();
        effects.extend(target.requests().into_iter().map(|r| Effect {
            route: *route,
            sale_id: sale_of_request(&r.body).unwrap_or_default().to_string(),
            key: r.idempotency_key.unwrap_or_default(),
            answered: r.answered,
            at: r.received_at,
        }));
    }
    // Tenant B's ingest dedupes by external id (= the delivery's key): each
    // row is one booking; the source's external id names the sale.
    let partner: Vec<(String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT external_id, sale->'metadata'->>'source_external_id', created_at
         FROM sales WHERE tenant_id = $1",
    )
    .bind(world.partner.id)
    .fetch_all(db)
    .await?;
    effects.extend(partner.into_iter().map(|(key, source, at)| {
        let source = source.unwrap_or_default();
        Effect {
            route: Route::Partner,
            sale_id: sale_of_external
                .get(&source)
                .cloned()
                .unwrap_or_else(|| format!("unknown source sale '{source}'")),
            key,
            answered: 201,
            at,
        }
    }));

    let dead_rows: Vec<(Option<IntegrationId>, String, Option<String>)> = sqlx::query_as(
        "SELECT integration_id, sale_id::text, dead_reason FROM deliveries WHERE state = 'dead'",
    )
    .fetch_all(db)
    .await?;
    let dead = dead_rows
        .into_iter()
        .map(|(integration, sale_id, reason)| Dead {
            route: integration.and_then(|i| world.integrations.get(&i).copied()),
            sale_id,
            reason,
        })
        .collect();

    let open: Vec<OpenGroup> = sqlx::query_as(
        "SELECT integration_id, state, attempts,
                left(coalesce(last_error, '-'), 120) AS last_error, count(*) AS n
         FROM deliveries WHERE state NOT IN ('delivered', 'dead')
         GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC",
    )
    .fetch_all(db)
    .await?;
    let mut in_flight = BTreeMap::new();
    for g in open {
        let route = g
            .integration_id
            .and_then(|i| world.integrations.get(&i))
            .map_or("status webhook", |r| r.name());
        let key = format!(
            "{route} {} ({} attempts): {}",
            g.state,
            g.attempts,
            without_numbers(&g.last_error.unwrap_or_default())
        );
        *in_flight.entry(key).or_insert(0) += g.n;
    }

    let broker = Broker::connect(&world.rabbit.amqp_url()).await?;
    // `list_queues` names them; its counts are not kept for quorum queues on
    // a node without the management plugin, so depths come from the broker.
    let names = world
        .rabbit
        .ctl(&["-q", "list_queues", "--no-table-headers", "name"])
        .await
        .unwrap_or_default();
    let mut queues = String::new();
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        let depth = broker.queue_depth(name).await.unwrap_or(0);
        queues.push_str(&format!("{name}: {depth} ready\n"));
    }
    let dead_letter_messages = broker
        .drain(Q_DEAD)
        .await?
        .into_iter()
        .map(|m| m.headers.get("x-dead-reason").cloned())
        .collect();
    broker.close().await;

    Ok(Collected {
        inputs: Inputs {
            expected,
            in_database,
            effects,
            dead,
            dead_letter_messages,
        },
        bad_signatures,
        in_flight,
        queues,
    })
}

/// `text` with every run of digits (and the dots between them) as `N`, so
/// errors that differ only in a port or a countdown group together.
pub fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        let numeric = c.is_ascii_digit() || (in_number && c == '.');
        if numeric {
            if !in_number {
                out.push('N');
            }
        } else {
            out.push(c);
        }
        in_number = numeric;
    }
    out
}

/// The sale a webhook request carries (`data.sale_id` of the contract).
pub fn sale_of_request(body: &Value) -> Option<&str> {
    body.get("data")?.get("sale_id")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_masked_for_grouping() {
        for (text, want) in [
            (
                "circuit open: http://127.0.0.1:46323 is failing, next probe in 22.44s",
                "circuit open: http://N:N is failing, next probe in Ns",
            ),
            ("-", "-"),
            ("attempt 3 of 25", "attempt N of N"),
        ] {
            assert_eq!(without_numbers(text), want);
        }
    }

    #[test]
    fn webhook_bodies_name_their_sale() {
        let body = json!({"type": "sale.forwarded", "data": {"sale_id": "s1"}});
        assert_eq!(sale_of_request(&body), Some("s1"));
        assert_eq!(sale_of_request(&json!("garbage")), None);
    }
}
