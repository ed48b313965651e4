use salesync_core::api::openapi::checks::{assert_copy_current, assert_well_formed};

use super::{generate, text};
use crate::routes::ROUTES;

const COPY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto/ingest.openapi.json"
);

#[test]
fn document_is_well_formed_and_documents_every_route() {
    let routes: Vec<_> = ROUTES
        .iter()
        .map(|r| (r.method.clone(), r.path, r.access))
        .collect();
    let doc = generate();
    assert_well_formed(&doc, &routes);
    assert!(doc["components"]["schemas"]["SaleInput"]["properties"]["lines"].is_object());
}

/// The committed copy is what the code generates. On a change, rewrite it
/// with `UPDATE_OPENAPI=1 cargo nextest run -p ingest openapi` and commit it.
#[test]
fn proto_copy_is_current() {
    assert_copy_current(
        COPY,
        text(),
        "UPDATE_OPENAPI=1 cargo nextest run -p ingest openapi",
    );
}
