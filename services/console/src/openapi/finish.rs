//! What console's document adds to the shared finishing
//! (`salesync_core::api::openapi`): rules between fields, and the links
//! between the control plane's operations.

use salesync_core::api::openapi::{self, Link};
use serde_json::{Map, Value, json};

use crate::routes::ROUTES;

pub fn finish(mut doc: Value) -> Value {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("utoipa writes components.schemas");
    add_cross_field_rules(schemas);
    let routes = ROUTES.iter().map(|r| (&r.method, r.path, r.access));
    openapi::finish(doc, routes, LINKS)
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
    // integration_input::validate: polling a webhook needs its status URL;
    // a salesync target's statuses are sale statuses (check_status_map).
    let salesync_status_map = json!({
        "if": {
            "properties": {"target_kind": {"const": "salesync"}},
            "required": ["target_kind"],
        },
        "then": {
            "properties": {"status_map": {"propertyNames": {"pattern": "^[a-z0-9_-]{1,64}$"}}},
        },
    });
    schemas["IntegrationInput"]["allOf"] = json!([
        {
            "if": {
                "properties": {"poll_status": {"const": true}, "target_kind": {"const": "webhook"}},
                "required": ["poll_status", "target_kind"],
            },
            "then": {
                "required": ["status_url"],
                "properties": {"status_url": {"type": "string"}},
            },
        },
        salesync_status_map.clone(),
    ]);
    // On a PATCH only when it names the kind (the stored one is unknown here).
    schemas["IntegrationPatch"]["allOf"] = json!([salesync_status_map]);
    // catalogue::Condition is one of `{"equals": {...}}` / `{"in": {...}}`
    // and nothing beside (serde: an externally tagged enum, no unknown
    // fields); the derived schema leaves both levels open.
    close_variants(schemas, "Condition", &["equals", "in"]);
    // catalogue::AnswerSource likewise, `{"from_question": {...}}` closed
    // and `{"constant": any answer}`.
    close_variants(schemas, "AnswerSource", &["from_question"]);
    // rules::ForwardingRule and rules::RuleTest: one key each, nothing beside.
    close_variants(schemas, "ForwardingRule", &[]);
    close_variants(schemas, "RuleTest", &[]);
    close_variants(schemas, "TextTest", &[]);
    schemas["RuleRange"]["anyOf"] = json!([{"required": ["min"]}, {"required": ["max"]}]);
    if let Some(variants) = schemas["TextTest"]["oneOf"].as_array_mut() {
        for variant in variants {
            let props = &mut variant["properties"];
            if props.get("equals").is_some() {
                props["equals"]["maxLength"] = json!(2000);
            }
            if props.get("in").is_some() {
                props["in"]["items"]["maxLength"] = json!(2000);
                props["in"]["maxItems"] = json!(salesync_core::rules::MAX_VALUES);
            }
        }
    }
    // rules::check_value: text of at most 2000 characters, a number or a
    // boolean; at most MAX_VALUES of them in an `in`.
    let value = json!({"type": ["string", "number", "boolean"], "maxLength": 2000});
    if let Some(variants) = schemas["RuleTest"]["oneOf"].as_array_mut() {
        for variant in variants {
            let props = &mut variant["properties"];
            if props.get("equals").is_some() {
                let description = props["equals"]["description"].clone();
                props["equals"] = value.clone();
                if !description.is_null() {
                    props["equals"]["description"] = description;
                }
            }
            if props.get("in").is_some() {
                props["in"]["items"] = value.clone();
                props["in"]["maxItems"] = json!(salesync_core::rules::MAX_VALUES);
            }
        }
    }
    // routes::imports::check_mapping_keys: flows are slugs on both sides,
    // questions are keyed by the provider's question key and name one of A's.
    let slug = json!({"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"});
    let question_key = json!({"type": "string", "pattern": "^[a-z0-9_]{1,64}$"});
    let mapping = &mut schemas["MappingInput"]["properties"];
    mapping["flows"]["propertyNames"] = slug.clone();
    mapping["flows"]["additionalProperties"] = slug;
    mapping["questions"]["propertyNames"] = question_key.clone();
    if let Some(variants) = schemas["AnswerSource"]["oneOf"].as_array_mut() {
        for variant in variants {
            if variant["properties"].get("from_question").is_some() {
                variant["properties"]["from_question"]["properties"]["question"] =
                    question_key.clone();
            }
        }
    }
}

/// An externally tagged enum's schema closed at both levels: one variant key
/// and nothing beside it, and nothing unknown inside the variants named in
/// `closed_inside` (the others carry any value).
fn close_variants(schemas: &mut Map<String, Value>, name: &str, closed_inside: &[&str]) {
    if let Some(variants) = schemas[name]["oneOf"].as_array_mut() {
        for variant in variants {
            variant["additionalProperties"] = json!(false);
            if let Some(props) = variant["properties"].as_object_mut() {
                for (key, inner) in props.iter_mut() {
                    if closed_inside.contains(&key.as_str()) {
                        inner["additionalProperties"] = json!(false);
                    }
                }
            }
        }
    }
}

/// Where an id in one answer can be used next.
const LINKS: &[Link] = &[
    (
        "createIntegration",
        "201",
        "testIntegrationConnection",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "getProviderCatalogue",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "putImports",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "getImports",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "syncImports",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "putMappings",
        &[("id", "$response.body#/id")],
    ),
    (
        "createIntegration",
        "201",
        "checkMappings",
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
    (
        "putProduct",
        "201",
        "getProductVersion",
        &[
            ("key", "$request.path.key"),
            ("version", "$response.body#/version"),
        ],
    ),
    (
        "putProduct",
        "200",
        "getProductVersion",
        &[
            ("key", "$request.path.key"),
            ("version", "$response.body#/version"),
        ],
    ),
    (
        "putProduct",
        "201",
        "deleteProduct",
        &[("key", "$request.path.key")],
    ),
    (
        "putFlow",
        "201",
        "deleteFlow",
        &[("key", "$request.path.key")],
    ),
    (
        "createOrganization",
        "201",
        "getOrganization",
        &[("id", "$response.body#/id")],
    ),
    (
        "createOrganization",
        "201",
        "putOrganizationGrants",
        &[("id", "$response.body#/id")],
    ),
    (
        "createOrganization",
        "201",
        "createAgent",
        &[("id", "$response.body#/id")],
    ),
    (
        "createOrganization",
        "201",
        "listAgents",
        &[("id", "$response.body#/id")],
    ),
    (
        "createAgent",
        "201",
        "rotateAgentToken",
        &[("id", "$response.body#/agent/id")],
    ),
    (
        "createAgent",
        "201",
        "revokeAgentToken",
        &[("id", "$response.body#/agent/id")],
    ),
];
