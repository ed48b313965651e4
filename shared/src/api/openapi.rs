//! What an API service's OpenAPI document gets from its route table rather
//! than from each handler: the security schemes, security and the error
//! answers every route of a kind shares, the error body on every error
//! answer, and links between operations. Each service generates its own
//! document (utoipa) and finishes it here; `checks` holds what every such
//! document must satisfy, for the services' tests.

use axum::http::Method;
use serde_json::{Map, Value, json};

use super::routes::{Access, OPS_ROUTES};

/// A target operation's parameters as (name, runtime expression).
pub type LinkParams = &'static [(&'static str, &'static str)];

/// Where an id in one answer can be used next: (operation, status, target
/// operation, its parameters).
pub type Link = (&'static str, &'static str, &'static str, LinkParams);

/// Finishes `doc`: security schemes and shared error answers, each of
/// `routes` (and the ops routes) secured by who may call it, `links` added.
pub fn finish<'r>(
    mut doc: Value,
    routes: impl IntoIterator<Item = (&'r Method, &'r str, Access)>,
    links: &[Link],
) -> Value {
    doc["components"]["securitySchemes"] = json!({
        "tenantToken": {"type": "http", "scheme": "bearer", "description": "A tenant API token `sst_...`"},
        "adminToken": {"type": "http", "scheme": "bearer", "description": "The deployment's ADMIN_TOKEN"},
    });
    doc["components"]["responses"] = common_responses();
    for (method, path, access) in routes {
        let op = operation(&mut doc, method.as_str(), path);
        apply_access(op, access);
    }
    for (method, path) in OPS_ROUTES {
        let op = operation(&mut doc, method.as_str(), path);
        apply_access(op, Access::Public);
    }
    add_links(&mut doc, links);
    doc
}

fn operation<'a>(doc: &'a mut Value, method: &str, path: &str) -> &'a mut Map<String, Value> {
    doc["paths"][path][method.to_lowercase()]
        .as_object_mut()
        .unwrap_or_else(|| panic!("{method} {path} is routed but has no #[utoipa::path]"))
}

/// The error answers shared by many routes, each with the `code` it carries.
fn common_responses() -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        })
    };
    let mut rate_limited = error(
        "The tenant is over its rate limit (`rate_limited`): RATE_LIMIT_PER_SEC requests per second, bursts up to RATE_LIMIT_BURST, shared by every ingest replica; a batch counts as its number of sales",
    );
    rate_limited["headers"] = json!({"Retry-After": {
        "description": "Whole seconds to wait (at least 1)",
        "schema": {"type": "integer", "minimum": 1},
    }});
    json!({
        "InvalidJson": error("Malformed JSON or JSON of the wrong shape (`invalid_json`; `fields` names the path for type errors)"),
        "Unauthorized": error("Missing or invalid token (`unauthorized`)"),
        "Forbidden": error("Integration-only token on a route it may not call (`forbidden`)"),
        "RequestTimeout": error("The body did not arrive within BODY_READ_TIMEOUT (`request_timeout`); the connection is closed"),
        "PayloadTooLarge": error("Body larger than MAX_BODY_BYTES (`payload_too_large`)"),
        "UnsupportedMediaType": error("Content-Type is not application/json (`unsupported_media_type`)"),
        "Unavailable": error("Temporarily unavailable, e.g. the database (`unavailable`); retry"),
        "RateLimited": rate_limited,
    })
}

/// Security and the shared error answers of a route by who may call it.
fn apply_access(op: &mut Map<String, Value>, access: Access) {
    let (scheme, shared): (Option<&str>, &[(&str, &str)]) = match access {
        Access::Public => (None, &[]),
        Access::Admin => (
            Some("adminToken"),
            &[("401", "Unauthorized"), ("503", "Unavailable")],
        ),
        Access::Tenant => (
            Some("tenantToken"),
            &[
                ("401", "Unauthorized"),
                ("403", "Forbidden"),
                ("429", "RateLimited"),
                ("503", "Unavailable"),
            ],
        ),
        Access::TenantOrIntegration => (
            Some("tenantToken"),
            &[
                ("401", "Unauthorized"),
                ("429", "RateLimited"),
                ("503", "Unavailable"),
            ],
        ),
    };
    op.insert(
        "security".into(),
        match scheme {
            Some(s) => json!([{ s: [] }]),
            None => json!([]),
        },
    );
    let has_body = op.contains_key("requestBody");
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    let body_errors: &[(&str, &str)] = if has_body {
        &[
            ("400", "InvalidJson"),
            ("408", "RequestTimeout"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
        ]
    } else {
        &[]
    };
    for (status, name) in shared.iter().chain(body_errors) {
        responses
            .entry(*status)
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
    if access == Access::Admin {
        let not_found = responses
            .entry("404")
            .or_insert_with(|| json!({"description": "Not found"}));
        let d = not_found["description"].as_str().unwrap_or("Not found");
        not_found["description"] = json!(format!(
            "{d}; also every admin route while ADMIN_TOKEN is unset"
        ));
    }
    // Every error answer carries the error body.
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && response.get("$ref").is_none() && response.get("content").is_none() {
            response["content"] =
                json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
        }
    }
}

fn add_links(doc: &mut Value, links: &[Link]) {
    for (from, status, to, params) in links {
        assert!(find_operation(doc, to).is_some(), "no operation {to}");
        let op = find_operation(doc, from).unwrap_or_else(|| panic!("no operation {from}"));
        let response = &mut op["responses"][*status];
        assert!(response.is_object(), "{from} has no {status} answer");
        let parameters: Map<String, Value> = params
            .iter()
            .map(|(name, expr)| ((*name).to_string(), json!(expr)))
            .collect();
        response["links"][*to] = json!({"operationId": to, "parameters": parameters});
    }
}

fn find_operation<'a>(doc: &'a mut Value, id: &str) -> Option<&'a mut Value> {
    doc["paths"]
        .as_object_mut()?
        .values_mut()
        .flat_map(|item| {
            item.as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
        })
        .find(|op| op["operationId"] == id)
}

