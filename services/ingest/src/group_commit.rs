//! Group commit of single-sale requests (`POST /v1/sales`). A commit per sale
//! costs a WAL flush each and caps the endpoint far below what the database
//! does in batches (docs/benchmarks.md), so handlers hand their validated
//! sale to one committer task over a bounded channel and wait for the answer
//! on a oneshot. The committer takes whatever is queued (up to
//! `GROUP_COMMIT_MAX`) and starts transactions at least
//! `GROUP_COMMIT_INTERVAL` apart: a sale arriving after a quiet spell is
//! committed at once, while under load the sales of an interval share one
//! transaction. Fewer, larger transactions here mean fewer, larger batches
//! in every stage after it, which on a busy machine lowers the CPU per sale
//! enough that sales arrive sooner despite the wait (docs/benchmarks.md).
//! The group goes through the batch endpoint's
//! store code (`accept::store_sales`) in ONE transaction, then answers each
//! request. Guarantees stay those of a lone request: an answer comes only
//! after the commit; a failed transaction answers every request of the group
//! with 503 and leaves nothing written; two requests for the same
//! (tenant, external_id) in one group behave as if sequential (the first
//! creates, the second is a duplicate or a conflict). A full channel makes
//! handlers wait for room, so memory stays bounded.

use std::time::Duration;

use salesync_core::db::HeldConnection;
use salesync_core::domain::TenantId;
use salesync_core::outbox::Handoff;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

use crate::accept::{Incoming, TenantItems, store_sales};
use crate::intake::Outcome;
use salesync_core::api::ApiError;

/// One handler's sale, waiting for its group.
struct Pending {
    tenant: TenantId,
    sale: Incoming,
    reply: oneshot::Sender<Result<Outcome, ApiError>>,
    /// The request's span: the sale's event continues its trace.
    span: tracing::Span,
}

/// Handle to the committer task; cheap to clone. The task ends once every
/// handle is gone (the server stopped), after answering what was queued.
#[derive(Clone)]
pub struct SaleCommitter {
    queue: mpsc::Sender<Pending>,
}

/// How the committer groups sales.
#[derive(Clone, Copy, Debug)]
pub struct GroupPolicy {
    /// Most sales per transaction, and also how many may wait for one.
    pub max: usize,
    /// Shortest time between the starts of two transactions.
    pub interval: Duration,
}

impl SaleCommitter {
    /// Spawns the committer on the current tokio runtime.
    pub fn start(pool: PgPool, handoff: Handoff, policy: GroupPolicy) -> Self {
        let policy = GroupPolicy {
            max: policy.max.max(1),
            ..policy
        };
        let (queue, rx) = mpsc::channel(policy.max);
        tokio::spawn(run(pool, handoff, rx, policy));
        Self { queue }
    }

    /// Stores one validated sale with whatever else is queued; answers once
    /// its transaction committed (or failed).
    pub async fn submit(
        &self,
        tenant: TenantId,
        sale: impl Into<Incoming>,
    ) -> Result<Outcome, ApiError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            tenant,
            sale: sale.into(),
            reply,
            span: tracing::Span::current(),
        };
        // Waits for room when the channel is full (backpressure).
        self.queue
            .send(pending)
            .await
            .map_err(|_| ApiError::Unavailable)?;
        answer.await.map_err(|_| ApiError::Unavailable)?
    }
}

async fn run(pool: PgPool, handoff: Handoff, mut rx: mpsc::Receiver<Pending>, policy: GroupPolicy) {
    let mut db = HeldConnection::new(pool);
    let mut group = Vec::with_capacity(policy.max);
    let mut last_start = None;
    // `recv_many` waits only while nothing is queued, then takes what is there.
    while rx.recv_many(&mut group, policy.max).await > 0 {
        let wait = wait_before(last_start, Instant::now(), policy.interval);
        if !wait.is_zero() && group.len() < policy.max {
            tokio::time::sleep(wait).await;
            while group.len() < policy.max {
                match rx.try_recv() {
                    Ok(p) => group.push(p),
                    Err(_) => break,
                }
            }
        }
        last_start = Some(Instant::now());
        let size = group.len();
        commit_group(&mut db, &handoff, std::mem::take(&mut group))
            .instrument(tracing::debug_span!("group_commit", sales = size))
            .await;
    }
}

/// How long a group ready at `now` waits: until `interval` after the last
/// transaction started; not at all for the first, or after a quiet spell.
pub fn wait_before(last_start: Option<Instant>, now: Instant, interval: Duration) -> Duration {
    last_start.map_or(Duration::ZERO, |start| {
        (start + interval).saturating_duration_since(now)
    })
}

