//! A product version as the provider (B) sells it: what it is, what it costs,
//! its documents, whether it is still sold, and the questions an order line
//! for it must answer. A change makes a new version; an order keeps the
//! version it was placed with, so a version is never edited in place.
//!
//! `check_product` says what is wrong with a definition; `check_answers` what
//! is wrong with the answers of one order line for it.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::{Answer, Problem, check_answer, is_blank};
use super::key::{MAX_DESCRIPTION_CHARS, MAX_LABEL_CHARS, check_slug, check_text, clip};
use super::question::{Question, check_definition};
use crate::domain::validation::{MAX_UNIT_AMOUNT, MAX_VAT_RATE_DECIMALS};
use crate::domain::{Currency, FieldError, Minor};

pub const MAX_QUESTIONS: usize = 200;
pub const MAX_ATTACHMENTS: usize = 50;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductVersion {
    /// `[a-z0-9_-]{1,64}`, stable across versions; order lines name it as
    /// their `product_ref`.
    pub key: String,
    /// 1 for the first version, one more for each change.
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price: Price,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// An inactive product is still listed (sales made with it keep it) but
    /// takes no new orders.
    #[serde(default = "active_by_default")]
    pub active: bool,
    #[serde(default)]
    pub questions: Vec<Question>,
}

fn active_by_default() -> bool {
    true
}

/// The price (or rate) of one unit, excluding VAT.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// In minor units of `currency` (cents for EUR).
    #[serde(deserialize_with = "crate::domain::money::minor_units")]
    #[schema(value_type = i64)]
    pub amount: Minor,
    pub currency: Currency,
    /// Percent, e.g. 21, 9, 0: 0 to 100, at most 2 decimals; a JSON number
    /// or a decimal string such as "5.5" (written back as a string).
    #[schema(schema_with = percent_schema)]
    pub vat_rate: Decimal,
}

/// A percent as a JSON number or a decimal string, as `Decimal` reads it.
fn percent_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Number, Type::String]))
        .pattern(Some(r"^[0-9]{1,3}(\.[0-9]{1,2})?$"))
        .minimum(Some(0.0))
        .maximum(Some(100.0))
        .description(Some(
            "Percent, 0 to 100, at most 2 decimals: a number or a string such as \"5.5\"",
        ))
        .build()
}

/// A document that goes with the product (terms, tariff sheet). The checksum
/// lets a reseller tell that a copy is the very document the provider
/// published.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub name: String,
    /// Absolute http(s) URL.
    pub url: String,
    /// SHA-256 of the document, 64 hex digits.
    pub sha256: String,
}

impl ProductVersion {
    /// The question with this key, if any.
    #[must_use]
    pub fn question(&self, key: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.key == key)
    }
}

/// What is wrong with a product version's definition, with paths relative to
/// it (`price.vat_rate`, `questions[2].options`), including what depends on
/// several questions: unique keys, and conditions that name an existing
/// question, can hold, and form no cycle.
#[must_use]
pub fn check_product(p: &ProductVersion) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_slug(&mut errors, "key", &p.key);
    if p.version == 0 {
        errors.push(FieldError::new("version", "must be at least 1"));
    }
    check_text(&mut errors, "name", &p.name, 1, MAX_LABEL_CHARS);
    check_text(
        &mut errors,
        "description",
        &p.description,
        0,
        MAX_DESCRIPTION_CHARS,
    );
    if let Some(category) = &p.category {
        check_text(&mut errors, "category", category, 1, MAX_LABEL_CHARS);
    }
    check_price(&mut errors, &p.price);
    check_attachments(&mut errors, &p.attachments);
    check_questions(&mut errors, &p.questions);
    errors
}

