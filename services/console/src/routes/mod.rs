//! Every route of the control plane in one table — method, path, handler
//! and who may call it. The router is built from this table only, the
//! integration-only token policy reads it, and a test holds it against the
//! OpenAPI document, so they can never drift apart. One file per resource
//! below.

pub mod admin;
pub mod agents;
pub mod dead_letters;
pub mod erasures;
pub mod flows;
pub mod imports;
pub mod integration;
pub mod integrations;
pub mod organizations;
pub mod products;
pub mod subscription;
pub mod webhook;

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
    AdminCreateTenant,
    AdminCreateToken,
    AdminRevokeToken,
    AdminPeekDeadLetterQueue,
    AdminPurgeDeadLetterQueue,
    AdminEraseCustomer,
    AdminPauseIntegration,
    AdminResumeIntegration,
    CreateIntegration,
    ListIntegrations,
    GetIntegration,
    PatchIntegration,
    DeleteIntegration,
    RotateIntegrationSecret,
    PauseIntegration,
    ResumeIntegration,
    PutWebhook,
    ListDeadLetters,
    GetDeadLetter,
    ReplayDeadLetter,
    ReplayDeadLetters,
    DiscardDeadLetter,
    EraseCustomer,
    ListErasures,
    PutProduct,
    ListProducts,
    GetProductVersion,
    DeleteProduct,
    PutFlow,
    ListFlows,
    DeleteFlow,
    CreateOrganization,
    ListOrganizations,
    GetOrganization,
    PutOrganizationGrants,
    CreateAgent,
    ListAgents,
    RotateAgentToken,
    RevokeAgentToken,
    GetIntegrationAccess,
    GetGrantedCatalogue,
    PutCatalogueSubscription,
    GetCatalogueSubscription,
    DeleteCatalogueSubscription,
    TestProviderConnection,
    TestIntegrationConnection,
    GetProviderCatalogue,
    PutImports,
    GetImports,
    SyncImports,
    PutMappings,
    CheckMappings,
    ReceiveCatalogueCallback,
}

pub type RouteSpec = salesync_core::api::routes::RouteSpec<Endpoint>;

use Access::*;
use Endpoint::*;

