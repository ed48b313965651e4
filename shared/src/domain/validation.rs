//! Business validation of an incoming sale: field limits, and above all that
//! the source's own figures add up (line nets, VAT per line, VAT per rate,
//! totals, payments). salesync never recomputes or "fixes" amounts — it
//! forwards the source's books — so an inconsistent sale is rejected with every
//! problem listed, each pointing at the JSON path to correct.
//!
//! Also home of `sample_sale` / `sample_refund`, known-good fixtures shared by
//! tests across crates and by the demo.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::currency::Currency;
use super::money::{Minor, line_net, vat_of};
use super::sale::{Customer, OptIn, Payment, SaleInput, SaleLine, Totals, VatTotal};
use crate::catalogue::key::{check_question_key, check_slug, clip};

pub const MAX_ID_CHARS: usize = 128;
pub const MAX_STATUS_CHARS: usize = 64;
pub const MAX_LINES: usize = 1000;
pub const MAX_SKU_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 256;
pub const MAX_PAYMENT_METHOD_CHARS: usize = 64;
pub const MAX_REFERENCE_CHARS: usize = 256;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_VAT_NUMBER_CHARS: usize = 32;
pub const MAX_METADATA_ENTRIES: usize = 50;
pub const MAX_METADATA_KEY_CHARS: usize = 64;
pub const MAX_METADATA_VALUE_CHARS: usize = 1024;
/// Largest |unit_price| or |discount|: 10^13 minor units (100 billion EUR)
/// keeps `quantity × unit_price` far from i64 overflow.
pub const MAX_UNIT_AMOUNT: Minor = 10_000_000_000_000;
pub const MAX_QUANTITY: i64 = 1_000_000;
pub const MAX_QUANTITY_DECIMALS: u32 = 6;
pub const MAX_VAT_RATE_DECIMALS: u32 = 2;
/// Cash rounding (e.g. CHF to 0.05, or dropping 1/2 cent coins) never
/// exceeds one major unit.
pub const MAX_ROUNDING: Minor = 99;
/// Most answers on one line (a product has far fewer questions).
pub const MAX_ANSWERS: usize = 100;
/// Longest text answer, and longest text item of a list answer.
pub const MAX_ANSWER_CHARS: usize = 2000;
/// Most items in a list answer (a multiple choice picks among at most as
/// many options as a question may have).
pub const MAX_ANSWER_ITEMS: usize = crate::catalogue::question::MAX_OPTIONS;

/// One validation problem: where (`lines[2].net_amount`, `totals.vat[21].vat`)
/// and what.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for FieldError {}

const OVERFLOW: &str = "amount overflows";
const NUL: &str = "must not contain NUL characters (U+0000)";

