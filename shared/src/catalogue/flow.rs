//! A flow: the sales script or checkout through which the provider sells a
//! set of its products. An order names the flow it was placed through, and
//! each of its products must be in that flow.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::key::{MAX_LABEL_CHARS, check_slug, check_text, clip};
use crate::domain::FieldError;

pub const MAX_FLOW_PRODUCTS: usize = 1000;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// `[a-z0-9_-]{1,64}`.
    pub key: String,
    pub name: String,
    /// Keys of the products sold through this flow.
    #[serde(default)]
    pub products: Vec<String>,
}

impl Flow {
    /// Whether the product with this key is sold through the flow.
    #[must_use]
    pub fn sells(&self, product: &str) -> bool {
        self.products.iter().any(|p| p == product)
    }
}

/// What is wrong with a flow's definition on its own; whether its products
/// exist is checked with the catalogue.
#[must_use]
pub fn check_flow(f: &Flow) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_slug(&mut errors, "key", &f.key);
    check_text(&mut errors, "name", &f.name, 1, MAX_LABEL_CHARS);
    if f.products.len() > MAX_FLOW_PRODUCTS {
        errors.push(FieldError::new(
            "products",
            format!(
                "must have at most {MAX_FLOW_PRODUCTS} products, got {}",
                f.products.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, product) in f.products.iter().enumerate() {
        let field = format!("products[{i}]");
        check_slug(&mut errors, &field, product);
        if !seen.insert(product.as_str()) {
            errors.push(FieldError::new(
                field,
                format!("repeats the product '{}'", clip(product)),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::test_support::{Expected, assert_errors};

    fn flow(key: &str, products: &[&str]) -> Flow {
        Flow {
            key: key.into(),
            name: "Door to door".into(),
            products: products.iter().map(|p| (*p).into()).collect(),
        }
    }

    #[test]
    fn catalogue_flow_check_flow() {
        let too_many: Vec<String> = (0..=MAX_FLOW_PRODUCTS).map(|i| format!("p{i}")).collect();
        let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
        // (flow, expected (field, problem contains))
        let cases: Vec<(Flow, Expected)> = vec![
            (
                flow("door-to-door", &["energy-fixed", "energy-variable"]),
                vec![],
            ),
            (flow("door-to-door", &[]), vec![]),
            (
                flow("Door to door", &[]),
                vec![("key", "a-z, 0-9, '_' or '-'")],
            ),
            (
                Flow {
                    name: String::new(),
                    ..flow("web", &[])
                },
                vec![("name", "must not be empty")],
            ),
            (
                flow("web", &["energy", "energy"]),
                vec![("products[1]", "repeats the product 'energy'")],
            ),
            (
                flow("web", &["Energy"]),
                vec![("products[0]", "a-z, 0-9, '_' or '-'")],
            ),
            (
                flow("web", &too_many),
                vec![("products", "at most 1000 products, got 1001")],
            ),
        ];
        for (f, expected) in cases {
            let got = check_flow(&f);
            assert_errors("", &got, &expected);
        }
    }

    #[test]
    fn catalogue_flow_sells() {
        let f = flow("web", &["energy-fixed"]);
        assert!(f.sells("energy-fixed"));
        assert!(!f.sells("energy-variable"));
        assert!(!f.sells(""));
    }
}
