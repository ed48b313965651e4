//! The ledger mapping: which account (and VAT code) each part of a sale is
//! booked on. A tenant writes it once per accounting integration.
//!
//! Only a category may fall back (to `fallback_revenue`): revenue on a
//! catch-all account is still revenue at the right VAT rate, and the report
//! of what fell back lets the bookkeeper reclassify it. A VAT rate or payment
//! method without a mapping has no safe guess (VAT on the wrong code is a tax
//! error, money on the wrong clearing account never reconciles), so such a
//! sale is quarantined instead: see [`Ledger::unmapped`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::catalogue::key::clip;
use crate::domain::validation::{MAX_NAME_CHARS, MAX_PAYMENT_METHOD_CHARS, vat_rate_problems};
use crate::domain::{FieldError, SaleInput};

/// Longest account number or name an accounting package is asked to take.
pub const MAX_ACCOUNT_CHARS: usize = 64;
/// Longest VAT code.
pub const MAX_VAT_CODE_CHARS: usize = 32;

/// The mapping as the tenant writes it (JSON). Turn it into a [`Ledger`] to
/// book with: only a valid mapping can be used.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LedgerMapping {
    /// How the VAT booked per rate is computed; see [`VatBasis`].
    #[serde(default)]
    pub vat_basis: VatBasis,
    /// One entry per VAT rate, 0 % included (exempt sales still need a code).
    pub vat_rates: Vec<VatRateMapping>,
    /// Category (as on the sale line) → revenue account.
    #[serde(default)]
    pub revenue: BTreeMap<String, String>,
    /// Revenue account for a line whose category is absent or unmapped.
    pub fallback_revenue: String,
    /// Payment method (as on the sale) → journal or clearing account.
    pub payment_methods: BTreeMap<String, String>,
    pub tip: TipMapping,
    /// Service charges are booked here, apart from revenue.
    pub service_charge: String,
    /// Cash rounding and VAT rounding differences.
    pub rounding: String,
}

/// How the VAT of each rate is booked.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum VatBasis {
    /// VAT computed once per rate on the document's net at that rate, rounded
    /// half-up: what an accounting package recomputes on an invoice, so the
    /// booking is never refused for a cent. What the lines' own rounding
    /// leaves over (their VAT sum minus this) goes to the rounding account.
    #[default]
    PerRate,
    /// The VAT the sale declares (the sum of its lines' VAT), as printed on
    /// the receipt, for packages that take VAT amounts as given.
    PerLine,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VatRateMapping {
    /// Percent, e.g. 21, 5.5, 0.
    pub rate: Decimal,
    /// The package's VAT code, put on every line at this rate.
    pub code: String,
    /// Where the VAT at this rate is owed (VAT payable).
    pub account: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TipMapping {
    pub account: String,
    pub treatment: TipTreatment,
}

/// Tips are never revenue; whether they are owed to staff or kept as other
/// income is the tenant's choice, and tells the account's kind.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TipTreatment {
    /// Owed to staff (a liability until paid out).
    Liability,
    /// Separate income, never the sales revenue account.
    Income,
}

/// A value a sale uses that the mapping does not cover.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unmapped {
    VatRate { rate: Decimal, field: String },
    PaymentMethod { method: String, field: String },
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmapped::VatRate { rate, field } => write!(
                f,
                "{field}: VAT rate {}% has no VAT code in the mapping",
                rate.normalize()
            ),
            Unmapped::PaymentMethod { method, field } => write!(
                f,
                "{field}: payment method '{method}' has no account in the mapping"
            ),
        }
    }
}

/// A category whose revenue went to the fallback account; `None` for lines
/// without a category.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fallback {
    pub category: Option<String>,
    pub account: String,
}

/// A validated mapping, ready to book with. VAT rates are keyed by their
/// normalized value, so 21 and 21.00 are one rate, as in the sale.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    mapping: LedgerMapping,
    vat: BTreeMap<Decimal, VatRateMapping>,
}

