//! What the reseller (A) runs on its mapping onto a provider's (B) imported
//! catalogue, on demand and after every sync: every place where a forwarded
//! order could be refused by B, listed before any order is. Each mismatch
//! names B's product and question (or A's flow), its kind, and says in a
//! sentence what is wrong and what would happen.
//! How B's rules are compared with A's is in `stricter`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::answer::check_answer;
use super::conversion::conversion;
use super::flow::Flow;
use super::key::clip;
use super::mapping::{AnswerSource, FlowMapping, QuestionMapping};
use super::product::ProductVersion;
use super::question::Question;
use super::stricter::{describe, renamed, stricter_rules};
use super::validations::Rule;

#[derive(
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// B requires an answer that nothing on A's side provides.
    UnmappedRequired,
    /// An optional question of B that nothing answers (a warning).
    UnmappedOptional,
    /// A's question is of a kind that cannot answer B's.
    IncompatibleType,
    /// B requires the answer, A's question may be left empty.
    OptionalOnARequiredOnB,
    /// Some of A's options have no counterpart among B's (listed).
    OptionsWithoutCounterpart,
    /// B's rules refuse answers A accepts (which rules: listed).
    StricterValidationOnB,
    /// A constant mapped to B's question is not a valid answer to it.
    ConstantInvalid,
    /// The mapping names a question A does not have.
    UnknownAQuestion,
    /// Orders cannot be placed in a flow of B (see the message).
    UnmappedFlow,
}

#[derive(
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Orders will (or may) be refused by B.
    Error,
    /// Nothing is refused, but B receives less than it could.
    Warning,
}

impl MismatchKind {
    #[must_use]
    pub fn severity(self) -> Severity {
        match self {
            MismatchKind::UnmappedOptional => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

/// One mismatch. Ordered and hashable so that the mismatches of two runs can
/// be compared to flag the new ones.
#[derive(
    Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema,
)]
pub struct Mismatch {
    pub kind: MismatchKind,
    pub severity: Severity,
    /// B's product key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// B's question key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// A's flow key (for a flow mapped to a flow B does not offer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// What is wrong and what would happen, for the person fixing it.
    pub message: String,
    /// A's option values (or answers) B would refuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub option_values: Vec<String>,
    /// Which of B's rules are stricter than A's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stricter: Vec<Rule>,
}

impl Mismatch {
    fn new(kind: MismatchKind, message: String) -> Self {
        Self {
            kind,
            severity: kind.severity(),
            product: None,
            question: None,
            flow: None,
            message,
            option_values: Vec::new(),
            stricter: Vec::new(),
        }
    }

    fn on(mut self, product: &ProductVersion, question: &Question) -> Self {
        self.product = Some(product.key.clone());
        self.question = Some(question.key.clone());
        self
    }
}

/// Every mismatch between A's mapping and B's imported products and flows:
/// flows first, then each product's questions in B's order.
#[must_use]
pub fn check_mapping(
    b_products: &[ProductVersion],
    b_flows: &[Flow],
    a_questions: &[Question],
    questions: &QuestionMapping,
    flows: &FlowMapping,
) -> Vec<Mismatch> {
    let mut found = check_flows(b_products, b_flows, flows);
    for product in b_products {
        for b in &product.questions {
            found.extend(
                check_question(product, b, a_questions, questions.questions.get(&b.key))
                    .map(|m| m.on(product, b)),
            );
        }
    }
    found
}

fn check_flows(
    b_products: &[ProductVersion],
    b_flows: &[Flow],
    flows: &FlowMapping,
) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let mut mapped: Vec<&Flow> = Vec::new();
    for (a_flow, b_flow) in &flows.flows {
        match b_flows.iter().find(|f| f.key == *b_flow) {
            Some(flow) => mapped.push(flow),
            None => found.push(Mismatch {
                flow: Some(a_flow.clone()),
                ..Mismatch::new(
                    MismatchKind::UnmappedFlow,
                    format!(
                        "your flow '{a_flow}' is mapped to B's flow '{}', which B does not offer you: sales in it cannot be forwarded",
                        clip(b_flow)
                    ),
                )
            }),
        }
    }
    for product in b_products {
        if !mapped.iter().any(|f| f.sells(&product.key)) {
            found.push(Mismatch {
                product: Some(product.key.clone()),
                ..Mismatch::new(
                    MismatchKind::UnmappedFlow,
                    format!(
                        "none of your flows is mapped to a flow of B that sells '{}' ({}): its sales cannot be forwarded",
                        product.key, product.name
                    ),
                )
            });
        }
    }
    found
}

