//! The sale as the API takes it is published on its own, as the JSON Schema
//! `proto/schemas/sale-input.v1.json` (shared tests hold it against the Rust
//! type). The document embeds that very schema under `SaleInput`, its
//! `$defs` beside it, so it needs no file next to it.

use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema};

const SCHEMA: &str = include_str!("../../../../proto/schemas/sale-input.v1.json");

/// Stands for `SaleInput` in the handlers' attributes; `bundle` puts the
/// published schema in its place.
pub struct SaleInputSchema;

impl utoipa::PartialSchema for SaleInputSchema {
    fn schema() -> RefOr<Schema> {
        // A placeholder: replaced as a whole by `bundle`.
        ObjectBuilder::new().into()
    }
}

impl utoipa::ToSchema for SaleInputSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "SaleInput".into()
    }
}

/// Puts the published sale schema into `schemas` as `SaleInput`, each of its
/// `$defs` as a schema of its own, with every `$ref` rewritten to match.
/// Panics if a definition's name is taken: a build-time mistake that the
/// document test meets first.
pub fn bundle(schemas: &mut Map<String, Value>) {
    let mut root: Value = serde_json::from_str(SCHEMA).expect("sale-input.v1.json is JSON");
    rewrite_refs(&mut root);
    let obj = root.as_object_mut().expect("the sale schema is an object");
    for key in ["$schema", "$id"] {
        obj.remove(key);
    }
    if let Some(Value::Object(defs)) = obj.remove("$defs") {
        for (name, def) in defs {
            let clash = schemas.insert(name.clone(), def);
            assert!(clash.is_none(), "sale schema definition {name} clashes");
        }
    }
    // The file can only say "three capital letters"; the code knows which
    // codes it accepts, and `Currency` lists exactly those.
    let currency = &mut root["properties"]["currency"];
    assert!(currency.is_object(), "the sale schema has a currency");
    *currency = json!({"$ref": "#/components/schemas/Currency"});
    schemas.insert("SaleInput".into(), root);
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            *r = format!("#/components/schemas/{name}");
                        }
                    }
                    (_, v) => rewrite_refs(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}