fn check_price(errors: &mut Vec<FieldError>, price: &Price) {
    if !(0..=MAX_UNIT_AMOUNT).contains(&price.amount) {
        errors.push(FieldError::new(
            "price.amount",
            format!(
                "must be between 0 and {MAX_UNIT_AMOUNT}, got {}",
                price.amount
            ),
        ));
    }
    let rate = price.vat_rate;
    if rate < Decimal::ZERO || rate > Decimal::ONE_HUNDRED {
        errors.push(FieldError::new(
            "price.vat_rate",
            format!(
                "must be between 0 and 100 (percent), got {}",
                rate.normalize()
            ),
        ));
    } else if rate.normalize().scale() > MAX_VAT_RATE_DECIMALS {
        errors.push(FieldError::new(
            "price.vat_rate",
            format!(
                "must have at most {MAX_VAT_RATE_DECIMALS} decimal places, got {}",
                rate.normalize()
            ),
        ));
    }
}

fn check_attachments(errors: &mut Vec<FieldError>, attachments: &[Attachment]) {
    if attachments.len() > MAX_ATTACHMENTS {
        errors.push(FieldError::new(
            "attachments",
            format!(
                "must have at most {MAX_ATTACHMENTS} attachments, got {}",
                attachments.len()
            ),
        ));
    }
    for (i, a) in attachments.iter().enumerate() {
        check_text(
            errors,
            &format!("attachments[{i}].name"),
            &a.name,
            1,
            MAX_LABEL_CHARS,
        );
        let web = url::Url::parse(&a.url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !web || a.url.len() > 2048 {
            errors.push(FieldError::new(
                format!("attachments[{i}].url"),
                "must be an absolute http or https URL of at most 2048 characters",
            ));
        }
        if !(a.sha256.len() == 64 && a.sha256.bytes().all(|b| b.is_ascii_hexdigit())) {
            errors.push(FieldError::new(
                format!("attachments[{i}].sha256"),
                "must be a SHA-256 checksum: 64 hexadecimal digits",
            ));
        }
    }
}

fn check_questions(errors: &mut Vec<FieldError>, questions: &[Question]) {
    if questions.len() > MAX_QUESTIONS {
        errors.push(FieldError::new(
            "questions",
            format!(
                "must have at most {MAX_QUESTIONS} questions, got {}",
                questions.len()
            ),
        ));
    }
    // First index of each key: later duplicates are reported, and
    // conditions resolve to the first.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, q) in questions.iter().enumerate() {
        let prefix = format!("questions[{i}]");
        errors.extend(check_definition(q).into_iter().map(|e| under(&prefix, e)));
        if let Some(j) = first.get(q.key.as_str()) {
            errors.push(FieldError::new(
                format!("{prefix}.key"),
                format!("repeats the key '{}' of questions[{j}]", clip(&q.key)),
            ));
        } else {
            first.insert(&q.key, i);
        }
    }
    let referent = |i: usize| {
        questions[i]
            .asked_when
            .as_ref()
            .and_then(|c| first.get(c.question()).copied())
            .filter(|j| *j != i)
    };
    for (i, q) in questions.iter().enumerate() {
        let Some(condition) = &q.asked_when else {
            continue;
        };
        let prefix = format!("questions[{i}].asked_when");
        if condition.question() == q.key {
            continue; // reported by the question's own check
        }
        match referent(i) {
            None => errors.push(FieldError::new(
                format!("{prefix}.question"),
                format!(
                    "names no question of this product: '{}'",
                    clip(condition.question())
                ),
            )),
            Some(j) => errors.extend(condition.check_values(&questions[j], &prefix)),
        }
        if let Some(cycle) = cycle_through(i, questions.len(), referent) {
            let keys: Vec<&str> = cycle.iter().map(|k| questions[*k].key.as_str()).collect();
            errors.push(FieldError::new(
                prefix,
                format!(
                    "conditions form a cycle, so none of them is ever asked: {} → {}",
                    keys.join(" → "),
                    keys[0]
                ),
            ));
        }
    }
}

/// The cycle `start` is on, following each question to the one its condition
/// names (at most one each, so a walk of `n` steps finds any cycle).
fn cycle_through(
    start: usize,
    n: usize,
    next: impl Fn(usize) -> Option<usize>,
) -> Option<Vec<usize>> {
    let mut path = vec![start];
    let mut at = start;
    for _ in 0..n {
        at = next(at)?;
        if at == start {
            return Some(path);
        }
        path.push(at);
    }
    None
}

