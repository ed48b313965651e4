//! When a question is asked: a condition on the answer to another question of
//! the same product ("ask for the company number only when customer_type is
//! business"). A question whose condition does not hold is neither asked nor
//! required.
//!
//! The values in a condition are answers to the other question and are
//! checked as such, so `{"equals": {"question": "is_business", "value":
//! "yes"}}` on a boolean question is refused when the product is defined
//! rather than silently never holding. For a multiple-choice question a value
//! is one option, and the condition holds when that option is among those
//! chosen.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::{Answer, Problem, ProblemKind, check_answer};
use super::key::check_question_key;
use super::question::{Question, QuestionKind};
use crate::domain::FieldError;

pub const MAX_CONDITION_VALUES: usize = 100;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Holds when the other question's answer is `value`.
    Equals { question: String, value: Value },
    /// Holds when the other question's answer is one of `values`.
    In {
        question: String,
        values: Vec<Value>,
    },
}

impl Condition {
    /// The key of the question this condition looks at.
    #[must_use]
    pub fn question(&self) -> &str {
        match self {
            Condition::Equals { question, .. } | Condition::In { question, .. } => question,
        }
    }

    /// The answers for which the condition holds.
    #[must_use]
    pub fn values(&self) -> &[Value] {
        match self {
            Condition::Equals { value, .. } => std::slice::from_ref(value),
            Condition::In { values, .. } => values,
        }
    }

    /// For messages: "'customer_type' is \"business\"".
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Condition::Equals { question, value } => format!("'{question}' is {value}"),
            Condition::In { question, values } => {
                format!("'{question}' is one of {}", Value::from(values.clone()))
            }
        }
    }

    /// Problems visible without the other questions: the key, a condition on
    /// the question itself (`own_key`), the number of values.
    pub(crate) fn check_shape(&self, own_key: &str, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let field = format!("{prefix}.question");
        check_question_key(&mut errors, &field, self.question());
        if self.question() == own_key {
            errors.push(FieldError::new(
                field,
                "must name another question: a question cannot depend on its own answer",
            ));
        }
        if let Condition::In { values, .. } = self {
            if values.is_empty() {
                errors.push(FieldError::new(
                    format!("{prefix}.values"),
                    "must not be empty",
                ));
            } else if values.len() > MAX_CONDITION_VALUES {
                errors.push(FieldError::new(
                    format!("{prefix}.values"),
                    format!(
                        "must have at most {MAX_CONDITION_VALUES} values, got {}",
                        values.len()
                    ),
                ));
            }
        }
        errors
    }

    /// Problems with the values as answers to `on`, the question this
    /// condition looks at.
    pub(crate) fn check_values(&self, on: &Question, prefix: &str) -> Vec<FieldError> {
        let field = |i: usize| match self {
            Condition::Equals { .. } => format!("{prefix}.value"),
            Condition::In { .. } => format!("{prefix}.values[{i}]"),
        };
        self.values()
            .iter()
            .enumerate()
            .filter_map(|(i, value)| {
                expected_answer(on, value).err().map(|problem| {
                    FieldError::new(
                        field(i),
                        format!("can never be the answer to '{}': {problem}", on.key),
                    )
                })
            })
            .collect()
    }

    /// Whether the condition holds when `on` was answered with `answer`.
    #[must_use]
    pub fn holds(&self, on: &Question, answer: &Answer) -> bool {
        self.values()
            .iter()
            .filter_map(|value| expected_answer(on, value).ok())
            .any(|expected| match (answer, &expected) {
                (Answer::MultipleChoice(chosen), Answer::SingleChoice(option)) => {
                    chosen.contains(option)
                }
                // Typed comparison: 1.0 and "1" are the same decimal.
                _ => *answer == expected,
            })
    }
}