/// Checks `s` against the limits and arithmetic rules of the sale contract.
/// Returns every problem found, not just the first, so a source can fix its
/// export in one round trip.
pub fn validate_sale(s: &SaleInput) -> Result<(), Vec<FieldError>> {
    let mut v = Validator::default();
    v.header(s);
    if let Some(customer) = &s.customer {
        v.customer(customer);
    }
    v.metadata(&s.metadata);
    if let Some(flow) = &s.flow {
        check_slug(&mut v.errors, "flow", flow);
    }
    let rates = v.lines_and_charges(s);
    v.totals(s, &rates);
    v.payments(s);
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

/// What the lines and service charges say about one VAT rate.
struct RateUse {
    net: Option<Minor>,
    vat: Option<Minor>,
    /// First place the rate was used, for the "missing entry" message.
    first_user: String,
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn err(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.errors.push(FieldError::new(field, problem));
    }

    /// "expected E (why), got G: off by D" when `expected` is known and
    /// differs; "amount overflows" when it could not be computed.
    fn expect_eq(
        &mut self,
        field: impl Into<String>,
        expected: Option<Minor>,
        why: &str,
        got: Minor,
    ) {
        match expected {
            None => self.err(field, OVERFLOW),
            Some(e) if e != got => self.err(field, mismatch(e, why, got)),
            Some(_) => {}
        }
    }

    fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min {
            self.err(field, "must not be empty");
        } else if n > max {
            self.err(field, format!("must be at most {max} characters, got {n}"));
        }
        // PostgreSQL cannot store U+0000 in text or jsonb: a sale holding
        // one could be accepted here and then fail to be written.
        if value.contains('\0') {
            self.err(field, NUL);
        }
    }

    fn opt_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(value) = value {
            self.text(field, value, 0, max);
        }
    }

    /// Ids end up in database keys, URLs and log lines; control characters in
    /// them are never legitimate and are a classic injection vector.
    fn id(&mut self, field: &str, value: &str) {
        self.text(field, value, 1, MAX_ID_CHARS);
        // NUL is reported by `text` already.
        if value.chars().any(|c| c.is_control() && c != '\0') {
            self.err(field, "must not contain control characters");
        }
    }

    fn header(&mut self, s: &SaleInput) {
        self.id("external_id", &s.external_id);
        self.opt_text("sale_number", s.sale_number.as_deref(), MAX_ID_CHARS);
        self.opt_text("location_id", s.location_id.as_deref(), MAX_ID_CHARS);
        self.opt_text("register_id", s.register_id.as_deref(), MAX_ID_CHARS);

        let status_ok = (1..=MAX_STATUS_CHARS).contains(&s.status.len())
            && s.status
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !status_ok {
            self.err(
                "status",
                format!(
                    "must be 1 to {MAX_STATUS_CHARS} characters of a-z, 0-9, '_' or '-', got {:?}",
                    truncate(&s.status, MAX_STATUS_CHARS)
                ),
            );
        }

        if let Some(original) = &s.refund_of {
            self.id("refund_of", original);
            if *original == s.external_id {
                self.err("refund_of", "a sale cannot refund itself");
            }
        }

        // A negative tip only makes sense when handing back a tip on a refund.
        if s.tip < 0 && s.refund_of.is_none() {
            self.err(
                "tip",
                format!(
                    "must not be negative unless the sale is a refund (refund_of set), got {}",
                    s.tip
                ),
            );
        }
    }

    fn customer(&mut self, c: &Customer) {
        self.opt_text("customer.name", c.name.as_deref(), MAX_NAME_CHARS);
        if let Some(email) = &c.email {
            self.text("customer.email", email, 1, MAX_EMAIL_CHARS);
            if !email.contains('@') {
                self.err("customer.email", "must contain '@'");
            }
        }
        self.opt_text(
            "customer.vat_number",
            c.vat_number.as_deref(),
            MAX_VAT_NUMBER_CHARS,
        );
        if let Some(country) = &c.country {
            let ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
            if !ok {
                self.err(
                    "customer.country",
                    format!(
                        "must be an ISO 3166-1 alpha-2 code in uppercase (e.g. \"NL\"), got {:?}",
                        truncate(country, 8)
                    ),
                );
            }
        }
    }

    fn metadata(&mut self, metadata: &BTreeMap<String, String>) {
        if metadata.len() > MAX_METADATA_ENTRIES {
            self.err(
                "metadata",
                format!(
                    "must have at most {MAX_METADATA_ENTRIES} entries, got {}",
                    metadata.len()
                ),
            );
        }
        for (key, value) in metadata {
            let field = format!("metadata.{}", truncate(key, MAX_METADATA_KEY_CHARS));
            let key_chars = key.chars().count();
            if key.contains('\0') {
                self.err(&field, format!("key {NUL}"));
            }
            if key_chars == 0 {
                self.err(&field, "key must not be empty");
            } else if key_chars > MAX_METADATA_KEY_CHARS {
                self.err(
                    &field,
                    format!(
                        "key must be at most {MAX_METADATA_KEY_CHARS} characters, got {key_chars}"
                    ),
                );
            }
            self.text(&field, value, 0, MAX_METADATA_VALUE_CHARS);
        }
    }

    /// A line's answers to the provider's questions: keys are question keys
    /// (they become field paths such as `lines[0].answers.iban`), values
    /// what a question can take — text, number, yes/no, `null` (no answer)
    /// or a list of text, numbers or yes/no (multiple choice). Whether they
    /// satisfy the questions is the provider's check (`catalogue`).
    fn answers(&mut self, line: &str, answers: &BTreeMap<String, Value>) {
        let field = format!("{line}.answers");
        if answers.len() > MAX_ANSWERS {
            // Cut them first: one problem per key of thousands helps nobody.
            self.err(
                field,
                format!(
                    "must have at most {MAX_ANSWERS} answers, got {}",
                    answers.len()
                ),
            );
            return;
        }
        for (key, value) in answers {
            let field = format!("{field}.{}", clip(key));
            check_question_key(&mut self.errors, &field, key);
            match value {
                Value::Array(items) => {
                    if items.len() > MAX_ANSWER_ITEMS {
                        self.err(
                            &field,
                            format!(
                                "must have at most {MAX_ANSWER_ITEMS} items, got {}",
                                items.len()
                            ),
                        );
                        continue;
                    }
                    for (i, item) in items.iter().enumerate() {
                        let field = format!("{field}[{i}]");
                        if matches!(item, Value::Null | Value::Array(_) | Value::Object(_)) {
                            self.err(field, "must be a string, number or boolean");
                        } else {
                            self.answer_scalar(&field, item);
                        }
                    }
                }
                Value::Object(_) => self.err(
                    field,
                    "must be a string, number, boolean, null or a list of strings, numbers or booleans, not an object",
                ),
                scalar => self.answer_scalar(&field, scalar),
            }
        }
    }

    fn answer_scalar(&mut self, field: &str, value: &Value) {
        if let Value::String(text) = value {
            self.text(field, text, 0, MAX_ANSWER_CHARS);
        }
    }

    fn vat_rate(&mut self, field: &str, rate: Decimal) -> bool {
        let problems = vat_rate_problems(rate);
        let ok = problems.is_empty();
        for problem in problems {
            self.err(field, problem);
        }
        ok
    }

    fn line(&mut self, i: usize, line: &SaleLine) {
        let p = format!("lines[{i}]");
        self.text(&format!("{p}.sku"), &line.sku, 1, MAX_SKU_CHARS);
        self.text(&format!("{p}.name"), &line.name, 1, MAX_NAME_CHARS);
        self.opt_text(
            &format!("{p}.line_id"),
            line.line_id.as_deref(),
            MAX_ID_CHARS,
        );
        self.opt_text(
            &format!("{p}.category"),
            line.category.as_deref(),
            MAX_NAME_CHARS,
        );
        self.opt_text(
            &format!("{p}.product_ref"),
            line.product_ref.as_deref(),
            MAX_ID_CHARS,
        );
        self.answers(&p, &line.answers);

        // Arithmetic checks only run on inputs within limits: with a bad
        // quantity the "expected net" would be meaningless noise on top of
        // the real problem.
        let mut inputs_ok = true;
        let q = line.quantity;
        if q.is_zero() {
            self.err(format!("{p}.quantity"), "must not be 0");
            inputs_ok = false;
        } else if q.abs() > Decimal::from(MAX_QUANTITY) {
            self.err(
                format!("{p}.quantity"),
                format!(
                    "must be between -{MAX_QUANTITY} and {MAX_QUANTITY}, got {}",
                    q.normalize()
                ),
            );
            inputs_ok = false;
        }
        if q.normalize().scale() > MAX_QUANTITY_DECIMALS {
            self.err(
                format!("{p}.quantity"),
                format!(
                    "must have at most {MAX_QUANTITY_DECIMALS} decimal places, got {}",
                    q.normalize()
                ),
            );
            inputs_ok = false;
        }
        for (name, amount) in [("unit_price", line.unit_price), ("discount", line.discount)] {
            if amount.unsigned_abs() > MAX_UNIT_AMOUNT.unsigned_abs() {
                self.err(
                    format!("{p}.{name}"),
                    format!(
                        "must be between -{MAX_UNIT_AMOUNT} and {MAX_UNIT_AMOUNT}, got {amount}"
                    ),
                );
                inputs_ok = false;
            }
        }
        // A discount lowers what is charged on a sale line and lowers what is
        // handed back on a return line, so it carries the quantity's sign.
        if q.is_sign_positive() && !q.is_zero() && line.discount < 0 {
            self.err(
                format!("{p}.discount"),
                format!(
                    "must not be negative on a sale line (quantity > 0), got {}",
                    line.discount
                ),
            );
        } else if q.is_sign_negative() && !q.is_zero() && line.discount > 0 {
            self.err(
                format!("{p}.discount"),
                format!(
                    "must not be positive on a return line (quantity < 0); a discount on a return is negative, got {}",
                    line.discount
                ),
            );
        }
        if inputs_ok {
            self.expect_eq(
                format!("{p}.net_amount"),
                line_net(q, line.unit_price, line.discount),
                "quantity × unit_price − discount",
                line.net_amount,
            );
        }

        if self.vat_rate(&format!("{p}.vat_rate"), line.vat_rate) {
            self.vat_amount(
                &format!("{p}.vat_amount"),
                line.net_amount,
                line.vat_rate,
                line.vat_amount,
            );
        }
    }

    fn vat_amount(&mut self, field: &str, net: Minor, rate: Decimal, got: Minor) {
        let why = format!("{}% of {net}, rounded half-up", rate.normalize());
        self.expect_eq(field, vat_of(net, rate), &why, got);
    }

    /// Validates lines and service charges and returns, per VAT rate, the
    /// sums of their declared net and VAT amounts.
    fn lines_and_charges(&mut self, s: &SaleInput) -> BTreeMap<Decimal, RateUse> {
        if s.lines.is_empty() {
            self.err("lines", "must contain at least one line");
        } else if s.lines.len() > MAX_LINES {
            self.err(
                "lines",
                format!(
                    "must contain at most {MAX_LINES} lines, got {}",
                    s.lines.len()
                ),
            );
        }

        // Keyed by the normalized rate so 21 and 21.00 are one rate.
        let mut rates: BTreeMap<Decimal, RateUse> = BTreeMap::new();
        let mut add = |rate: Decimal, net: Minor, vat: Minor, user: String| {
            let entry = rates.entry(rate.normalize()).or_insert(RateUse {
                net: Some(0),
                vat: Some(0),
                first_user: user,
            });
            entry.net = entry.net.and_then(|n| n.checked_add(net));
            entry.vat = entry.vat.and_then(|v| v.checked_add(vat));
        };

        for (i, line) in s.lines.iter().enumerate() {
            self.line(i, line);
            add(
                line.vat_rate,
                line.net_amount,
                line.vat_amount,
                format!("lines[{i}]"),
            );
        }
        for (i, charge) in s.service_charges.iter().enumerate() {
            let p = format!("service_charges[{i}]");
            self.text(&format!("{p}.name"), &charge.name, 1, MAX_NAME_CHARS);
            if self.vat_rate(&format!("{p}.vat_rate"), charge.vat_rate) {
                self.vat_amount(
                    &format!("{p}.vat_amount"),
                    charge.net_amount,
                    charge.vat_rate,
                    charge.vat_amount,
                );
            }
            add(charge.vat_rate, charge.net_amount, charge.vat_amount, p);
        }
        rates
    }

    fn totals(&mut self, s: &SaleInput, rates: &BTreeMap<Decimal, RateUse>) {
        let t = &s.totals;

        // One entry per rate in use: no gaps, no extras, no duplicates.
        let mut seen: BTreeMap<Decimal, ()> = BTreeMap::new();
        for entry in &t.vat {
            let rate = entry.rate.normalize();
            let p = format!("totals.vat[{rate}]");
            if seen.insert(rate, ()).is_some() {
                self.err(p, format!("rate {rate}% is listed more than once"));
                continue;
            }
            let Some(used) = rates.get(&rate) else {
                self.err(
                    p,
                    format!("rate {rate}% is not used by any line or service charge"),
                );
                continue;
            };
            let why = format!("sum of line and service-charge net amounts at {rate}%");
            self.expect_eq(format!("{p}.net"), used.net, &why, entry.net);
            let why = format!("sum of line and service-charge VAT amounts at {rate}%");
            self.expect_eq(format!("{p}.vat"), used.vat, &why, entry.vat);
        }
        for (rate, used) in rates {
            if !seen.contains_key(rate) {
                self.err(
                    "totals.vat",
                    format!(
                        "missing an entry for rate {rate}% (used by {})",
                        used.first_user
                    ),
                );
            }
        }

        let line_nets = checked_sum(s.lines.iter().map(|l| l.net_amount));
        let charge_nets = checked_sum(s.service_charges.iter().map(|c| c.net_amount));
        self.expect_eq(
            "totals.net",
            line_nets
                .zip(charge_nets)
                .and_then(|(a, b)| a.checked_add(b)),
            "sum of line and service-charge net amounts",
            t.net,
        );
        self.expect_eq(
            "totals.discount",
            checked_sum(s.lines.iter().map(|l| l.discount)),
            "sum of line discounts",
            t.discount,
        );
        self.expect_eq("totals.tip", Some(s.tip), "tip", t.tip);
        if t.rounding.unsigned_abs() > MAX_ROUNDING.unsigned_abs() {
            self.err(
                "totals.rounding",
                format!(
                    "must be between -{MAX_ROUNDING} and {MAX_ROUNDING}, got {}",
                    t.rounding
                ),
            );
        }
        // Built from the declared totals, so a wrong VAT entry is reported
        // once (above) rather than again here.
        let gross = checked_sum(t.vat.iter().map(|v| v.vat))
            .and_then(|vat| checked_sum([t.net, vat, s.tip, t.rounding]));
        self.expect_eq(
            "totals.gross",
            gross,
            "totals.net + VAT + tip + rounding",
            t.gross,
        );
    }

    fn payments(&mut self, s: &SaleInput) {
        for (i, payment) in s.payments.iter().enumerate() {
            let p = format!("payments[{i}]");
            self.text(
                &format!("{p}.method"),
                &payment.method,
                1,
                MAX_PAYMENT_METHOD_CHARS,
            );
            self.opt_text(
                &format!("{p}.reference"),
                payment.reference.as_deref(),
                MAX_REFERENCE_CHARS,
            );
            if let Some(original) = &payment.refund_of {
                self.id(&format!("{p}.refund_of"), original);
            }
        }
        let gross = s.totals.gross;
        if s.payments.is_empty() {
            if gross != 0 {
                self.err("payments", format!("at least one payment is required when totals.gross is not 0 (it is {gross})"));
            }
            return;
        }
        match checked_sum(s.payments.iter().map(|p| p.amount)) {
            None => self.err("payments", OVERFLOW),
            Some(sum) if sum != gross => self.err(
                "payments",
                format!(
                    "sum {sum} does not equal totals.gross {gross}: off by {}",
                    sum.abs_diff(gross)
                ),
            ),
            Some(_) => {}
        }
    }
}

