//! Whether B's question refuses answers that A's question, mapped onto it,
//! accepts: which of B's rules are stricter than A's.
//!
//! Rules are compared on what A can actually send. Where A's answers are a
//! finite set (options, yes/no, sent to B's text question) each one is tried
//! against B's rules, so only real refusals count. Otherwise A's declared
//! rules, and what its kind implies (an IBAN has 15 to 34 characters), must
//! be at least as strict as B's. Patterns cannot be compared, so a pattern on
//! B's side is stricter unless A has the very same one.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::answer::Answer;
use super::conversion::Conversion;
use super::formats::{IBAN_CHARS, MAX_EMAIL_CHARS, MAX_POSTCODE_CHARS, PHONE_DIGITS};
use super::question::{Question, QuestionKind};
use super::validations::{Limit, MAX_TEXT_CHARS, Rule, Validations};

/// B's rules that refuse some of what `a` accepts (carried over by `how`,
/// options renamed through `options`), and, when A's answers could be tried
/// one by one, those B refuses.
pub(crate) fn stricter_rules(
    a: &Question,
    b: &Question,
    how: Conversion,
    options: &BTreeMap<String, String>,
) -> (Vec<Rule>, Vec<String>) {
    match finite_answers(a, how, options) {
        Some(answers) => tried(&answers, b),
        None => (declared_stricter(a, b), Vec::new()),
    }
}

/// A's option value under B's name, through the mapping's option map.
pub(crate) fn renamed<'a>(options: &'a BTreeMap<String, String>, value: &'a str) -> &'a str {
    options.get(value).map_or(value, String::as_str)
}

/// Every answer A can give, when those are few: its options (renamed) or
/// yes/no, as B's text question would receive them.
fn finite_answers(
    a: &Question,
    how: Conversion,
    options: &BTreeMap<String, String>,
) -> Option<Vec<Answer>> {
    if how != Conversion::ToText {
        return None;
    }
    match a.kind {
        QuestionKind::SingleChoice => Some(
            a.options
                .iter()
                .map(|o| Answer::Text(renamed(options, &o.value).to_owned()))
                .collect(),
        ),
        QuestionKind::Boolean => Some(vec![
            Answer::Text("true".into()),
            Answer::Text("false".into()),
        ]),
        _ => None,
    }
}

/// The rules of `b` that refuse some of `answers`, and those answers.
fn tried(answers: &[Answer], b: &Question) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut refused = Vec::new();
    for answer in answers {
        let broken = b.validations.violations(answer);
        if !broken.is_empty() {
            refused.push(answer.text_form());
        }
        rules.extend(broken.into_iter().map(|(rule, _)| rule));
    }
    rules.sort();
    rules.dedup();
    (rules, refused)
}

/// The rules of `b` that `a`'s declared rules (and what its kind implies) do
/// not already enforce.
fn declared_stricter(a: &Question, b: &Question) -> Vec<Rule> {
    let (av, bv): (&Validations, &Validations) = (&a.validations, &b.validations);
    let mut rules = Vec::new();
    if bv.regex.is_some() && av.regex != bv.regex {
        rules.push(Rule::Regex);
    }
    // A's limit, when it has one of the same type, against B's.
    let compared = |ours: Option<Limit>, theirs: Limit| ours.and_then(|o| o.compare(&theirs));
    if let Some(min) = bv.min
        && compared(av.min, min).is_none_or(|o| o == Ordering::Less)
    {
        rules.push(Rule::Min);
    }
    if let Some(max) = bv.max
        && compared(av.max, max).is_none_or(|o| o == Ordering::Greater)
    {
        rules.push(Rule::Max);
    }
    let (a_min, a_max) = text_length(a);
    if bv.min_length.is_some_and(|min| min as usize > a_min) {
        rules.push(Rule::MinLength);
    }
    if bv
        .max_length
        .is_some_and(|max| a_max.is_none_or(|a_max| (max as usize) < a_max))
    {
        rules.push(Rule::MaxLength);
    }
    rules
}

/// The fewest and most characters of the text form of `a`'s answers, from
/// its rules and from what its kind allows (`None`: no bound).
fn text_length(a: &Question) -> (usize, Option<usize>) {
    use QuestionKind as K;
    let (min, max) = match a.kind {
        K::Text => (1, Some(MAX_TEXT_CHARS)),
        K::Iban => (*IBAN_CHARS.start(), Some(*IBAN_CHARS.end())),
        // a@b.c
        K::Email => (5, Some(MAX_EMAIL_CHARS)),
        K::Phone => (*PHONE_DIGITS.start(), Some(PHONE_DIGITS.end() + 1)),
        K::Postcode => (1, Some(MAX_POSTCODE_CHARS)),
        K::Date => (10, Some(10)),
        K::Boolean => (4, Some(5)),
        // i64::MIN has 20 characters.
        K::Number => (1, Some(20)),
        // 28 significant digits, a sign and a point.
        K::Decimal => (1, Some(30)),
        K::SingleChoice | K::MultipleChoice => (1, None),
    };
    let rules = &a.validations;
    let min = rules.min_length.map_or(min, |m| min.max(m as usize));
    let max = match (max, rules.max_length) {
        (Some(k), Some(m)) => Some(k.min(m as usize)),
        (k, m) => k.or(m.map(|m| m as usize)),
    };
    (min, max)
}

pub(crate) fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::Regex => "its pattern differs from yours",
        Rule::Min => "its minimum is higher",
        Rule::Max => "its maximum is lower",
        Rule::MinLength => "its minimum length is longer",
        Rule::MaxLength => "its maximum length is shorter",
    }
}
