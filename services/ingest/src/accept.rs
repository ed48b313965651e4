//! Storing new sales: the one write path behind `POST /v1/sales/batch` and
//! the group commit of single-sale requests (`group_commit`). Each tenant's
//! items are planned on their own (`intake::plan`: in-request repeats are
//! stored once, and judged as if sent one after the other), then every tenant's new sales, their first history rows and
//! one `sale.ingested` event each are written in ONE transaction. Nothing is
//! answered before that transaction committed; if it fails, nothing of it is
//! written and the caller answers every item with the same error.

use salesync_core::domain::{SaleId, SaleInput, TenantId};
use salesync_core::messages::Trigger;
use salesync_core::outbox::{self, OutboxMessage};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::error::ErrorBody;
use crate::events::sale_event;
use crate::intake::{self, Outcome, Plan, Stored};
use crate::store;
use crate::store::sales::NewSale;

/// One tenant's items, in the order they arrived; an `Err` item was rejected
/// before reaching the database and comes back as `Outcome::Invalid`.
pub struct TenantItems {
    pub tenant: TenantId,
    pub items: Vec<Result<SaleInput, ErrorBody>>,
}

/// A tenant's items, planned, with the sales to insert.
struct Planned<'a> {
    tenant: TenantId,
    plan: Plan,
    new_sales: Vec<NewSale<'a>>,
}

fn plan_tenant(t: &TenantItems) -> Planned<'_> {
    let hashes: Vec<Result<(&str, [u8; 32]), ErrorBody>> = t
        .items
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|s| (s.external_id.as_str(), s.payload_hash()))
                .map_err(Clone::clone)
        })
        .collect();
    let plan = intake::plan(&hashes);
    let mut new_sales = Vec::with_capacity(plan.unique.len());
    for &i in &plan.unique {
        if let (Some(Ok(sale)), Some(Ok((_, hash)))) = (t.items.get(i), hashes.get(i)) {
            new_sales.push(NewSale {
                id: SaleId::new(),
                sale,
                hash: *hash,
            });
        }
    }
    Planned {
        tenant: t.tenant,
        plan,
        new_sales,
    }
}

/// Stores the valid, distinct sales of every tenant in one transaction and
/// wakes the outbox relay if any was created. Returns, per tenant (same
/// order as `tenants`), one outcome per item in input order. A tenant may
/// appear more than once: later entries see the earlier ones' rows (same
/// transaction) and become duplicates or conflicts, as if sequential.
pub async fn store_sales(
    pool: &PgPool,
    wake: &Notify,
    tenants: &[TenantItems],
) -> sqlx::Result<Vec<Vec<Outcome>>> {
    let planned: Vec<Planned> = tenants.iter().map(plan_tenant).collect();
    let mut unique_stored: Vec<Vec<(Stored, [u8; 32])>> = vec![Vec::new(); planned.len()];
    let mut events: Vec<OutboxMessage> = Vec::new();
    if planned.iter().any(|p| !p.new_sales.is_empty()) {
        // Tenants in id order (and each tenant's rows in external-id order,
        // see `insert_new`), so concurrent transactions take the unique-index
        // locks in one global order and cannot deadlock each other.
        let mut order: Vec<usize> = (0..planned.len()).collect();
        order.sort_by_key(|&i| planned.get(i).map(|p| p.tenant));
        let mut created: Vec<(SaleId, String)> = Vec::new();
        let mut tx = pool.begin().await?;
        for i in order {
            let (Some(p), Some(unique)) = (planned.get(i), unique_stored.get_mut(i)) else {
                continue;
            };
            let stored = store::sales::insert_new(&mut tx, p.tenant, &p.new_sales).await?;
            for (new, st) in p.new_sales.iter().zip(stored) {
                if let Stored::Created { id, status } = &st {
                    created.push((*id, status.clone()));
                    events.push(sale_event(
                        p.tenant,
                        *id,
                        Trigger::Created,
                        new.sale.clone(),
                    ));
                }
                unique.push((st, new.hash));
            }
        }
        store::sales::insert_initial_history(&mut tx, &created).await?;
        outbox::enqueue(&mut tx, &events).await?;
        tx.commit().await?;
    }
    if !events.is_empty() {
        wake.notify_one();
        tracing::debug!(created = events.len(), "sales accepted");
    }
    Ok(planned
        .iter()
        .zip(&unique_stored)
        .map(|(p, u)| intake::resolve(&p.plan, u))
        .collect())
}
