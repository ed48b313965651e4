//! A's sale turned into B's order, as the condition-filter builds it for an
//! integration with imported products: A's flow becomes B's flow, each line
//! must name an imported copy that may still be sold, and each line's answers
//! are translated to B's questions (`answer_mapping`). A's copy of B's product
//! then judges the result as B would (`product::check_answers`), so a sale
//! that B would refuse is not forwarded and says why; only a copy that is out
//! of date lets a mismatch through, and B's refusal then reaches A's sale.

use std::collections::BTreeMap;

use serde_json::Value;

use super::answer_mapping::map_answers;
use super::flow::Flow;
use super::import::{ImportedProduct, SourceState};
use super::key::clip;
use super::mapping::{FlowMapping, QuestionMapping};
use super::product::check_answers;
use super::question::Question;
use crate::domain::SaleInput;

/// Everything A knows of B that forwarding needs, loaded per integration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderMapping {
    pub flows: FlowMapping,
    pub questions: QuestionMapping,
    /// B's flows as of the last sync.
    pub provider_flows: Vec<Flow>,
    /// A's copies of B's products, by B's product key.
    pub copies: BTreeMap<String, ImportedProduct>,
    /// A's own questions, by which A's answers are read.
    pub a_questions: Vec<Question>,
}

/// The order B receives for `sale`: B's flow, and B's answers for each line
/// (same order as `sale.lines`). `Err` is why the sale is not forwarded.
pub fn map_order(
    sale: &SaleInput,
    m: &ProviderMapping,
) -> Result<(String, Vec<BTreeMap<String, Value>>), String> {
    let a_flow = sale.flow.as_deref().ok_or(
        "the sale names no flow; an order to this provider needs one of your flows mapped to one of theirs",
    )?;
    let b_flow_key = m.flows.b_flow(a_flow).ok_or_else(|| {
        format!(
            "your flow '{}' is not mapped to a flow of the provider",
            clip(a_flow)
        )
    })?;
    let b_flow = m
        .provider_flows
        .iter()
        .find(|f| f.key == b_flow_key)
        .ok_or_else(|| {
            format!(
                "the provider no longer offers flow '{b_flow_key}' (mapped from your '{a_flow}')"
            )
        })?;
    let mut answers = Vec::with_capacity(sale.lines.len());
    for (i, line) in sale.lines.iter().enumerate() {
        let at = format!("lines[{i}]");
        let key = line.product_ref.as_deref().ok_or_else(|| {
            format!(
                "{at} (SKU '{}') names no product of the provider (product_ref)",
                clip(&line.sku)
            )
        })?;
        let copy = m.copies.get(key).ok_or_else(|| {
            format!(
                "{at}: product '{}' is not imported from the provider",
                clip(key)
            )
        })?;
        if !copy.forwardable() {
            return Err(format!("{at}: {}", not_forwardable(key, copy)));
        }
        if !b_flow.sells(key) {
            return Err(format!(
                "{at}: the provider's flow '{b_flow_key}' does not sell '{key}'"
            ));
        }
        let (mapped, problems) =
            map_answers(&copy.product, &m.a_questions, &m.questions, &line.answers);
        let problems = if problems.is_empty() {
            check_answers(&copy.product, &mapped)
        } else {
            problems
        };
        if !problems.is_empty() {
            let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(format!(
                "{at}: the provider would refuse the answers to '{key}' (version {}): {}",
                copy.product.version,
                said.join("; ")
            ));
        }
        answers.push(mapped);
    }
    Ok((b_flow_key.to_string(), answers))
}

