//! Every route of the data plane in one table — method, path, handler and
//! who may call it. The router is built from this table only, the
//! integration-only token policy reads it, and a test holds it against
//! `proto/ingest.openapi.json`, so the three can never drift apart.

pub mod sales;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
pub use salesync_core::api::routes::{Access, OPS_ROUTES, parse_id};
use salesync_core::api::routes::{integration_token_allowed as allowed_in, router, spec};

use crate::app::AppState;

/// The handler behind a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    OpenApi,
    CreateSale,
    CreateSaleBatch,
    GetSale,
    ChangeSaleStatus,
    ForwardSale,
    LookupSales,
}

pub type RouteSpec = salesync_core::api::routes::RouteSpec<Endpoint>;

use Access::*;
use Endpoint::*;

pub const ROUTES: &[RouteSpec] = &[
    spec(Method::GET, "/openapi.json", OpenApi, Public),
    spec(Method::POST, "/v1/sales", CreateSale, TenantOrIntegration),
    spec(
        Method::POST,
        "/v1/sales/batch",
        CreateSaleBatch,
        TenantOrIntegration,
    ),
    spec(
        Method::POST,
        "/v1/sales/lookup",
        LookupSales,
        TenantOrIntegration,
    ),
    spec(Method::GET, "/v1/sales/{id}", GetSale, TenantOrIntegration),
    spec(
        Method::POST,
        "/v1/sales/{id}/status",
        ChangeSaleStatus,
        Tenant,
    ),
    spec(Method::POST, "/v1/sales/{id}/forward", ForwardSale, Tenant),
];

/// The router of every route in `ROUTES`.
pub fn api_router() -> Router<AppState> {
    router(ROUTES, handler)
}

fn handler(endpoint: &Endpoint, f: MethodFilter) -> MethodRouter<AppState> {
    match endpoint {
        OpenApi => on(f, crate::openapi::document),
        CreateSale => on(f, sales::create),
        CreateSaleBatch => on(f, sales::create_batch),
        GetSale => on(f, sales::get),
        ChangeSaleStatus => on(f, sales::change_status),
        ForwardSale => on(f, sales::forward),
        LookupSales => on(f, sales::lookup),
    }
}

/// Whether an integration-only token may call `method path` (the matched
/// route pattern, e.g. `/v1/sales/{id}`): the policy `auth` applies.
pub fn integration_token_allowed(method: &Method, path: Option<&str>) -> bool {
    allowed_in(ROUTES, method, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_is_routable_and_each_route_unique() {
        salesync_core::api::routes::assert_well_formed(ROUTES);
    }

    #[test]
    fn every_route_but_the_document_is_on_the_data_planes_paths() {
        for r in ROUTES {
            let data = salesync_core::api::routes::is_data_plane_path(r.path);
            assert_eq!(data, r.endpoint != OpenApi, "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn integration_only_tokens_reach_exactly_the_contract_routes() {
        let cases = [
            (Method::POST, "/v1/sales", true),
            (Method::POST, "/v1/sales/batch", true),
            (Method::GET, "/v1/sales/{id}", true),
            (Method::POST, "/v1/sales/lookup", true),
            (Method::POST, "/v1/sales/{id}/status", false),
            (Method::POST, "/v1/sales/{id}/forward", false),
            (Method::DELETE, "/v1/sales/{id}", false),
        ];
        for (m, p, ok) in cases {
            assert_eq!(integration_token_allowed(&m, Some(p)), ok, "{m} {p}");
        }
        assert!(!integration_token_allowed(&Method::POST, None));
        let allowed = ROUTES
            .iter()
            .filter(|r| r.access == TenantOrIntegration)
            .count();
        assert_eq!(allowed, 4);
    }
}
