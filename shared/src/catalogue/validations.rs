//! The rules a question may add to its kind: a pattern and lengths on the text
//! form of the answer, and lower/upper limits on numbers and dates. Which
//! rules a kind takes is decided here, both when a question is defined (a
//! rule that cannot apply is a definition error, never silently ignored) and
//! when an answer is checked.

use std::cmp::Ordering;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::answer::Answer;
use super::formats::{decimal_of, parse_date};
use super::pattern::Pattern;
use super::question::QuestionKind;
use crate::domain::FieldError;

/// Longest text answer; `max_length` may not exceed it.
pub const MAX_TEXT_CHARS: usize = 4096;

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Validations {
    /// Text kinds: a regular expression the whole answer must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<Pattern>,
    /// number, decimal, date: the smallest (earliest) answer allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Limit>,
    /// number, decimal, date: the largest (latest) answer allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Limit>,
    /// Text kinds: fewest characters.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::domain::whole::optional_whole_u32"
    )]
    pub min_length: Option<u32>,
    /// Text kinds: most characters.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::domain::whole::optional_whole_u32"
    )]
    pub max_length: Option<u32>,
}

/// One rule of [`Validations`], to say which one an answer failed or which
/// one is stricter on the provider's side.
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
pub enum Rule {
    Regex,
    Min,
    Max,
    MinLength,
    MaxLength,
}

/// A lower or upper limit: a number (for number and decimal questions) or a
/// date (for date questions). In JSON a number, a numeric string or a
/// `YYYY-MM-DD` string; written back as a string so decimals stay exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Number(Decimal),
    Date(NaiveDate),
}

impl Limit {
    /// How two limits compare; `None` when one is a number and the other a
    /// date.
    #[must_use]
    pub fn compare(&self, other: &Limit) -> Option<Ordering> {
        match (self, other) {
            (Limit::Number(a), Limit::Number(b)) => Some(a.cmp(b)),
            (Limit::Date(a), Limit::Date(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    fn of_answer(answer: &Answer) -> Option<Limit> {
        match answer {
            Answer::Number(n) => Some(Limit::Number(Decimal::from(*n))),
            Answer::Decimal(d) => Some(Limit::Number(*d)),
            Answer::Date(d) => Some(Limit::Date(*d)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Number(d) => write!(f, "{d}"),
            Limit::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if let Some(date) = value.as_str().and_then(parse_date) {
            return Ok(Limit::Date(date));
        }
        decimal_of(&value).map(Limit::Number).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "a limit is a number or a date (YYYY-MM-DD), got {value}"
            ))
        })
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        // As `Deserialize` reads it: a number, a decimal string, or a date.
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(-1e15))
                    .maximum(Some(1e15)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^-?[0-9]{1,15}(\.[0-9]{1,13})?$"))
                    .description(Some("a decimal number")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
                    .description(Some("a date, YYYY-MM-DD")),
            )
            .into()
    }
}

impl utoipa::ToSchema for Limit {}

/// What a limit of a question of this kind must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitKind {
    Whole,
    Decimal,
    Date,
}

fn limit_kind(kind: QuestionKind) -> Option<LimitKind> {
    match kind {
        QuestionKind::Number => Some(LimitKind::Whole),
        QuestionKind::Decimal => Some(LimitKind::Decimal),
        QuestionKind::Date => Some(LimitKind::Date),
        _ => None,
    }
}

impl Validations {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self == &Validations::default()
    }

    /// Problems with these rules on a question of `kind`; `prefix` is the
    /// path of the validations object (`validations`).
    pub(crate) fn check_definition(&self, kind: QuestionKind, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut err = |rule: &str, problem: String| {
            errors.push(FieldError::new(format!("{prefix}.{rule}"), problem));
        };
        let text_rules = kind.has_text_form_rules();
        if let Some(pattern) = &self.regex {
            if !text_rules {
                err("regex", format!("does not apply to a {kind} question"));
            } else if let Some(problem) = pattern.error() {
                err("regex", problem.to_owned());
            }
        }
        for (rule, length) in [
            ("min_length", self.min_length),
            ("max_length", self.max_length),
        ] {
            let Some(length) = length else { continue };
            if !text_rules {
                err(rule, format!("does not apply to a {kind} question"));
            } else if length as usize > MAX_TEXT_CHARS {
                err(
                    rule,
                    format!("must be at most {MAX_TEXT_CHARS}, got {length}"),
                );
            }
        }
        if self.max_length == Some(0) && text_rules {
            err("max_length", "must be at least 1".into());
        }
        if let (Some(min), Some(max)) = (self.min_length, self.max_length)
            && min > max
        {
            err(
                "min_length",
                format!("must not exceed max_length ({max}), got {min}"),
            );
        }

        let wanted = limit_kind(kind);
        let mut limits_ok = true;
        for (rule, limit) in [("min", self.min), ("max", self.max)] {
            let Some(limit) = limit else { continue };
            let fits = match (wanted, limit) {
                (None, _) => {
                    err(rule, format!("does not apply to a {kind} question"));
                    limits_ok = false;
                    continue;
                }
                (Some(LimitKind::Whole), Limit::Number(d)) => d.fract().is_zero(),
                (Some(LimitKind::Decimal), Limit::Number(_)) => true,
                (Some(LimitKind::Date), Limit::Date(_)) => true,
                _ => false,
            };
            if !fits {
                let what = match wanted {
                    Some(LimitKind::Whole) => "a whole number",
                    Some(LimitKind::Decimal) => "a number",
                    _ => "a date (YYYY-MM-DD)",
                };
                err(
                    rule,
                    format!("must be {what} for a {kind} question, got {limit}"),
                );
                limits_ok = false;
            }
        }
        if limits_ok
            && let (Some(min), Some(max)) = (self.min, self.max)
            && min.compare(&max) == Some(Ordering::Greater)
        {
            err("min", format!("must not exceed max ({max}), got {min}"));
        }
        errors
    }

