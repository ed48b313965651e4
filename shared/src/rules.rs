//! An integration's structured forwarding rules (`Conditions.rules`): `all`,
//! `any` and `not` over facts of the sale — the products its lines name
//! (`product_ref`, e.g. imported from a provider), their categories, the
//! flow, the answers, the location, the gross amount and the currency — each
//! tested with `equals`, `in` or `range`. Pure: a sale in, whether the rule
//! holds out, and when it does not, why, in words shown on the sale.
//!
//! ```json
//! {"all": [{"product": {"in": ["fixed-3y"]}},
//!          {"any": [{"flow": {"equals": "door"}},
//!                   {"answer": {"question": "term", "test": {"in": ["3y"]}}}]},
//!          {"not": {"amount": {"range": {"min": 100000}}}}]}
//! ```
//!
//! A fact with several values (a sale's lines) passes a test when one of its
//! values does; a missing fact (no flow, no location, no answer) passes none,
//! so `not` of it holds.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalogue::formats::decimal_of;
use crate::catalogue::key::{check_question_key, clip};
use crate::domain::{FieldError, SaleInput};

/// Deepest nesting of `all` / `any` / `not`.
pub const MAX_DEPTH: usize = 8;
/// Most rules in one tree, leaves and groups together.
pub const MAX_RULES: usize = 200;
/// Most values in one `in`.
pub const MAX_VALUES: usize = 1000;

/// One rule; a tree of them is the integration's rule set.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ForwardingRule {
    /// Holds when every rule holds (an empty list holds).
    #[schema(no_recursion)]
    All(Vec<ForwardingRule>),
    /// Holds when at least one rule holds (an empty list does not).
    #[schema(no_recursion)]
    Any(Vec<ForwardingRule>),
    /// Holds when the rule does not.
    #[schema(no_recursion)]
    Not(Box<ForwardingRule>),
    /// A line names one of these catalogue products (`lines[].product_ref`).
    Product(TextTest),
    /// A line is in the category.
    Category(TextTest),
    /// The sale's flow.
    Flow(TextTest),
    /// An answer on one of the lines to the question.
    Answer(AnswerRuleTest),
    /// The sale's location id.
    Location(TextTest),
    /// The gross total, in minor units.
    Amount(RuleTest),
    /// The currency (ISO 4217 code).
    Currency(TextTest),
}

/// How a text fact (product, category, flow, location, currency) is tested.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TextTest {
    Equals(String),
    In(Vec<String>),
}

impl TextTest {
    fn passes(&self, value: &str) -> bool {
        match self {
            TextTest::Equals(want) => want == value,
            TextTest::In(wanted) => wanted.iter().any(|w| w == value),
        }
    }

