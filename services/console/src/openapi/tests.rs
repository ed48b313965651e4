use salesync_core::api::openapi::checks::{assert_copy_current, assert_well_formed};

use super::{generate, text};
use crate::routes::ROUTES;

const COPY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../proto/console.openapi.json"
);

#[test]
fn document_is_well_formed_and_documents_every_route() {
    let routes: Vec<_> = ROUTES
        .iter()
        .map(|r| (r.method.clone(), r.path, r.access))
        .collect();
    assert_well_formed(&generate(), &routes);
}

/// The committed copy is what the code generates. On a change, rewrite it
/// with `UPDATE_OPENAPI=1 cargo nextest run -p console openapi` and commit it.
#[test]
fn proto_copy_is_current() {
    assert_copy_current(
        COPY,
        text(),
        "UPDATE_OPENAPI=1 cargo nextest run -p console openapi",
    );
}
