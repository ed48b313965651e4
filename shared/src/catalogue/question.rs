//! A product question as the provider (B) defines it: what is asked, of which
//! kind, whether it is required, the rules an answer must follow, the options
//! of a choice, and when it is asked at all. `check_definition` says what is
//! wrong with a definition on its own; what depends on the other questions of
//! the product (conditions) is checked with the product.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::key::{MAX_LABEL_CHARS, check_question_key, check_text, clip};
use super::validations::Validations;
use crate::domain::FieldError;

pub const MAX_OPTIONS: usize = 500;
pub const MAX_OPTION_VALUE_CHARS: usize = 128;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// `[a-z0-9_]{1,64}`, unique within the product; answers are keyed by it.
    pub key: String,
    /// What the customer is asked, e.g. "IBAN for the direct debit".
    pub label: String,
    pub kind: QuestionKind,
    /// Whether an answer is required (only when the question is asked, see
    /// `asked_when`).
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Validations::is_empty")]
    pub validations: Validations,
    /// The choices of a single_choice or multiple_choice question; none for
    /// other kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<AnswerOption>,
    /// Asked (and required) only when this holds for another question's
    /// answer; always asked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_when: Option<Condition>,
}

#[derive(
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// Free text.
    Text,
    /// A whole number.
    Number,
    /// A decimal number, as a JSON number or a numeric string.
    Decimal,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    Boolean,
    /// One of the options' values.
    SingleChoice,
    /// Several distinct option values, as an array.
    MultipleChoice,
    /// An IBAN, checked with ISO 13616 mod 97.
    Iban,
    Email,
    Phone,
    Postcode,
}

/// One choice of a choice question: `value` is what travels, `label` what the
/// customer sees.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerOption {
    pub value: String,
    pub label: String,
}

impl QuestionKind {
    pub const ALL: [QuestionKind; 11] = [
        QuestionKind::Text,
        QuestionKind::Number,
        QuestionKind::Decimal,
        QuestionKind::Date,
        QuestionKind::Boolean,
        QuestionKind::SingleChoice,
        QuestionKind::MultipleChoice,
        QuestionKind::Iban,
        QuestionKind::Email,
        QuestionKind::Phone,
        QuestionKind::Postcode,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::Text => "text",
            QuestionKind::Number => "number",
            QuestionKind::Decimal => "decimal",
            QuestionKind::Date => "date",
            QuestionKind::Boolean => "boolean",
            QuestionKind::SingleChoice => "single_choice",
            QuestionKind::MultipleChoice => "multiple_choice",
            QuestionKind::Iban => "iban",
            QuestionKind::Email => "email",
            QuestionKind::Phone => "phone",
            QuestionKind::Postcode => "postcode",
        }
    }

    /// Whether the answer is one or more option values.
    #[must_use]
    pub fn is_choice(self) -> bool {
        matches!(
            self,
            QuestionKind::SingleChoice | QuestionKind::MultipleChoice
        )
    }

    /// Whether the answer is a string, so that a pattern and lengths apply.
    #[must_use]
    pub fn has_text_form_rules(self) -> bool {
        matches!(
            self,
            QuestionKind::Text
                | QuestionKind::Iban
                | QuestionKind::Email
                | QuestionKind::Phone
                | QuestionKind::Postcode
        )
    }
}

impl fmt::Display for QuestionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Question {
    /// The option with this value, if any.
    #[must_use]
    pub fn option(&self, value: &str) -> Option<&AnswerOption> {
        self.options.iter().find(|o| o.value == value)
    }
}

/// What is wrong with a question's definition on its own, with paths relative
/// to the question (`options[1].value`, `validations.regex`). Conditions are
/// only checked for not pointing at the question itself; whether they point
/// at a real question, with a possible answer and without a cycle, is
/// checked with the product (`product::check_product`).
#[must_use]
pub fn check_definition(q: &Question) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_question_key(&mut errors, "key", &q.key);
    check_text(&mut errors, "label", &q.label, 1, MAX_LABEL_CHARS);
    check_options(&mut errors, q);
    errors.extend(q.validations.check_definition(q.kind, "validations"));
    if let Some(condition) = &q.asked_when {
        errors.extend(condition.check_shape(&q.key, "asked_when"));
    }
    errors
}

