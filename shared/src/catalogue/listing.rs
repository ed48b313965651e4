//! A provider's catalogue as a whole: the current version of each product and
//! the flows they are sold through. What B checks an incoming order against,
//! and what A holds of B after an import.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::flow::{Flow, check_flow};
use super::key::clip;
use super::product::{ProductVersion, check_product, under};
use crate::domain::FieldError;

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// One (current) version per product key.
    #[serde(default)]
    pub products: Vec<ProductVersion>,
    #[serde(default)]
    pub flows: Vec<Flow>,
}

impl Catalogue {
    #[must_use]
    pub fn product(&self, key: &str) -> Option<&ProductVersion> {
        self.products.iter().find(|p| p.key == key)
    }

    #[must_use]
    pub fn flow(&self, key: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.key == key)
    }
}

/// What is wrong with the catalogue: each product and flow, repeated keys,
/// and flows naming products the catalogue does not have.
#[must_use]
pub fn check_catalogue(c: &Catalogue) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut products: HashMap<&str, usize> = HashMap::new();
    for (i, p) in c.products.iter().enumerate() {
        let prefix = format!("products[{i}]");
        errors.extend(check_product(p).into_iter().map(|e| under(&prefix, e)));
        if let Some(j) = products.insert(&p.key, i) {
            errors.push(FieldError::new(
                format!("{prefix}.key"),
                format!(
                    "repeats the product '{}' of products[{j}]: a catalogue holds one version of each",
                    clip(&p.key)
                ),
            ));
        }
    }
    let mut flows: HashMap<&str, usize> = HashMap::new();
    for (i, f) in c.flows.iter().enumerate() {
        let prefix = format!("flows[{i}]");
        errors.extend(check_flow(f).into_iter().map(|e| under(&prefix, e)));
        if let Some(j) = flows.insert(&f.key, i) {
            errors.push(FieldError::new(
                format!("{prefix}.key"),
                format!("repeats the flow '{}' of flows[{j}]", clip(&f.key)),
            ));
        }
        for (k, product) in f.products.iter().enumerate() {
            if !products.contains_key(product.as_str()) {
                errors.push(FieldError::new(
                    format!("{prefix}.products[{k}]"),
                    format!("names no product of the catalogue: '{}'", clip(product)),
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalogue::product::tests::energy;
    use crate::catalogue::test_support::{Expected, assert_errors};

    /// Two products (one inactive) and two flows.
    pub(crate) fn catalogue() -> Catalogue {
        let variable = ProductVersion {
            key: "energy-variable".into(),
            version: 1,
            questions: vec![],
            ..energy()
        };
        let old = ProductVersion {
            key: "energy-2019".into(),
            active: false,
            ..energy()
        };
        Catalogue {
            products: vec![energy(), variable, old],
            flows: vec![
                Flow {
                    key: "door-to-door".into(),
                    name: "Door to door".into(),
                    products: vec!["energy-fixed".into(), "energy-2019".into()],
                },
                Flow {
                    key: "web".into(),
                    name: "Web shop".into(),
                    products: vec!["energy-variable".into()],
                },
            ],
        }
    }

    #[test]
    fn catalogue_listing_check_catalogue() {
        let with = |f: &dyn Fn(&mut Catalogue)| {
            let mut c = catalogue();
            f(&mut c);
            c
        };
        // (catalogue, expected (field, problem contains))
        let cases: Vec<(Catalogue, Expected)> = vec![
            (catalogue(), vec![]),
            (Catalogue::default(), vec![]),
            (
                with(&|c| c.products[1].key = "energy-fixed".into()),
                vec![
                    (
                        "products[1].key",
                        "repeats the product 'energy-fixed' of products[0]",
                    ),
                    (
                        "flows[1].products[0]",
                        "names no product of the catalogue: 'energy-variable'",
                    ),
                ],
            ),
            (
                with(&|c| c.flows[1].key = "door-to-door".into()),
                vec![(
                    "flows[1].key",
                    "repeats the flow 'door-to-door' of flows[0]",
                )],
            ),
            (
                with(&|c| c.flows[0].products.push("solar".into())),
                vec![(
                    "flows[0].products[2]",
                    "names no product of the catalogue: 'solar'",
                )],
            ),
            (
                with(&|c| c.products[0].version = 0),
                vec![("products[0].version", "must be at least 1")],
            ),
            (
                with(&|c| c.flows[0].name = String::new()),
                vec![("flows[0].name", "must not be empty")],
            ),
        ];
        for (c, expected) in cases {
            let got = check_catalogue(&c);
            assert_errors("", &got, &expected);
        }
    }

    #[test]
    fn catalogue_listing_lookups() {
        let c = catalogue();
        assert_eq!(c.product("energy-variable").map(|p| p.version), Some(1));
        assert!(c.product("solar").is_none());
        assert_eq!(c.flow("web").map(|f| f.name.as_str()), Some("Web shop"));
        assert!(c.flow("phone").is_none());
    }
}