/// What is wrong with the answers of one order line for `p`, with paths
/// `answers.<key>`: answers to questions the product does not have, required
/// questions left unanswered (only when asked: see `asked_when`), and each
/// answer given, checked against its question even when not asked.
#[must_use]
pub fn check_answers(p: &ProductVersion, answers: &BTreeMap<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for key in answers.keys() {
        if p.question(key).is_none() {
            errors.push(FieldError::new(
                format!("answers.{}", clip(key)),
                format!(
                    "is not a question of product '{}' (version {})",
                    p.key, p.version
                ),
            ));
        }
    }
    let given = Given::check(p, answers);
    for q in &p.questions {
        let field = format!("answers.{}", q.key);
        match given.answers.get(q.key.as_str()) {
            Some(Err(problem)) => errors.push(FieldError::new(field, problem.message.clone())),
            Some(Ok(_)) => {}
            None if q.required && given.is_asked(q, 0) => {
                let problem = match &q.asked_when {
                    None => "is required".to_owned(),
                    Some(c) => format!("is required when {}", c.describe()),
                };
                errors.push(FieldError::new(field, problem));
            }
            None => {}
        }
    }
    errors
}

/// The non-blank answers of a line, each checked against its question.
struct Given<'a> {
    product: &'a ProductVersion,
    answers: BTreeMap<&'a str, Result<Answer, Problem>>,
}

impl<'a> Given<'a> {
    fn check(product: &'a ProductVersion, answers: &'a BTreeMap<String, Value>) -> Self {
        let answers = product
            .questions
            .iter()
            .filter_map(|q| {
                let value = answers.get(&q.key).filter(|v| !is_blank(v))?;
                Some((q.key.as_str(), check_answer(q, value)))
            })
            .collect();
        Self { product, answers }
    }

    /// Whether `q` is asked: it has no condition, or the question its
    /// condition names is itself asked and validly answered so that the
    /// condition holds. `depth` stops a cycle in a definition that was never
    /// checked: such a question is never asked.
    fn is_asked(&self, q: &Question, depth: usize) -> bool {
        let Some(condition) = &q.asked_when else {
            return true;
        };
        if depth > self.product.questions.len() {
            return false;
        }
        let Some(on) = self.product.question(condition.question()) else {
            return false;
        };
        match self.answers.get(on.key.as_str()) {
            Some(Ok(answer)) => condition.holds(on, answer) && self.is_asked(on, depth + 1),
            _ => false,
        }
    }
}

/// `error` with its field moved under `prefix` (`questions[2]` + `key`).
pub(crate) fn under(prefix: &str, error: FieldError) -> FieldError {
    FieldError::new(format!("{prefix}.{}", error.field), error.problem)
}

/// A product as its provider writes it (`PUT /v1/products/{key}`): a version
/// without its key (the path's) and number (salesync's).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price: Price,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default = "active_by_default")]
    pub active: bool,
    #[serde(default)]
    pub questions: Vec<Question>,
}

impl ProductInput {
    /// This content as version `version` of product `key`.
    #[must_use]
    pub fn into_version(self, key: &str, version: u32) -> ProductVersion {
        ProductVersion {
            key: key.to_string(),
            version,
            name: self.name,
            description: self.description,
            price: self.price,
            category: self.category,
            attachments: self.attachments,
            active: self.active,
            questions: self.questions,
        }
    }
}

/// What writing a product does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// A new product: version 1.
    Created,
    /// Different content, or a withdrawn product back: the next version.
    Changed,
    /// The same content as the current version: nothing to store.
    Unchanged,
}