impl Ledger {
    /// Checks the mapping and lists every problem, each with the field to
    /// correct, as the sale validation does.
    pub fn new(mapping: LedgerMapping) -> Result<Ledger, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut vat = BTreeMap::new();
        for (i, entry) in mapping.vat_rates.iter().enumerate() {
            let field = format!("vat_rates[{i}]");
            let problems = vat_rate_problems(entry.rate);
            let rate_ok = problems.is_empty();
            for problem in problems {
                errors.push(FieldError::new(format!("{field}.rate"), problem));
            }
            check_text(
                &mut errors,
                &format!("{field}.code"),
                &entry.code,
                MAX_VAT_CODE_CHARS,
            );
            check_account(&mut errors, &format!("{field}.account"), &entry.account);
            let rate = entry.rate.normalize();
            if rate_ok && vat.insert(rate, entry.clone()).is_some() {
                errors.push(FieldError::new(
                    format!("{field}.rate"),
                    format!("rate {rate}% is mapped more than once"),
                ));
            }
        }
        for (category, account) in &mapping.revenue {
            let field = format!("revenue.{}", clip(category));
            check_text(&mut errors, &field, category, MAX_NAME_CHARS);
            check_account(&mut errors, &field, account);
        }
        for (method, account) in &mapping.payment_methods {
            let field = format!("payment_methods.{}", clip(method));
            check_text(&mut errors, &field, method, MAX_PAYMENT_METHOD_CHARS);
            check_account(&mut errors, &field, account);
        }
        check_account(&mut errors, "fallback_revenue", &mapping.fallback_revenue);
        check_account(&mut errors, "tip.account", &mapping.tip.account);
        check_account(&mut errors, "service_charge", &mapping.service_charge);
        check_account(&mut errors, "rounding", &mapping.rounding);
        if errors.is_empty() {
            Ok(Ledger { mapping, vat })
        } else {
            Err(errors)
        }
    }

    #[must_use]
    pub fn mapping(&self) -> &LedgerMapping {
        &self.mapping
    }

    #[must_use]
    pub fn vat_basis(&self) -> VatBasis {
        self.mapping.vat_basis
    }

    /// The mapping of a VAT rate, whatever its scale (21 = 21.00).
    #[must_use]
    pub fn vat(&self, rate: Decimal) -> Option<&VatRateMapping> {
        self.vat.get(&rate.normalize())
    }

    #[must_use]
    pub fn payment_account(&self, method: &str) -> Option<&str> {
        self.mapping.payment_methods.get(method).map(String::as_str)
    }

    /// The revenue account of a category, and whether it is the fallback.
    #[must_use]
    pub fn revenue_account(&self, category: Option<&str>) -> (&str, bool) {
        match category.and_then(|c| self.mapping.revenue.get(c)) {
            Some(account) => (account, false),
            None => (&self.mapping.fallback_revenue, true),
        }
    }

    #[must_use]
    pub fn tip(&self) -> &TipMapping {
        &self.mapping.tip
    }

    #[must_use]
    pub fn service_charge_account(&self) -> &str {
        &self.mapping.service_charge
    }

    #[must_use]
    pub fn rounding_account(&self) -> &str {
        &self.mapping.rounding
    }

    /// Every value of `sale` the mapping does not cover: each VAT rate and
    /// payment method once, at the first field that uses it. Empty when the
    /// sale can be booked. A missing category is not listed: it falls back.
    #[must_use]
    pub fn unmapped(&self, sale: &SaleInput) -> Vec<Unmapped> {
        let mut out = Vec::new();
        let mut rates = BTreeSet::new();
        let line_rates = sale
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (l.vat_rate, format!("lines[{i}].vat_rate")));
        let charge_rates = sale
            .service_charges
            .iter()
            .enumerate()
            .map(|(i, c)| (c.vat_rate, format!("service_charges[{i}].vat_rate")));
        for (rate, field) in line_rates.chain(charge_rates) {
            let rate = rate.normalize();
            if self.vat(rate).is_none() && rates.insert(rate) {
                out.push(Unmapped::VatRate { rate, field });
            }
        }
        let mut methods = BTreeSet::new();
        for (i, payment) in sale.payments.iter().enumerate() {
            let method = payment.method.as_str();
            if self.payment_account(method).is_none() && methods.insert(method) {
                out.push(Unmapped::PaymentMethod {
                    method: method.to_owned(),
                    field: format!("payments[{i}].method"),
                });
            }
        }
        out
    }

    /// The categories of `sale` whose revenue goes to the fallback account.
    #[must_use]
    pub fn fallbacks(&self, sale: &SaleInput) -> BTreeSet<Fallback> {
        sale.lines
            .iter()
            .filter_map(|line| {
                let (account, fell_back) = self.revenue_account(line.category.as_deref());
                fell_back.then(|| Fallback {
                    category: line.category.clone(),
                    account: account.to_owned(),
                })
            })
            .collect()
    }
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    let n = value.chars().count();
    if n == 0 {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if n > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters, got {n}"),
        ));
    }
    if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

