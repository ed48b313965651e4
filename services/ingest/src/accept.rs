//! Storing new sales: the one write path behind `POST /v1/sales/batch` and
//! the group commit of single-sale requests (`group_commit`). Each tenant's
//! items are planned on their own (`intake::plan`: in-request repeats are
//! stored once, and judged as if sent one after the other), then every
//! tenant's new sales, their first history rows and one `sale.ingested` event
//! each are written in ONE statement. Nothing is answered before it
//! committed; if it fails, nothing of it is written and the caller answers
//! every item with the same error. One case answers an error after the
//! write: the rare follow-up lookup (a row another transaction committed
//! meanwhile) failing. The sales are then stored although the caller says
//! 503; a retry with the same payload is answered `duplicate` with the stored
//! id, as after any lost answer.

use std::collections::{BTreeMap, HashMap};

use salesync_core::db::HeldConnection;
use salesync_core::domain::{SaleId, SaleInput, TenantId};
use salesync_core::messages::Trigger;
use salesync_core::outbox::{Committed, Handoff, OutboxMessage};

use crate::events::sale_event;
use crate::intake::{self, Outcome, Plan, Stored};
use crate::store;
use crate::store::sales::{NewSale, TenantSale};
use salesync_core::api::error::ErrorBody;

/// A valid sale to store, with what the provider's catalogue said of it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub sale: SaleInput,
    /// An Agent's order: the version of each product it was checked against
    /// (`order_check`), kept with the sale.
    pub versions: Option<BTreeMap<String, u32>>,
}

impl From<SaleInput> for Incoming {
    fn from(sale: SaleInput) -> Self {
        Self {
            sale,
            versions: None,
        }
    }
}

/// One tenant's items, in the order they arrived; an `Err` item was rejected
/// before reaching the database and comes back as `Outcome::Invalid`.
pub struct TenantItems {
    pub tenant: TenantId,
    pub items: Vec<Result<Incoming, ErrorBody>>,
    /// Per item, the span of the request that sent it: the item's event is
    /// built in it, so the sale's trace continues downstream (a group
    /// commit's items come from different requests). Empty: the current
    /// span (the batch endpoint's items share its request).
    pub spans: Vec<tracing::Span>,
}

impl TenantItems {
    fn span_of(&self, item: usize) -> tracing::Span {
        self.spans
            .get(item)
            .cloned()
            .unwrap_or_else(tracing::Span::current)
    }
}

/// A tenant's items, planned, with the sales to insert.
struct Planned<'a> {
    tenant: TenantId,
    plan: Plan,
    new_sales: Vec<NewSale<'a>>,
    /// The item each new sale is, by position in `TenantItems::items`.
    new_items: Vec<usize>,
}

fn plan_tenant(t: &TenantItems) -> Planned<'_> {
    let hashes: Vec<Result<(&str, [u8; 32]), ErrorBody>> = t
        .items
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|i| (i.sale.external_id.as_str(), i.sale.payload_hash()))
                .map_err(Clone::clone)
        })
        .collect();
    let plan = intake::plan(&hashes);
    let mut new_sales = Vec::with_capacity(plan.unique.len());
    let mut new_items = Vec::with_capacity(plan.unique.len());
    for &i in &plan.unique {
        if let (Some(Ok(item)), Some(Ok((_, hash)))) = (t.items.get(i), hashes.get(i)) {
            new_sales.push(NewSale {
                id: SaleId::new(),
                sale: &item.sale,
                versions: item.versions.as_ref(),
                hash: *hash,
            });
            new_items.push(i);
        }
    }
    Planned {
        tenant: t.tenant,
        plan,
        new_sales,
        new_items,
    }
}

/// Stores the valid, distinct sales of every tenant, with their first history
/// rows and events, in one statement (`store::sales::insert_new`) and hands
/// the events of the sales created to the outbox relay. Returns, per tenant (same order as
/// `tenants`), one outcome per item in input order. A tenant may appear more
/// than once: the later entries' items become duplicates or conflicts of the
/// earlier ones, as if sequential. Takes a connection from `db` only if
/// there is something to insert.
pub async fn store_sales(
    db: &mut HeldConnection,
    handoff: &Handoff,
    tenants: &[TenantItems],
) -> sqlx::Result<Vec<Vec<Outcome>>> {
    let planned: Vec<Planned> = tenants.iter().map(plan_tenant).collect();
    let to_insert: Vec<TenantSale> = planned
        .iter()
        .zip(tenants)
        .flat_map(|(p, t)| {
            p.new_sales
                .iter()
                .zip(&p.new_items)
                .map(|(new, &item)| TenantSale {
                    tenant: p.tenant,
                    new,
                    event: t.span_of(item).in_scope(|| {
                        sale_event(p.tenant, new.id, Trigger::Created, new.sale.clone())
                    }),
                })
        })
        .collect();
    let held = if to_insert.is_empty() {
        HashMap::new()
    } else {
        db.run(async |conn| store::sales::insert_new(conn, &to_insert).await)
            .await?
    };
    let mut created = Vec::new();
    let mut outcomes = Vec::with_capacity(planned.len());
    for p in &planned {
        let mut unique = Vec::with_capacity(p.new_sales.len());
        for new in &p.new_sales {
            // Absent only if a conflicting row vanished between the insert
            // and the lookup; the caller answers the group with an error.
            let row = held
                .get(&(p.tenant, new.sale.external_id.clone()))
                .ok_or(sqlx::Error::RowNotFound)?;
            let stored = row.stored_for(new.id);
            if let (Stored::Created { .. }, Some(outbox_id)) = (&stored, row.outbox_id) {
                created.push((outbox_id, new.id));
            }
            unique.push((stored, new.hash));
        }
        outcomes.push(intake::resolve(&p.plan, &unique));
    }
    if !created.is_empty() {
        tracing::debug!(created = created.len(), "sales accepted");
        let events: HashMap<SaleId, &OutboxMessage> =
            to_insert.iter().map(|s| (s.new.id, &s.event)).collect();
        let mut committed: Vec<Committed> = created
            .into_iter()
            .filter_map(|(outbox_id, sale)| {
                events.get(&sale).map(|m| Committed {
                    outbox_id,
                    message: (*m).clone(),
                })
            })
            .collect();
        committed.sort_unstable_by_key(|c| c.outbox_id);
        handoff.committed(committed);
    }
    Ok(outcomes)
}
