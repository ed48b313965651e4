//! Translating the answers of one of A's sale lines into answers to B's
//! questions, as the forwarder does before sending an order to B: each of B's
//! questions takes its mapped source (A's answer, renamed and converted, or a
//! constant), and what cannot be translated is reported instead of sent.
//!
//! Only B's mapped questions are answered; A's other answers stay behind (B
//! would refuse them as unknown). Whether B's required questions all got an
//! answer is B's own check, `product::check_answers`, which the forwarder can
//! run on the result before sending.

use std::collections::BTreeMap;

use serde_json::Value;

use super::answer::{Answer, check_answer, is_blank};
use super::conversion::convert;
use super::key::clip;
use super::mapping::{AnswerSource, QuestionMapping};
use super::product::ProductVersion;
use super::question::Question;
use crate::domain::FieldError;

/// B's answers for one line of `b_product`, from A's `a_answers` (keyed by
/// A's question keys, defined by `a_questions`) through `mapping`, with the
/// problems met (field `answers.<B's key>`). Values are in B's canonical form.
#[must_use]
pub fn map_answers(
    b_product: &ProductVersion,
    a_questions: &[Question],
    mapping: &QuestionMapping,
    a_answers: &BTreeMap<String, Value>,
) -> (BTreeMap<String, Value>, Vec<FieldError>) {
    let mut mapped = BTreeMap::new();
    let mut problems = Vec::new();
    for b in &b_product.questions {
        let Some(source) = mapping.questions.get(&b.key) else {
            continue;
        };
        match answer_for(b, source, a_questions, a_answers) {
            Ok(Some(value)) => {
                mapped.insert(b.key.clone(), value);
            }
            Ok(None) => {}
            Err(problem) => problems.push(FieldError::new(format!("answers.{}", b.key), problem)),
        }
    }
    (mapped, problems)
}

/// B's answer to `b` from `source`; `None` when the source gives none.
fn answer_for(
    b: &Question,
    source: &AnswerSource,
    a_questions: &[Question],
    a_answers: &BTreeMap<String, Value>,
) -> Result<Option<Value>, String> {
    let (a_key, options) = match source {
        AnswerSource::Constant(value) if is_blank(value) => return Ok(None),
        AnswerSource::Constant(value) => {
            return check_answer(b, value)
                .map(|answer| Some(answer.to_json()))
                .map_err(|p| {
                    format!("the constant mapped to this question is not a valid answer: {p}")
                });
        }
        AnswerSource::FromQuestion { question, options } => (question, options),
    };
    let Some(a) = a_questions.iter().find(|q| q.key == *a_key) else {
        return Err(format!(
            "is mapped from your question '{}', which does not exist",
            clip(a_key)
        ));
    };
    let a_key = &a.key;
    let Some(raw) = a_answers.get(&a.key).filter(|v| !is_blank(v)) else {
        return Ok(None);
    };
    let answer =
        check_answer(a, raw).map_err(|p| format!("your answer to '{a_key}' is not valid: {p}"))?;
    let answer = rename_options(answer, options);
    let value = convert(&answer, b.kind).ok_or_else(|| {
        format!(
            "your {} question '{a_key}' cannot answer this {} question",
            a.kind, b.kind
        )
    })?;
    check_answer(b, &value)
        .map(|answer| Some(answer.to_json()))
        .map_err(|p| format!("your answer to '{a_key}' does not fit: {p}"))
}