/// What is wrong with a VAT rate (percent), if anything. Shared with the
/// ledger mapping, which must accept exactly the rates a sale may carry.
#[must_use]
pub fn vat_rate_problems(rate: Decimal) -> Vec<String> {
    let mut problems = Vec::new();
    if rate < Decimal::ZERO || rate > Decimal::ONE_HUNDRED {
        problems.push(format!(
            "must be between 0 and 100 (percent), got {}",
            rate.normalize()
        ));
    }
    if rate.normalize().scale() > MAX_VAT_RATE_DECIMALS {
        problems.push(format!(
            "must have at most {MAX_VAT_RATE_DECIMALS} decimal places, got {}",
            rate.normalize()
        ));
    }
    problems
}

fn mismatch(expected: Minor, why: &str, got: Minor) -> String {
    format!(
        "expected {expected} ({why}), got {got}: off by {}",
        got.abs_diff(expected)
    )
}

fn checked_sum(values: impl IntoIterator<Item = Minor>) -> Option<Minor> {
    values.into_iter().try_fold(0, Minor::checked_add)
}

/// Echoing user input in an error message is useful, echoing a megabyte of it
/// is not.
fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max_chars).collect();
        t.push('…');
        t
    }
}

fn dec(mantissa: i64, scale: u32) -> Decimal {
    Decimal::new(mantissa, scale)
}