/// What every service's finished document must satisfy, for its tests.
pub mod checks {
    use std::collections::BTreeSet;

    use axum::http::Method;
    use serde_json::Value;

    use super::super::routes::{Access, OPS_ROUTES};

    /// Every (METHOD, path) the document describes.
    pub fn documented(doc: &Value) -> BTreeSet<(String, String)> {
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

    /// OpenAPI 3.1, exactly `routes` and the ops routes, every `$ref`
    /// inside the document, each operation with a unique id, a 2xx, an
    /// error body on every error answer, and the security its access says.
    pub fn assert_well_formed(doc: &Value, routes: &[(Method, &str, Access)]) {
        assert_eq!(doc["openapi"], "3.1.0");
        let routed: BTreeSet<(String, String)> = routes
            .iter()
            .map(|(m, p, _)| (m.to_string(), (*p).to_string()))
            .chain(
                OPS_ROUTES
                    .iter()
                    .map(|(m, p)| (m.to_string(), p.to_string())),
            )
            .collect();
        assert_eq!(routed, documented(doc), "routed vs documented");

        let mut refs = Vec::new();
        collect_refs(doc, &mut refs);
        for r in refs {
            let target = r
                .strip_prefix('#')
                .and_then(|pointer| doc.pointer(pointer))
                .unwrap_or_else(|| panic!("$ref {r} does not resolve inside the document"));
            assert!(target.is_object(), "{r}");
        }

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

        for (method, path, access) in routes {
            let op = &doc["paths"][*path][method.as_str().to_lowercase()];
            let scheme = op["security"][0]
                .as_object()
                .and_then(|m| m.keys().next().cloned());
            let expected = match access {
                Access::Public => None,
                Access::Admin => Some("adminToken"),
                Access::Tenant | Access::TenantOrIntegration => Some("tenantToken"),
            };
            assert_eq!(scheme.as_deref(), expected, "{method} {path}");
        }
    }

    /// The committed copy at `path` is `text`; with `UPDATE_OPENAPI` set it
    /// is rewritten instead. `how` tells how to rewrite it.
    pub fn assert_copy_current(path: &str, text: &str, how: &str) {
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed != text {
            if std::env::var_os("UPDATE_OPENAPI").is_some() {
                std::fs::write(path, text).expect("write the document's copy");
                return;
            }
            panic!("{path} is stale: run `{how}` and commit it");
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
}

/// What every API service's `openapi` module defines the same way, given
/// its utoipa `ApiDoc` and its `finish`: `generate()` (the finished
/// document), `text()` (as served and kept in `proto/`, generated once per
/// process) and `document`, the `GET /openapi.json` handler.
#[macro_export]
macro_rules! served_openapi_document {
    ($api_doc:ty, $finish:path) => {
        /// The document as served: generated once per process.
        static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let mut text =
                serde_json::to_string_pretty(&generate()).expect("a JSON value serializes");
            text.push('\n');
            text
        });

        /// The finished document.
        pub fn generate() -> serde_json::Value {
            let doc = serde_json::to_value(<$api_doc as utoipa::OpenApi>::openapi())
                .expect("the document serializes");
            $finish(doc)
        }

        /// The document's text, as served and as kept in `proto/`.
        pub fn text() -> &'static str {
            &DOCUMENT
        }

        #[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "getOpenApi",
                    summary = "This document (OpenAPI 3.1, self-contained)",
                    responses((status = 200, description = "The OpenAPI document", body = Object)))]
        pub async fn document() -> impl axum::response::IntoResponse {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                text(),
            )
        }
    };
}