fn check_options(errors: &mut Vec<FieldError>, q: &Question) {
    if !q.kind.is_choice() {
        if !q.options.is_empty() {
            errors.push(FieldError::new(
                "options",
                format!(
                    "only single_choice and multiple_choice questions have options, this is {}",
                    q.kind
                ),
            ));
        }
        return;
    }
    if q.options.is_empty() {
        errors.push(FieldError::new(
            "options",
            format!("a {} question needs at least one option", q.kind),
        ));
    } else if q.options.len() > MAX_OPTIONS {
        errors.push(FieldError::new(
            "options",
            format!(
                "must have at most {MAX_OPTIONS} options, got {}",
                q.options.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, option) in q.options.iter().enumerate() {
        let value_field = format!("options[{i}].value");
        check_text(
            errors,
            &value_field,
            &option.value,
            1,
            MAX_OPTION_VALUE_CHARS,
        );
        check_text(
            errors,
            &format!("options[{i}].label"),
            &option.label,
            1,
            MAX_LABEL_CHARS,
        );
        if !seen.insert(option.value.as_str()) {
            errors.push(FieldError::new(
                value_field,
                format!("repeats the value {:?}", clip(&option.value)),
            ));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalogue::pattern::Pattern;
    use crate::catalogue::test_support::{Expected, assert_errors};
    use serde_json::json;

    /// A question of `kind` with nothing but its key and label.
    pub(crate) fn question(key: &str, kind: QuestionKind) -> Question {
        Question {
            key: key.into(),
            label: format!("What is your {key}?"),
            kind,
            required: false,
            validations: Validations::default(),
            options: Vec::new(),
            asked_when: None,
        }
    }

    pub(crate) fn options(values: &[&str]) -> Vec<AnswerOption> {
        values
            .iter()
            .map(|v| AnswerOption {
                value: (*v).into(),
                label: v.to_uppercase(),
            })
            .collect()
    }

    /// A choice question with these option values.
    pub(crate) fn choice(key: &str, kind: QuestionKind, values: &[&str]) -> Question {
        Question {
            options: options(values),
            ..question(key, kind)
        }
    }

    #[test]
    fn catalogue_question_check_definition() {
        use QuestionKind as K;
        let too_many: Vec<String> = (0..=MAX_OPTIONS).map(|i| format!("o{i}")).collect();
        let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
        // (question, expected (field, problem contains))
        let cases: Vec<(Question, Expected)> = vec![
            (question("iban", K::Iban), vec![]),
            (
                choice("plan", K::SingleChoice, &["fixed", "variable"]),
                vec![],
            ),
            (choice("extras", K::MultipleChoice, &["green"]), vec![]),
            (question("Iban", K::Iban), vec![("key", "a-z, 0-9 or '_'")]),
            (question("", K::Text), vec![("key", "got \"\"")]),
            (
                Question {
                    label: " ".into(),
                    ..question("name", K::Text)
                },
                vec![("label", "must not be empty")],
            ),
            (
                question("plan", K::SingleChoice),
                vec![("options", "needs at least one option")],
            ),
            (
                question("extras", K::MultipleChoice),
                vec![("options", "needs at least one option")],
            ),
            (
                choice("plan", K::SingleChoice, &too_many),
                vec![("options", "at most 500 options, got 501")],
            ),
            (
                choice("plan", K::SingleChoice, &["a", "b", "a"]),
                vec![("options[2].value", "repeats the value \"a\"")],
            ),
            (
                choice("plan", K::SingleChoice, &[""]),
                vec![
                    ("options[0].value", "must not be empty"),
                    ("options[0].label", "must not be empty"),
                ],
            ),
            (
                choice("name", K::Text, &["a"]),
                vec![(
                    "options",
                    "only single_choice and multiple_choice questions have options, this is text",
                )],
            ),
            (
                Question {
                    validations: Validations {
                        regex: Some(Pattern::new("(")),
                        ..Validations::default()
                    },
                    ..question("name", K::Text)
                },
                vec![("validations.regex", "not a valid regular expression")],
            ),
            (
                Question {
                    asked_when: Some(Condition::Equals {
                        question: "name".into(),
                        value: json!("x"),
                    }),
                    ..question("name", K::Text)
                },
                vec![("asked_when.question", "must name another question")],
            ),
        ];
        for (q, expected) in cases {
            let got = check_definition(&q);
            assert_errors(&q.key, &got, &expected);
        }
    }

    #[test]
    fn catalogue_question_kind_groups() {
        use QuestionKind as K;
        // (kind, choice?, text rules?)
        let cases = [
            (K::Text, false, true),
            (K::Number, false, false),
            (K::Decimal, false, false),
            (K::Date, false, false),
            (K::Boolean, false, false),
            (K::SingleChoice, true, false),
            (K::MultipleChoice, true, false),
            (K::Iban, false, true),
            (K::Email, false, true),
            (K::Phone, false, true),
            (K::Postcode, false, true),
        ];
        assert_eq!(cases.len(), QuestionKind::ALL.len());
        for (kind, is_choice, text_rules) in cases {
            assert_eq!(kind.is_choice(), is_choice, "{kind}");
            assert_eq!(kind.has_text_form_rules(), text_rules, "{kind}");
            let json = serde_json::to_value(kind).expect("serialize");
            assert_eq!(json, json!(kind.as_str()), "{kind}");
        }
    }

    #[test]
    fn catalogue_question_serde() {
        let q: Question = serde_json::from_value(json!({
            "key": "plan",
            "label": "Which plan?",
            "kind": "single_choice",
            "required": true,
            "options": [{"value": "fixed", "label": "Fixed"}],
            "asked_when": {"equals": {"question": "customer_type", "value": "home"}}
        }))
        .expect("deserialize");
        assert!(q.required);
        assert_eq!(q.option("fixed").map(|o| o.label.as_str()), Some("Fixed"));
        let minimal: Question =
            serde_json::from_value(json!({"key": "a", "label": "A", "kind": "text"}))
                .expect("minimal");
        assert!(!minimal.required && minimal.validations.is_empty());
        assert_eq!(
            serde_json::to_value(&minimal).expect("serialize"),
            json!({"key": "a", "label": "A", "kind": "text", "required": false})
        );
        let typo = serde_json::from_value::<Question>(
            json!({"key": "a", "label": "A", "kind": "text", "requried": true}),
        );
        assert!(typo.is_err(), "a misspelt field is refused, not ignored");
    }
}