/// A valid EUR sale with round figures that are easy to tweak in tests:
///
/// | line | qty | unit  | discount | VAT | net  | VAT |
/// |------|-----|-------|----------|-----|------|-----|
/// | 0    | 2   | 10.00 | 0        | 21% | 20.00| 4.20|
/// | 1    | 3   |  4.00 | 2.00     |  9% | 10.00| 0.90|
///
/// Totals: net 3000, VAT 420 + 90, gross 3510, discount 200; one card payment
/// of 3510. Customer and metadata are filled in so every field is exercised.
#[must_use]
pub fn sample_sale(external_id: &str) -> SaleInput {
    SaleInput {
        flow: None,
        external_id: external_id.to_owned(),
        sale_number: Some("R-000123".to_owned()),
        location_id: Some("store-amsterdam".to_owned()),
        register_id: Some("till-1".to_owned()),
        occurred_at: Utc
            .with_ymd_and_hms(2025, 3, 1, 12, 15, 0)
            .single()
            .unwrap_or_default(),
        business_date: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap_or_default(),
        status: "completed".to_owned(),
        currency: Currency::EUR,
        customer: Some(Customer {
            name: Some("Ada Lovelace".to_owned()),
            email: Some("ada@example.com".to_owned()),
            vat_number: Some("NL123456789B01".to_owned()),
            country: Some("NL".to_owned()),
            opt_in: OptIn {
                marketing_email: true,
                marketing_sms: false,
            },
        }),
        lines: vec![
            SaleLine {
                answers: Default::default(),
                line_id: Some("1".to_owned()),
                sku: "COF-001".to_owned(),
                name: "Coffee beans 1 kg".to_owned(),
                category: Some("coffee".to_owned()),
                product_ref: Some("prod-coffee-1kg".to_owned()),
                quantity: dec(2, 0),
                unit_price: 1000,
                discount: 0,
                vat_rate: dec(21, 0),
                net_amount: 2000,
                vat_amount: 420,
            },
            SaleLine {
                answers: Default::default(),
                line_id: Some("2".to_owned()),
                sku: "BRD-002".to_owned(),
                name: "Sourdough bread".to_owned(),
                category: Some("bakery".to_owned()),
                product_ref: None,
                quantity: dec(3, 0),
                unit_price: 400,
                discount: 200,
                vat_rate: dec(9, 0),
                net_amount: 1000,
                vat_amount: 90,
            },
        ],
        service_charges: Vec::new(),
        tip: 0,
        payments: vec![Payment {
            method: "card".to_owned(),
            amount: 3510,
            reference: Some("txn-0001".to_owned()),
            refund_of: None,
        }],
        refund_of: None,
        totals: Totals {
            net: 3000,
            vat: vec![
                VatTotal {
                    rate: dec(21, 0),
                    net: 2000,
                    vat: 420,
                },
                VatTotal {
                    rate: dec(9, 0),
                    net: 1000,
                    vat: 90,
                },
            ],
            gross: 3510,
            discount: 200,
            tip: 0,
            rounding: 0,
        },
        metadata: BTreeMap::from([("channel".to_owned(), "pos".to_owned())]),
    }
}

