//! Per-tenant rate limits that hold across every ingest replica.
//!
//! The tenant's token bucket lives in PostgreSQL (`rate_buckets`, refilled
//! and taken from by `take_rate_tokens` in one locked row). A process does
//! not ask it per request: it takes a chunk — `CHUNK` of the tenant's
//! rate, or what the request needs if more — and spends that locally. N
//! replicas together never spend more than the one bucket gave out; what a
//! replica holds unspent is at most one chunk, so the quota is met within a
//! few percent. A tenant over its limit is answered from the process while
//! the wait the database named lasts, so a client hammering at 429 costs
//! no database calls.
//!
//! When the database cannot be asked, the process falls back to its own
//! bucket ([`RateLimiter`], the per-process limit), so a database hiccup
//! neither opens the gates nor closes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::TenantId;
use sqlx::PgPool;

use super::rate_limit::{Limit, RateLimiter};

/// How much of a tenant's rate one process takes from the shared bucket at once.
const CHUNK: Duration = Duration::from_millis(50);

/// Allowances kept before idle ones are dropped (losing at most a chunk each).
const PRUNE_ABOVE: usize = 10_000;

/// What one process holds of one tenant's quota.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowance {
    /// Taken from the shared bucket, not yet spent.
    tokens: f64,
    /// The shared bucket said "not before then".
    refused_until: Option<Instant>,
}

/// What to do about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Paid from what the process holds.
    Spent,
    /// Over the limit; the wait is known without asking.
    Refused(Duration),
    /// Ask the shared bucket for at least `need` and up to `want` tokens.
    Ask { need: f64, want: f64 },
}

impl Allowance {
    /// Pays `cost` locally if it can. A cost above the burst is capped at the
    /// burst, as in the local bucket: a big batch is slow, never impossible.
    pub fn plan(&mut self, cost: u32, limit: Limit, chunk: f64, now: Instant) -> Plan {
        let cost = f64::from(cost).min(limit.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            return Plan::Spent;
        }
        if let Some(until) = self.refused_until.filter(|u| *u > now) {
            return Plan::Refused(until - now);
        }
        let need = cost - self.tokens;
        Plan::Ask {
            need,
            want: need.max(chunk),
        }
    }

    /// Records the shared bucket's answer to [`Plan::Ask`] for `cost`:
    /// `granted` tokens (0 when `need` was not there), out of `available`.
    pub fn settle(
        &mut self,
        cost: u32,
        limit: Limit,
        need: f64,
        granted: f64,
        available: f64,
        now: Instant,
    ) -> Result<(), Duration> {
        if granted >= need && granted > 0.0 {
            self.tokens = (self.tokens + granted - f64::from(cost).min(limit.burst)).max(0.0);
            self.refused_until = None;
            Ok(())
        } else {
            let wait = Duration::from_secs_f64(((need - available) / limit.per_sec).max(0.001));
            self.refused_until = Some(now + wait);
            Err(wait)
        }
    }
}

/// Every tenant's quota, shared with the other replicas through the database.
pub struct TenantQuota {
    pool: PgPool,
    limit: Limit,
    chunk: f64,
    allowances: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<Allowance>>>>,
    fallback: RateLimiter,
}

impl TenantQuota {
    /// `per_sec` tokens refill the tenant's shared bucket each second; it
    /// holds at most `burst`.
    pub fn new(pool: PgPool, per_sec: u32, burst: u32) -> Self {
        let fallback = RateLimiter::new(per_sec, burst);
        let limit = fallback.limit();
        Self {
            pool,
            limit,
            chunk: (limit.per_sec * CHUNK.as_secs_f64()).max(1.0),
            allowances: Mutex::new(HashMap::new()),
            fallback,
        }
    }

    /// Takes `cost` tokens of the tenant's quota; `Err` is how long to wait.
    pub async fn take(&self, tenant: TenantId, cost: u32) -> Result<(), Duration> {
        if cost == 0 {
            return Ok(());
        }
        let allowance = self.allowance(tenant);
        // One request per tenant asks the database at a time; the others
        // wait for its chunk rather than asking too.
        let mut allowance = allowance.lock().await;
        let (need, want) = match allowance.plan(cost, self.limit, self.chunk, Instant::now()) {
            Plan::Spent => return Ok(()),
            Plan::Refused(wait) => return Err(wait),
            Plan::Ask { need, want } => (need, want),
        };
        match take_shared(&self.pool, tenant, need, want, self.limit).await {
            Ok((granted, available)) => {
                allowance.settle(cost, self.limit, need, granted, available, Instant::now())
            }
            Err(e) => {
                tracing::warn!(error = %e, %tenant, "shared rate limit unavailable; using this process's own");
                self.fallback.take(tenant, cost)
            }
        }
    }

    fn allowance(&self, tenant: TenantId) -> Arc<tokio::sync::Mutex<Allowance>> {
        // A poisoned lock only means a panic mid-insert; the map is still usable.
        let mut all = self
            .allowances
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if all.len() > PRUNE_ABOVE {
            all.retain(|_, a| Arc::strong_count(a) > 1);
        }
        all.entry(tenant).or_default().clone()
    }
}

/// Asks the shared bucket; (granted, available).
async fn take_shared(
    pool: &PgPool,
    tenant: TenantId,
    need: f64,
    want: f64,
    limit: Limit,
) -> sqlx::Result<(f64, f64)> {
    sqlx::query_as("SELECT granted, available FROM take_rate_tokens($1, $2, $3, $4, $5)")
        .bind(tenant)
        .bind(need)
        .bind(want)
        .bind(limit.per_sec)
        .bind(limit.burst)
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        per_sec: 100.0,
        burst: 200.0,
    };

    #[test]
    fn an_allowance_spends_locally_asks_for_chunks_and_remembers_refusals() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut a = Allowance::default();
        // Nothing held: ask for at least the cost, up to a chunk.
        assert_eq!(
            a.plan(1, LIMIT, 5.0, ms(0)),
            Plan::Ask {
                need: 1.0,
                want: 5.0
            }
        );
        assert_eq!(a.settle(1, LIMIT, 1.0, 5.0, 200.0, ms(0)), Ok(()));
        // Four left: spent without asking.
        for _ in 0..4 {
            assert_eq!(a.plan(1, LIMIT, 5.0, ms(1)), Plan::Spent);
        }
        // A batch of 8 needs 8 more than the 0 held; the chunk is smaller.
        assert_eq!(
            a.plan(8, LIMIT, 5.0, ms(2)),
            Plan::Ask {
                need: 8.0,
                want: 8.0
            }
        );
        // The bucket holds 3: refused, wait (8 - 3) / 100 s = 50 ms.
        assert_eq!(
            a.settle(8, LIMIT, 8.0, 0.0, 3.0, ms(2)),
            Err(Duration::from_millis(50))
        );
        // Until then the answer comes without asking.
        assert_eq!(
            a.plan(1, LIMIT, 5.0, ms(22)),
            Plan::Refused(Duration::from_millis(30))
        );
        // Afterwards it asks again.
        assert!(matches!(a.plan(1, LIMIT, 5.0, ms(52)), Plan::Ask { .. }));
        // A cost above the burst is capped at the burst.
        let mut b = Allowance::default();
        assert_eq!(
            b.plan(500, LIMIT, 5.0, ms(0)),
            Plan::Ask {
                need: 200.0,
                want: 200.0
            }
        );
        assert_eq!(b.settle(500, LIMIT, 200.0, 200.0, 200.0, ms(0)), Ok(()));
        assert_eq!(b.tokens, 0.0);
    }
}