/// The version that writing `input` to product `key` makes, given its
/// current version (and whether it is withdrawn), and what that is.
#[must_use]
pub fn revise(
    current: Option<(&ProductVersion, bool)>,
    key: &str,
    input: ProductInput,
) -> (ProductVersion, Revision) {
    match current {
        None => (input.into_version(key, 1), Revision::Created),
        Some((current, withdrawn)) => {
            let same = input.clone().into_version(key, current.version);
            if !withdrawn && same == *current {
                (same, Revision::Unchanged)
            } else {
                let next = current.version.saturating_add(1);
                (input.into_version(key, next), Revision::Changed)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalogue::condition::Condition;
    use crate::catalogue::question::QuestionKind as K;
    use crate::catalogue::question::tests::{choice, question};
    use crate::catalogue::test_support::{Expected, assert_errors};
    use serde_json::json;

    fn required(q: Question) -> Question {
        Question {
            required: true,
            ..q
        }
    }

    fn when(q: Question, condition: Condition) -> Question {
        Question {
            asked_when: Some(condition),
            ..q
        }
    }

    fn equals(on: &str, value: Value) -> Condition {
        Condition::Equals {
            question: on.into(),
            value,
        }
    }

    /// An energy contract: home or business customer, IBAN always, the
    /// company number only for a business, and the name of the previous
    /// supplier only when switching.
    pub(crate) fn energy() -> ProductVersion {
        ProductVersion {
            key: "energy-fixed".into(),
            version: 3,
            name: "Energy, fixed 3 years".into(),
            description: "Electricity and gas at a fixed rate".into(),
            price: Price {
                amount: 2995,
                currency: Currency::EUR,
                vat_rate: Decimal::new(21, 0),
            },
            category: Some("energy".into()),
            attachments: vec![Attachment {
                name: "Terms".into(),
                url: "https://b.example/terms.pdf".into(),
                sha256: "a".repeat(64),
            }],
            active: true,
            questions: vec![
                required(choice(
                    "customer_type",
                    K::SingleChoice,
                    &["home", "business"],
                )),
                required(question("iban", K::Iban)),
                required(when(
                    question("company_number", K::Text),
                    equals("customer_type", json!("business")),
                )),
                question("switching", K::Boolean),
                required(when(
                    question("previous_supplier", K::Text),
                    equals("switching", json!(true)),
                )),
            ],
        }
    }

    fn answers(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).expect("answers")
    }

    const IBAN: &str = "NL91ABNA0417164300";

    #[test]
    fn catalogue_product_check_answers() {
        let p = energy();
        // (answers, expected (field, problem))
        let cases: Vec<(Value, Expected)> = vec![
            (json!({"customer_type": "home", "iban": IBAN}), vec![]),
            (
                json!({"customer_type": "business", "iban": IBAN, "company_number": "12345678"}),
                vec![],
            ),
            (
                json!({"customer_type": "home", "iban": IBAN, "switching": true, "previous_supplier": "Acme"}),
                vec![],
            ),
            (
                json!({"customer_type": "home", "iban": IBAN, "switching": false}),
                vec![],
            ),
            // Missing required, and the condition that made it required.
            (
                json!({"customer_type": "home"}),
                vec![("answers.iban", "is required")],
            ),
            (
                json!({"customer_type": "home", "iban": null}),
                vec![("answers.iban", "is required")],
            ),
            (
                json!({"customer_type": "home", "iban": "  "}),
                vec![("answers.iban", "is required")],
            ),
            (
                json!({"customer_type": "business", "iban": IBAN}),
                vec![(
                    "answers.company_number",
                    "is required when 'customer_type' is \"business\"",
                )],
            ),
            (
                json!({"customer_type": "home", "iban": IBAN, "switching": true}),
                vec![(
                    "answers.previous_supplier",
                    "is required when 'switching' is true",
                )],
            ),
            // Not asked, so not required; an invalid answer to the condition's
            // question means the condition does not hold.
            (
                json!({"customer_type": "shop", "iban": IBAN}),
                vec![(
                    "answers.customer_type",
                    "\"shop\" is not one of the options: home, business",
                )],
            ),
            (
                json!({"iban": IBAN}),
                vec![("answers.customer_type", "is required")],
            ),
            // An answer given to a question not asked is still checked.
            (
                json!({"customer_type": "home", "iban": IBAN, "company_number": 5}),
                vec![("answers.company_number", "must be text, got a number")],
            ),
            // Wrong type, failed format, unknown question.
            (
                json!({"customer_type": "home", "iban": "NL91ABNA0417164301"}),
                vec![(
                    "answers.iban",
                    "is not a valid IBAN: its check digits do not match (mod 97)",
                )],
            ),
            (
                json!({"customer_type": "home", "iban": IBAN, "switching": "yes"}),
                vec![("answers.switching", "must be true or false, got text")],
            ),
            (
                json!({"customer_type": "home", "iban": IBAN, "colour": "red"}),
                vec![(
                    "answers.colour",
                    "is not a question of product 'energy-fixed' (version 3)",
                )],
            ),
            // Several problems at once, unknown keys first.
            (
                json!({"zzz": 1, "customer_type": "business"}),
                vec![
                    (
                        "answers.zzz",
                        "is not a question of product 'energy-fixed' (version 3)",
                    ),
                    ("answers.iban", "is required"),
                    (
                        "answers.company_number",
                        "is required when 'customer_type' is \"business\"",
                    ),
                ],
            ),
        ];
        for (given, expected) in cases {
            let got = check_answers(&p, &answers(given.clone()));
            let got: Vec<(&str, &str)> = got
                .iter()
                .map(|e| (e.field.as_str(), e.problem.as_str()))
                .collect();
            assert_eq!(got, expected, "{given}");
        }
    }

    #[test]
    fn catalogue_product_conditions_chain() {
        // c is asked only when b is, and b only when a is "yes".
        let p = ProductVersion {
            questions: vec![
                choice("a", K::SingleChoice, &["yes", "no"]),
                when(
                    choice("b", K::SingleChoice, &["yes", "no"]),
                    equals("a", json!("yes")),
                ),
                required(when(question("c", K::Text), equals("b", json!("yes")))),
            ],
            ..energy()
        };
        let cases: Vec<(Value, usize)> = vec![
            (json!({"a": "yes", "b": "yes"}), 1),
            (json!({"a": "yes", "b": "yes", "c": "here"}), 0),
            // b answered but not asked (a is "no"): c is not asked either.
            (json!({"a": "no", "b": "yes"}), 0),
            (json!({"b": "yes"}), 0),
        ];
        for (given, problems) in cases {
            assert_eq!(
                check_answers(&p, &answers(given.clone())).len(),
                problems,
                "{given}"
            );
        }
    }

    #[test]
    fn catalogue_product_check_product() {
        let ok = energy();
        let mut cycle = energy();
        cycle.questions = vec![
            when(question("a", K::Text), equals("c", json!("x"))),
            when(question("b", K::Text), equals("a", json!("x"))),
            when(question("c", K::Text), equals("b", json!("x"))),
            // Leads into the cycle without being on it: not reported.
            when(question("d", K::Text), equals("a", json!("x"))),
        ];
        let with = |f: &dyn Fn(&mut ProductVersion)| {
            let mut p = energy();
            f(&mut p);
            p
        };
        // (product, expected (field, problem contains))
        let cases: Vec<(ProductVersion, Expected)> = vec![
            (ok.clone(), vec![]),
            (
                with(&|p| p.key = "Energy Fixed".into()),
                vec![("key", "a-z, 0-9, '_' or '-'")],
            ),
            (
                with(&|p| p.version = 0),
                vec![("version", "must be at least 1")],
            ),
            (
                with(&|p| p.name = String::new()),
                vec![("name", "must not be empty")],
            ),
            (
                with(&|p| p.category = Some(String::new())),
                vec![("category", "must not be empty")],
            ),
            (
                with(&|p| p.price.amount = -1),
                vec![("price.amount", "must be between 0 and")],
            ),
            (
                with(&|p| p.price.vat_rate = Decimal::new(101, 0)),
                vec![("price.vat_rate", "between 0 and 100")],
            ),
            (
                with(&|p| p.price.vat_rate = Decimal::new(215, 3)),
                vec![("price.vat_rate", "at most 2 decimal places, got 0.215")],
            ),
            (
                with(&|p| p.attachments[0].url = "ftp://b.example/t.pdf".into()),
                vec![("attachments[0].url", "http or https")],
            ),
            (
                with(&|p| p.attachments[0].url = "/terms.pdf".into()),
                vec![("attachments[0].url", "absolute")],
            ),
            (
                with(&|p| p.attachments[0].sha256 = "abc".into()),
                vec![("attachments[0].sha256", "64 hexadecimal digits")],
            ),
            (
                with(&|p| p.attachments[0].sha256 = "g".repeat(64)),
                vec![("attachments[0].sha256", "64 hexadecimal digits")],
            ),
            (
                with(&|p| p.attachments[0].name = String::new()),
                vec![("attachments[0].name", "must not be empty")],
            ),
            (
                with(&|p| p.questions[0].options.clear()),
                vec![
                    ("questions[0].options", "at least one option"),
                    (
                        "questions[2].asked_when.value",
                        "\"business\" is not one of the options: (none)",
                    ),
                ],
            ),
            (
                with(&|p| p.questions[4].key = "iban".into()),
                vec![("questions[4].key", "repeats the key 'iban' of questions[1]")],
            ),
            (
                with(&|p| p.questions[2].asked_when = Some(equals("vat_number", json!("x")))),
                vec![(
                    "questions[2].asked_when.question",
                    "names no question of this product: 'vat_number'",
                )],
            ),
            (
                with(&|p| {
                    p.questions[2].asked_when = Some(equals("customer_type", json!("school")))
                }),
                vec![(
                    "questions[2].asked_when.value",
                    "can never be the answer to 'customer_type'",
                )],
            ),
            (
                with(&|p| p.questions[2].asked_when = Some(equals("company_number", json!("x")))),
                vec![(
                    "questions[2].asked_when.question",
                    "must name another question",
                )],
            ),
            (
                cycle,
                vec![
                    (
                        "questions[0].asked_when",
                        "conditions form a cycle, so none of them is ever asked: a → c → b → a",
                    ),
                    ("questions[1].asked_when", "b → a → c → b"),
                    ("questions[2].asked_when", "c → b → a → c"),
                ],
            ),
        ];
        for (p, expected) in cases {
            let got = check_product(&p);
            assert_errors("", &got, &expected);
        }
    }

    #[test]
    fn catalogue_product_serde() {
        let p: ProductVersion = serde_json::from_value(json!({
            "key": "energy-fixed",
            "version": 1,
            "name": "Energy",
            "price": {"amount": 2995, "currency": "EUR", "vat_rate": "21"},
        }))
        .expect("minimal product");
        assert!(p.active, "a product is active unless said otherwise");
        assert!(p.questions.is_empty() && p.attachments.is_empty());
        let back: ProductVersion =
            serde_json::from_value(serde_json::to_value(energy()).expect("serialize"))
                .expect("round trip");
        assert_eq!(back, energy());
    }

    #[test]
    fn a_write_makes_a_version_only_when_something_changed() {
        let v1 = energy();
        let input = |name: &str| ProductInput {
            name: name.into(),
            description: v1.description.clone(),
            price: v1.price.clone(),
            category: v1.category.clone(),
            attachments: v1.attachments.clone(),
            active: v1.active,
            questions: v1.questions.clone(),
        };
        let key = v1.key.clone();
        // (name, current, withdrawn, new name, version, revision)
        let cases = [
            (
                "first write",
                None,
                false,
                v1.name.as_str(),
                1,
                Revision::Created,
            ),
            (
                "same content",
                Some(&v1),
                false,
                v1.name.as_str(),
                v1.version,
                Revision::Unchanged,
            ),
            (
                "a change",
                Some(&v1),
                false,
                "Energy, green",
                v1.version + 1,
                Revision::Changed,
            ),
            (
                "withdrawn, same content",
                Some(&v1),
                true,
                v1.name.as_str(),
                v1.version + 1,
                Revision::Changed,
            ),
        ];
        for (name, current, withdrawn, new_name, version, revision) in cases {
            let (got, rev) = revise(current.map(|c| (c, withdrawn)), &key, input(new_name));
            assert_eq!((got.version, rev), (version, revision), "case {name}");
            assert_eq!(got.key, key, "case {name}");
            assert_eq!(got.name, new_name, "case {name}");
        }
    }
}