    /// The rules `answer` breaks, each with a sentence for the person who
    /// gave it. Rules that do not apply to the answer's kind are skipped
    /// (the question's definition check refuses them).
    #[must_use]
    pub fn violations(&self, answer: &Answer) -> Vec<(Rule, String)> {
        let mut broken = Vec::new();
        if answer.kind().has_text_form_rules() {
            let text = answer.text_form();
            let chars = text.chars().count();
            if let Some(pattern) = &self.regex
                && !pattern.matches(&text)
            {
                broken.push((
                    Rule::Regex,
                    format!("does not match the pattern {}", pattern.as_str()),
                ));
            }
            if let Some(min) = self.min_length
                && chars < min as usize
            {
                broken.push((
                    Rule::MinLength,
                    format!("must be at least {min} characters, got {chars}"),
                ));
            }
            if let Some(max) = self.max_length
                && chars > max as usize
            {
                broken.push((
                    Rule::MaxLength,
                    format!("must be at most {max} characters, got {chars}"),
                ));
            }
        }
        if let Some(value) = Limit::of_answer(answer) {
            if let Some(min) = self.min
                && value.compare(&min) == Some(Ordering::Less)
            {
                broken.push((Rule::Min, format!("must be at least {min}, got {value}")));
            }
            if let Some(max) = self.max
                && value.compare(&max) == Some(Ordering::Greater)
            {
                broken.push((Rule::Max, format!("must be at most {max}, got {value}")));
            }
        }
        broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::test_support::{Expected, assert_errors};
    use std::str::FromStr;

    fn num(s: &str) -> Limit {
        Limit::Number(Decimal::from_str(s).expect("decimal"))
    }

    fn date(s: &str) -> Limit {
        Limit::Date(parse_date(s).expect("date"))
    }

    fn v() -> Validations {
        Validations::default()
    }

    #[test]
    fn catalogue_validations_limit_serde() {
        // (json, parsed, written back)
        let cases: &[(&str, Limit, &str)] = &[
            ("5", num("5"), r#""5""#),
            ("-2.5", num("-2.5"), r#""-2.5""#),
            (r#""12.50""#, num("12.50"), r#""12.50""#),
            (r#""2024-01-31""#, date("2024-01-31"), r#""2024-01-31""#),
        ];
        for (json, parsed, written) in cases {
            let got: Limit = serde_json::from_str(json).expect(json);
            assert_eq!(got, *parsed, "{json}");
            assert_eq!(serde_json::to_string(&got).expect("serialize"), *written);
        }
        for bad in [r#""2024-02-30""#, r#""soon""#, "true", "null", "[1]"] {
            let err = serde_json::from_str::<Limit>(bad).expect_err(bad);
            assert!(
                err.to_string().contains("a limit is a number or a date"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn catalogue_validations_definition() {
        use QuestionKind as K;
        let regex = |p: &str| Validations {
            regex: Some(Pattern::new(p)),
            ..v()
        };
        let lengths = |min, max| Validations {
            min_length: min,
            max_length: max,
            ..v()
        };
        let limits = |min, max| Validations { min, max, ..v() };
        // (kind, rules, expected (field, problem contains))
        let cases: Vec<(K, Validations, Expected)> = vec![
            (K::Text, v(), vec![]),
            (K::Text, regex("[A-Z]{2}"), vec![]),
            (K::Iban, regex("NL.*"), vec![]),
            (K::Postcode, lengths(Some(4), Some(7)), vec![]),
            (K::Text, lengths(Some(4), Some(4)), vec![]),
            (K::Number, limits(Some(num("1")), Some(num("10"))), vec![]),
            (K::Decimal, limits(Some(num("0.5")), None), vec![]),
            (
                K::Date,
                limits(Some(date("2024-01-01")), Some(date("2024-12-31"))),
                vec![],
            ),
            (
                K::Text,
                regex("("),
                vec![("v.regex", "not a valid regular expression")],
            ),
            (
                K::Number,
                regex("[0-9]+"),
                vec![("v.regex", "does not apply to a number question")],
            ),
            (
                K::Boolean,
                lengths(Some(1), None),
                vec![("v.min_length", "does not apply")],
            ),
            (
                K::SingleChoice,
                lengths(None, Some(3)),
                vec![("v.max_length", "does not apply")],
            ),
            (
                K::Text,
                lengths(Some(5), Some(4)),
                vec![("v.min_length", "must not exceed max_length (4), got 5")],
            ),
            (
                K::Text,
                lengths(None, Some(0)),
                vec![("v.max_length", "must be at least 1")],
            ),
            (
                K::Text,
                lengths(None, Some(5000)),
                vec![("v.max_length", "must be at most 4096, got 5000")],
            ),
            (
                K::Text,
                limits(Some(num("1")), None),
                vec![("v.min", "does not apply to a text question")],
            ),
            (
                K::Number,
                limits(Some(num("1.5")), None),
                vec![(
                    "v.min",
                    "must be a whole number for a number question, got 1.5",
                )],
            ),
            (
                K::Number,
                limits(None, Some(date("2024-01-01"))),
                vec![("v.max", "must be a whole number")],
            ),
            (
                K::Date,
                limits(Some(num("1")), None),
                vec![("v.min", "must be a date (YYYY-MM-DD)")],
            ),
            (
                K::Decimal,
                limits(Some(date("2024-01-01")), None),
                vec![("v.min", "must be a number for a decimal question")],
            ),
            (
                K::Decimal,
                limits(Some(num("2")), Some(num("1.5"))),
                vec![("v.min", "must not exceed max (1.5), got 2")],
            ),
            (
                K::Date,
                limits(Some(date("2025-01-01")), Some(date("2024-01-01"))),
                vec![("v.min", "must not exceed max (2024-01-01)")],
            ),
        ];
        for (kind, rules, expected) in cases {
            let got = rules.check_definition(kind, "v");
            assert_errors(&format!("{kind} {rules:?}"), &got, &expected);
        }
    }

    #[test]
    fn catalogue_validations_violations() {
        let d = |s: &str| Decimal::from_str(s).expect("decimal");
        let day = |s: &str| parse_date(s).expect("date");
        let rules = Validations {
            regex: Some(Pattern::new("[A-Z]+[0-9]*")),
            min_length: Some(3),
            max_length: Some(5),
            min: Some(num("10")),
            max: Some(num("20.5")),
        };
        let dates = Validations {
            min: Some(date("2024-01-01")),
            max: Some(date("2024-12-31")),
            ..v()
        };
        let three = Validations {
            max_length: Some(3),
            ..v()
        };
        // (rules, answer, broken rules)
        let cases: Vec<(&Validations, Answer, Vec<Rule>)> = vec![
            (&rules, Answer::Text("ABC1".into()), vec![]),
            (&rules, Answer::Text("abc1".into()), vec![Rule::Regex]),
            (&rules, Answer::Text("AB".into()), vec![Rule::MinLength]),
            (&rules, Answer::Text("ABCDEF".into()), vec![Rule::MaxLength]),
            (
                &rules,
                Answer::Text("a".into()),
                vec![Rule::Regex, Rule::MinLength],
            ),
            // Length counts characters, not bytes.
            (&three, Answer::Text("äöü".into()), vec![]),
            (&rules, Answer::Number(10), vec![]),
            (&rules, Answer::Number(9), vec![Rule::Min]),
            (&rules, Answer::Number(21), vec![Rule::Max]),
            (&rules, Answer::Decimal(d("20.5")), vec![]),
            (&rules, Answer::Decimal(d("20.51")), vec![Rule::Max]),
            (&rules, Answer::Decimal(d("9.99")), vec![Rule::Min]),
            (&dates, Answer::Date(day("2024-06-01")), vec![]),
            (&dates, Answer::Date(day("2023-12-31")), vec![Rule::Min]),
            (&dates, Answer::Date(day("2025-01-01")), vec![Rule::Max]),
            // Rules of other kinds are not applied.
            (&rules, Answer::Boolean(true), vec![]),
            (&rules, Answer::SingleChoice("x".into()), vec![]),
            (&dates, Answer::Number(1), vec![]),
        ];
        for (rules, answer, expected) in cases {
            let got: Vec<Rule> = rules
                .violations(&answer)
                .into_iter()
                .map(|(r, _)| r)
                .collect();
            assert_eq!(got, expected, "{answer:?}");
        }
        let messages = rules.violations(&Answer::Number(9));
        assert_eq!(messages[0].1, "must be at least 10, got 9");
    }
}
