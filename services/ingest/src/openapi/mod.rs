//! The data plane's OpenAPI 3.1 document, generated from the code: utoipa derives
//! the schemas from the request and response types and the operations from
//! the `#[utoipa::path]` attributes on the handlers; `finish` then adds what
//! the route table (`routes::ROUTES`) already knows — who may call each
//! route, hence its security and its common error answers — bundles the
//! published sale schema so the document stands alone, and links operations
//! so a client (or a fuzzer) can follow ids from one answer to the next.
//!
//! Served at `GET /openapi.json`; `proto/ingest.openapi.json` is a copy a
//! test keeps current (`UPDATE_OPENAPI=1 cargo nextest run -p ingest openapi`
//! rewrites it). console serves the control plane's document.

mod finish;
mod sale_input;

use utoipa::OpenApi;

use crate::routes::sales;
use crate::routes::sales::{
    Accepted, BatchRequest, BatchResponse, ForwardRequest, LookupRequest, LookupResponse, Queued,
    StatusChange, StatusChanged,
};
use crate::store::sales::SaleDetail;
pub use sale_input::SaleInputSchema;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "salesync ingest API (data plane)",
        version = "1.0.0",
        description = "Sales in, their status changes and lookups; the management API is console's (its own document). Errors are always `{\"error\": {\"code\", \"message\", \"fields\"?}}`; `code` is stable, `fields` names every field at fault. No string may contain NUL (U+0000). See docs/contracts.md."
    ),
    servers((url = "http://127.0.0.1:8080")),
    tags(
        (name = "sales", description = "Sales in: one, a batch, their status, lookups"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    ),
    paths(
        document,
        salesync_core::ops::healthz,
        salesync_core::ops::readyz,
        salesync_core::ops::metrics_text,
        sales::create,
        sales::create_batch,
        sales::get,
        sales::change_status,
        sales::forward,
        sales::lookup,
    ),
    components(schemas(
        salesync_core::api::error::Envelope,
        salesync_core::api::error::ErrorBody,
        salesync_core::domain::FieldError,
        salesync_core::domain::Currency,
        Accepted, BatchRequest, BatchResponse, SaleDetail, StatusChange, StatusChanged,
        ForwardRequest, Queued, LookupRequest, LookupResponse,
    ))
)]
struct ApiDoc;

salesync_core::served_openapi_document!(ApiDoc, finish::finish);

#[cfg(test)]
mod tests;