/// A valid refund of part of `sample_sale(original_external_id)`: one bag of
/// coffee and one bread (with its share of the discount) returned, refunded to
/// the card. Negative quantities, amounts and payment; `refund_of` set.
///
/// Line 1 shows refund rounding: 9% of −333 = −29.97 → −30.
#[must_use]
pub fn sample_refund(external_id: &str, original_external_id: &str) -> SaleInput {
    let mut sale = sample_sale(external_id);
    sale.status = "refunded".to_owned();
    sale.sale_number = Some("R-000124".to_owned());
    sale.occurred_at = Utc
        .with_ymd_and_hms(2025, 3, 2, 10, 0, 0)
        .single()
        .unwrap_or_default();
    sale.business_date = NaiveDate::from_ymd_opt(2025, 3, 2).unwrap_or_default();
    sale.refund_of = Some(original_external_id.to_owned());

    sale.lines[0].quantity = dec(-1, 0);
    sale.lines[0].net_amount = -1000;
    sale.lines[0].vat_amount = -210;
    sale.lines[1].quantity = dec(-1, 0);
    sale.lines[1].discount = -67;
    sale.lines[1].net_amount = -333;
    sale.lines[1].vat_amount = -30;

    sale.totals = Totals {
        net: -1333,
        vat: vec![
            VatTotal {
                rate: dec(21, 0),
                net: -1000,
                vat: -210,
            },
            VatTotal {
                rate: dec(9, 0),
                net: -333,
                vat: -30,
            },
        ],
        gross: -1573,
        discount: -67,
        tip: 0,
        rounding: 0,
    };
    sale.payments = vec![Payment {
        method: "card".to_owned(),
        amount: -1573,
        reference: Some("txn-0002".to_owned()),
        refund_of: Some(original_external_id.to_owned()),
    }];
    sale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sale::ServiceCharge;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    fn errors(s: &SaleInput) -> Vec<FieldError> {
        validate_sale(s).expect_err("sale should be invalid")
    }

    /// Asserts that validation fails with exactly one error, on `field`, whose
    /// message contains every fragment.
    #[track_caller]
    fn assert_single(s: &SaleInput, field: &str, fragments: &[&str]) {
        let errs = errors(s);
        assert_eq!(errs.len(), 1, "expected exactly one error, got {errs:#?}");
        assert_eq!(errs[0].field, field, "{errs:#?}");
        for f in fragments {
            assert!(
                errs[0].problem.contains(f),
                "{:?} lacks {f:?}",
                errs[0].problem
            );
        }
    }

    #[track_caller]
    fn assert_has(s: &SaleInput, field: &str, fragment: &str) {
        let errs = errors(s);
        assert!(
            errs.iter()
                .any(|e| e.field == field && e.problem.contains(fragment)),
            "no error on {field} containing {fragment:?} in {errs:#?}"
        );
    }

    #[test]
    fn domain_validation_samples_are_valid() {
        assert_eq!(validate_sale(&sample_sale("s-1")), Ok(()));
        assert_eq!(validate_sale(&sample_refund("r-1", "s-1")), Ok(()));
    }

    #[test]
    fn domain_validation_jpy_sale() {
        let mut s = sample_sale("jp-1");
        s.currency = Currency::parse("JPY").expect("JPY");
        // ¥1,280 × 2 at 10 %, ¥333 × 3 at the 8 % reduced rate.
        s.lines[0].unit_price = 1280;
        s.lines[0].vat_rate = d("10");
        s.lines[0].net_amount = 2560;
        s.lines[0].vat_amount = 256;
        s.lines[1].unit_price = 333;
        s.lines[1].discount = 0;
        s.lines[1].vat_rate = d("8");
        s.lines[1].net_amount = 999;
        s.lines[1].vat_amount = 80; // 79.92 → 80
        s.totals = Totals {
            net: 3559,
            vat: vec![
                VatTotal {
                    rate: d("10"),
                    net: 2560,
                    vat: 256,
                },
                VatTotal {
                    rate: d("8"),
                    net: 999,
                    vat: 80,
                },
            ],
            gross: 3895,
            discount: 0,
            tip: 0,
            rounding: 0,
        };
        s.payments[0].amount = 3895;
        assert_eq!(validate_sale(&s), Ok(()));
    }

    #[test]
    fn domain_validation_service_charge_tip_and_rounding() {
        // Adds a 21 % delivery fee, a tip and CHF-style cash rounding.
        let mut s = sample_sale("s-2");
        s.service_charges.push(ServiceCharge {
            name: "Delivery".into(),
            net_amount: 500,
            vat_rate: d("21.00"),
            vat_amount: 105,
        });
        s.tip = 200;
        s.totals.tip = 200;
        s.totals.vat[0].net = 2500;
        s.totals.vat[0].vat = 525;
        s.totals.net = 3500;
        s.totals.rounding = -5;
        s.totals.gross = 3500 + 525 + 90 + 200 - 5;
        s.payments[0].amount = 3000;
        s.payments.push(Payment {
            method: "cash".into(),
            amount: 1310,
            reference: None,
            refund_of: None,
        });
        assert_eq!(validate_sale(&s), Ok(()));
    }

    #[test]
    fn domain_validation_header_fields() {
        let mut s = sample_sale("");
        assert_single(&s, "external_id", &["empty"]);
        s.external_id = "x".repeat(129);
        assert_single(&s, "external_id", &["at most 128", "129"]);
        s.external_id = "a\nb".into();
        assert_single(&s, "external_id", &["control"]);

        let mut s = sample_sale("s-1");
        s.sale_number = Some("x".repeat(129));
        assert_single(&s, "sale_number", &["at most 128"]);
        let mut s = sample_sale("s-1");
        s.location_id = Some("x".repeat(129));
        assert_single(&s, "location_id", &["at most 128"]);
        let mut s = sample_sale("s-1");
        s.register_id = Some("x".repeat(129));
        assert_single(&s, "register_id", &["at most 128"]);

        for bad in ["", "Completed", "paid!", "ok ok", &"a".repeat(65)] {
            let mut s = sample_sale("s-1");
            s.status = bad.to_owned();
            assert_single(&s, "status", &["a-z"]);
        }
        let mut s = sample_sale("s-1");
        s.status = "partially_refunded-2".into();
        assert_eq!(validate_sale(&s), Ok(()));

        let mut s = sample_refund("r-1", "r-1");
        s.payments[0].refund_of = None;
        assert_single(&s, "refund_of", &["itself"]);
    }

    #[test]
    fn domain_validation_nul_characters() {
        type Set = fn(&mut SaleInput, String);
        let cases: &[(&str, Set)] = &[
            ("external_id", |s, v| s.external_id = v),
            ("sale_number", |s, v| s.sale_number = Some(v)),
            ("location_id", |s, v| s.location_id = Some(v)),
            ("register_id", |s, v| s.register_id = Some(v)),
            ("customer.name", |s, v| {
                if let Some(c) = s.customer.as_mut() {
                    c.name = Some(v);
                }
            }),
            ("customer.email", |s, v| {
                if let Some(c) = s.customer.as_mut() {
                    c.email = Some(format!("{v}@example.com"));
                }
            }),
            ("customer.vat_number", |s, v| {
                if let Some(c) = s.customer.as_mut() {
                    c.vat_number = Some(v);
                }
            }),
            ("lines[0].line_id", |s, v| s.lines[0].line_id = Some(v)),
            ("lines[0].sku", |s, v| s.lines[0].sku = v),
            ("lines[0].name", |s, v| s.lines[0].name = v),
            ("lines[0].category", |s, v| s.lines[0].category = Some(v)),
            ("lines[0].product_ref", |s, v| {
                s.lines[0].product_ref = Some(v)
            }),
            ("payments[0].method", |s, v| s.payments[0].method = v),
            ("payments[0].reference", |s, v| {
                s.payments[0].reference = Some(v)
            }),
            ("metadata.channel", |s, v| {
                s.metadata.insert("channel".into(), v);
            }),
        ];
        for (field, set) in cases {
            let mut s = sample_sale("s-1");
            set(&mut s, "a\0b".into());
            assert_single(&s, field, &["NUL"]);
        }
        let mut s = sample_sale("s-1");
        s.metadata.insert("k\0".into(), "v".into());
        assert_single(&s, "metadata.k\0", &["key must not contain NUL"]);
        // Other control characters are fine in free text, not in ids.
        let mut s = sample_sale("s-1");
        s.lines[0].name = "tab\there".into();
        assert_eq!(validate_sale(&s), Ok(()));
    }

    #[test]
    fn domain_validation_line_count() {
        let mut s = sample_sale("s-1");
        s.lines.clear();
        assert_has(&s, "lines", "at least one");

        let mut s = sample_sale("s-1");
        let line = s.lines[0].clone();
        s.lines = vec![line; MAX_LINES + 1];
        assert_has(&s, "lines", "at most 1000 lines, got 1001");
        // The rule itself is about the count; no individual line is wrong.
        assert!(errors(&s).iter().all(|e| !e.field.starts_with("lines[")));
    }

    #[test]
    fn domain_validation_line_text_fields() {
        let mut s = sample_sale("s-1");
        s.lines[1].sku = String::new();
        s.lines[0].name = "n".repeat(257);
        let errs = errors(&s);
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert_eq!(errs[0].field, "lines[0].name");
        assert_eq!(errs[1].field, "lines[1].sku");
    }

    #[test]
    fn domain_validation_line_net_mismatch() {
        let mut s = sample_sale("s-1");
        s.lines[0].net_amount = 2006;
        s.totals.vat[0].net = 2006;
        s.totals.net = 3006;
        // VAT of the declared net is 421.26 → 421; keep it consistent so only
        // the net is wrong.
        s.lines[0].vat_amount = 421;
        s.totals.vat[0].vat = 421;
        s.totals.gross = 3006 + 421 + 90;
        s.payments[0].amount = s.totals.gross;
        assert_single(
            &s,
            "lines[0].net_amount",
            &["expected 2000 (quantity × unit_price − discount), got 2006: off by 6"],
        );
    }

    #[test]
    fn domain_validation_line_vat_mismatch() {
        let mut s = sample_sale("s-1");
        s.lines[0].vat_amount = 421;
        s.totals.vat[0].vat = 421;
        s.totals.gross = 3511;
        s.payments[0].amount = 3511;
        assert_single(
            &s,
            "lines[0].vat_amount",
            &["expected 420 (21% of 2000, rounded half-up), got 421: off by 1"],
        );
    }

    #[test]
    fn domain_validation_quantity_rules() {
        let mut s = sample_sale("s-1");
        s.lines[0].quantity = Decimal::ZERO;
        assert_has(&s, "lines[0].quantity", "must not be 0");
        // No "expected net" noise on top of the real problem.
        assert!(errors(&s).iter().all(|e| e.field != "lines[0].net_amount"));

        let mut s = sample_sale("s-1");
        s.lines[0].quantity = d("1000000.5");
        assert_has(&s, "lines[0].quantity", "between");

        let mut s = sample_sale("s-1");
        s.lines[0].quantity = d("2.0000001");
        assert_has(&s, "lines[0].quantity", "at most 6 decimal places");

        // Trailing zeros are not extra precision.
        let mut s = sample_sale("s-1");
        s.lines[0].quantity = d("2.000000000");
        assert_eq!(validate_sale(&s), Ok(()));
    }

    #[test]
    fn domain_validation_vat_rate_rules() {
        let mut s = sample_sale("s-1");
        s.lines[0].vat_rate = d("-1");
        assert_has(&s, "lines[0].vat_rate", "between 0 and 100");
        let mut s = sample_sale("s-1");
        s.lines[0].vat_rate = d("100.5");
        assert_has(&s, "lines[0].vat_rate", "between 0 and 100");
        let mut s = sample_sale("s-1");
        s.lines[0].vat_rate = d("21.125");
        assert_has(&s, "lines[0].vat_rate", "at most 2 decimal places");
        // Same rate, different spelling: still one entry in totals.vat.
        let mut s = sample_sale("s-1");
        s.lines[0].vat_rate = d("21.00");
        assert_eq!(validate_sale(&s), Ok(()));
    }

    #[test]
    fn domain_validation_amount_limits() {
        let mut s = sample_sale("s-1");
        s.lines[0].unit_price = MAX_UNIT_AMOUNT + 1;
        assert_has(&s, "lines[0].unit_price", "between");
        let mut s = sample_sale("s-1");
        s.lines[1].discount = -MAX_UNIT_AMOUNT - 1;
        assert_has(&s, "lines[1].discount", "between");
    }

    #[test]
    fn domain_validation_discount_sign() {
        let mut s = sample_sale("s-1");
        s.lines[1].discount = -200;
        s.lines[1].net_amount = 1400;
        s.lines[1].vat_amount = 126;
        s.totals.vat[1] = VatTotal {
            rate: d("9"),
            net: 1400,
            vat: 126,
        };
        s.totals.net = 3400;
        s.totals.discount = -200;
        s.totals.gross = 3400 + 420 + 126;
        s.payments[0].amount = s.totals.gross;
        assert_single(
            &s,
            "lines[1].discount",
            &["must not be negative on a sale line"],
        );

        let mut s = sample_refund("r-1", "s-1");
        s.lines[1].discount = 67;
        s.lines[1].net_amount = -467;
        s.lines[1].vat_amount = -42;
        s.totals.vat[1] = VatTotal {
            rate: d("9"),
            net: -467,
            vat: -42,
        };
        s.totals.net = -1467;
        s.totals.discount = 67;
        s.totals.gross = -1467 - 210 - 42;
        s.payments[0].amount = s.totals.gross;
        assert_single(
            &s,
            "lines[1].discount",
            &["must not be positive on a return line"],
        );
    }

    #[test]
    fn domain_validation_service_charge_rules() {
        let mut s = sample_sale("s-1");
        s.service_charges.push(ServiceCharge {
            name: String::new(),
            net_amount: 500,
            vat_rate: d("21"),
            vat_amount: 100,
        });
        s.totals.vat[0].net = 2500;
        s.totals.vat[0].vat = 520;
        s.totals.net = 3500;
        s.totals.gross = 3500 + 520 + 90;
        s.payments[0].amount = s.totals.gross;
        let errs = errors(&s);
        assert_eq!(
            errs,
            vec![
                FieldError::new("service_charges[0].name", "must not be empty"),
                FieldError::new(
                    "service_charges[0].vat_amount",
                    "expected 105 (21% of 500, rounded half-up), got 100: off by 5"
                ),
            ]
        );
    }

    #[test]
    fn domain_validation_tip_rules() {
        let mut s = sample_sale("s-1");
        s.tip = -100;
        s.totals.tip = -100;
        s.totals.gross = 3410;
        s.payments[0].amount = 3410;
        assert_single(
            &s,
            "tip",
            &["must not be negative unless the sale is a refund"],
        );

        // A refund may hand a tip back.
        let mut s = sample_refund("r-1", "s-1");
        s.tip = -100;
        s.totals.tip = -100;
        s.totals.gross = -1673;
        s.payments[0].amount = -1673;
        assert_eq!(validate_sale(&s), Ok(()));

        let mut s = sample_sale("s-1");
        s.tip = 150;
        s.totals.gross = 3660;
        s.payments[0].amount = 3660;
        assert_single(&s, "totals.tip", &["expected 150 (tip), got 0: off by 150"]);
    }

    #[test]
    fn domain_validation_totals_vat_missing_extra_duplicate() {
        let mut s = sample_sale("s-1");
        s.totals.vat.remove(1);
        s.totals.gross = 3420;
        s.payments[0].amount = 3420;
        assert_single(
            &s,
            "totals.vat",
            &["missing an entry for rate 9%", "lines[1]"],
        );

        let mut s = sample_sale("s-1");
        s.totals.vat.push(VatTotal {
            rate: d("5.5"),
            net: 0,
            vat: 0,
        });
        assert_single(&s, "totals.vat[5.5]", &["not used by any line"]);

        let mut s = sample_sale("s-1");
        s.totals.vat.push(VatTotal {
            rate: d("21.0"),
            net: 0,
            vat: 0,
        });
        assert_single(&s, "totals.vat[21]", &["more than once"]);
    }

    #[test]
    fn domain_validation_totals_vat_sums() {
        let mut s = sample_sale("s-1");
        s.totals.vat[0].net = 2010;
        assert_single(
            &s,
            "totals.vat[21].net",
            &["expected 2000", "got 2010: off by 10"],
        );

        let mut s = sample_sale("s-1");
        s.totals.vat[1].vat = 93;
        s.totals.gross = 3513;
        s.payments[0].amount = 3513;
        assert_single(
            &s,
            "totals.vat[9].vat",
            &["expected 90 (sum of line and service-charge VAT amounts at 9%), got 93: off by 3"],
        );
    }

    #[test]
    fn domain_validation_totals_net_discount_rounding_gross() {
        let mut s = sample_sale("s-1");
        s.totals.net = 2999;
        s.totals.gross = 3509;
        s.payments[0].amount = 3509;
        assert_single(&s, "totals.net", &["expected 3000", "got 2999: off by 1"]);

        let mut s = sample_sale("s-1");
        s.totals.discount = 0;
        assert_single(
            &s,
            "totals.discount",
            &["expected 200 (sum of line discounts), got 0: off by 200"],
        );

        let mut s = sample_sale("s-1");
        s.totals.rounding = 100;
        s.totals.gross = 3610;
        s.payments[0].amount = 3610;
        assert_single(&s, "totals.rounding", &["between -99 and 99", "got 100"]);

        let mut s = sample_sale("s-1");
        s.totals.gross = 3500;
        s.payments[0].amount = 3500;
        assert_single(
            &s,
            "totals.gross",
            &["expected 3510 (totals.net + VAT + tip + rounding), got 3500: off by 10"],
        );
    }

    #[test]
    fn domain_validation_payments() {
        let mut s = sample_sale("s-1");
        s.payments[0].amount = 3000;
        assert_single(
            &s,
            "payments",
            &["sum 3000 does not equal totals.gross 3510: off by 510"],
        );

        let mut s = sample_sale("s-1");
        s.payments.clear();
        assert_single(&s, "payments", &["at least one payment"]);

        let mut s = sample_sale("s-1");
        s.payments[0].method = String::new();
        assert_single(&s, "payments[0].method", &["empty"]);
        s.payments[0].method = "m".repeat(65);
        assert_single(&s, "payments[0].method", &["at most 64"]);
    }

    #[test]
    fn domain_validation_zero_sale_needs_no_payment() {
        // A fully discounted giveaway.
        let mut s = sample_sale("s-1");
        s.lines.truncate(1);
        s.lines[0].discount = 2000;
        s.lines[0].net_amount = 0;
        s.lines[0].vat_amount = 0;
        s.totals = Totals {
            net: 0,
            vat: vec![VatTotal {
                rate: d("21"),
                net: 0,
                vat: 0,
            }],
            gross: 0,
            discount: 2000,
            tip: 0,
            rounding: 0,
        };
        s.payments.clear();
        assert_eq!(validate_sale(&s), Ok(()));
    }

    #[test]
    fn domain_validation_customer() {
        let mut s = sample_sale("s-1");
        let c = s.customer.as_mut().expect("sample has a customer");
        c.country = Some("nl".into());
        c.email = Some("ada.example.com".into());
        c.vat_number = Some("X".repeat(33));
        let fields: Vec<String> = errors(&s).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["customer.email", "customer.vat_number", "customer.country"]
        );

        let mut s = sample_sale("s-1");
        let c = s.customer.as_mut().expect("sample has a customer");
        c.email = Some(format!("{}@example.com", "a".repeat(250)));
        assert_single(&s, "customer.email", &["at most 254"]);

        let mut s = sample_sale("s-1");
        s.customer = Some(Customer {
            name: None,
            email: None,
            vat_number: None,
            country: None,
            opt_in: OptIn::default(),
        });
        assert_eq!(validate_sale(&s), Ok(()));
    }

    #[test]
    fn domain_validation_metadata() {
        let mut s = sample_sale("s-1");
        for i in 0..MAX_METADATA_ENTRIES {
            s.metadata.insert(format!("k{i}"), "v".into());
        }
        assert_single(&s, "metadata", &["at most 50 entries, got 51"]);

        let mut s = sample_sale("s-1");
        s.metadata.insert("k".repeat(65), "v".into());
        let errs = errors(&s);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].field.starts_with("metadata.kkk"));
        assert!(errs[0].problem.contains("at most 64"));

        let mut s = sample_sale("s-1");
        s.metadata.insert("note".into(), "v".repeat(1025));
        assert_single(&s, "metadata.note", &["at most 1024"]);

        let mut s = sample_sale("s-1");
        s.metadata.insert(String::new(), "v".into());
        assert_single(&s, "metadata.", &["key must not be empty"]);
    }

    #[test]
    fn domain_validation_old_payloads_without_flow_or_answers() {
        // A sale as sources sent it before flows and answers existed.
        let mut json = serde_json::to_value(sample_sale("s-1")).expect("serialize");
        assert!(json.get("flow").is_none(), "absent flow is not written");
        assert!(json["lines"][0].get("answers").is_none(), "nor no answers");
        json.as_object_mut().expect("object").remove("flow");
        let old: SaleInput = serde_json::from_value(json).expect("old payload decodes");
        assert_eq!(old.flow, None);
        assert!(old.lines.iter().all(|l| l.answers.is_empty()));
        assert_eq!(validate_sale(&old), Ok(()));
    }

    fn with_answers(pairs: &[(&str, Value)]) -> SaleInput {
        let mut s = sample_sale("s-1");
        s.lines[0].answers = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        s
    }

    #[test]
    fn domain_validation_flow_and_answers() {
        use serde_json::json;
        let mut s = with_answers(&[
            ("iban", json!("NL91ABNA0417164300")),
            ("persons", json!(2)),
            ("usage_kwh", json!(2750.5)),
            ("green", json!(true)),
            ("extras", json!(["meter_check", 3, false])),
            ("comment", json!(null)),
            ("empty", json!([])),
            ("long", json!("x".repeat(MAX_ANSWER_CHARS))),
        ]);
        s.flow = Some("energy-fixed_3y".into());
        assert_eq!(validate_sale(&s), Ok(()));

        // (flow, answers, field at fault, part of the problem)
        let many: Vec<(String, Value)> = (0..=MAX_ANSWERS)
            .map(|i| (format!("q{i}"), json!("a")))
            .collect();
        let many: Vec<(&str, Value)> = many.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let long_flow = "f".repeat(65);
        type Case<'a> = (Option<&'a str>, Vec<(&'a str, Value)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (Some("Energy Fixed"), vec![], "flow", "a-z, 0-9, '_' or '-'"),
            (Some(""), vec![], "flow", "got \"\""),
            (Some(long_flow.as_str()), vec![], "flow", "1 to 64"),
            (
                None,
                vec![("IBAN", json!("x"))],
                "lines[0].answers.IBAN",
                "a-z, 0-9 or '_'",
            ),
            (
                None,
                vec![("start-date", json!("x"))],
                "lines[0].answers.start-date",
                "a-z, 0-9 or '_'",
            ),
            (
                None,
                vec![("addr", json!({"street": "x"}))],
                "lines[0].answers.addr",
                "not an object",
            ),
            (
                None,
                vec![("pick", json!(["a", ["b"]]))],
                "lines[0].answers.pick[1]",
                "string, number or boolean",
            ),
            (
                None,
                vec![("pick", json!([null]))],
                "lines[0].answers.pick[0]",
                "string, number or boolean",
            ),
            (
                None,
                vec![("pick", json!([{}]))],
                "lines[0].answers.pick[0]",
                "string, number or boolean",
            ),
            (
                None,
                vec![("pick", json!(vec!["a"; MAX_ANSWER_ITEMS + 1]))],
                "lines[0].answers.pick",
                "at most 500 items, got 501",
            ),
            (
                None,
                vec![("note", json!("x".repeat(MAX_ANSWER_CHARS + 1)))],
                "lines[0].answers.note",
                "at most 2000 characters, got 2001",
            ),
            (
                None,
                vec![("pick", json!(["ok", "y".repeat(MAX_ANSWER_CHARS + 1)]))],
                "lines[0].answers.pick[1]",
                "at most 2000 characters",
            ),
            (
                None,
                vec![("note", json!("a\u{0}b"))],
                "lines[0].answers.note",
                "NUL",
            ),
            (
                None,
                many,
                "lines[0].answers",
                "at most 100 answers, got 101",
            ),
        ];
        for (flow, answers, field, fragment) in cases {
            let mut s = with_answers(&answers);
            s.flow = flow.map(str::to_owned);
            assert_single(&s, field, &[fragment]);
        }

        // A hostile key is clipped in the field path.
        let long = "k".repeat(1000);
        let errs = errors(&with_answers(&[(long.as_str(), json!("a"))]));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(
            errs[0].field,
            format!("lines[0].answers.{}…", "k".repeat(64))
        );
        // The second line's answers are named as such.
        let mut s = sample_sale("s-1");
        s.lines[1].answers.insert("Bad".into(), json!(1));
        assert_single(&s, "lines[1].answers.Bad", &["a-z"]);
    }

    #[test]
    fn domain_validation_overflow_is_an_error_not_a_panic() {
        let mut s = sample_sale("s-1");
        // Both within their own limits, but 10^6 × 10^13 > i64::MAX.
        s.lines[0].quantity = Decimal::from(MAX_QUANTITY);
        s.lines[0].unit_price = MAX_UNIT_AMOUNT;
        s.lines[0].net_amount = i64::MAX;
        s.lines[1].vat_rate = d("21");
        s.lines[1].net_amount = i64::MAX;
        s.totals.net = i64::MAX;
        s.totals.rounding = i64::MAX;
        s.payments[0].amount = i64::MAX;
        s.payments.push(Payment {
            method: "cash".into(),
            amount: i64::MAX,
            reference: None,
            refund_of: None,
        });
        let errs = errors(&s);
        for field in [
            "lines[0].net_amount",
            "totals.vat[21].net",
            "totals.net",
            "totals.gross",
            "payments",
        ] {
            assert!(
                errs.iter()
                    .any(|e| e.field == field && e.problem == OVERFLOW),
                "no overflow error on {field}: {errs:#?}"
            );
        }
    }

    #[test]
    fn domain_validation_collects_all_errors() {
        let mut s = sample_sale("");
        s.status = "Done".into();
        s.lines[0].net_amount = 2001;
        s.totals.vat[1].vat = 91;
        s.payments[0].amount = 1;
        let errs = errors(&s);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "external_id",
                "status",
                "lines[0].net_amount",
                "totals.vat[21].net",
                "totals.vat[9].vat",
                "totals.net",
                "totals.gross",
                "payments",
            ],
            "{errs:#?}"
        );
        assert_eq!(
            errs[2].to_string(),
            "lines[0].net_amount: expected 2000 (quantity × unit_price − discount), got 2001: off by 1"
        );
    }

    #[test]
    fn domain_validation_field_error_serializes() {
        let e = FieldError::new("lines[2].net_amount", "off");
        assert_eq!(
            serde_json::to_value(&e).expect("serialize"),
            serde_json::json!({"field": "lines[2].net_amount", "problem": "off"})
        );
    }
}
