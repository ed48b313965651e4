//! The application: shared state and the full router — API routes from the
//! route table, `/openapi.json`, the ops endpoints, JSON answers for unknown
//! routes and methods, the body limit, JSON for every error, per-request
//! spans and metrics.
//! (Rate limits are charged where the tenant is known: `auth::Caller`, and
//! the batch route for its extra sales.)

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use salesync_core::crypto::SecretBox;
use salesync_core::domain::{FieldError, TenantId};
use salesync_core::egress::EgressPolicy;
use salesync_core::metrics::Metrics;
use salesync_core::ops::{self, Readiness};
use salesync_core::outbox::Handoff;
use sqlx::PgPool;
use tokio::sync::Notify;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::group_commit::SaleCommitter;
use crate::http_layers;
use crate::quota::TenantQuota;
use crate::rate_limit::retry_after_secs;
use crate::routes;
use crate::token_cache::TokenCache;

/// What every handler can reach. Cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Encrypts credentials and signing secrets at rest.
    pub secrets: Arc<SecretBox>,
    /// `ADMIN_TOKEN`; admin routes answer 404 when unset.
    pub admin_token: Option<Arc<str>>,
    /// Wakes the outbox relay after a commit that wrote outbox rows.
    pub wake: Arc<Notify>,
    /// Hands the events of newly stored sales straight to the outbox relay.
    pub handoff: Handoff,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive (`BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
    /// Per-tenant rate limits shared by every replica
    /// (`RATE_LIMIT_PER_SEC` / `RATE_LIMIT_BURST`).
    pub rate_limits: Arc<TenantQuota>,
    /// RabbitMQ, for the operator's look into the raw dead-letter queue.
    pub amqp_url: String,
    /// Stores single-sale requests in groups (`GROUP_COMMIT_MAX`).
    pub committer: SaleCommitter,
    /// Recently authenticated tokens (`AUTH_CACHE_TTL` / `AUTH_CACHE_MAX`).
    pub token_cache: Arc<TokenCache>,
    /// Which addresses a URL a tenant configures may lead to (`TARGET_ALLOW_NETS`).
    pub egress: EgressPolicy,
}

impl AppState {
    /// Refuses URLs salesync would not call on the tenant's behalf (loopback,
    /// private, link-local … unless allowed), with a 422 naming each field.
    /// `urls` are (field, URL) pairs that already passed the syntax check.
    pub async fn check_callable(&self, urls: &[(&str, &str)]) -> Result<(), ApiError> {
        let mut problems = Vec::new();
        for (field, url) in urls {
            if let Err(refused) = self.egress.check_configured_url(url).await {
                problems.push(FieldError::new(*field, refused.to_string()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(problems))
        }
    }

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

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    let ops = ops::router(state.readiness.clone(), state.metrics.clone());
    let limit = state.max_body_bytes;
    let metrics = state.metrics.clone();
    routes::api_router()
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .merge(ops)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(http_layers::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            http_layers::count_requests,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(http_layers::request_span))
}
