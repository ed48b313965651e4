//! The vocabulary of a service's route table: every API route as method,
//! path, handler and who may call it. Each service keeps one table, builds
//! its router from it, answers the integration-only policy from it, and
//! holds it against its OpenAPI document in a test, so they never drift.

use std::str::FromStr;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};

use super::ApiError;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token.
    Public,
    /// `ADMIN_TOKEN`.
    Admin,
    /// A tenant token that is not integration-only.
    Tenant,
    /// Any tenant token, integration-only ones included.
    TenantOrIntegration,
}

/// One route; `E` is the service's own enum of handlers.
#[derive(Debug, Clone)]
pub struct RouteSpec<E> {
    pub method: Method,
    pub path: &'static str,
    pub endpoint: E,
    pub access: Access,
}

pub const fn spec<E>(
    method: Method,
    path: &'static str,
    endpoint: E,
    access: Access,
) -> RouteSpec<E> {
    RouteSpec {
        method,
        path,
        endpoint,
        access,
    }
}

/// The router of every route in `routes`, each served by `handler(endpoint,
/// method)`.
pub fn router<E, S>(
    routes: &[RouteSpec<E>],
    handler: fn(&E, MethodFilter) -> MethodRouter<S>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes.iter().fold(Router::new(), |router, r| {
        match MethodFilter::try_from(r.method.clone()) {
            Ok(f) => router.route(r.path, handler(&r.endpoint, f)),
            Err(_) => router,
        }
    })
}

/// A route table's own rules, for its tests: every method routable (none
/// silently left out of `router`), no (method, path) twice.
pub fn assert_well_formed<E: std::fmt::Debug>(routes: &[RouteSpec<E>]) {
    let mut seen = std::collections::HashSet::new();
    for r in routes {
        assert!(MethodFilter::try_from(r.method.clone()).is_ok(), "{r:?}");
        assert!(seen.insert((r.method.clone(), r.path)), "twice: {r:?}");
    }
}

/// Whether an integration-only token may call `method path` (the matched
/// route pattern, e.g. `/v1/sales/{id}`) of `routes`.
pub fn integration_token_allowed<E>(
    routes: &[RouteSpec<E>],
    method: &Method,
    path: Option<&str>,
) -> bool {
    routes.iter().any(|r| {
        r.method == *method && Some(r.path) == path && r.access == Access::TenantOrIntegration
    })
}

/// Served by `ops::router` on every service, documented alongside.
pub const OPS_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/healthz"),
    (Method::GET, "/readyz"),
    (Method::GET, "/metrics"),
];

/// Whether a request path is the data plane's (ingest: `/v1/sales` and
/// below) rather than the control plane's (console: everything else). One
/// rule for whatever routes by path in front of both — a gateway, the test
/// harnesses. Each serves its own `/openapi.json` and ops routes.
pub fn is_data_plane_path(path: &str) -> bool {
    path == "/v1/sales" || path.starts_with("/v1/sales/")
}

/// Parses an id from the URL. A malformed id cannot name anything that
/// exists, so it is a 404 like any unknown id.
pub fn parse_id<T: FromStr>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SaleId;

    #[test]
    fn malformed_ids_are_not_found() {
        assert!(matches!(
            parse_id::<SaleId>("nope", "sale"),
            Err(ApiError::NotFound("sale"))
        ));
        let id = SaleId::new();
        assert_eq!(parse_id::<SaleId>(&id.to_string(), "sale").ok(), Some(id));
    }

    #[test]
    fn sales_paths_are_the_data_planes() {
        for (path, data) in [
            ("/v1/sales", true),
            ("/v1/sales/batch", true),
            ("/v1/sales/0190/forward", true),
            ("/v1/salesx", false),
            ("/v1/integrations", false),
            ("/admin/tenants", false),
            ("/openapi.json", false),
        ] {
            assert_eq!(is_data_plane_path(path), data, "{path}");
        }
    }

    #[test]
    fn only_routes_open_to_integration_tokens_allow_them() {
        let routes = [
            spec(Method::POST, "/v1/a", 1, Access::TenantOrIntegration),
            spec(Method::GET, "/v1/a", 2, Access::Tenant),
            spec(Method::GET, "/admin/a", 3, Access::Admin),
        ];
        let cases = [
            (Method::POST, Some("/v1/a"), true),
            (Method::GET, Some("/v1/a"), false),
            (Method::GET, Some("/admin/a"), false),
            (Method::POST, Some("/v1/b"), false),
            (Method::POST, None, false),
        ];
        for (m, p, want) in cases {
            assert_eq!(integration_token_allowed(&routes, &m, p), want, "{m} {p:?}");
        }
    }
}