    fn describe(&self) -> String {
        match self {
            TextTest::Equals(v) => format!("equals {}", clip(v)),
            TextTest::In(vs) => format!(
                "in [{}]",
                vs.iter()
                    .take(20)
                    .map(|v| clip(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// How a number or an answer is tested.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleTest {
    Equals(Value),
    In(Vec<Value>),
    /// Numbers (or numeric text) from `min` to `max`, both included.
    Range(RuleRange),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleRange {
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = f64, minimum = -1e15, maximum = 1e15)]
    pub min: Option<serde_json::Number>,
    #[serde(
        default,
        deserialize_with = "number",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = f64, minimum = -1e15, maximum = 1e15)]
    pub max: Option<serde_json::Number>,
}

/// A bound given is a number (`null` is refused; leave the bound out).
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Number>, D::Error> {
    serde_json::Number::deserialize(d).map(Some)
}

/// Largest bound a range takes, either way.
pub const MAX_BOUND: i64 = 1_000_000_000_000_000;

impl RuleRange {
    /// The bounds as decimals; a bound that is not one reads as none.
    fn bounds(&self) -> (Option<Decimal>, Option<Decimal>) {
        let dec = |n: &Option<serde_json::Number>| {
            n.as_ref()
                .and_then(|n| decimal_of(&Value::Number(n.clone())))
        };
        (dec(&self.min), dec(&self.max))
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRuleTest {
    /// The question key, as the sale's lines answer it.
    #[schema(pattern = "^[a-z0-9_]{1,64}$")]
    pub question: String,
    pub test: RuleTest,
}

impl ForwardingRule {
    /// `Ok` when the rule holds for `sale`, else why not (the reason
    /// recorded on the sale).
    pub fn check(&self, sale: &SaleInput) -> Result<(), String> {
        self.check_at(sale, "rules")
    }

    fn check_at(&self, sale: &SaleInput, at: &str) -> Result<(), String> {
        match self {
            ForwardingRule::All(rules) => rules
                .iter()
                .enumerate()
                .try_for_each(|(i, r)| r.check_at(sale, &format!("{at}.all[{i}]"))),
            ForwardingRule::Any(rules) => {
                let mut why = Vec::new();
                for (i, r) in rules.iter().enumerate() {
                    match r.check_at(sale, &format!("{at}.any[{i}]")) {
                        Ok(()) => return Ok(()),
                        Err(reason) => why.push(reason),
                    }
                }
                Err(if why.is_empty() {
                    format!("{at}.any: no rule to hold")
                } else {
                    format!("{at}.any: none held ({})", why.join("; "))
                })
            }
            ForwardingRule::Not(rule) => match rule.check_at(sale, &format!("{at}.not")) {
                Ok(()) => Err(format!("{at}.not: {} holds", rule.describe())),
                Err(_) => Ok(()),
            },
            leaf => {
                if leaf.leaf_holds(sale) {
                    Ok(())
                } else {
                    Err(format!("{at}: {} does not hold", leaf.describe()))
                }
            }
        }
    }

    fn leaf_holds(&self, sale: &SaleInput) -> bool {
        let strings = |values: Vec<&str>, t: &TextTest| values.into_iter().any(|v| t.passes(v));
        match self {
            ForwardingRule::All(_) | ForwardingRule::Any(_) | ForwardingRule::Not(_) => {
                self.check(sale).is_ok()
            }
            ForwardingRule::Product(t) => strings(
                sale.lines
                    .iter()
                    .filter_map(|l| l.product_ref.as_deref())
                    .collect(),
                t,
            ),
            ForwardingRule::Category(t) => strings(
                sale.lines
                    .iter()
                    .filter_map(|l| l.category.as_deref())
                    .collect(),
                t,
            ),
            ForwardingRule::Flow(t) => strings(sale.flow.as_deref().into_iter().collect(), t),
            ForwardingRule::Location(t) => {
                strings(sale.location_id.as_deref().into_iter().collect(), t)
            }
            ForwardingRule::Currency(t) => strings(vec![sale.currency.code()], t),
            ForwardingRule::Amount(t) => t.passes(&Value::from(sale.totals.gross)),
            ForwardingRule::Answer(a) => sale
                .lines
                .iter()
                .filter_map(|l| l.answers.get(&a.question))
                .any(|v| match v {
                    // A multiple-choice answer: one of its options.
                    Value::Array(items) => items.iter().any(|i| a.test.passes(i)),
                    one => a.test.passes(one),
                }),
        }
    }

    /// The rule in words, e.g. `flow in [door, street]`.
    #[must_use]
    pub fn describe(&self) -> String {
        let list = |rules: &[ForwardingRule], join: &str| {
            rules
                .iter()
                .map(ForwardingRule::describe)
                .collect::<Vec<_>>()
                .join(join)
        };
        match self {
            ForwardingRule::All(rules) => format!("({})", list(rules, " and ")),
            ForwardingRule::Any(rules) => format!("({})", list(rules, " or ")),
            ForwardingRule::Not(rule) => format!("not {}", rule.describe()),
            ForwardingRule::Product(t) => format!("product {}", t.describe()),
            ForwardingRule::Category(t) => format!("category {}", t.describe()),
            ForwardingRule::Flow(t) => format!("flow {}", t.describe()),
            ForwardingRule::Answer(a) => format!("answers.{} {}", a.question, a.test.describe()),
            ForwardingRule::Location(t) => format!("location {}", t.describe()),
            ForwardingRule::Amount(t) => format!("amount {}", t.describe()),
            ForwardingRule::Currency(t) => format!("currency {}", t.describe()),
        }
    }
}

impl RuleTest {
    fn passes(&self, value: &Value) -> bool {
        match self {
            RuleTest::Equals(want) => same(want, value),
            RuleTest::In(wanted) => wanted.iter().any(|w| same(w, value)),
            RuleTest::Range(r) => {
                let (min, max) = r.bounds();
                decimal_of(value).is_some_and(|d| {
                    min.is_none_or(|min| d >= min) && max.is_none_or(|max| d <= max)
                })
            }
        }
    }

    fn describe(&self) -> String {
        let text = |v: &Value| match v {
            Value::String(s) => clip(s),
            other => clip(&other.to_string()),
        };
        match self {
            RuleTest::Equals(v) => format!("equals {}", text(v)),
            RuleTest::In(vs) => format!(
                "in [{}]",
                vs.iter().take(20).map(text).collect::<Vec<_>>().join(", ")
            ),
            RuleTest::Range(r) => match r.bounds() {
                (Some(min), Some(max)) => format!("from {min} to {max}"),
                (Some(min), None) => format!("at least {min}"),
                (None, Some(max)) => format!("at most {max}"),
                (None, None) => "any number".to_string(),
            },
        }
    }
}

/// Equal as answers are: the same JSON, or the same number however written.
fn same(a: &Value, b: &Value) -> bool {
    a == b
        || matches!((a, b), (Value::Number(_), Value::Number(_)))
            && decimal_of(a).is_some()
            && decimal_of(a) == decimal_of(b)
}

/// What is wrong with a rule tree on its own, fields under `field`
/// (`conditions.rules`): too deep, too many rules or values, a range that
/// is empty or on a fact that is not a number, a question key that is not
/// one.
#[must_use]
pub fn check_rules(rule: &ForwardingRule, field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut count = 0;
    walk(rule, field, 1, &mut count, &mut errors);
    if count > MAX_RULES {
        errors.push(FieldError::new(
            field,
            format!("has {count} rules; at most {MAX_RULES}"),
        ));
    }
    errors
}

fn walk(
    rule: &ForwardingRule,
    at: &str,
    depth: usize,
    count: &mut usize,
    errors: &mut Vec<FieldError>,
) {
    *count += 1;
    if depth > MAX_DEPTH {
        errors.push(FieldError::new(
            at,
            format!("nests deeper than {MAX_DEPTH} levels"),
        ));
        return;
    }
    match rule {
        ForwardingRule::All(rules) | ForwardingRule::Any(rules) => {
            let kind = if matches!(rule, ForwardingRule::All(_)) {
                "all"
            } else {
                "any"
            };
            for (i, r) in rules.iter().enumerate() {
                walk(r, &format!("{at}.{kind}[{i}]"), depth + 1, count, errors);
            }
        }
        ForwardingRule::Not(r) => walk(r, &format!("{at}.not"), depth + 1, count, errors),
        ForwardingRule::Answer(a) => {
            check_question_key(errors, &format!("{at}.answer.question"), &a.question);
            check_test(&a.test, &format!("{at}.answer.test"), errors);
        }
        ForwardingRule::Amount(t) => check_test(t, &format!("{at}.amount"), errors),
        ForwardingRule::Product(t)
        | ForwardingRule::Category(t)
        | ForwardingRule::Flow(t)
        | ForwardingRule::Location(t)
        | ForwardingRule::Currency(t) => {
            let name = rule.describe();
            let name = name.split(' ').next().unwrap_or("rule");
            let at = format!("{at}.{name}");
            let values: Vec<&String> = match t {
                TextTest::Equals(v) => vec![v],
                TextTest::In(vs) => vs.iter().collect(),
            };
            if values.len() > MAX_VALUES {
                errors.push(FieldError::new(
                    format!("{at}.in"),
                    format!("has {} values; at most {MAX_VALUES}", values.len()),
                ));
            }
            if values.iter().any(|v| v.chars().count() > 2000) {
                errors.push(FieldError::new(
                    at,
                    "a value is longer than 2000 characters",
                ));
            }
        }
    }
}

fn check_test(t: &RuleTest, at: &str, errors: &mut Vec<FieldError>) {
    match t {
        RuleTest::Equals(v) => check_value(v, &format!("{at}.equals"), errors),
        RuleTest::In(vs) => {
            if vs.len() > MAX_VALUES {
                errors.push(FieldError::new(
                    format!("{at}.in"),
                    format!("has {} values; at most {MAX_VALUES}", vs.len()),
                ));
            }
            for (i, v) in vs.iter().enumerate().take(MAX_VALUES) {
                check_value(v, &format!("{at}.in[{i}]"), errors);
            }
        }
        RuleTest::Range(r) => {
            let (min, max) = r.bounds();
            let limit = Decimal::from(MAX_BOUND);
            let out_of_bounds = [(&r.min, min), (&r.max, max)]
                .iter()
                .any(|(raw, dec)| raw.is_some() && dec.is_none_or(|d| d.abs() > limit));
            if out_of_bounds {
                errors.push(FieldError::new(
                    format!("{at}.range"),
                    format!("min and max must be numbers from -{MAX_BOUND} to {MAX_BOUND}"),
                ));
            } else if min.is_none() && max.is_none() {
                errors.push(FieldError::new(
                    format!("{at}.range"),
                    "needs min, max or both",
                ));
            }
            // min above max is a range nothing is in: allowed, never holds.
        }
    }
}

/// A value a test compares with: text (≤ 2000 characters), a number or a
/// boolean.
fn check_value(v: &Value, at: &str, errors: &mut Vec<FieldError>) {
    let ok = match v {
        Value::String(s) => s.chars().count() <= 2000,
        Value::Number(_) | Value::Bool(_) => true,
        _ => false,
    };
    if !ok {
        errors.push(FieldError::new(
            at,
            "must be text of at most 2000 characters, a number or a boolean",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validation::sample_sale;
    use serde_json::json;

    fn rule(v: Value) -> ForwardingRule {
        serde_json::from_value(v).expect("rule")
    }

    /// sample_sale: EUR, gross 3510, lines COF-001 (coffee?) and BRD-002;
    /// here with a flow, a location, one product and answers.
    fn sale() -> SaleInput {
        let mut s = sample_sale("r-1");
        s.flow = Some("door".into());
        s.location_id = Some("amsterdam".into());
        s.lines[0].product_ref = Some("fixed-3y".into());
        s.lines[0].category = Some("energy".into());
        s.lines[0].answers = serde_json::from_value(json!({
            "term": "3y", "usage": 3500, "extras": ["green", "smart"], "business": false
        }))
        .expect("answers");
        s
    }

    #[test]
    fn rules_table() {
        let s = sale();
        // (rule, expected: None = holds, Some(fragment of the reason))
        let cases: Vec<(Value, Option<&str>)> = vec![
            (json!({"product": {"in": ["fixed-3y", "green"]}}), None),
            (
                json!({"product": {"equals": "green"}}),
                Some("rules: product equals green does not hold"),
            ),
            (json!({"category": {"equals": "energy"}}), None),
            (json!({"flow": {"equals": "door"}}), None),
            (json!({"flow": {"in": ["web"]}}), Some("flow in [web]")),
            (json!({"location": {"in": ["amsterdam", "utrecht"]}}), None),
            (json!({"currency": {"equals": "EUR"}}), None),
            (
                json!({"currency": {"equals": "USD"}}),
                Some("currency equals USD"),
            ),
            (
                json!({"amount": {"range": {"min": 1000, "max": 5000}}}),
                None,
            ),
            (
                json!({"amount": {"range": {"min": 100000}}}),
                Some("amount at least 100000"),
            ),
            (
                json!({"answer": {"question": "term", "test": {"in": ["3y"]}}}),
                None,
            ),
            (
                json!({"answer": {"question": "usage", "test": {"range": {"max": 4000}}}}),
                None,
            ),
            (
                json!({"answer": {"question": "usage", "test": {"equals": 3500.0}}}),
                None,
            ),
            (
                json!({"answer": {"question": "extras", "test": {"equals": "smart"}}}),
                None,
            ),
            (
                json!({"answer": {"question": "business", "test": {"equals": true}}}),
                Some("answers.business equals true"),
            ),
            (
                json!({"answer": {"question": "nope", "test": {"equals": "x"}}}),
                Some("answers.nope"),
            ),
            (
                json!({"not": {"answer": {"question": "nope", "test": {"equals": "x"}}}}),
                None,
            ),
            (
                json!({"not": {"flow": {"equals": "door"}}}),
                Some("rules.not: flow equals door holds"),
            ),
            (json!({"all": []}), None),
            (json!({"any": []}), Some("rules.any: no rule to hold")),
            (
                json!({"all": [{"product": {"equals": "fixed-3y"}}, {"flow": {"equals": "web"}}]}),
                Some("rules.all[1]: flow equals web does not hold"),
            ),
            (
                json!({"any": [{"flow": {"equals": "web"}}, {"location": {"equals": "utrecht"}}]}),
                Some(
                    "rules.any: none held (rules.any[0]: flow equals web does not hold; rules.any[1]: location equals utrecht does not hold)",
                ),
            ),
            (
                json!({"all": [{"product": {"in": ["fixed-3y"]}},
                               {"any": [{"flow": {"equals": "web"}},
                                        {"answer": {"question": "term", "test": {"in": ["3y"]}}}]},
                               {"not": {"amount": {"range": {"min": 100000}}}}]}),
                None,
            ),
        ];
        for (v, want) in cases {
            let got = rule(v.clone()).check(&s);
            match want {
                None => assert_eq!(got, Ok(()), "{v}"),
                Some(fragment) => {
                    let reason = got.expect_err(&v.to_string());
                    assert!(
                        reason.contains(fragment),
                        "{v}: '{reason}' should say '{fragment}'"
                    );
                }
            }
        }
    }

    #[test]
    fn rules_missing_facts_pass_no_test() {
        let mut s = sale();
        s.flow = None;
        s.location_id = None;
        for v in [
            json!({"flow": {"in": ["door"]}}),
            json!({"location": {"equals": "amsterdam"}}),
        ] {
            assert!(rule(v.clone()).check(&s).is_err(), "{v}");
            assert!(rule(json!({"not": v.clone()})).check(&s).is_ok(), "{v}");
        }
    }

    #[test]
    fn rules_check_names_each_problem() {
        let deep = (0..MAX_DEPTH).fold(
            json!({"flow": {"equals": "door"}}),
            |r, _| json!({"not": r}),
        );
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"flow": {"equals": "door"}}), vec![]),
            (
                json!({"amount": {"range": {}}}),
                vec!["conditions.rules.amount.range"],
            ),
            (json!({"amount": {"range": {"min": 5, "max": 1}}}), vec![]),
            (
                json!({"amount": {"range": {"max": 1e300}}}),
                vec!["conditions.rules.amount.range"],
            ),
            (
                json!({"all": [{"answer": {"question": "Bad Key", "test": {"equals": {"x": 1}}}}]}),
                vec![
                    "conditions.rules.all[0].answer.question",
                    "conditions.rules.all[0].answer.test.equals",
                ],
            ),
            (
                json!({"any": [{"amount": {"in": [1, null]}}]}),
                vec!["conditions.rules.any[0].amount.in[1]"],
            ),
            (
                deep,
                vec!["conditions.rules.not.not.not.not.not.not.not.not"],
            ),
        ];
        for (v, want) in cases {
            let errors = check_rules(&rule(v.clone()), "conditions.rules");
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, want, "{v}");
        }
        let many = json!({"all": (0..MAX_RULES).map(|_| json!({"flow": {"equals": "d"}})).collect::<Vec<_>>()});
        let errors = check_rules(&rule(many), "conditions.rules");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].problem.contains("at most 200"), "{errors:?}");
    }

    #[test]
    fn rules_round_trip_as_stored() {
        for v in [
            json!({"amount": {"range": {"max": 0.0}}}),
            json!({"not": {"answer": {"question": "a", "test": {"range": {"min": 1}}}}}),
        ] {
            let r = rule(v.clone());
            let stored = serde_json::to_value(&r).expect("serialize");
            assert_eq!(rule(stored.clone()), r, "{v} stored as {stored}");
        }
    }

    #[test]
    fn rules_unknown_shapes_are_refused() {
        for v in [
            json!({"flow": {"equals": "a"}, "location": {"equals": "b"}}),
            json!({"flows": {"equals": "a"}}),
            json!({"flow": {"like": "a"}}),
            json!({"answer": {"question": "a", "test": {"equals": 1}, "x": 1}}),
            json!({"amount": {"range": {"min": 1, "maximum": 2}}}),
            json!({"amount": {"range": {"min": "1"}}}),
            json!({"amount": {"range": {"min": null}}}),
            json!({"flow": {"range": {"min": 1}}}),
            json!({"product": {"in": ["a", 1]}}),
        ] {
            assert!(
                serde_json::from_value::<ForwardingRule>(v.clone()).is_err(),
                "{v}"
            );
        }
    }
}
