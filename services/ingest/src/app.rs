//! The data plane's state and the whole HTTP service: its routes from its
//! route table (`routes::ROUTES`, `/openapi.json` included), wrapped as
//! every API service is (`salesync_core::api::layers::service`).
//! (Rate limits are charged where the tenant is known: `auth::Caller`, and
//! the batch route for its extra sales.)

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use salesync_core::api::{AuthState, BodyLimits, layers};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_core::outbox::Handoff;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::group_commit::SaleCommitter;
use crate::routes;

/// What every handler can reach. Cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Wakes the outbox relay after a commit that wrote outbox rows.
    pub wake: Arc<Notify>,
    /// Hands the events of newly stored sales straight to the outbox relay.
    pub handoff: Handoff,
    pub metrics: Metrics,
    pub readiness: Readiness,
    /// Who is calling: tokens, rate limits, the operator's token.
    pub auth: AuthState,
    pub body: BodyLimits,
    /// Stores single-sale requests in groups (`GROUP_COMMIT_MAX`).
    pub committer: SaleCommitter,
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

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    let (readiness, metrics) = (state.readiness.clone(), state.metrics.clone());
    let limit = state.body.max_bytes;
    layers::service(
        routes::api_router().with_state(state),
        readiness,
        metrics,
        limit,
    )
}