fn check_account(errors: &mut Vec<FieldError>, field: &str, account: &str) {
    check_text(errors, field, account, MAX_ACCOUNT_CHARS);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{sample_refund, sample_sale};
    use serde_json::json;
    use std::str::FromStr;

    pub(crate) fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    /// A mapping for the sample sales: 21 % and 9 %, coffee mapped, bakery
    /// left to fall back, card and cash.
    pub(crate) fn sample_mapping() -> LedgerMapping {
        serde_json::from_value(json!({
            "vat_rates": [
                {"rate": "21", "code": "V21", "account": "2021"},
                {"rate": 9, "code": "V9", "account": "2009"},
                {"rate": "0", "code": "V0", "account": "2000"},
                {"rate": "10", "code": "V10", "account": "2010"},
            ],
            "revenue": {"coffee": "8010"},
            "fallback_revenue": "8000",
            "payment_methods": {"card": "1110", "cash": "1000"},
            "tip": {"account": "2300", "treatment": "liability"},
            "service_charge": "8400",
            "rounding": "8900",
        }))
        .expect("sample mapping parses")
    }

    pub(crate) fn sample_ledger() -> Ledger {
        Ledger::new(sample_mapping()).expect("sample mapping is valid")
    }

    #[test]
    fn books_ledger_mapping_parses_and_defaults_to_vat_per_rate() {
        let ledger = sample_ledger();
        assert_eq!(ledger.vat_basis(), VatBasis::PerRate);
        assert_eq!(ledger.vat(d("21.00")).map(|v| v.code.as_str()), Some("V21"));
        assert_eq!(
            ledger.vat(d("9.0")).map(|v| v.account.as_str()),
            Some("2009")
        );
        assert_eq!(ledger.vat(d("5.5")), None);
        assert_eq!(ledger.payment_account("card"), Some("1110"));
        assert_eq!(ledger.payment_account("twint"), None);
        assert_eq!(ledger.tip().treatment, TipTreatment::Liability);

        let mut value = serde_json::to_value(sample_mapping()).expect("serialize");
        value["tip"]["acount"] = json!("x");
        let err = serde_json::from_value::<LedgerMapping>(value).expect_err("typo refused");
        assert!(err.to_string().contains("acount"), "{err}");
        let mut value = serde_json::to_value(sample_mapping()).expect("serialize");
        value["vat_basis"] = json!("per_line");
        let back: LedgerMapping = serde_json::from_value(value).expect("per_line");
        assert_eq!(back.vat_basis, VatBasis::PerLine);
    }

    #[test]
    fn books_ledger_mapping_validation_lists_every_problem() {
        let mut m = sample_mapping();
        m.vat_rates.push(VatRateMapping {
            rate: d("21.00"),
            code: String::new(),
            account: "a".repeat(65),
        });
        m.vat_rates.push(VatRateMapping {
            rate: d("100.5"),
            code: "X".into(),
            account: "2".into(),
        });
        m.revenue.insert(String::new(), "8".into());
        m.payment_methods.insert("voucher".into(), "  \n".into());
        m.rounding = String::new();
        let errors = Ledger::new(m).expect_err("invalid");
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "vat_rates[4].code: must not be empty",
                "vat_rates[4].account: must be at most 64 characters, got 65",
                "vat_rates[4].rate: rate 21% is mapped more than once",
                "vat_rates[5].rate: must be between 0 and 100 (percent), got 100.5",
                "revenue.: must not be empty",
                "payment_methods.voucher: must not contain control characters",
                "rounding: must not be empty",
            ]
        );
    }

    #[test]
    fn books_ledger_category_falls_back_and_is_reported() {
        let ledger = sample_ledger();
        assert_eq!(ledger.revenue_account(Some("coffee")), ("8010", false));
        assert_eq!(ledger.revenue_account(Some("bakery")), ("8000", true));
        assert_eq!(ledger.revenue_account(None), ("8000", true));
        let mut sale = sample_sale("s-1");
        sale.lines[0].category = None;
        assert_eq!(
            ledger.fallbacks(&sale).into_iter().collect::<Vec<_>>(),
            [
                Fallback {
                    category: None,
                    account: "8000".into()
                },
                Fallback {
                    category: Some("bakery".into()),
                    account: "8000".into()
                },
            ]
        );
        // A fallback category never quarantines.
        assert!(ledger.unmapped(&sale).is_empty());
    }

    #[test]
    fn books_ledger_new_payment_method_or_vat_rate_is_unmapped() {
        let ledger = sample_ledger();
        assert!(ledger.unmapped(&sample_sale("s-1")).is_empty());
        assert!(ledger.unmapped(&sample_refund("r-1", "s-1")).is_empty());

        let mut sale = sample_sale("s-1");
        sale.lines[1].vat_rate = d("5.50");
        sale.lines[0].vat_rate = d("5.5");
        sale.payments[0].method = "twint".into();
        sale.payments.push(sale.payments[0].clone());
        let unmapped = ledger.unmapped(&sale);
        assert_eq!(
            unmapped,
            [
                Unmapped::VatRate {
                    rate: d("5.5"),
                    field: "lines[0].vat_rate".into()
                },
                Unmapped::PaymentMethod {
                    method: "twint".into(),
                    field: "payments[0].method".into()
                },
            ]
        );
        assert_eq!(
            unmapped[1].to_string(),
            "payments[0].method: payment method 'twint' has no account in the mapping"
        );
        assert_eq!(
            serde_json::to_value(&unmapped[0]).expect("serialize"),
            json!({"kind": "vat_rate", "rate": "5.5", "field": "lines[0].vat_rate"})
        );
    }
}
