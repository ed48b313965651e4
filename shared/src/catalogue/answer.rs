//! An answer to a question: a JSON value checked against the question's kind,
//! options and rules, into a typed [`Answer`]. Refusals say why in words the
//! person who answered understands, and carry a [`ProblemKind`] so a caller
//! can tell "wrong type" from "not one of the options".
//!
//! `null`, a string of only spaces and an empty array are no answer at all
//! (forms send them for an untouched field): [`is_blank`] tells, and the
//! product's check decides whether the question required one.

use std::collections::BTreeSet;
use std::fmt;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::formats::{
    check_email, decimal_of, normalize_iban, normalize_phone, normalize_postcode, parse_date,
};
use super::key::clip;
use super::question::{Question, QuestionKind};
use super::validations::MAX_TEXT_CHARS;
use crate::domain::whole::whole;

/// A checked answer in its canonical form (IBAN compact and uppercase, phone
/// without spaces and dashes, postcode uppercase).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Answer {
    Text(String),
    Number(i64),
    #[schema(value_type = String)]
    Decimal(Decimal),
    Date(NaiveDate),
    Boolean(bool),
    SingleChoice(String),
    MultipleChoice(Vec<String>),
    Iban(String),
    Email(String),
    Phone(String),
    Postcode(String),
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// No answer where one is needed.
    Missing,
    /// A JSON type the question's kind never takes (a number for a date).
    WrongType,
    /// The right type but not the kind's format (an IBAN failing mod 97).
    InvalidFormat,
    /// A value that is not among the question's options.
    NotAnOption,
    /// A valid answer that breaks one of the question's own rules.
    FailedValidation,
}

/// Why an answer was refused.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Answer {
    /// The kind of question this answer answers.
    #[must_use]
    pub fn kind(&self) -> QuestionKind {
        match self {
            Answer::Text(_) => QuestionKind::Text,
            Answer::Number(_) => QuestionKind::Number,
            Answer::Decimal(_) => QuestionKind::Decimal,
            Answer::Date(_) => QuestionKind::Date,
            Answer::Boolean(_) => QuestionKind::Boolean,
            Answer::SingleChoice(_) => QuestionKind::SingleChoice,
            Answer::MultipleChoice(_) => QuestionKind::MultipleChoice,
            Answer::Iban(_) => QuestionKind::Iban,
            Answer::Email(_) => QuestionKind::Email,
            Answer::Phone(_) => QuestionKind::Phone,
            Answer::Postcode(_) => QuestionKind::Postcode,
        }
    }

    /// The answer as a JSON value in canonical form: what is stored and
    /// forwarded, and what `check_answer` takes back unchanged. Decimals are
    /// strings so they stay exact.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Answer::Number(n) => Value::from(*n),
            Answer::Boolean(b) => Value::Bool(*b),
            Answer::MultipleChoice(values) => Value::from(values.clone()),
            _ => Value::String(self.text_form()),
        }
    }

    /// The answer as text: what a pattern and lengths are checked on, and
    /// what a text question receives when it is answered from another kind.
    /// Several choices are joined with ", ".
    #[must_use]
    pub fn text_form(&self) -> String {
        match self {
            Answer::Text(s)
            | Answer::SingleChoice(s)
            | Answer::Iban(s)
            | Answer::Email(s)
            | Answer::Phone(s)
            | Answer::Postcode(s) => s.clone(),
            Answer::Number(n) => n.to_string(),
            Answer::Decimal(d) => d.to_string(),
            Answer::Date(d) => d.format("%Y-%m-%d").to_string(),
            Answer::Boolean(b) => b.to_string(),
            Answer::MultipleChoice(values) => values.join(", "),
        }
    }
}