async fn commit_group(db: &mut HeldConnection, handoff: &Handoff, group: Vec<Pending>) {
    let tenants: Vec<TenantId> = group.iter().map(|p| p.tenant).collect();
    let by_tenant = group_by_tenant(&tenants);
    let mut sales: Vec<Option<Incoming>> = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    let mut spans = Vec::with_capacity(group.len());
    for p in group {
        sales.push(Some(p.sale));
        replies.push(p.reply);
        spans.push(p.span);
    }
    let batches: Vec<TenantItems> = by_tenant
        .iter()
        .map(|(tenant, members)| TenantItems {
            tenant: *tenant,
            items: members
                .iter()
                .filter_map(|&i| sales.get_mut(i).and_then(Option::take))
                .map(Ok)
                .collect(),
            spans: members.iter().map(|&i| spans[i].clone()).collect(),
        })
        .collect();
    match store_sales(db, handoff, &batches).await {
        Ok(outcomes) => {
            let answers = scatter(&by_tenant, outcomes, replies.len());
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A closed oneshot is a caller that went away: nothing to do.
                let _ = reply.send(answer.ok_or(ApiError::Internal));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, sales = replies.len(), "database error; group not stored");
            for reply in replies {
                let _ = reply.send(Err(ApiError::Unavailable));
            }
        }
    }
}

/// A tenant and the positions of its requests in a group.
pub type TenantRequests = (TenantId, Vec<usize>);

/// The requests of a group by tenant, tenants in order of first arrival,
/// each tenant's request positions in arrival order.
pub fn group_by_tenant(tenants: &[TenantId]) -> Vec<TenantRequests> {
    let mut groups: Vec<TenantRequests> = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| g == t) {
            Some((_, members)) => members.push(i),
            None => groups.push((*t, vec![i])),
        }
    }
    groups
}

/// Puts each tenant's outcomes back at their requests' positions; a position
/// without an outcome (cannot happen with a well-formed result) stays `None`.
pub fn scatter(
    by_tenant: &[TenantRequests],
    outcomes: Vec<Vec<Outcome>>,
    requests: usize,
) -> Vec<Option<Outcome>> {
    let mut answers: Vec<Option<Outcome>> = vec![None; requests];
    for ((_, members), tenant_outcomes) in by_tenant.iter().zip(outcomes) {
        for (&i, o) in members.iter().zip(tenant_outcomes) {
            if let Some(slot) = answers.get_mut(i) {
                *slot = Some(o);
            }
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::domain::SaleId;

    #[test]
    fn waits_only_until_the_interval_since_the_last_start_has_passed() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let five = ms(5);
        for (last, now, want) in [
            (None, t0, ms(0)),
            (Some(t0), t0, five),
            (Some(t0), t0 + ms(2), ms(3)),
            (Some(t0), t0 + five, ms(0)),
            (Some(t0), t0 + ms(500), ms(0)),
        ] {
            assert_eq!(wait_before(last, now, five), want, "{last:?} {now:?}");
        }
        assert_eq!(wait_before(Some(t0), t0, ms(0)), ms(0));
    }

    #[test]
    fn groups_by_tenant_in_arrival_order() {
        let (a, b, c) = (TenantId::new(), TenantId::new(), TenantId::new());
        let cases: Vec<(Vec<TenantId>, Vec<TenantRequests>)> = vec![
            (vec![], vec![]),
            (vec![a], vec![(a, vec![0])]),
            (vec![a, a, a], vec![(a, vec![0, 1, 2])]),
            (
                vec![b, a, b, c, a],
                vec![(b, vec![0, 2]), (a, vec![1, 4]), (c, vec![3])],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(group_by_tenant(&input), want, "{input:?}");
        }
    }

    #[test]
    fn scatters_outcomes_back_to_requests() {
        let (a, b) = (TenantId::new(), TenantId::new());
        let (x, y) = (SaleId::new(), SaleId::new());
        let created = |id| Outcome::Created {
            id,
            status: "paid".into(),
        };
        let dup = |id| Outcome::Duplicate {
            id,
            status: "paid".into(),
        };
        type Case = (Vec<TenantId>, Vec<Vec<Outcome>>, Vec<Option<Outcome>>);
        let cases: Vec<Case> = vec![
            (vec![], vec![], vec![]),
            (
                vec![a, b, a],
                vec![vec![created(x), dup(x)], vec![created(y)]],
                vec![Some(created(x)), Some(created(y)), Some(dup(x))],
            ),
            (
                vec![a, b, a],
                vec![vec![created(x), Outcome::Conflict], vec![created(y)]],
                vec![Some(created(x)), Some(created(y)), Some(Outcome::Conflict)],
            ),
            // A short result leaves the missing answer empty, never misplaced.
            (
                vec![a, a],
                vec![vec![created(x)]],
                vec![Some(created(x)), None],
            ),
        ];
        for (tenants, outcomes, want) in cases {
            let groups = group_by_tenant(&tenants);
            assert_eq!(scatter(&groups, outcomes, tenants.len()), want);
        }
    }
}
