//! The control plane's state and the whole HTTP service: its routes from its
//! route table (`routes::ROUTES`), wrapped as every API service is
//! (`salesync_core::api::layers::service`).

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use salesync_core::api::{ApiError, AuthState, BodyLimits, layers};
use salesync_core::crypto::SecretBox;
use salesync_core::domain::FieldError;
use salesync_core::egress::EgressPolicy;
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::routes;

/// What every handler can reach. Cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Encrypts credentials and signing secrets at rest.
    pub secrets: Arc<SecretBox>,
    /// Wakes the outbox relay after a commit that wrote outbox rows.
    pub wake: Arc<Notify>,
    pub metrics: Metrics,
    pub readiness: Readiness,
    /// Who is calling: tokens, rate limits, the operator's token.
    pub auth: AuthState,
    pub body: BodyLimits,
    /// RabbitMQ, for the operator's look into the raw dead-letter queue.
    pub amqp_url: String,
    /// Which addresses a URL a tenant configures may lead to (`TARGET_ALLOW_NETS`).
    pub egress: EgressPolicy,
    /// This console's address as providers reach it (`PUBLIC_URL`), for
    /// their catalogue callbacks.
    pub public_url: Option<String>,
    /// What the web console's pages need (RabbitMQ's management API, the
    /// services' readiness URLs, the trace viewer).
    pub web: Arc<crate::web::WebSettings>,
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
    let (readiness, metrics) = (state.readiness.clone(), state.metrics.clone());
    let limit = state.body.max_bytes;
    layers::service(
        routes::api_router()
            .merge(crate::web::router())
            .with_state(state),
        readiness,
        metrics,
        limit,
    )
}
