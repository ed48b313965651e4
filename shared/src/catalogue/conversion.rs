//! Which of A's question kinds can answer which of B's, and how an answer is
//! carried across. The table, A's kind → B's kind:
//!
//! | A's question      | B's question      | conversion                                   |
//! |-------------------|-------------------|----------------------------------------------|
//! | any kind          | the same kind     | `Same`: the answer as it is                  |
//! | `number`          | `decimal`         | `NumberToDecimal`: a whole number is a decimal |
//! | `single_choice`   | `multiple_choice` | `SingleToMultiple`: one choice of several    |
//! | any other kind    | `text`            | `ToText`: the answer's text form (`Answer::text_form`) |
//! | anything else     |                   | incompatible                                 |
//!
//! Compatible is not the whole story: B's options and B's own rules (a text
//! question's pattern or lengths) may still refuse some answers. The mapping
//! check looks at those separately.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::Answer;
use super::question::QuestionKind;

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Conversion {
    Same,
    NumberToDecimal,
    SingleToMultiple,
    ToText,
}

/// The row of the table for A's kind `from` and B's kind `to`; `None` when
/// they are incompatible.
#[must_use]
pub fn conversion(from: QuestionKind, to: QuestionKind) -> Option<Conversion> {
    use QuestionKind as K;
    match (from, to) {
        (a, b) if a == b => Some(Conversion::Same),
        (K::Number, K::Decimal) => Some(Conversion::NumberToDecimal),
        (K::SingleChoice, K::MultipleChoice) => Some(Conversion::SingleToMultiple),
        (_, K::Text) => Some(Conversion::ToText),
        _ => None,
    }
}

/// A's typed answer as a JSON answer to a question of kind `to`, ready for
/// B's check; `None` when the kinds are incompatible.
#[must_use]
pub fn convert(answer: &Answer, to: QuestionKind) -> Option<Value> {
    Some(match (conversion(answer.kind(), to)?, answer) {
        (Conversion::Same, _) => answer.to_json(),
        (Conversion::NumberToDecimal, Answer::Number(n)) => Value::String(n.to_string()),
        (Conversion::SingleToMultiple, Answer::SingleChoice(v)) => Value::from(vec![v.clone()]),
        (Conversion::ToText, _) => Value::String(answer.text_form()),
        // `conversion` only pairs the two middle rows with these answers.
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use QuestionKind as K;
    use rust_decimal::Decimal;
    use serde_json::json;

    /// Every (A, B) pair the table calls compatible, and how.
    fn compatible() -> Vec<(K, K, Conversion)> {
        let mut rows: Vec<(K, K, Conversion)> =
            K::ALL.iter().map(|k| (*k, *k, Conversion::Same)).collect();
        rows.push((K::Number, K::Decimal, Conversion::NumberToDecimal));
        rows.push((
            K::SingleChoice,
            K::MultipleChoice,
            Conversion::SingleToMultiple,
        ));
        rows.extend(
            K::ALL
                .iter()
                .filter(|k| **k != K::Text)
                .map(|k| (*k, K::Text, Conversion::ToText)),
        );
        rows
    }

    #[test]
    fn catalogue_conversion_row_same_kind() {
        let cases = [
            (
                Answer::Iban("NL91ABNA0417164300".into()),
                json!("NL91ABNA0417164300"),
            ),
            (Answer::Number(3), json!(3)),
            (Answer::Decimal(Decimal::new(1250, 2)), json!("12.50")),
            (Answer::Boolean(false), json!(false)),
            (
                Answer::MultipleChoice(vec!["a".into(), "b".into()]),
                json!(["a", "b"]),
            ),
        ];
        for (answer, expected) in cases {
            assert_eq!(
                conversion(answer.kind(), answer.kind()),
                Some(Conversion::Same)
            );
            assert_eq!(
                convert(&answer, answer.kind()),
                Some(expected),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn catalogue_conversion_row_number_to_decimal() {
        assert_eq!(
            conversion(K::Number, K::Decimal),
            Some(Conversion::NumberToDecimal)
        );
        assert_eq!(
            convert(&Answer::Number(-42), K::Decimal),
            Some(json!("-42"))
        );
        // Not the other way: a decimal may have a fraction.
        assert_eq!(conversion(K::Decimal, K::Number), None);
    }

    #[test]
    fn catalogue_conversion_row_single_to_multiple() {
        assert_eq!(
            conversion(K::SingleChoice, K::MultipleChoice),
            Some(Conversion::SingleToMultiple)
        );
        assert_eq!(
            convert(&Answer::SingleChoice("green".into()), K::MultipleChoice),
            Some(json!(["green"]))
        );
        // Not the other way: several choices do not fit one.
        assert_eq!(conversion(K::MultipleChoice, K::SingleChoice), None);
    }

    #[test]
    fn catalogue_conversion_row_anything_to_text() {
        let cases = [
            (Answer::SingleChoice("business".into()), "business"),
            (Answer::Number(7), "7"),
            (Answer::Decimal(Decimal::new(15, 1)), "1.5"),
            (
                Answer::Date(chrono::NaiveDate::from_ymd_opt(2025, 3, 1).expect("date")),
                "2025-03-01",
            ),
            (Answer::Boolean(true), "true"),
            (Answer::MultipleChoice(vec!["a".into(), "b".into()]), "a, b"),
            (
                Answer::Iban("NL91ABNA0417164300".into()),
                "NL91ABNA0417164300",
            ),
            (Answer::Email("ann@example.com".into()), "ann@example.com"),
            (Answer::Phone("+31612345678".into()), "+31612345678"),
            (Answer::Postcode("1234 AB".into()), "1234 AB"),
        ];
        for (answer, text) in cases {
            assert_eq!(conversion(answer.kind(), K::Text), Some(Conversion::ToText));
            assert_eq!(convert(&answer, K::Text), Some(json!(text)), "{answer:?}");
        }
    }

    #[test]
    fn catalogue_conversion_row_everything_else_is_incompatible() {
        let rows = compatible();
        assert_eq!(rows.len(), 11 + 1 + 1 + 10);
        for from in K::ALL {
            for to in K::ALL {
                let expected = rows
                    .iter()
                    .find(|(a, b, _)| (*a, *b) == (from, to))
                    .map(|(_, _, c)| *c);
                assert_eq!(conversion(from, to), expected, "{from} → {to}");
            }
        }
        // A few that look plausible but are not safe.
        for (from, to) in [
            (K::Text, K::Email),
            (K::Text, K::Iban),
            (K::Text, K::SingleChoice),
            (K::Boolean, K::SingleChoice),
            (K::Date, K::Number),
        ] {
            assert_eq!(conversion(from, to), None, "{from} → {to}");
        }
        assert_eq!(convert(&Answer::Text("x".into()), K::Email), None);
    }
}
