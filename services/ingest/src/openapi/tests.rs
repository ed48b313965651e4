use std::collections::BTreeSet;

use serde_json::Value;

use super::{generate, text};
use crate::routes::{OPS_ROUTES, ROUTES};

const COPY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/openapi.json");

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .chain(
            OPS_ROUTES
                .iter()
                .map(|(m, p)| (m.to_string(), p.to_string())),
        )
        .collect();
    assert_eq!(routed, documented(&generate()));
}

/// The committed copy is what the code generates. On a change, rewrite it
/// with `UPDATE_OPENAPI=1 cargo nextest run -p ingest openapi` and commit it.
#[test]
fn proto_copy_is_current() {
    let committed = std::fs::read_to_string(COPY).unwrap_or_default();
    if committed != text() {
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(COPY, text()).expect("write proto/openapi.json");
            return;
        }
        panic!(
            "proto/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo nextest run -p ingest openapi` and commit it"
        );
    }
}

#[test]
fn document_is_openapi_3_1_and_self_contained() {
    let doc = generate();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "refs: {}", refs.len());
    for r in refs {
        let target = r
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
            .unwrap_or_else(|| panic!("$ref {r} does not resolve inside the document"));
        assert!(target.is_object(), "{r}");
    }
    assert!(doc["components"]["schemas"]["SaleInput"]["properties"]["lines"].is_object());
}

#[test]
fn every_operation_has_an_id_security_and_a_success_answer() {
    let doc = generate();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "{id} twice");
            assert!(op["security"].is_array(), "{method} {path}: no security");
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no 2xx"
            );
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        r.get("$ref").is_some() || r.get("content").is_some(),
                        "{method} {path} {status}: no error body"
                    );
                }
            }
        }
    }
}

#[test]
fn tenant_routes_admit_tenant_tokens_and_admin_routes_the_admin_token() {
    let doc = generate();
    for r in ROUTES {
        let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
        let scheme = op["security"][0]
            .as_object()
            .and_then(|m| m.keys().next().cloned());
        let expected = if r.path.starts_with("/admin") {
            Some("adminToken")
        } else if r.path.starts_with("/v1") {
            Some("tenantToken")
        } else {
            None
        };
        assert_eq!(scheme.as_deref(), expected, "{} {}", r.method, r.path);
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