/// The mismatches of B's question `b` of `product` with its answer `source`.
fn check_question(
    product: &ProductVersion,
    b: &Question,
    a_questions: &[Question],
    source: Option<&AnswerSource>,
) -> impl Iterator<Item = Mismatch> {
    let what = format!(
        "B's question '{}' ({}) of '{}'",
        b.key, b.label, product.key
    );
    let found: Vec<Mismatch> = match source {
        None if b.required => vec![Mismatch::new(
            MismatchKind::UnmappedRequired,
            format!(
                "{what} is required, and none of your questions or a constant is mapped to it: orders would be refused"
            ),
        )],
        None => vec![Mismatch::new(
            MismatchKind::UnmappedOptional,
            format!("{what} is optional and not mapped: orders go without its answer"),
        )],
        Some(AnswerSource::Constant(value)) => match check_answer(b, value) {
            Ok(_) => vec![],
            Err(problem) => vec![Mismatch::new(
                MismatchKind::ConstantInvalid,
                format!(
                    "the constant {} mapped to {what} is not a valid answer: {problem}",
                    clip(&value.to_string())
                ),
            )],
        },
        Some(AnswerSource::FromQuestion { question, options }) => {
            match a_questions.iter().find(|q| q.key == *question) {
                None => vec![Mismatch::new(
                    MismatchKind::UnknownAQuestion,
                    format!(
                        "{what} is mapped from your question '{}', which does not exist",
                        clip(question)
                    ),
                )],
                Some(a) => check_pair(&what, a, b, options),
            }
        }
    };
    found.into_iter()
}

/// B's question `b` answered from A's question `a`.
fn check_pair(
    what: &str,
    a: &Question,
    b: &Question,
    options: &BTreeMap<String, String>,
) -> Vec<Mismatch> {
    let Some(how) = conversion(a.kind, b.kind) else {
        return vec![Mismatch::new(
            MismatchKind::IncompatibleType,
            format!(
                "{what} is a {} question; your {} question '{}' cannot answer it",
                b.kind, a.kind, a.key
            ),
        )];
    };
    let mut found = Vec::new();
    if b.required && !a.required {
        found.push(Mismatch::new(
            MismatchKind::OptionalOnARequiredOnB,
            format!("{what} is required, but your question '{}' is optional: a sale without its answer would be refused", a.key),
        ));
    } else if b.required
        && b.asked_when.is_none()
        && let Some(condition) = &a.asked_when
    {
        found.push(Mismatch::new(
            MismatchKind::OptionalOnARequiredOnB,
            format!(
                "{what} is always required, but you ask '{}' only when {}: other sales would be refused",
                a.key,
                condition.describe()
            ),
        ));
    }
    if b.kind.is_choice() {
        let missing: Vec<String> = a
            .options
            .iter()
            .filter(|o| b.option(renamed(options, &o.value)).is_none())
            .map(|o| o.value.clone())
            .collect();
        if !missing.is_empty() {
            let b_values: Vec<&str> = b.options.iter().map(|o| o.value.as_str()).collect();
            found.push(Mismatch {
                option_values: missing.clone(),
                ..Mismatch::new(
                    MismatchKind::OptionsWithoutCounterpart,
                    format!(
                        "your options {} of '{}' have no counterpart among the options of {what}; map each to one of: {}",
                        quoted(&missing),
                        a.key,
                        b_values.join(", ")
                    ),
                )
            });
        }
    }
    if !b.validations.is_empty() {
        let (stricter, refused) = stricter_rules(a, b, how, options);
        if !stricter.is_empty() {
            let rules: Vec<&str> = stricter.iter().map(|r| describe(*r)).collect();
            let which = if refused.is_empty() {
                String::new()
            } else {
                format!(" ({} would be refused)", quoted(&refused))
            };
            found.push(Mismatch {
                option_values: refused,
                stricter,
                ..Mismatch::new(
                    MismatchKind::StricterValidationOnB,
                    format!(
                        "{what} is stricter than your question '{}': {}; some of your answers{which} would be refused",
                        a.key,
                        rules.join(", ")
                    ),
                )
            })
        }
    }
    found
}

