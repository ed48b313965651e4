//! What the provider (B) runs on an order arriving through an integration:
//! the order may only name a flow and products B granted to the caller's
//! organization, the products must still be sold and be in that flow, and the
//! answers must satisfy B's own questions. Every problem is returned, each
//! naming its field (`flow`, `lines[1].product_ref`, `lines[0].answers.iban`),
//! so the refusal (422) says in B's words what A must fix.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::flow::Flow;
use super::key::clip;
use super::listing::Catalogue;
use super::product::{check_answers, under};
use crate::domain::{FieldError, SaleInput};

/// What B granted one partner organization.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    #[serde(default)]
    pub products: BTreeSet<String>,
    #[serde(default)]
    pub flows: BTreeSet<String>,
}

/// The catalogue side of an incoming order. Lines are in the sale's order so
/// that `lines[i]` points at the sale's own line.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// The flow the order was placed through; required on an order to a
    /// provider, optional on a sale in general.
    #[serde(default)]
    pub flow: Option<String>,
    pub lines: Vec<OrderLine>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// The product's key in B's catalogue.
    #[serde(default)]
    pub product_ref: Option<String>,
    /// Keyed by B's question key.
    #[serde(default)]
    pub answers: BTreeMap<String, Value>,
}

impl Order {
    /// The catalogue side of a sale: its flow, and each line's product and
    /// answers.
    #[must_use]
    pub fn of_sale(sale: &SaleInput) -> Self {
        Order {
            flow: sale.flow.clone(),
            lines: sale
                .lines
                .iter()
                .map(|l| OrderLine {
                    product_ref: l.product_ref.clone(),
                    answers: l.answers.clone(),
                })
                .collect(),
        }
    }

    /// The product keys the order names, each once.
    #[must_use]
    pub fn product_keys(&self) -> BTreeSet<&str> {
        self.lines
            .iter()
            .filter_map(|l| l.product_ref.as_deref())
            .collect()
    }
}

/// The version of each product of `order` found in `catalogue`, by key:
/// what an accepted order records, so the sale keeps the version it was
/// made with.
#[must_use]
pub fn versions_used(catalogue: &Catalogue, order: &Order) -> BTreeMap<String, u32> {
    order
        .product_keys()
        .into_iter()
        .filter_map(|k| catalogue.product(k).map(|p| (k.to_string(), p.version)))
        .collect()
}

/// Every reason B refuses `order` from an organization holding `grants`;
/// empty when B accepts it.
#[must_use]
pub fn check_order(grants: &Grants, catalogue: &Catalogue, order: &Order) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let flow = granted_flow(&mut errors, grants, catalogue, order.flow.as_deref());
    if order.lines.is_empty() {
        errors.push(FieldError::new("lines", "must contain at least one line"));
    }
    for (i, line) in order.lines.iter().enumerate() {
        let field = format!("lines[{i}].product_ref");
        let Some(key) = line.product_ref.as_deref() else {
            errors.push(FieldError::new(
                field,
                "is required: each line of an order names a product of the catalogue",
            ));
            continue;
        };
        // Unknown and not granted read the same: a partner cannot probe
        // which products exist beyond its grants. Nothing more is said about
        // a product the caller may not see.
        let Some(product) = catalogue
            .product(key)
            .filter(|_| grants.products.contains(key))
        else {
            errors.push(FieldError::new(
                field,
                format!(
                    "product '{}' is not granted to your organization",
                    clip(key)
                ),
            ));
            continue;
        };
        if !product.active {
            errors.push(FieldError::new(
                &field,
                format!("product '{key}' is no longer sold (inactive)"),
            ));
        }
        if let Some(flow) = flow
            && !flow.sells(key)
        {
            errors.push(FieldError::new(
                &field,
                format!("product '{key}' is not sold through flow '{}'", flow.key),
            ));
        }
        let prefix = format!("lines[{i}]");
        errors.extend(
            check_answers(product, &line.answers)
                .into_iter()
                .map(|e| under(&prefix, e)),
        );
    }
    errors
}

