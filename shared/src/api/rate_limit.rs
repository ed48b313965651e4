//! Token buckets, in memory, per process: the arithmetic of a tenant's
//! rate limit, and the per-process limiter that `quota::TenantQuota` falls
//! back to when the shared (cross-replica) bucket cannot be asked.
//!
//! A request costs one token; a sales batch costs one per sale. A tenant
//! over its limit gets 429 with `Retry-After`: the whole seconds until the
//! bucket holds enough tokens again. The bucket arithmetic is pure (time is
//! passed in), so every rule is a table test.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::TenantId;

/// The limit: tokens added per second, and the most a bucket holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_sec: f64,
    pub burst: f64,
}

/// One tenant's bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    /// A full bucket: a tenant's first requests are never refused.
    pub fn full(limit: Limit, now: Instant) -> Self {
        Self {
            tokens: limit.burst,
            refilled_at: now,
        }
    }

    /// Takes `cost` tokens, or says how long until they would be there.
    /// A cost above the burst is capped at the burst (a full bucket lets it
    /// through), so a big-enough batch is slow, never impossible.
    pub fn take(&mut self, limit: Limit, cost: u32, now: Instant) -> Result<(), Duration> {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_sec).min(limit.burst);
        self.refilled_at = self.refilled_at.max(now);
        let cost = f64::from(cost).min(limit.burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (cost - self.tokens) / limit.per_sec,
            ))
        }
    }

    fn is_full(&self, limit: Limit, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens + elapsed * limit.per_sec >= limit.burst
    }
}

/// The `Retry-After` value for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Buckets kept before full (idle) ones are dropped, so the map cannot grow
/// without bound; a full bucket is the same as no bucket.
const PRUNE_ABOVE: usize = 10_000;

/// Every tenant's bucket, behind one lock: a take is a few float operations,
/// far cheaper than the database work of the request it guards.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Limit,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            limit: Limit {
                // Zero would never refill; the config refuses it, this keeps it safe.
                per_sec: f64::from(per_sec.max(1)),
                burst: f64::from(burst.max(1)),
            },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limit every tenant's bucket has.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Takes `cost` tokens from the tenant's bucket; `Err` is the wait.
    pub fn take(&self, tenant: TenantId, cost: u32) -> Result<(), Duration> {
        if cost == 0 {
            return Ok(());
        }
        let now = Instant::now();
        // A poisoned lock only means another request panicked mid-take; the
        // buckets are still plain numbers, so keep using them.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let limit = self.limit;
            buckets.retain(|_, b| !b.is_full(limit, now));
        }
        buckets
            .entry(tenant)
            .or_insert_with(|| Bucket::full(self.limit, now))
            .take(self.limit, cost, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        per_sec: 10.0,
        burst: 20.0,
    };

    #[test]
    fn bucket_takes_refills_and_says_how_long_to_wait() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // (name, time, cost, expected: Ok or the wait in ms)
        let steps: &[(&str, Instant, u32, Result<(), u64>)] = &[
            ("burst available at once", ms(0), 15, Ok(())),
            ("5 left", ms(0), 5, Ok(())),
            ("empty: one token is 100 ms away", ms(0), 1, Err(100)),
            ("refilled 1 token after 100 ms", ms(100), 1, Ok(())),
            ("a batch of 10 waits 1 s", ms(100), 10, Err(1000)),
            ("half a second refills 5", ms(600), 5, Ok(())),
            ("refill is capped at the burst", ms(60_000), 20, Ok(())),
            ("then empty again", ms(60_000), 1, Err(100)),
            (
                "over-burst cost needs a full bucket",
                ms(60_000),
                500,
                Err(2000),
            ),
            ("and passes once full", ms(62_000), 500, Ok(())),
            (
                "time going backwards refills nothing",
                ms(61_000),
                1,
                Err(100),
            ),
        ];
        let mut b = Bucket::full(LIMIT, t0);
        for (name, at, cost, want) in steps {
            let got = b
                .take(LIMIT, *cost, *at)
                .map_err(|d| (d.as_secs_f64() * 1000.0).round() as u64);
            assert_eq!(got, *want, "step {name}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_millis(999), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(30), 30),
        ];
        for (wait, want) in cases {
            assert_eq!(retry_after_secs(wait), want, "{wait:?}");
        }
    }

    #[test]
    fn tenants_have_separate_buckets() {
        let limiter = RateLimiter::new(1, 3);
        let (a, b) = (TenantId::new(), TenantId::new());
        assert!(limiter.take(a, 3).is_ok());
        assert!(limiter.take(a, 1).is_err());
        assert!(limiter.take(b, 3).is_ok(), "b is not slowed by a");
        assert!(limiter.take(a, 0).is_ok(), "nothing to take");
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let limiter = RateLimiter::new(1_000_000, 1);
        for _ in 0..=PRUNE_ABOVE + 1 {
            let _ = limiter.take(TenantId::new(), 1);
        }
        std::thread::sleep(Duration::from_millis(5));
        let _ = limiter.take(TenantId::new(), 1);
        let kept = limiter.buckets.lock().map(|b| b.len()).unwrap_or(0);
        assert!(kept < PRUNE_ABOVE, "kept {kept}");
    }
}