fn quoted(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("{:?}", clip(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::condition::Condition;
    use crate::catalogue::pattern::Pattern;
    use crate::catalogue::product::tests::energy;
    use crate::catalogue::question::QuestionKind as K;
    use crate::catalogue::question::tests::{choice, question};
    use crate::catalogue::validations::{Limit, Validations};
    use serde_json::json;
    use std::str::FromStr;

    fn required(q: Question) -> Question {
        Question {
            required: true,
            ..q
        }
    }

    fn ruled(q: Question, validations: Validations) -> Question {
        Question { validations, ..q }
    }

    fn regex(p: &str) -> Validations {
        Validations {
            regex: Some(Pattern::new(p)),
            ..Validations::default()
        }
    }

    fn lengths(min: Option<u32>, max: Option<u32>) -> Validations {
        Validations {
            min_length: min,
            max_length: max,
            ..Validations::default()
        }
    }

    fn limits(min: Option<&str>, max: Option<&str>) -> Validations {
        let limit = |s: &str| match crate::catalogue::formats::parse_date(s) {
            Some(d) => Limit::Date(d),
            None => Limit::Number(rust_decimal::Decimal::from_str(s).expect("number")),
        };
        Validations {
            min: min.map(limit),
            max: max.map(limit),
            ..Validations::default()
        }
    }

    fn from(a_key: &str, options: &[(&str, &str)]) -> AnswerSource {
        AnswerSource::FromQuestion {
            question: a_key.into(),
            options: options
                .iter()
                .map(|(a, b)| ((*a).into(), (*b).into()))
                .collect(),
        }
    }

    /// B's product with one question `b` answered from `source`, A with
    /// `a_questions`, flows mapped: the mismatches as (kind, option values,
    /// stricter rules).
    fn one(
        b: Question,
        a: Vec<Question>,
        source: Option<AnswerSource>,
    ) -> Vec<(MismatchKind, Vec<String>, Vec<Rule>)> {
        let key = b.key.clone();
        let product = ProductVersion {
            questions: vec![b],
            ..energy()
        };
        let questions = QuestionMapping {
            questions: source.into_iter().map(|s| (key.clone(), s)).collect(),
        };
        check_mapping(&[product], &flows(), &a, &questions, &flow_mapping())
            .into_iter()
            .map(|m| {
                assert_eq!(m.product.as_deref(), Some("energy-fixed"));
                assert_eq!(m.question.as_deref(), Some(key.as_str()));
                assert_eq!(m.severity, m.kind.severity());
                (m.kind, m.option_values, m.stricter)
            })
            .collect()
    }

    fn flows() -> Vec<Flow> {
        vec![Flow {
            key: "door-to-door".into(),
            name: "Door to door".into(),
            products: vec!["energy-fixed".into()],
        }]
    }

    fn flow_mapping() -> FlowMapping {
        FlowMapping {
            flows: [("deur".to_owned(), "door-to-door".to_owned())].into(),
        }
    }

    fn kinds(found: Vec<(MismatchKind, Vec<String>, Vec<Rule>)>) -> Vec<MismatchKind> {
        found.into_iter().map(|(k, _, _)| k).collect()
    }

    #[test]
    fn catalogue_mapping_check_unmapped() {
        use MismatchKind as M;
        let iban = required(question("iban", K::Iban));
        assert_eq!(
            kinds(one(iban.clone(), vec![], None)),
            [M::UnmappedRequired]
        );
        assert_eq!(
            kinds(one(question("note", K::Text), vec![], None)),
            [M::UnmappedOptional]
        );
        assert_eq!(M::UnmappedOptional.severity(), Severity::Warning);
        assert_eq!(M::UnmappedRequired.severity(), Severity::Error);
        // A conditional requirement is still a requirement.
        let when = Question {
            asked_when: Some(Condition::Equals {
                question: "x".into(),
                value: json!("y"),
            }),
            ..iban.clone()
        };
        assert_eq!(kinds(one(when, vec![], None)), [M::UnmappedRequired]);
        assert!(
            one(
                iban,
                vec![required(question("rekening", K::Iban))],
                Some(from("rekening", &[]))
            )
            .is_empty()
        );
    }

    #[test]
    fn catalogue_mapping_check_types() {
        use MismatchKind as M;
        // (B's kind, A's kind, incompatible?)
        let cases = [
            (K::Email, K::Text, true),
            (K::Iban, K::Text, true),
            (K::SingleChoice, K::Text, true),
            (K::Number, K::Decimal, true),
            (K::SingleChoice, K::MultipleChoice, true),
            (K::Date, K::Text, true),
            (K::Decimal, K::Number, false),
            (K::Text, K::SingleChoice, false),
            (K::Text, K::Iban, false),
            (K::Email, K::Email, false),
        ];
        for (b_kind, a_kind, incompatible) in cases {
            let b = if b_kind.is_choice() {
                choice("q", b_kind, &["a"])
            } else {
                question("q", b_kind)
            };
            let a = if a_kind.is_choice() {
                choice("a", a_kind, &["a"])
            } else {
                question("a", a_kind)
            };
            let expected: &[M] = if incompatible {
                &[M::IncompatibleType]
            } else {
                &[]
            };
            assert_eq!(
                kinds(one(b, vec![a], Some(from("a", &[])))),
                expected,
                "{a_kind} → {b_kind}"
            );
        }
    }

    #[test]
    fn catalogue_mapping_check_required_and_unknown() {
        use MismatchKind as M;
        let b = required(question("iban", K::Iban));
        let conditional = Question {
            asked_when: Some(Condition::Equals {
                question: "betaalwijze".into(),
                value: json!("incasso"),
            }),
            ..required(question("rekening", K::Iban))
        };
        // (A's question, expected)
        let cases: Vec<(Question, Vec<M>)> = vec![
            (required(question("rekening", K::Iban)), vec![]),
            (
                question("rekening", K::Iban),
                vec![M::OptionalOnARequiredOnB],
            ),
            (conditional, vec![M::OptionalOnARequiredOnB]),
            (
                required(question("andere", K::Iban)),
                vec![M::UnknownAQuestion],
            ),
        ];
        for (a, expected) in cases {
            assert_eq!(
                kinds(one(b.clone(), vec![a.clone()], Some(from("rekening", &[])))),
                expected,
                "{a:?}"
            );
        }
        // Optional on both sides is fine.
        assert!(
            one(
                question("iban", K::Iban),
                vec![question("rekening", K::Iban)],
                Some(from("rekening", &[]))
            )
            .is_empty()
        );
    }

    #[test]
    fn catalogue_mapping_check_options() {
        use MismatchKind as M;
        let b = choice("customer_type", K::SingleChoice, &["home", "business"]);
        let b_multi = choice("extras", K::MultipleChoice, &["green", "smart"]);
        let a = choice(
            "klant",
            K::SingleChoice,
            &["particulier", "zakelijk", "school"],
        );
        let both = [("particulier", "home"), ("zakelijk", "business")];
        // (B's question, A's question, option map, A's values without counterpart)
        type OptionMap = Vec<(&'static str, &'static str)>;
        let cases: Vec<(Question, Question, OptionMap, Vec<&str>)> = vec![
            (b.clone(), a.clone(), both.to_vec(), vec!["school"]),
            (
                b.clone(),
                a.clone(),
                vec![],
                vec!["particulier", "zakelijk", "school"],
            ),
            (
                b.clone(),
                a.clone(),
                vec![
                    ("particulier", "home"),
                    ("zakelijk", "business"),
                    ("school", "business"),
                ],
                vec![],
            ),
            // A mapped value must be one of B's.
            (
                b.clone(),
                a.clone(),
                vec![
                    ("particulier", "home"),
                    ("zakelijk", "Business"),
                    ("school", "home"),
                ],
                vec!["zakelijk"],
            ),
            // Same values need no map.
            (
                b.clone(),
                choice("klant", K::SingleChoice, &["home", "business"]),
                vec![],
                vec![],
            ),
            (
                b_multi.clone(),
                choice("klant", K::SingleChoice, &["green", "solar"]),
                vec![],
                vec!["solar"],
            ),
            (
                b_multi.clone(),
                choice("klant", K::MultipleChoice, &["green", "smart", "solar"]),
                vec![],
                vec!["solar"],
            ),
        ];
        for (b, a, map, missing) in cases {
            let found = one(b.clone(), vec![a.clone()], Some(from(&a.key, &map)));
            let expected: Vec<(M, Vec<String>, Vec<Rule>)> = if missing.is_empty() {
                vec![]
            } else {
                vec![(
                    M::OptionsWithoutCounterpart,
                    missing.iter().map(|s| (*s).to_owned()).collect(),
                    vec![],
                )]
            };
            assert_eq!(found, expected, "{map:?}");
        }
    }

    #[test]
    fn catalogue_mapping_check_stricter_validation() {
        let text = |v| ruled(question("q", K::Text), v);
        let a_text = |v| ruled(question("a", K::Text), v);
        // (B's question, A's question, B's stricter rules, A's answers B would refuse)
        let cases: Vec<(Question, Question, Vec<Rule>, Vec<&str>)> = vec![
            // Pattern: only the very same pattern is known to be as strict.
            (
                text(regex("[A-Z]{2}")),
                a_text(Validations::default()),
                vec![Rule::Regex],
                vec![],
            ),
            (
                text(regex("[A-Z]{2}")),
                a_text(regex("[A-Z]{2}")),
                vec![],
                vec![],
            ),
            (
                text(regex("[A-Z]{2}")),
                a_text(regex("[A-Z]{2,3}")),
                vec![Rule::Regex],
                vec![],
            ),
            // Lengths, declared or implied by A's kind.
            (
                text(lengths(None, Some(10))),
                a_text(lengths(None, Some(20))),
                vec![Rule::MaxLength],
                vec![],
            ),
            (
                text(lengths(None, Some(10))),
                a_text(lengths(None, Some(10))),
                vec![],
                vec![],
            ),
            (
                text(lengths(None, Some(10))),
                a_text(Validations::default()),
                vec![Rule::MaxLength],
                vec![],
            ),
            (
                text(lengths(None, Some(10))),
                question("a", K::Postcode),
                vec![],
                vec![],
            ),
            (
                text(lengths(None, Some(10))),
                question("a", K::Email),
                vec![Rule::MaxLength],
                vec![],
            ),
            (
                text(lengths(None, Some(34))),
                question("a", K::Iban),
                vec![],
                vec![],
            ),
            (
                text(lengths(Some(3), None)),
                a_text(Validations::default()),
                vec![Rule::MinLength],
                vec![],
            ),
            (
                text(lengths(Some(3), None)),
                a_text(lengths(Some(3), None)),
                vec![],
                vec![],
            ),
            (
                text(lengths(Some(15), None)),
                question("a", K::Iban),
                vec![],
                vec![],
            ),
            (
                text(lengths(Some(1), None)),
                a_text(Validations::default()),
                vec![],
                vec![],
            ),
            // Limits: A's must lie within B's.
            (
                ruled(question("q", K::Number), limits(Some("1"), None)),
                question("a", K::Number),
                vec![Rule::Min],
                vec![],
            ),
            (
                ruled(question("q", K::Number), limits(Some("1"), None)),
                ruled(question("a", K::Number), limits(Some("2"), None)),
                vec![],
                vec![],
            ),
            (
                ruled(question("q", K::Number), limits(Some("1"), None)),
                ruled(question("a", K::Number), limits(Some("0"), None)),
                vec![Rule::Min],
                vec![],
            ),
            (
                ruled(question("q", K::Decimal), limits(None, Some("10"))),
                ruled(question("a", K::Number), limits(None, Some("20"))),
                vec![Rule::Max],
                vec![],
            ),
            (
                ruled(question("q", K::Decimal), limits(None, Some("10"))),
                ruled(question("a", K::Number), limits(None, Some("5"))),
                vec![],
                vec![],
            ),
            (
                ruled(question("q", K::Decimal), limits(Some("0"), Some("10"))),
                question("a", K::Decimal),
                vec![Rule::Min, Rule::Max],
                vec![],
            ),
            (
                ruled(question("q", K::Date), limits(Some("2025-01-01"), None)),
                ruled(question("a", K::Date), limits(Some("2025-02-01"), None)),
                vec![],
                vec![],
            ),
            (
                ruled(question("q", K::Date), limits(Some("2025-01-01"), None)),
                question("a", K::Date),
                vec![Rule::Min],
                vec![],
            ),
            // A's finite answers are tried one by one.
            (
                text(regex("[a-z]+")),
                choice("a", K::SingleChoice, &["home", "Business"]),
                vec![Rule::Regex],
                vec!["Business"],
            ),
            (
                text(regex("[a-z]+")),
                choice("a", K::SingleChoice, &["home", "business"]),
                vec![],
                vec![],
            ),
            (
                text(lengths(None, Some(4))),
                question("a", K::Boolean),
                vec![Rule::MaxLength],
                vec!["false"],
            ),
            (
                text(regex("true|false")),
                question("a", K::Boolean),
                vec![],
                vec![],
            ),
        ];
        for (b, a, stricter, refused) in cases {
            let found = one(b.clone(), vec![a.clone()], Some(from("a", &[])));
            let expected: Vec<(MismatchKind, Vec<String>, Vec<Rule>)> = if stricter.is_empty() {
                vec![]
            } else {
                vec![(
                    MismatchKind::StricterValidationOnB,
                    refused.iter().map(|s| (*s).to_owned()).collect(),
                    stricter,
                )]
            };
            assert_eq!(
                found, expected,
                "B {:?} ← A {} {:?}",
                b.validations, a.kind, a.validations
            );
        }
    }

    #[test]
    fn catalogue_mapping_check_finite_answers_use_the_option_map() {
        let b = ruled(question("q", K::Text), regex("[a-z]+"));
        let a = choice("a", K::SingleChoice, &["Home", "Business"]);
        let found = one(b, vec![a], Some(from("a", &[("Home", "home")])));
        assert_eq!(
            found,
            [(
                MismatchKind::StricterValidationOnB,
                vec!["Business".to_owned()],
                vec![Rule::Regex]
            )]
        );
    }

    #[test]
    fn catalogue_mapping_check_constants() {
        use MismatchKind as M;
        let b = required(question("switching", K::Boolean));
        // (constant, expected)
        let cases: Vec<(serde_json::Value, Vec<M>)> = vec![
            (json!(true), vec![]),
            (json!("yes"), vec![M::ConstantInvalid]),
            (json!(null), vec![M::ConstantInvalid]),
        ];
        for (value, expected) in cases {
            assert_eq!(
                kinds(one(
                    b.clone(),
                    vec![],
                    Some(AnswerSource::Constant(value.clone()))
                )),
                expected,
                "{value}"
            );
        }
        let choice_b = choice("channel", K::SingleChoice, &["door", "web"]);
        assert_eq!(
            kinds(one(
                choice_b.clone(),
                vec![],
                Some(AnswerSource::Constant(json!("phone")))
            )),
            [M::ConstantInvalid]
        );
        assert!(one(choice_b, vec![], Some(AnswerSource::Constant(json!("web")))).is_empty());
    }

    #[test]
    fn catalogue_mapping_check_flows() {
        let product = ProductVersion {
            questions: vec![],
            ..energy()
        };
        let other = ProductVersion {
            key: "solar".into(),
            questions: vec![],
            ..energy()
        };
        let map = |pairs: &[(&str, &str)]| FlowMapping {
            flows: pairs
                .iter()
                .map(|(a, b)| ((*a).into(), (*b).into()))
                .collect(),
        };
        // (flow mapping, expected (A flow, B product) of each unmapped_flow)
        type FlowAndProduct<'a> = (Option<&'a str>, Option<&'a str>);
        let cases: Vec<(FlowMapping, Vec<FlowAndProduct>)> = vec![
            (flow_mapping(), vec![(None, Some("solar"))]),
            (
                map(&[("deur", "door-to-door"), ("web", "webshop")]),
                vec![(Some("web"), None), (None, Some("solar"))],
            ),
            (
                FlowMapping::default(),
                vec![(None, Some("energy-fixed")), (None, Some("solar"))],
            ),
        ];
        for (flows_mapped, expected) in cases {
            let found = check_mapping(
                &[product.clone(), other.clone()],
                &flows(),
                &[],
                &QuestionMapping::default(),
                &flows_mapped,
            );
            let got: Vec<FlowAndProduct<'_>> = found
                .iter()
                .map(|m| {
                    assert_eq!(m.kind, MismatchKind::UnmappedFlow);
                    (m.flow.as_deref(), m.product.as_deref())
                })
                .collect();
            assert_eq!(got, expected, "{flows_mapped:?}");
        }
    }

    #[test]
    fn catalogue_mapping_check_whole_product_and_messages() {
        let a = vec![
            required(choice(
                "klant",
                K::SingleChoice,
                &["particulier", "zakelijk"],
            )),
            question("rekening", K::Iban),
        ];
        let questions = QuestionMapping {
            questions: [
                (
                    "customer_type".to_owned(),
                    from("klant", &[("particulier", "home")]),
                ),
                ("iban".to_owned(), from("rekening", &[])),
            ]
            .into(),
        };
        let found = check_mapping(&[energy()], &flows(), &a, &questions, &flow_mapping());
        let got: Vec<(MismatchKind, &str, &str)> = found
            .iter()
            .map(|m| {
                (
                    m.kind,
                    m.question.as_deref().unwrap_or_default(),
                    m.message.as_str(),
                )
            })
            .collect();
        use MismatchKind as M;
        assert_eq!(
            got,
            vec![
                (
                    M::OptionsWithoutCounterpart,
                    "customer_type",
                    "your options \"zakelijk\" of 'klant' have no counterpart among the options of B's question 'customer_type' (What is your customer_type?) of 'energy-fixed'; map each to one of: home, business"
                ),
                (
                    M::OptionalOnARequiredOnB,
                    "iban",
                    "B's question 'iban' (What is your iban?) of 'energy-fixed' is required, but your question 'rekening' is optional: a sale without its answer would be refused"
                ),
                (
                    M::UnmappedRequired,
                    "company_number",
                    "B's question 'company_number' (What is your company_number?) of 'energy-fixed' is required, and none of your questions or a constant is mapped to it: orders would be refused"
                ),
                (
                    M::UnmappedOptional,
                    "switching",
                    "B's question 'switching' (What is your switching?) of 'energy-fixed' is optional and not mapped: orders go without its answer"
                ),
                (
                    M::UnmappedRequired,
                    "previous_supplier",
                    "B's question 'previous_supplier' (What is your previous_supplier?) of 'energy-fixed' is required, and none of your questions or a constant is mapped to it: orders would be refused"
                ),
            ]
        );
        let json = serde_json::to_value(&found[0]).expect("serialize");
        assert_eq!(json["kind"], "options_without_counterpart");
        assert_eq!(json["severity"], "error");
        assert_eq!(json["option_values"], json!(["zakelijk"]));
        assert!(json.get("stricter").is_none());
    }
}
