//! The HTTP API's parts that every API service shares (ingest, the data
//! plane; console, the control plane): the one error shape (`error`), JSON
//! bodies read with the field at fault named (`json`), who is calling
//! (`auth`, with tokens remembered briefly in `token_cache`, forgotten on
//! revocation by `revocations`, and each tenant's `quota` of requests),
//! the route table's vocabulary (`routes`), a delivery attempt as shown
//! (`attempts`), checks on single input values
//! several routes share (`field_checks`), and the layers around every
//! request (`layers`: spans, counts, JSON for every error).
//!
//! A service's state gives these parts what they need through axum's
//! `FromRef`: [`AuthState`] for `auth`, [`BodyLimits`] for `json`.

pub mod attempts;
pub mod auth;
pub mod config;
pub mod error;
pub mod field_checks;
pub mod json;
pub mod layers;
pub mod openapi;
pub mod quota;
pub mod rate_limit;
pub mod revocations;
pub mod routes;
pub mod token_cache;
pub mod tokens_store;

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use sqlx::PgPool;

pub use error::ApiError;

use crate::domain::TenantId;
use quota::TenantQuota;
use rate_limit::retry_after_secs;
use token_cache::TokenCache;

/// How large a request body may be and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    /// `BODY_READ_TIMEOUT`.
    pub read_timeout: Duration,
}

/// Whether an integration-only token may call `method` on a matched route
/// pattern (each service answers from its own route table).
pub type IntegrationPolicy = fn(&Method, Option<&str>) -> bool;

/// What authenticating a caller needs.
#[derive(Clone)]
pub struct AuthState {
    pub pool: PgPool,
    /// Recently authenticated tokens (`AUTH_CACHE_TTL` / `AUTH_CACHE_MAX`).
    pub token_cache: Arc<TokenCache>,
    /// Per-tenant rate limits shared by every replica
    /// (`RATE_LIMIT_PER_SEC` / `RATE_LIMIT_BURST`).
    pub rate_limits: Arc<TenantQuota>,
    /// `ADMIN_TOKEN`; admin routes answer 404 when unset.
    pub admin_token: Option<Arc<str>>,
    pub integration_policy: IntegrationPolicy,
}

impl AuthState {
    /// Charges the tenant `cost` requests' worth of its rate limit.
    pub async fn charge(&self, tenant: TenantId, cost: u32) -> Result<(), ApiError> {
        self.rate_limits
            .take(tenant, cost)
            .await
            .map_err(|wait| ApiError::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            })
    }
}