/// A's option values renamed to B's; values without an entry stay as they are.
fn rename_options(answer: Answer, options: &BTreeMap<String, String>) -> Answer {
    let rename = |v: String| options.get(&v).cloned().unwrap_or(v);
    match answer {
        Answer::SingleChoice(v) => Answer::SingleChoice(rename(v)),
        Answer::MultipleChoice(vs) => Answer::MultipleChoice(vs.into_iter().map(rename).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::pattern::Pattern;
    use crate::catalogue::product::tests::energy;
    use crate::catalogue::question::QuestionKind as K;
    use crate::catalogue::question::tests::{choice, question};
    use crate::catalogue::test_support::Expected;
    use crate::catalogue::validations::Validations;
    use serde_json::json;

    fn from(a_key: &str, options: &[(&str, &str)]) -> AnswerSource {
        AnswerSource::FromQuestion {
            question: a_key.into(),
            options: options
                .iter()
                .map(|(a, b)| ((*a).into(), (*b).into()))
                .collect(),
        }
    }

    /// B: energy() plus a text note with a short pattern and a decimal usage.
    fn b_product() -> ProductVersion {
        let mut p = energy();
        p.questions.push(Question {
            validations: Validations {
                regex: Some(Pattern::new("[A-Z]{2,3}")),
                ..Validations::default()
            },
            ..question("note", K::Text)
        });
        p.questions.push(question("usage", K::Decimal));
        p.questions
            .push(choice("extras", K::MultipleChoice, &["green", "smart"]));
        p
    }

    fn a_questions() -> Vec<Question> {
        vec![
            choice("klant", K::SingleChoice, &["particulier", "zakelijk"]),
            question("rekening", K::Iban),
            question("verhuizing", K::Boolean),
            question("kwh", K::Number),
            choice("extra", K::SingleChoice, &["groen", "slim"]),
            question("opmerking", K::Text),
            question("datum", K::Date),
        ]
    }

    fn mapping(entries: Vec<(&str, AnswerSource)>) -> QuestionMapping {
        QuestionMapping {
            questions: entries.into_iter().map(|(k, s)| (k.into(), s)).collect(),
        }
    }

    fn answers(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).expect("answers")
    }

    #[test]
    fn catalogue_answer_mapping_translates() {
        let m = mapping(vec![
            (
                "customer_type",
                from(
                    "klant",
                    &[("particulier", "home"), ("zakelijk", "business")],
                ),
            ),
            ("iban", from("rekening", &[])),
            ("switching", from("verhuizing", &[])),
            ("usage", from("kwh", &[])),
            (
                "extras",
                from("extra", &[("groen", "green"), ("slim", "smart")]),
            ),
            ("note", from("opmerking", &[])),
            ("previous_supplier", AnswerSource::Constant(json!("Acme"))),
        ]);
        // (A's answers, B's answers, problems)
        let cases: Vec<(Value, Value, Expected)> = vec![
            (
                json!({"klant": "zakelijk", "rekening": "nl91 abna 0417 1643 00", "verhuizing": true, "kwh": 3500, "extra": "slim", "opmerking": "NL", "datum": "2025-01-01"}),
                json!({"customer_type": "business", "iban": "NL91ABNA0417164300", "switching": true, "usage": "3500", "extras": ["smart"], "note": "NL", "previous_supplier": "Acme"}),
                vec![],
            ),
            // Unanswered (or blank) on A's side: nothing sent, no problem here.
            (
                json!({"klant": "particulier", "opmerking": " "}),
                json!({"customer_type": "home", "previous_supplier": "Acme"}),
                vec![],
            ),
            // A's own answer is invalid.
            (
                json!({"rekening": "NL91ABNA0417164301"}),
                json!({"previous_supplier": "Acme"}),
                vec![(
                    "answers.iban",
                    "your answer to 'rekening' is not valid: is not a valid IBAN",
                )],
            ),
            // Fits A but not B's rule.
            (
                json!({"opmerking": "hello"}),
                json!({"previous_supplier": "Acme"}),
                vec![(
                    "answers.note",
                    "your answer to 'opmerking' does not fit: does not match the pattern [A-Z]{2,3}",
                )],
            ),
        ];
        let b = b_product();
        for (given, expected, problems) in cases {
            let (got, errors) = map_answers(&b, &a_questions(), &m, &answers(given.clone()));
            assert_eq!(
                Value::from(got.into_iter().collect::<serde_json::Map<_, _>>()),
                expected,
                "{given}"
            );
            let errors: Vec<(&str, &str)> = errors
                .iter()
                .map(|e| (e.field.as_str(), e.problem.as_str()))
                .collect();
            assert_eq!(errors.len(), problems.len(), "{given}: {errors:?}");
            for ((field, problem), (want_field, part)) in errors.iter().zip(&problems) {
                assert_eq!(field, want_field);
                assert!(problem.contains(part), "{problem}");
            }
        }
    }

    #[test]
    fn catalogue_answer_mapping_problems() {
        let b = b_product();
        // (mapping, A's answers, problem of the one mapped question)
        let cases: Vec<(QuestionMapping, Value, (&str, &str))> = vec![
            (
                mapping(vec![(
                    "customer_type",
                    from("klant", &[("particulier", "home")]),
                )]),
                json!({"klant": "zakelijk"}),
                (
                    "answers.customer_type",
                    "your answer to 'klant' does not fit: \"zakelijk\" is not one of the options: home, business",
                ),
            ),
            (
                mapping(vec![("iban", from("bankrekening", &[]))]),
                json!({"bankrekening": "x"}),
                (
                    "answers.iban",
                    "is mapped from your question 'bankrekening', which does not exist",
                ),
            ),
            (
                mapping(vec![("iban", from("datum", &[]))]),
                json!({"datum": "2025-01-01"}),
                (
                    "answers.iban",
                    "your date question 'datum' cannot answer this iban question",
                ),
            ),
            (
                mapping(vec![("switching", AnswerSource::Constant(json!("yes")))]),
                json!({}),
                (
                    "answers.switching",
                    "the constant mapped to this question is not a valid answer: must be true or false, got text",
                ),
            ),
        ];
        for (m, given, (field, part)) in cases {
            let (got, errors) = map_answers(&b, &a_questions(), &m, &answers(given.clone()));
            assert!(got.is_empty(), "{given}: {got:?}");
            assert_eq!(errors.len(), 1, "{given}: {errors:?}");
            assert_eq!(errors[0].field, field);
            assert!(errors[0].problem.contains(part), "{}", errors[0].problem);
        }
    }

    #[test]
    fn catalogue_answer_mapping_drops_what_is_not_mapped() {
        let (got, errors) = map_answers(
            &b_product(),
            &a_questions(),
            &QuestionMapping::default(),
            &answers(json!({"klant": "particulier", "rekening": "NL91ABNA0417164300"})),
        );
        assert!(got.is_empty() && errors.is_empty());
        // A blank constant sends nothing.
        let (got, errors) = map_answers(
            &b_product(),
            &a_questions(),
            &mapping(vec![("note", AnswerSource::Constant(json!(null)))]),
            &BTreeMap::new(),
        );
        assert!(got.is_empty() && errors.is_empty());
    }
}
