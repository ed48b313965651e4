//! The API's OpenAPI 3.1 document (`proto/openapi.json`), embedded at build
//! time and served at `GET /openapi.json`. A test holds it against the
//! route table so an undocumented route cannot ship.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("../../../proto/openapi.json");

/// `GET /openapi.json`
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;
    use crate::routes::{OPS_ROUTES, ROUTES};
    use std::collections::BTreeSet;

    fn doc() -> serde_json::Value {
        serde_json::from_str(DOCUMENT).expect("proto/openapi.json is JSON")
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc = doc();
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
        assert_eq!(routed, documented());
    }

    #[test]
    fn document_is_openapi_3_1_and_refs_resolve() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
        let text = DOCUMENT;
        assert!(text.contains("schemas/sale-input.v1.json"));
        // Every local $ref points at a defined component.
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in refs {
            if let Some(name) = r.strip_prefix("#/components/schemas/") {
                assert!(
                    doc["components"]["schemas"].get(name).is_some(),
                    "dangling $ref {r}"
                );
            } else if let Some(name) = r.strip_prefix("#/components/responses/") {
                assert!(
                    doc["components"]["responses"].get(name).is_some(),
                    "dangling $ref {r}"
                );
            } else {
                assert!(r.contains("sale-input.v1.json"), "unexpected $ref {r}");
            }
        }
        let schema_path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../proto/schemas/sale-input.v1.json"
        );
        assert!(std::path::Path::new(schema_path).exists());
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if k == "$ref" {
                        if let Some(s) = v.as_str() {
                            out.push(s.to_string());
                        }
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