pub const ROUTES: &[RouteSpec] = &[
    spec(Method::GET, "/openapi.json", OpenApi, Public),
    spec(Method::POST, "/admin/tenants", AdminCreateTenant, Admin),
    spec(
        Method::POST,
        "/admin/tenants/{tenant_id}/tokens",
        AdminCreateToken,
        Admin,
    ),
    spec(
        Method::DELETE,
        "/admin/tenants/{tenant_id}/tokens/{token_id}",
        AdminRevokeToken,
        Admin,
    ),
    spec(Method::GET, "/admin/dlq", AdminPeekDeadLetterQueue, Admin),
    spec(
        Method::POST,
        "/admin/dlq/purge",
        AdminPurgeDeadLetterQueue,
        Admin,
    ),
    spec(
        Method::POST,
        "/admin/tenants/{tenant_id}/erasures",
        AdminEraseCustomer,
        Admin,
    ),
    spec(
        Method::POST,
        "/admin/integrations/{id}/pause",
        AdminPauseIntegration,
        Admin,
    ),
    spec(
        Method::POST,
        "/admin/integrations/{id}/resume",
        AdminResumeIntegration,
        Admin,
    ),
    spec(Method::POST, "/v1/integrations", CreateIntegration, Tenant),
    spec(Method::GET, "/v1/integrations", ListIntegrations, Tenant),
    spec(Method::GET, "/v1/integrations/{id}", GetIntegration, Tenant),
    spec(
        Method::PATCH,
        "/v1/integrations/{id}",
        PatchIntegration,
        Tenant,
    ),
    spec(
        Method::DELETE,
        "/v1/integrations/{id}",
        DeleteIntegration,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/integrations/{id}/rotate-secret",
        RotateIntegrationSecret,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/integrations/{id}/pause",
        PauseIntegration,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/integrations/{id}/resume",
        ResumeIntegration,
        Tenant,
    ),
    spec(Method::PUT, "/v1/webhook", PutWebhook, Tenant),
    spec(Method::GET, "/v1/dead-letters", ListDeadLetters, Tenant),
    spec(
        Method::POST,
        "/v1/dead-letters/replay",
        ReplayDeadLetters,
        Tenant,
    ),
    spec(
        Method::GET,
        "/v1/dead-letters/{delivery_id}",
        GetDeadLetter,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/dead-letters/{delivery_id}/replay",
        ReplayDeadLetter,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/dead-letters/{delivery_id}/discard",
        DiscardDeadLetter,
        Tenant,
    ),
    spec(Method::POST, "/v1/erasures", EraseCustomer, Tenant),
    spec(Method::GET, "/v1/erasures", ListErasures, Tenant),
    spec(Method::GET, "/v1/products", ListProducts, Tenant),
    spec(Method::PUT, "/v1/products/{key}", PutProduct, Tenant),
    spec(Method::DELETE, "/v1/products/{key}", DeleteProduct, Tenant),
    spec(
        Method::GET,
        "/v1/products/{key}/versions/{version}",
        GetProductVersion,
        Tenant,
    ),
    spec(Method::GET, "/v1/flows", ListFlows, Tenant),
    spec(Method::PUT, "/v1/flows/{key}", PutFlow, Tenant),
    spec(Method::DELETE, "/v1/flows/{key}", DeleteFlow, Tenant),
    spec(
        Method::POST,
        "/v1/organizations",
        CreateOrganization,
        Tenant,
    ),
    spec(Method::GET, "/v1/organizations", ListOrganizations, Tenant),
    spec(
        Method::GET,
        "/v1/organizations/{id}",
        GetOrganization,
        Tenant,
    ),
    spec(
        Method::PUT,
        "/v1/organizations/{id}/grants",
        PutOrganizationGrants,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/organizations/{id}/agents",
        CreateAgent,
        Tenant,
    ),
    spec(
        Method::GET,
        "/v1/organizations/{id}/agents",
        ListAgents,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/agents/{id}/token",
        RotateAgentToken,
        Tenant,
    ),
    spec(
        Method::DELETE,
        "/v1/agents/{id}/token",
        RevokeAgentToken,
        Tenant,
    ),
    spec(
        Method::GET,
        "/v1/integration",
        GetIntegrationAccess,
        TenantOrIntegration,
    ),
    spec(
        Method::GET,
        "/v1/integration/catalogue",
        GetGrantedCatalogue,
        TenantOrIntegration,
    ),
    spec(
        Method::PUT,
        "/v1/integration/subscription",
        PutCatalogueSubscription,
        TenantOrIntegration,
    ),
    spec(
        Method::GET,
        "/v1/integration/subscription",
        GetCatalogueSubscription,
        TenantOrIntegration,
    ),
    spec(
        Method::DELETE,
        "/v1/integration/subscription",
        DeleteCatalogueSubscription,
        TenantOrIntegration,
    ),
    spec(
        Method::POST,
        "/v1/integrations/test-connection",
        TestProviderConnection,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/integrations/{id}/test-connection",
        TestIntegrationConnection,
        Tenant,
    ),
    spec(
        Method::GET,
        "/v1/integrations/{id}/provider-catalogue",
        GetProviderCatalogue,
        Tenant,
    ),
    spec(
        Method::PUT,
        "/v1/integrations/{id}/imports",
        PutImports,
        Tenant,
    ),
    spec(
        Method::GET,
        "/v1/integrations/{id}/imports",
        GetImports,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/integrations/{id}/sync",
        SyncImports,
        Tenant,
    ),
    spec(
        Method::PUT,
        "/v1/integrations/{id}/mappings",
        PutMappings,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/integrations/{id}/mapping-check",
        CheckMappings,
        Tenant,
    ),
    spec(
        Method::POST,
        "/v1/callbacks/catalogue/{id}",
        ReceiveCatalogueCallback,
        Public,
    ),
];

/// The router of every route in `ROUTES`.
pub fn api_router() -> Router<AppState> {
    router(ROUTES, handler)
}

