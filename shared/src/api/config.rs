//! The settings every API service reads the same way (ingest and console):
//! body limits, each tenant's rate limit, the token
//! cache. `ApiArgs::start` turns them into the state `auth` and `json` need,
//! and keeps the cache honest about revoked tokens.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::quota::TenantQuota;
use super::token_cache::TokenCache;
use super::{AuthState, BodyLimits, IntegrationPolicy, revocations};
use crate::config::{parse_duration_at_most, parse_positive_duration};

/// Longest accepted `AUTH_CACHE_TTL`: revocation must take effect soon.
pub const MAX_AUTH_CACHE_TTL: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// Largest accepted request body in bytes (larger: 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub max_body_bytes: u64,

    /// Longest time a request's body may take to arrive, counted from when
    /// its handler starts reading it (then 408 and the connection is
    /// closed): a client trickling a body cannot hold a connection and its
    /// buffer for good. The header has its own limit, `HTTP_IDLE_TIMEOUT`.
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value = "60s",
          value_parser = parse_positive_duration)]
    pub body_read_timeout: Duration,

    /// Requests per second each tenant may make (a batch counts as its
    /// number of sales), shared by every replica of every API service; over
    /// it: 429 with Retry-After.
    #[arg(long, env = "RATE_LIMIT_PER_SEC", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_sec: u32,

    /// Requests a tenant may make at once after being idle (the bucket size).
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 4000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// How long an authenticated API token is trusted without asking the
    /// database again. A revoked token stops working at once (the database
    /// notifies every API process); this bounds a lost notice. `0s` turns
    /// the cache off. At most 5m.
    #[arg(long, env = "AUTH_CACHE_TTL", default_value = "30s", value_parser = parse_auth_cache_ttl)]
    pub auth_cache_ttl: Duration,

    /// Most API tokens kept in the authentication cache.
    #[arg(long, env = "AUTH_CACHE_MAX", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub auth_cache_max: u32,
}

impl ApiArgs {
    /// The state `auth` needs, with the token cache forgetting revoked
    /// tokens (listening on the database) until `shutdown`. `admin_token`:
    /// the operator's, for a service with admin routes.
    pub fn start(
        &self,
        pool: &PgPool,
        policy: IntegrationPolicy,
        admin_token: Option<&str>,
        shutdown: CancellationToken,
    ) -> AuthState {
        let token_cache = Arc::new(TokenCache::new(
            self.auth_cache_ttl,
            usize::try_from(self.auth_cache_max).unwrap_or(10_000),
        ));
        tokio::spawn(revocations::listen(
            pool.clone(),
            token_cache.clone(),
            shutdown,
        ));
        AuthState {
            pool: pool.clone(),
            token_cache,
            rate_limits: Arc::new(TenantQuota::new(
                pool.clone(),
                self.rate_limit_per_sec,
                self.rate_limit_burst,
            )),
            admin_token: admin_token.map(Arc::from),
            integration_policy: policy,
        }
    }

    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            read_timeout: self.body_read_timeout,
        }
    }
}

fn parse_auth_cache_ttl(s: &str) -> Result<Duration, String> {
    parse_duration_at_most(
        s,
        MAX_AUTH_CACHE_TTL,
        "so a revoked token stops working soon",
    )
}