/// The order's flow when it is known and granted; otherwise why not, pushed
/// to `errors`.
fn granted_flow<'c>(
    errors: &mut Vec<FieldError>,
    grants: &Grants,
    catalogue: &'c Catalogue,
    key: Option<&str>,
) -> Option<&'c Flow> {
    let Some(key) = key else {
        errors.push(FieldError::new(
            "flow",
            "is required: an order names the flow it was placed through",
        ));
        return None;
    };
    // Unknown and not granted read the same (see the products).
    let flow = catalogue.flow(key).filter(|_| grants.flows.contains(key));
    if flow.is_none() {
        errors.push(FieldError::new(
            "flow",
            format!("flow '{}' is not granted to your organization", clip(key)),
        ));
    }
    flow
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::listing::tests::catalogue;
    use crate::catalogue::test_support::Expected;
    use serde_json::json;

    fn grants() -> Grants {
        Grants {
            products: ["energy-fixed", "energy-2019", "energy-variable"]
                .map(String::from)
                .into(),
            flows: ["door-to-door"].map(String::from).into(),
        }
    }

    fn order(value: Value) -> Order {
        serde_json::from_value(value).expect("order")
    }

    const IBAN: &str = "NL91ABNA0417164300";

    #[test]
    fn catalogue_order_check_refusals() {
        let c = catalogue();
        let all = grants();
        let only_fixed = Grants {
            products: ["energy-fixed"].map(String::from).into(),
            ..grants()
        };
        let good_line = json!({"product_ref": "energy-fixed", "answers": {"customer_type": "home", "iban": IBAN}});
        // (grants, order, expected (field, problem))
        let cases: Vec<(&Grants, Value, Expected)> = vec![
            (
                &all,
                json!({"flow": "door-to-door", "lines": [good_line]}),
                vec![],
            ),
            // The flow: missing, unknown, not granted.
            (
                &all,
                json!({"lines": [good_line]}),
                vec![(
                    "flow",
                    "is required: an order names the flow it was placed through",
                )],
            ),
            (
                &all,
                json!({"flow": "phone", "lines": [good_line]}),
                vec![("flow", "flow 'phone' is not granted to your organization")],
            ),
            (
                &all,
                json!({"flow": "web", "lines": [good_line]}),
                vec![("flow", "flow 'web' is not granted to your organization")],
            ),
            // The lines: none, no product, unknown, not granted, inactive, not in the flow.
            (
                &all,
                json!({"flow": "door-to-door", "lines": []}),
                vec![("lines", "must contain at least one line")],
            ),
            (
                &all,
                json!({"flow": "door-to-door", "lines": [good_line, {"answers": {}}]}),
                vec![(
                    "lines[1].product_ref",
                    "is required: each line of an order names a product of the catalogue",
                )],
            ),
            (
                &all,
                json!({"flow": "door-to-door", "lines": [{"product_ref": "solar"}]}),
                vec![(
                    "lines[0].product_ref",
                    "product 'solar' is not granted to your organization",
                )],
            ),
            (
                &only_fixed,
                json!({"flow": "door-to-door", "lines": [good_line, {"product_ref": "energy-variable"}]}),
                vec![(
                    "lines[1].product_ref",
                    "product 'energy-variable' is not granted to your organization",
                )],
            ),
            (
                &all,
                json!({"flow": "door-to-door", "lines": [{"product_ref": "energy-2019", "answers": {"customer_type": "home", "iban": IBAN}}]}),
                vec![(
                    "lines[0].product_ref",
                    "product 'energy-2019' is no longer sold (inactive)",
                )],
            ),
            (
                &all,
                json!({"flow": "door-to-door", "lines": [{"product_ref": "energy-variable"}]}),
                vec![(
                    "lines[0].product_ref",
                    "product 'energy-variable' is not sold through flow 'door-to-door'",
                )],
            ),
            // The answers: missing required, wrong type, outside the options, failed validation.
            (
                &all,
                json!({"flow": "door-to-door", "lines": [{"product_ref": "energy-fixed", "answers": {"customer_type": "home"}}]}),
                vec![("lines[0].answers.iban", "is required")],
            ),
            (
                &all,
                json!({"flow": "door-to-door", "lines": [good_line, {"product_ref": "energy-fixed", "answers": {"customer_type": "home", "iban": 42}}]}),
                vec![("lines[1].answers.iban", "must be text, got a number")],
            ),
            (
                &all,
                json!({"flow": "door-to-door", "lines": [{"product_ref": "energy-fixed", "answers": {"customer_type": "shop", "iban": IBAN}}]}),
                vec![(
                    "lines[0].answers.customer_type",
                    "\"shop\" is not one of the options: home, business",
                )],
            ),
            (
                &all,
                json!({"flow": "door-to-door", "lines": [{"product_ref": "energy-fixed", "answers": {"customer_type": "home", "iban": "NL00ABNA0417164300"}}]}),
                vec![(
                    "lines[0].answers.iban",
                    "is not a valid IBAN: its check digits do not match (mod 97)",
                )],
            ),
            // Every problem at once; an ungranted flow skips the flow check of lines.
            (
                &only_fixed,
                json!({"flow": "web", "lines": [{"product_ref": "energy-variable"}, {"product_ref": "energy-fixed"}]}),
                vec![
                    ("flow", "flow 'web' is not granted to your organization"),
                    (
                        "lines[0].product_ref",
                        "product 'energy-variable' is not granted to your organization",
                    ),
                    ("lines[1].answers.customer_type", "is required"),
                    ("lines[1].answers.iban", "is required"),
                ],
            ),
        ];
        for (grants, given, expected) in cases {
            let got = check_order(grants, &c, &order(given.clone()));
            let got: Vec<(&str, &str)> = got
                .iter()
                .map(|e| (e.field.as_str(), e.problem.as_str()))
                .collect();
            assert_eq!(got, expected, "{given}");
        }
    }

    #[test]
    fn catalogue_order_check_with_no_grants_refuses_everything() {
        let got = check_order(
            &Grants::default(),
            &catalogue(),
            &order(json!({"flow": "door-to-door", "lines": [{"product_ref": "energy-fixed"}]})),
        );
        let fields: Vec<&str> = got.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["flow", "lines[0].product_ref"]);
    }
}
