//! The control plane's OpenAPI 3.1 document, generated from the code:
//! utoipa derives the schemas from the request and response types and the
//! operations from the `#[utoipa::path]` attributes on the handlers;
//! `finish` then adds what the route table (`routes::ROUTES`) already knows
//! — who may call each route, hence its security and its common error
//! answers — the rules between fields, and links between operations so a
//! client (or a fuzzer) can follow ids from one answer to the next.
//!
//! Served at `GET /openapi.json`; `proto/console.openapi.json` is a copy a
//! test keeps current (`UPDATE_OPENAPI=1 cargo nextest run -p console
//! openapi` rewrites it). ingest serves the data plane's document.

mod finish;

use utoipa::OpenApi;

use crate::catalogue_sync::SyncReport;
use crate::dead_letter_queue::{Peek, PeekedMessage};
use crate::dead_letters::query::{BulkReplayParams, ReplayParams};
use crate::dead_letters::{BulkReplayed, DeadLetterDetail, DeadLetterPage, Discarded, Replayed};
use crate::erasure::{Erased, ErasureRequest};
use crate::integration_input::{IntegrationInput, IntegrationPatch};
use crate::pause::PauseInput;
use crate::provider::connection::{ConnectionTest, Outcome};
use crate::routes::admin::Purged;
use crate::routes::agents::{AgentList, AgentTokenView, AgentView, AgentWithToken, NewAgent};
use crate::routes::dead_letters::DiscardRequest;
use crate::routes::erasures::ErasureList;
use crate::routes::flows::{FlowInput, FlowList};
use crate::routes::imports::{
    ConnectionInput, ImportSelection, ImportedView, ImportsView, MappingInput, MappingView,
    OfferedProduct, ProviderCatalogue,
};
use crate::routes::integration::{
    Account, GrantedCatalogue, GrantedCounts, IntegrationAccess, OrganizationRef, TokenKind,
};
use crate::routes::integrations::{
    CreatedIntegration, IntegrationList, IntegrationView, ResumedView, RotatedSecret,
};
use crate::routes::organizations::{GrantSet, NewOrganization, OrganizationList, OrganizationView};
use crate::routes::products::ProductList;
use crate::routes::subscription::{SubscriptionInput, SubscriptionSet, SubscriptionView};
use crate::routes::webhook::{WebhookInput, WebhookSet};
use crate::routes::{
    admin, agents, dead_letters, erasures, flows, imports, integration, integrations,
    organizations, products, subscription, webhook,
};
use crate::tenancy::{CreatedTenant, CreatedToken, NewTenant, NewToken};
use salesync_core::catalogue::{
    AnswerSource, Change, Flow, ImportedProduct, Mismatch, MismatchKind, ProductInput,
    ProductVersion, RemovalPolicy, Severity, SourceState, SystemStatus, SystemStatusMapping,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "salesync console API (control plane)",
        version = "1.0.0",
        description = "Tenants, tokens, integrations, the catalogue, organizations and their Agents, the partner's integration endpoints, the tenant webhook, dead letters, erasure and the operator's routes; sales go to ingest (its own document). Errors are always `{\"error\": {\"code\", \"message\", \"fields\"?}}`; `code` is stable, `fields` names every field at fault. No string may contain NUL (U+0000). See docs/contracts.md."
    ),
    servers((url = "http://127.0.0.1:8081")),
    tags(
        (name = "integrations", description = "Where the tenant's sales go, and how"),
        (name = "webhook", description = "The tenant's own status webhook"),
        (name = "dead-letters", description = "Deliveries that failed for good: inspect, replay, discard"),
        (name = "erasure", description = "A customer's personal data, erased on request"),
        (name = "catalogue", description = "The provider's products (with versions) and flows"),
        (name = "organizations", description = "The provider's partners, what each may sell, and their Agent users"),
        (name = "imports", description = "A's side of a tenant-to-tenant integration: test the connection, import, sync, map, check"),
        (name = "integration", description = "What a partner's token reaches: who it is, and (an Agent's) the granted catalogue and its change callbacks"),
        (name = "admin", description = "Operator routes (ADMIN_TOKEN)"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    ),
    paths(
        document,
        salesync_core::ops::healthz,
        salesync_core::ops::readyz,
        salesync_core::ops::metrics_text,
        admin::create_tenant,
        admin::create_token,
        admin::revoke_token,
        admin::peek_dlq,
        admin::purge_dlq,
        admin::pause_integration,
        admin::resume_integration,
        erasures::admin_erase,
        erasures::erase,
        erasures::list,
        integrations::create,
        integrations::list,
        integrations::get,
        integrations::patch,
        integrations::delete,
        integrations::pause,
        integrations::resume,
        integrations::rotate_secret,
        webhook::put,
        dead_letters::list,
        dead_letters::get,
        dead_letters::replay,
        dead_letters::replay_matching,
        dead_letters::discard,
        products::put,
        products::list,
        products::get_version,
        products::delete,
        flows::put,
        flows::list,
        flows::delete,
        organizations::create,
        organizations::list,
        organizations::get,
        organizations::put_grants,
        agents::create,
        agents::list,
        agents::rotate_token,
        agents::revoke_token,
        integration::access,
        integration::catalogue,
        subscription::put,
        subscription::get,
        subscription::delete,
        imports::test_new_connection,
        imports::test_connection,
        imports::provider_catalogue,
        imports::put_imports,
        imports::get_imports,
        imports::sync_now,
        imports::put_mappings,
        imports::check_mappings,
        imports::receive_callback,
    ),
    components(schemas(
        salesync_core::api::error::Envelope,
        salesync_core::api::error::ErrorBody,
        salesync_core::domain::FieldError,
        salesync_core::domain::Currency,
        NewTenant, CreatedTenant, NewToken, CreatedToken,
        IntegrationInput, IntegrationPatch, IntegrationView, CreatedIntegration,
        IntegrationList, RotatedSecret, ResumedView, PauseInput,
        WebhookInput, WebhookSet,
        DeadLetterPage, DeadLetterDetail, Replayed, BulkReplayed, Discarded,
        BulkReplayParams, ReplayParams, DiscardRequest,
        Peek, PeekedMessage, Purged,
        ErasureRequest, Erased, ErasureList,
        ProductInput, ProductVersion, ProductList, FlowInput, Flow, FlowList,
        NewOrganization, GrantSet, OrganizationView, OrganizationList,
        NewAgent, AgentView, AgentTokenView, AgentList, AgentWithToken,
        IntegrationAccess, Account, TokenKind, OrganizationRef, GrantedCounts, GrantedCatalogue,
        SubscriptionInput, SubscriptionSet, SubscriptionView,
        ConnectionInput, ConnectionTest, Outcome, ProviderCatalogue, OfferedProduct,
        ImportSelection, ImportsView, ImportedView, ImportedProduct, SourceState, RemovalPolicy,
        Change, SyncReport, MappingInput, MappingView, AnswerSource, Mismatch, MismatchKind,
        Severity, SystemStatus, SystemStatusMapping,
    ))
)]
struct ApiDoc;

salesync_core::served_openapi_document!(ApiDoc, finish::finish);

#[cfg(test)]
mod tests;