fn handler(endpoint: &Endpoint, f: MethodFilter) -> MethodRouter<AppState> {
    match endpoint {
        OpenApi => on(f, crate::openapi::document),
        AdminCreateTenant => on(f, admin::create_tenant),
        AdminCreateToken => on(f, admin::create_token),
        AdminRevokeToken => on(f, admin::revoke_token),
        AdminPeekDeadLetterQueue => on(f, admin::peek_dlq),
        AdminPurgeDeadLetterQueue => on(f, admin::purge_dlq),
        AdminEraseCustomer => on(f, erasures::admin_erase),
        AdminPauseIntegration => on(f, admin::pause_integration),
        AdminResumeIntegration => on(f, admin::resume_integration),
        CreateIntegration => on(f, integrations::create),
        ListIntegrations => on(f, integrations::list),
        GetIntegration => on(f, integrations::get),
        PatchIntegration => on(f, integrations::patch),
        DeleteIntegration => on(f, integrations::delete),
        RotateIntegrationSecret => on(f, integrations::rotate_secret),
        PauseIntegration => on(f, integrations::pause),
        ResumeIntegration => on(f, integrations::resume),
        PutWebhook => on(f, webhook::put),
        ListDeadLetters => on(f, dead_letters::list),
        GetDeadLetter => on(f, dead_letters::get),
        ReplayDeadLetter => on(f, dead_letters::replay),
        ReplayDeadLetters => on(f, dead_letters::replay_matching),
        DiscardDeadLetter => on(f, dead_letters::discard),
        EraseCustomer => on(f, erasures::erase),
        ListErasures => on(f, erasures::list),
        PutProduct => on(f, products::put),
        ListProducts => on(f, products::list),
        GetProductVersion => on(f, products::get_version),
        DeleteProduct => on(f, products::delete),
        PutFlow => on(f, flows::put),
        ListFlows => on(f, flows::list),
        DeleteFlow => on(f, flows::delete),
        CreateOrganization => on(f, organizations::create),
        ListOrganizations => on(f, organizations::list),
        GetOrganization => on(f, organizations::get),
        PutOrganizationGrants => on(f, organizations::put_grants),
        CreateAgent => on(f, agents::create),
        ListAgents => on(f, agents::list),
        RotateAgentToken => on(f, agents::rotate_token),
        RevokeAgentToken => on(f, agents::revoke_token),
        GetIntegrationAccess => on(f, integration::access),
        GetGrantedCatalogue => on(f, integration::catalogue),
        PutCatalogueSubscription => on(f, subscription::put),
        GetCatalogueSubscription => on(f, subscription::get),
        DeleteCatalogueSubscription => on(f, subscription::delete),
        TestProviderConnection => on(f, imports::test_new_connection),
        TestIntegrationConnection => on(f, imports::test_connection),
        GetProviderCatalogue => on(f, imports::provider_catalogue),
        PutImports => on(f, imports::put_imports),
        GetImports => on(f, imports::get_imports),
        SyncImports => on(f, imports::sync_now),
        PutMappings => on(f, imports::put_mappings),
        CheckMappings => on(f, imports::check_mappings),
        ReceiveCatalogueCallback => on(f, imports::receive_callback),
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
    fn no_route_is_on_the_data_planes_paths() {
        for r in ROUTES {
            assert!(
                !salesync_core::api::routes::is_data_plane_path(r.path),
                "{} {}",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn integration_only_tokens_reach_only_the_partner_routes() {
        let allowed: Vec<(Method, &str)> = ROUTES
            .iter()
            .filter(|r| integration_token_allowed(&r.method, Some(r.path)))
            .map(|r| (r.method.clone(), r.path))
            .collect();
        assert_eq!(
            allowed,
            [
                (Method::GET, "/v1/integration"),
                (Method::GET, "/v1/integration/catalogue"),
                (Method::PUT, "/v1/integration/subscription"),
                (Method::GET, "/v1/integration/subscription"),
                (Method::DELETE, "/v1/integration/subscription"),
            ]
        );
    }
}
