//! What the document gets from the route table rather than from each
//! handler: security and the error answers every route of a kind shares,
//! the error body on every error answer, the bundled sale schema, and links
//! between operations.

use serde_json::{Map, Value, json};

use super::sale_input;
use crate::routes::{Access, OPS_ROUTES, ROUTES};

pub fn finish(mut doc: Value) -> Value {
    doc["components"]["securitySchemes"] = json!({
        "tenantToken": {"type": "http", "scheme": "bearer", "description": "A tenant API token `sst_...`"},
        "adminToken": {"type": "http", "scheme": "bearer", "description": "The deployment's ADMIN_TOKEN"},
    });
    doc["components"]["responses"] = common_responses();
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("utoipa writes components.schemas");
    sale_input::bundle(schemas);
    add_cross_field_rules(schemas);

    for route in ROUTES {
        let op = operation(&mut doc, route.method.as_str(), route.path);
        apply_access(op, route.access);
    }
    for (method, path) in OPS_ROUTES {
        let op = operation(&mut doc, method.as_str(), path);
        apply_access(op, Access::Public);
    }
    add_links(&mut doc);
    doc
}

/// Rules between fields, which a derived schema cannot state; the code that
/// enforces each is named beside it.
fn add_cross_field_rules(schemas: &mut Map<String, Value>) {
    // dead_letters::query::bulk_replay
    schemas["BulkReplayRequest"]["anyOf"] = json!([
        {"required": ["integration_id"]},
        {"required": ["from"]},
        {"required": ["to"]},
    ]);
    // integration_input::validate
    schemas["IntegrationInput"]["if"] = json!({
        "properties": {"poll_status": {"const": true}, "target_kind": {"const": "webhook"}},
        "required": ["poll_status", "target_kind"],
    });
    schemas["IntegrationInput"]["then"] = json!({
        "required": ["status_url"],
        "properties": {"status_url": {"type": "string"}},
    });
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

/// A target operation's parameters as (name, runtime expression).
type LinkParams = &'static [(&'static str, &'static str)];

/// Where an id in one answer can be used next: (operation, status, target
/// operation, its parameters).
const LINKS: &[(&str, &str, &str, LinkParams)] = &[
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
    (
        "createIntegration",
        "201",
        "getIntegration",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "patchIntegration",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "pauseIntegration",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "resumeIntegration",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "rotateIntegrationSecret",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "deleteIntegration",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "adminPauseIntegration",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "adminResumeIntegration",
        &[("id", "$response.body#/id")],
    ),
    (
        "adminCreateTenant",
        "201",
        "adminCreateToken",
        &[("tenant_id", "$response.body#/tenant_id")],
    ),
    (
        "adminCreateTenant",
        "201",
        "adminEraseCustomer",
        &[("tenant_id", "$response.body#/tenant_id")],
    ),
    (
        "adminCreateToken",
        "201",
        "adminRevokeToken",
        &[
            ("tenant_id", "$request.path.tenant_id"),
            ("token_id", "$response.body#/token_id"),
        ],
    ),
    (
        "listDeadLetters",
        "200",
        "getDeadLetter",
        &[("delivery_id", "$response.body#/dead_letters/0/id")],
    ),
    (
        "listDeadLetters",
        "200",
        "replayDeadLetter",
        &[("delivery_id", "$response.body#/dead_letters/0/id")],
    ),
    (
        "listDeadLetters",
        "200",
        "discardDeadLetter",
        &[("delivery_id", "$response.body#/dead_letters/0/id")],
    ),
];

fn add_links(doc: &mut Value) {
    for (from, status, to, params) in LINKS {
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