fn not_forwardable(key: &str, copy: &ImportedProduct) -> String {
    match copy.source_state {
        SourceState::Granted => format!("your copy of '{key}' is deactivated"),
        SourceState::Inactive => format!("the provider deactivated '{key}'"),
        SourceState::Removed => format!("the provider withdrew '{key}' or no longer grants it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::mapping::AnswerSource;
    use crate::catalogue::product::tests::energy;
    use crate::catalogue::question::QuestionKind as K;
    use crate::catalogue::question::tests::question;
    use crate::domain::validation::sample_sale;
    use serde_json::json;

    /// B sells `energy()` through flow "door"; A's flow "street" is mapped
    /// to it and A's "bank" question answers B's "iban".
    fn mapping() -> ProviderMapping {
        let b = energy();
        let questions = b
            .questions
            .iter()
            .map(|q| {
                let source = if q.key == "iban" {
                    AnswerSource::FromQuestion {
                        question: "bank".into(),
                        options: BTreeMap::new(),
                    }
                } else {
                    AnswerSource::FromQuestion {
                        question: q.key.clone(),
                        options: BTreeMap::new(),
                    }
                };
                (q.key.clone(), source)
            })
            .collect();
        let mut a_questions: Vec<Question> = b
            .questions
            .iter()
            .filter(|q| q.key != "iban")
            .cloned()
            .collect();
        a_questions.push(question("bank", K::Iban));
        ProviderMapping {
            flows: FlowMapping {
                flows: [("street".to_string(), "door".to_string())].into(),
            },
            questions: QuestionMapping { questions },
            provider_flows: vec![Flow {
                key: "door".into(),
                name: "Door to door".into(),
                products: vec![b.key.clone()],
            }],
            copies: [(b.key.clone(), ImportedProduct::of(b))].into(),
            a_questions,
        }
    }

    fn sale(flow: Option<&str>, product: Option<&str>, answers: Value) -> SaleInput {
        let mut s = sample_sale("s-1");
        s.flow = flow.map(Into::into);
        s.lines.truncate(1);
        s.lines[0].product_ref = product.map(Into::into);
        s.lines[0].answers = serde_json::from_value(answers).expect("answers");
        s
    }

    fn valid_answers() -> Value {
        json!({"customer_type": "home", "bank": "NL91ABNA0417164300"})
    }

    #[test]
    fn catalogue_forwarding_maps_flow_and_answers() {
        let m = mapping();
        let key = energy().key;
        let (flow, answers) =
            map_order(&sale(Some("street"), Some(&key), valid_answers()), &m).expect("maps");
        assert_eq!(flow, "door");
        assert!(answers[0].contains_key("iban"), "{answers:?}");
        assert!(!answers[0].contains_key("bank"), "A's own keys stay behind");
    }

    #[test]
    fn catalogue_forwarding_says_why_a_sale_is_not_forwarded() {
        let key = energy().key;
        let m = mapping();
        let mut revoked = mapping();
        revoked.copies.get_mut(&key).expect("copy").source_state = SourceState::Removed;
        let mut off = mapping();
        off.copies.get_mut(&key).expect("copy").active = false;
        let mut unsold = mapping();
        unsold.provider_flows[0].products.clear();
        let mut gone = mapping();
        gone.provider_flows.clear();
        let cases: Vec<(&ProviderMapping, SaleInput, &str)> = vec![
            (&m, sale(None, Some(&key), valid_answers()), "names no flow"),
            (
                &m,
                sale(Some("web"), Some(&key), valid_answers()),
                "flow 'web' is not mapped",
            ),
            (
                &gone,
                sale(Some("street"), Some(&key), valid_answers()),
                "no longer offers flow 'door'",
            ),
            (
                &m,
                sale(Some("street"), None, valid_answers()),
                "names no product",
            ),
            (
                &m,
                sale(Some("street"), Some("solar"), valid_answers()),
                "'solar' is not imported",
            ),
            (
                &revoked,
                sale(Some("street"), Some(&key), valid_answers()),
                "no longer grants",
            ),
            (
                &off,
                sale(Some("street"), Some(&key), valid_answers()),
                "copy of",
            ),
            (
                &unsold,
                sale(Some("street"), Some(&key), valid_answers()),
                "does not sell",
            ),
            (
                &m,
                sale(Some("street"), Some(&key), json!({})),
                "answers.iban",
            ),
            (
                &m,
                sale(Some("street"), Some(&key), {
                    let mut a = valid_answers();
                    a["bank"] = json!("NL00 NOPE");
                    a
                }),
                "answers.iban",
            ),
        ];
        for (m, s, says) in cases {
            let err = map_order(&s, m).expect_err(says);
            assert!(err.contains(says), "'{err}' should say '{says}'");
        }
    }
}
