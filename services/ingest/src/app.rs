//! The application: shared state and the full router — API routes from the
//! route table, `/openapi.json`, the ops endpoints, JSON answers for unknown
//! routes and methods, the body limit, JSON for every error, per-request
//! spans and metrics.
//! (Rate limits are charged where the tenant is known: `auth::Caller`, and
//! the batch route for its extra sales.)

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use salesync_core::api::{ApiError, AuthState, BodyLimits, layers};
use salesync_core::crypto::SecretBox;
use salesync_core::domain::FieldError;
use salesync_core::egress::EgressPolicy;
use salesync_core::metrics::Metrics;
use salesync_core::ops::{self, Readiness};
use salesync_core::outbox::Handoff;
use sqlx::PgPool;
use tokio::sync::Notify;
use tower_http::trace::TraceLayer;

use crate::group_commit::SaleCommitter;
use crate::routes;

/// What every handler can reach. Cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Encrypts credentials and signing secrets at rest.
    pub secrets: Arc<SecretBox>,
    /// Wakes the outbox relay after a commit that wrote outbox rows.
    pub wake: Arc<Notify>,
    /// Hands the events of newly stored sales straight to the outbox relay.
    pub handoff: Handoff,
    pub metrics: Metrics,
    pub readiness: Readiness,
    /// Who is calling: tokens, rate limits, the operator's token.
    pub auth: AuthState,
    pub body: BodyLimits,
    /// RabbitMQ, for the operator's look into the raw dead-letter queue.
    pub amqp_url: String,
    /// Stores single-sale requests in groups (`GROUP_COMMIT_MAX`).
    pub committer: SaleCommitter,
    /// Which addresses a URL a tenant configures may lead to (`TARGET_ALLOW_NETS`).
    pub egress: EgressPolicy,
}

impl FromRef<AppState> for AuthState {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for BodyLimits {
    fn from_ref(state: &AppState) -> Self {
        state.body
    }
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
}

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    let ops = ops::router(state.readiness.clone(), state.metrics.clone());
    let limit = state.body.max_bytes;
    let metrics = state.metrics.clone();
    routes::api_router()
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .merge(ops)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(layers::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            layers::count_requests,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(layers::request_span))
}
