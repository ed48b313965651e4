//! What ingest's document adds to the shared finishing
//! (`salesync_core::api::openapi`): the bundled sale schema and the links
//! between the sales operations.

use salesync_core::api::openapi::{self, Link};
use serde_json::Value;

use super::sale_input;
use crate::routes::ROUTES;

pub fn finish(mut doc: Value) -> Value {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("utoipa writes components.schemas");
    sale_input::bundle(schemas);
    let routes = ROUTES.iter().map(|r| (&r.method, r.path, r.access));
    openapi::finish(doc, routes, LINKS)
}

/// Where an id in one answer can be used next.
const LINKS: &[Link] = &[
    (
        "createSale",
        "201",
        "getSale",
        &[("id", "$response.body#/id")],
    ),
    (
        "createSale",
        "201",
        "changeSaleStatus",
        &[("id", "$response.body#/id")],
    ),
    (
        "createSale",
        "201",
        "forwardSale",
        &[("id", "$response.body#/id")],
    ),
];