/// Whether `value` is no answer: `null`, blank text or an empty array.
#[must_use]
pub fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Checks `value` as an answer to `q`: its kind first (type, format,
/// options), then the question's rules. A blank value is `Missing`; whether
/// that matters is the caller's call (see `product::check_answers`).
pub fn check_answer(q: &Question, value: &Value) -> Result<Answer, Problem> {
    if is_blank(value) {
        return Err(Problem::new(ProblemKind::Missing, "has no answer"));
    }
    let answer = typed(q, value)?;
    match q.validations.violations(&answer).into_iter().next() {
        Some((_, message)) => Err(Problem::new(ProblemKind::FailedValidation, message)),
        None => Ok(answer),
    }
}

fn typed(q: &Question, value: &Value) -> Result<Answer, Problem> {
    let text = || {
        value
            .as_str()
            .ok_or_else(|| wrong_type(format!("must be text, got {}", json_type(value))))
    };
    let format = |message: String| Problem::new(ProblemKind::InvalidFormat, message);
    match q.kind {
        QuestionKind::Text => {
            let s = text()?;
            let n = s.chars().count();
            if n > MAX_TEXT_CHARS {
                return Err(format(format!(
                    "must be at most {MAX_TEXT_CHARS} characters, got {n}"
                )));
            }
            // PostgreSQL cannot store U+0000 in text or jsonb.
            if s.contains('\0') {
                return Err(format("must not contain NUL characters (U+0000)".into()));
            }
            Ok(Answer::Text(s.to_owned()))
        }
        QuestionKind::Number => {
            if !value.is_number() {
                return Err(wrong_type(format!(
                    "must be a whole number, got {}",
                    json_type(value)
                )));
            }
            whole(value)
                .map(Answer::Number)
                .map_err(|e| format(format!("must be a whole number: {e}")))
        }
        QuestionKind::Decimal => {
            if !(value.is_number() || value.is_string()) {
                return Err(wrong_type(format!(
                    "must be a number, got {}",
                    json_type(value)
                )));
            }
            decimal_of(value).map(Answer::Decimal).ok_or_else(|| {
                format(format!(
                    "must be a number such as 12.50, got {}",
                    clip(&value.to_string())
                ))
            })
        }
        QuestionKind::Date => {
            let s = text().map_err(|_| {
                wrong_type(format!(
                    "must be a date as YYYY-MM-DD, got {}",
                    json_type(value)
                ))
            })?;
            parse_date(s)
                .map(Answer::Date)
                .ok_or_else(|| format(format!("must be a date as YYYY-MM-DD, got {:?}", clip(s))))
        }
        QuestionKind::Boolean => value
            .as_bool()
            .map(Answer::Boolean)
            .ok_or_else(|| wrong_type(format!("must be true or false, got {}", json_type(value)))),
        QuestionKind::SingleChoice => {
            let s = text().map_err(|_| {
                wrong_type(format!(
                    "must be one option value, got {}",
                    json_type(value)
                ))
            })?;
            one_of(q, s)?;
            Ok(Answer::SingleChoice(s.to_owned()))
        }
        QuestionKind::MultipleChoice => choices(q, value).map(Answer::MultipleChoice),
        QuestionKind::Iban => normalize_iban(text()?).map(Answer::Iban).map_err(format),
        QuestionKind::Email => {
            let s = text()?;
            check_email(s).map_err(format)?;
            Ok(Answer::Email(s.to_owned()))
        }
        QuestionKind::Phone => normalize_phone(text()?).map(Answer::Phone).map_err(format),
        QuestionKind::Postcode => normalize_postcode(text()?)
            .map(Answer::Postcode)
            .map_err(format),
    }
}

fn choices(q: &Question, value: &Value) -> Result<Vec<String>, Problem> {
    let wrong = || {
        wrong_type(format!(
            "must be an array of option values, got {}",
            json_type(value)
        ))
    };
    let items = value.as_array().ok_or_else(wrong)?;
    let mut chosen = Vec::with_capacity(items.len());
    let mut seen = BTreeSet::new();
    for item in items {
        let s = item.as_str().ok_or_else(wrong)?;
        one_of(q, s)?;
        if !seen.insert(s) {
            return Err(Problem::new(
                ProblemKind::InvalidFormat,
                format!("chooses {:?} more than once", clip(s)),
            ));
        }
        chosen.push(s.to_owned());
    }
    Ok(chosen)
}

fn one_of(q: &Question, s: &str) -> Result<(), Problem> {
    if q.option(s).is_some() {
        return Ok(());
    }
    // A long list is cut: the message is for a person, not a schema.
    const SHOWN: usize = 10;
    let mut listed: Vec<&str> = q
        .options
        .iter()
        .take(SHOWN)
        .map(|o| o.value.as_str())
        .collect();
    if q.options.len() > SHOWN {
        listed.push("…");
    } else if listed.is_empty() {
        listed.push("(none)");
    }
    Err(Problem::new(
        ProblemKind::NotAnOption,
        format!(
            "{:?} is not one of the options: {}",
            clip(s),
            listed.join(", ")
        ),
    ))
}

fn wrong_type(message: String) -> Problem {
    Problem::new(ProblemKind::WrongType, message)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::pattern::Pattern;
    use crate::catalogue::question::tests::{choice, question};
    use crate::catalogue::validations::{Limit, Validations};
    use serde_json::json;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    fn day(s: &str) -> NaiveDate {
        parse_date(s).expect("date")
    }

    #[test]
    fn catalogue_answer_by_kind() {
        use ProblemKind as P;
        use QuestionKind as K;
        let text = question("note", K::Text);
        let number = question("people", K::Number);
        let decimal = question("usage", K::Decimal);
        let date = question("start", K::Date);
        let boolean = question("moving", K::Boolean);
        let single = choice("plan", K::SingleChoice, &["fixed", "variable"]);
        let multiple = choice(
            "extras",
            K::MultipleChoice,
            &["green", "smart", "insurance"],
        );
        let iban = question("iban", K::Iban);
        let email = question("email", K::Email);
        let phone = question("phone", K::Phone);
        let postcode = question("postcode", K::Postcode);
        let long_text = "x".repeat(MAX_TEXT_CHARS + 1);
        // (question, value, expected answer or problem kind)
        let cases: Vec<(&Question, Value, Result<Answer, P>)> = vec![
            (
                &text,
                json!("Ring twice"),
                Ok(Answer::Text("Ring twice".into())),
            ),
            (&text, json!(12), Err(P::WrongType)),
            (&text, json!(long_text), Err(P::InvalidFormat)),
            (&text, json!("nul\u{0}"), Err(P::InvalidFormat)),
            (&text, json!(null), Err(P::Missing)),
            (&text, json!("  "), Err(P::Missing)),
            (&number, json!(3), Ok(Answer::Number(3))),
            (&number, json!(3.0), Ok(Answer::Number(3))),
            (&number, json!(-7), Ok(Answer::Number(-7))),
            (&number, json!(3.5), Err(P::InvalidFormat)),
            (&number, json!(u64::MAX), Err(P::InvalidFormat)),
            (&number, json!("3"), Err(P::WrongType)),
            (&number, json!(true), Err(P::WrongType)),
            (&decimal, json!(1234.5), Ok(Answer::Decimal(d("1234.5")))),
            (
                &decimal,
                json!("1234.50"),
                Ok(Answer::Decimal(d("1234.50"))),
            ),
            (&decimal, json!(7), Ok(Answer::Decimal(d("7")))),
            (&decimal, json!("12,5"), Err(P::InvalidFormat)),
            (&decimal, json!([1]), Err(P::WrongType)),
            (
                &date,
                json!("2025-03-01"),
                Ok(Answer::Date(day("2025-03-01"))),
            ),
            (&date, json!("01-03-2025"), Err(P::InvalidFormat)),
            (&date, json!("2025-02-30"), Err(P::InvalidFormat)),
            (&date, json!(20250301), Err(P::WrongType)),
            (&boolean, json!(false), Ok(Answer::Boolean(false))),
            (&boolean, json!("true"), Err(P::WrongType)),
            (&boolean, json!(1), Err(P::WrongType)),
            (
                &single,
                json!("fixed"),
                Ok(Answer::SingleChoice("fixed".into())),
            ),
            (&single, json!("Fixed"), Err(P::NotAnOption)),
            (&single, json!(["fixed"]), Err(P::WrongType)),
            (
                &multiple,
                json!(["green", "insurance"]),
                Ok(Answer::MultipleChoice(vec![
                    "green".into(),
                    "insurance".into(),
                ])),
            ),
            (&multiple, json!(["green", "solar"]), Err(P::NotAnOption)),
            (&multiple, json!(["green", "green"]), Err(P::InvalidFormat)),
            (&multiple, json!("green"), Err(P::WrongType)),
            (&multiple, json!(["green", 1]), Err(P::WrongType)),
            (&multiple, json!([]), Err(P::Missing)),
            (
                &iban,
                json!("nl91 abna 0417 1643 00"),
                Ok(Answer::Iban("NL91ABNA0417164300".into())),
            ),
            (&iban, json!("NL91ABNA0417164301"), Err(P::InvalidFormat)),
            (&iban, json!(91), Err(P::WrongType)),
            (
                &email,
                json!("ann@example.com"),
                Ok(Answer::Email("ann@example.com".into())),
            ),
            (&email, json!("ann@example"), Err(P::InvalidFormat)),
            (
                &phone,
                json!("+31 6 1234-5678"),
                Ok(Answer::Phone("+31612345678".into())),
            ),
            (&phone, json!("12345"), Err(P::InvalidFormat)),
            (&phone, json!(31612345678_i64), Err(P::WrongType)),
            (
                &postcode,
                json!("1234 ab"),
                Ok(Answer::Postcode("1234 AB".into())),
            ),
            (&postcode, json!("1234 ab cd ef"), Err(P::InvalidFormat)),
        ];
        for (q, value, expected) in cases {
            let got = check_answer(q, &value).map_err(|p| p.kind);
            assert_eq!(got, expected, "{} {value}", q.kind);
        }
    }

    #[test]
    fn catalogue_answer_validations_after_kind() {
        use ProblemKind as P;
        use QuestionKind as K;
        let with = |kind, validations| Question {
            validations,
            ..question("q", kind)
        };
        let dutch_iban = with(
            K::Iban,
            Validations {
                regex: Some(Pattern::new("NL[0-9]{2}[A-Z]{4}[0-9]{10}")),
                ..Validations::default()
            },
        );
        let short = with(
            K::Text,
            Validations {
                min_length: Some(2),
                max_length: Some(4),
                ..Validations::default()
            },
        );
        let people = with(
            K::Number,
            Validations {
                min: Some(Limit::Number(d("1"))),
                max: Some(Limit::Number(d("8"))),
                ..Validations::default()
            },
        );
        let usage = with(
            K::Decimal,
            Validations {
                max: Some(Limit::Number(d("99.9"))),
                ..Validations::default()
            },
        );
        let start = with(
            K::Date,
            Validations {
                min: Some(Limit::Date(day("2025-01-01"))),
                ..Validations::default()
            },
        );
        // (question, value, expected: Ok or the problem's message)
        let cases: Vec<(&Question, Value, Result<(), &str>)> = vec![
            // The pattern sees the canonical form: spaces gone, uppercase.
            (&dutch_iban, json!("nl91 abna 0417 1643 00"), Ok(())),
            (
                &dutch_iban,
                json!("GB82WEST12345698765432"),
                Err("does not match the pattern NL[0-9]{2}[A-Z]{4}[0-9]{10}"),
            ),
            (&short, json!("abc"), Ok(())),
            (
                &short,
                json!("a"),
                Err("must be at least 2 characters, got 1"),
            ),
            (
                &short,
                json!("abcde"),
                Err("must be at most 4 characters, got 5"),
            ),
            (&people, json!(8), Ok(())),
            (&people, json!(0), Err("must be at least 1, got 0")),
            (&people, json!(9), Err("must be at most 8, got 9")),
            (&usage, json!("99.90"), Ok(())),
            (&usage, json!(100), Err("must be at most 99.9, got 100")),
            (&start, json!("2025-01-01"), Ok(())),
            (
                &start,
                json!("2024-12-31"),
                Err("must be at least 2025-01-01, got 2024-12-31"),
            ),
        ];
        for (q, value, expected) in cases {
            match (check_answer(q, &value), expected) {
                (Ok(_), Ok(())) => {}
                (Err(problem), Err(message)) => {
                    assert_eq!(problem.kind, P::FailedValidation, "{value}");
                    assert_eq!(problem.message, message, "{value}");
                }
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn catalogue_answer_messages_name_the_problem() {
        use QuestionKind as K;
        let single = choice("plan", K::SingleChoice, &["fixed", "variable"]);
        let many: Vec<String> = (0..12).map(|i| format!("o{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let long = choice("plan", K::SingleChoice, &many);
        let (date, number) = (question("d", K::Date), question("n", K::Number));
        let (text, boolean) = (question("t", K::Text), question("b", K::Boolean));
        // (question, value, message)
        let cases: Vec<(&Question, Value, &str)> = vec![
            (
                &single,
                json!("solar"),
                r#""solar" is not one of the options: fixed, variable"#,
            ),
            (
                &long,
                json!("x"),
                r#""x" is not one of the options: o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, …"#,
            ),
            (
                &date,
                json!(1),
                "must be a date as YYYY-MM-DD, got a number",
            ),
            (
                &number,
                json!(1.5),
                "must be a whole number: 1.5 is not a whole number",
            ),
            (&text, json!({"a": 1}), "must be text, got an object"),
            (&boolean, json!("yes"), "must be true or false, got text"),
        ];
        for (q, value, message) in cases {
            let problem = check_answer(q, &value).expect_err("refused");
            assert_eq!(problem.message, message, "{value}");
        }
    }

    #[test]
    fn catalogue_answer_canonical_json_round_trips() {
        use QuestionKind as K;
        let multiple = choice("extras", K::MultipleChoice, &["green", "smart"]);
        // (question, value, canonical json, text form)
        let cases: Vec<(Question, Value, Value, &str)> = vec![
            (question("n", K::Number), json!(4.0), json!(4), "4"),
            (question("d", K::Decimal), json!(0.1), json!("0.1"), "0.1"),
            (
                question("d", K::Decimal),
                json!("12.50"),
                json!("12.50"),
                "12.50",
            ),
            (
                question("t", K::Date),
                json!("2025-03-01"),
                json!("2025-03-01"),
                "2025-03-01",
            ),
            (question("b", K::Boolean), json!(true), json!(true), "true"),
            (
                multiple,
                json!(["smart", "green"]),
                json!(["smart", "green"]),
                "smart, green",
            ),
            (
                question("i", K::Iban),
                json!("nl91abna0417164300"),
                json!("NL91ABNA0417164300"),
                "NL91ABNA0417164300",
            ),
            (
                question("p", K::Phone),
                json!("06-12345678"),
                json!("0612345678"),
                "0612345678",
            ),
        ];
        for (q, value, canonical, text) in cases {
            let answer = check_answer(&q, &value).expect("valid");
            assert_eq!(answer.kind(), q.kind);
            assert_eq!(answer.to_json(), canonical, "{value}");
            assert_eq!(answer.text_form(), text, "{value}");
            let again = check_answer(&q, &canonical).expect("canonical form is valid");
            assert_eq!(again, answer, "{value}");
        }
    }

    #[test]
    fn catalogue_answer_is_blank() {
        let cases = [
            (json!(null), true),
            (json!(""), true),
            (json!(" \t"), true),
            (json!([]), true),
            (json!("0"), false),
            (json!(0), false),
            (json!(false), false),
            (json!({}), false),
            (json!([""]), false),
        ];
        for (value, blank) in cases {
            assert_eq!(is_blank(&value), blank, "{value}");
        }
    }
}