/// A condition value read as an answer to `on` (for a multiple-choice
/// question: as one of its options).
fn expected_answer(on: &Question, value: &Value) -> Result<Answer, Problem> {
    if on.kind != QuestionKind::MultipleChoice {
        return check_answer(on, value);
    }
    match value.as_str() {
        Some(option) if on.option(option).is_some() => Ok(Answer::SingleChoice(option.into())),
        Some(option) => Err(Problem::new(
            ProblemKind::NotAnOption,
            format!("{option:?} is not one of its options"),
        )),
        None => Err(Problem::new(
            ProblemKind::WrongType,
            "must be one of its option values, as a string",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::question::tests::{choice, question};
    use crate::catalogue::test_support::{Expected, assert_errors};
    use rust_decimal::Decimal;
    use serde_json::json;

    fn equals(question: &str, value: Value) -> Condition {
        Condition::Equals {
            question: question.into(),
            value,
        }
    }

    fn within(question: &str, values: Vec<Value>) -> Condition {
        Condition::In {
            question: question.into(),
            values,
        }
    }

    #[test]
    fn catalogue_condition_holds() {
        use QuestionKind as K;
        let customer = choice("customer_type", K::SingleChoice, &["home", "business"]);
        let extras = choice(
            "extras",
            K::MultipleChoice,
            &["green", "smart_meter", "insurance"],
        );
        let yes_no = question("moving", K::Boolean);
        let amount = question("usage", K::Decimal);
        let business = equals("customer_type", json!("business"));
        let any_extra = within("extras", vec![json!("green"), json!("insurance")]);
        let moving = equals("moving", json!(true));
        let usage = within("usage", vec![json!(1.0), json!("2.50")]);
        // (condition, on, answer, holds)
        let cases: Vec<(&Condition, &Question, Answer, bool)> = vec![
            (
                &business,
                &customer,
                Answer::SingleChoice("business".into()),
                true,
            ),
            (
                &business,
                &customer,
                Answer::SingleChoice("home".into()),
                false,
            ),
            (
                &any_extra,
                &extras,
                Answer::MultipleChoice(vec!["smart_meter".into(), "insurance".into()]),
                true,
            ),
            (
                &any_extra,
                &extras,
                Answer::MultipleChoice(vec!["smart_meter".into()]),
                false,
            ),
            (&moving, &yes_no, Answer::Boolean(true), true),
            (&moving, &yes_no, Answer::Boolean(false), false),
            (&usage, &amount, Answer::Decimal(Decimal::new(1, 0)), true),
            (&usage, &amount, Answer::Decimal(Decimal::new(250, 2)), true),
            (&usage, &amount, Answer::Decimal(Decimal::new(25, 1)), true),
            (&usage, &amount, Answer::Decimal(Decimal::new(3, 0)), false),
        ];
        for (condition, on, answer, expected) in cases {
            assert_eq!(
                condition.holds(on, &answer),
                expected,
                "{} with {answer:?}",
                condition.describe()
            );
        }
    }

    #[test]
    fn catalogue_condition_check_shape() {
        let many = vec![json!("a"); MAX_CONDITION_VALUES + 1];
        // (condition, own key, expected (field, problem contains))
        let cases: Vec<(Condition, &str, Expected)> = vec![
            (
                equals("customer_type", json!("business")),
                "company_number",
                vec![],
            ),
            (within("extras", vec![json!("green")]), "note", vec![]),
            (
                equals("note", json!("x")),
                "note",
                vec![("c.question", "must name another question")],
            ),
            (
                equals("Customer Type", json!("x")),
                "note",
                vec![("c.question", "a-z, 0-9 or '_'")],
            ),
            (
                within("extras", vec![]),
                "note",
                vec![("c.values", "must not be empty")],
            ),
            (
                within("extras", many),
                "note",
                vec![("c.values", "at most 100 values, got 101")],
            ),
        ];
        for (condition, own_key, expected) in cases {
            let got = condition.check_shape(own_key, "c");
            assert_errors(&condition.describe(), &got, &expected);
        }
    }

    #[test]
    fn catalogue_condition_check_values() {
        use QuestionKind as K;
        let customer = choice("customer_type", K::SingleChoice, &["home", "business"]);
        let extras = choice("extras", K::MultipleChoice, &["green"]);
        let yes_no = question("moving", K::Boolean);
        // (condition, on, expected (field, problem contains))
        let cases: Vec<(Condition, &Question, Expected)> = vec![
            (equals("customer_type", json!("home")), &customer, vec![]),
            (
                equals("customer_type", json!("school")),
                &customer,
                vec![("c.value", "can never be the answer to 'customer_type'")],
            ),
            (
                within("customer_type", vec![json!("home"), json!("shop")]),
                &customer,
                vec![("c.values[1]", "not one of the options")],
            ),
            (equals("extras", json!("green")), &extras, vec![]),
            (
                equals("extras", json!(["green"])),
                &extras,
                vec![("c.value", "one of its option values")],
            ),
            (
                equals("extras", json!("blue")),
                &extras,
                vec![("c.value", "\"blue\" is not one of its options")],
            ),
            (equals("moving", json!(true)), &yes_no, vec![]),
            (
                equals("moving", json!("yes")),
                &yes_no,
                vec![("c.value", "must be true or false")],
            ),
        ];
        for (condition, on, expected) in cases {
            let got = condition.check_values(on, "c");
            assert_errors(&condition.describe(), &got, &expected);
        }
    }

    #[test]
    fn catalogue_condition_serde_and_describe() {
        let c: Condition =
            serde_json::from_value(json!({"in": {"question": "plan", "values": ["a", "b"]}}))
                .expect("in");
        assert_eq!(c.question(), "plan");
        assert_eq!(c.describe(), r#"'plan' is one of ["a","b"]"#);
        let e: Condition =
            serde_json::from_value(json!({"equals": {"question": "moving", "value": true}}))
                .expect("equals");
        assert_eq!(e.describe(), "'moving' is true");
        assert!(
            serde_json::from_value::<Condition>(
                json!({"equals": {"question": "x", "value": 1, "extra": 2}})
            )
            .is_err()
        );
    }
}
