//! A short-lived, bounded, in-process cache of authenticated API tokens, so a
//! busy client does not cost a database lookup per request. Keyed by the
//! token's SHA-256 (the raw token is never kept). Only tokens found active
//! are cached: an unknown token always asks the database (a freshly created
//! token works at once, and guessing cannot fill the cache). A revoked
//! token leaves every process's cache at once (`revocations` listens for
//! the database's notice); the TTL (`AUTH_CACHE_TTL`, default 30 s) bounds
//! how long one could linger should a notice be lost. `AUTH_CACHE_TTL=0s`
//! turns the cache off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::{OrganizationId, TenantId, TokenId};

/// What authentication needs of an active token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachedToken {
    pub id: TokenId,
    pub tenant_id: TenantId,
    pub integration_only: bool,
    pub organization_id: Option<OrganizationId>,
}

pub struct TokenCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<Vec<u8>, (Instant, CachedToken)>>,
}

impl TokenCache {
    /// A cache keeping each token for `ttl` (zero: caches nothing), holding
    /// at most `max_entries` tokens.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The token with this hash, if it was found active less than the TTL ago.
    pub fn get(&self, hash: &[u8], now: Instant) -> Option<CachedToken> {
        let entries = self.entries.lock().ok()?;
        let (at, token) = entries.get(hash)?;
        fresh(*at, now, self.ttl).then_some(*token)
    }

    /// Remembers a token just found active.
    pub fn put(&self, hash: Vec<u8>, token: CachedToken, now: Instant) {
        if self.ttl.is_zero() || self.max_entries == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.max_entries && !entries.contains_key(&hash) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| fresh(*at, now, ttl));
            // Still full of live tokens: start over rather than grow; the
            // cost is one lookup per token again.
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(hash, (now, token));
    }

    /// Forgets the token with this hash (it was revoked).
    pub fn remove(&self, hash: &[u8]) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(hash);
        }
    }

    /// Forgets every token (revocation notices may have been missed).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an entry stored at `at` is still usable at `now`.
fn fresh(at: Instant, now: Instant, ttl: Duration) -> bool {
    now.checked_duration_since(at).is_some_and(|age| age < ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> CachedToken {
        CachedToken {
            id: TokenId::new(),
            tenant_id: TenantId::new(),
            integration_only: false,
            organization_id: None,
        }
    }

    #[test]
    fn freshness() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let cases = [
            (Duration::ZERO, Duration::from_secs(30), true),
            (29 * s, Duration::from_secs(30), true),
            (30 * s, Duration::from_secs(30), false),
            (31 * s, Duration::from_secs(30), false),
            (Duration::ZERO, Duration::ZERO, false),
        ];
        for (age, ttl, want) in cases {
            assert_eq!(fresh(t0, t0 + age, ttl), want, "{age:?} {ttl:?}");
        }
        // A clock that went backwards (cannot happen with Instant) is not fresh.
        assert!(!fresh(t0 + s, t0, Duration::from_secs(30)));
    }

    #[test]
    fn hit_miss_expiry_and_disabled() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(30);
        let c = TokenCache::new(ttl, 10);
        let tok = token();
        assert_eq!(c.get(b"h1", t0), None);
        c.put(b"h1".to_vec(), tok, t0);
        assert_eq!(c.get(b"h1", t0 + Duration::from_secs(5)), Some(tok));
        assert_eq!(c.get(b"h2", t0), None);
        assert_eq!(c.get(b"h1", t0 + ttl), None, "expired");

        let off = TokenCache::new(Duration::ZERO, 10);
        off.put(b"h1".to_vec(), tok, t0);
        assert!(off.is_empty());
        assert_eq!(off.get(b"h1", t0), None);
    }

    #[test]
    fn stays_bounded() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(30);
        let c = TokenCache::new(ttl, 3);
        for i in 0..3u8 {
            c.put(vec![i], token(), t0);
        }
        assert_eq!(c.len(), 3);
        // Full of live entries: a new one clears the rest.
        c.put(vec![9], token(), t0);
        assert_eq!(c.len(), 1);
        // Full with expired entries: those are dropped, live ones kept.
        c.put(vec![1], token(), t0);
        c.put(vec![2], token(), t0 + Duration::from_secs(20));
        c.put(vec![3], token(), t0 + Duration::from_secs(31));
        let later = t0 + Duration::from_secs(31);
        assert_eq!(c.len(), 2, "9 and 1 expired at 30 s; 2 and 3 live");
        assert!(c.get(&[2], later).is_some());
        assert!(c.get(&[3], later).is_some());
        // Updating a present key never evicts.
        c.put(vec![4], token(), later);
        c.put(vec![3], token(), later);
        assert_eq!(c.len(), 3);
    }
}
