//! The daily closure: one journal entry per location and business day (and
//! currency: an entry cannot mix currencies, and converting needs a rate this
//! pure core does not have). Split by VAT rate, revenue account (via the
//! category) and payment method, sales apart from refunds, with the totals a
//! Z-report is reconciled against.
//!
//! A day with an unmapped sale is not booked on a guess, nor without that
//! sale: the closure is held, and says exactly which sales hold it and why.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::BookingError;
use super::document::{SaleDocument, booked_vat, sale_document};
use super::journal::{Flow, JournalEntry, Postings};
use super::ledger::{Fallback, Ledger, Unmapped};
use crate::domain::{Currency, FieldError, Minor, SaleInput};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DailyClosure {
    pub location: String,
    pub business_date: NaiveDate,
    /// One per currency the day's sales use, in currency order; none for a
    /// day without sales.
    pub entries: Vec<ClosureEntry>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ClosureEntry {
    pub currency: Currency,
    pub entry: JournalEntry,
    pub totals: DayTotals,
    /// The `external_id` of every sale in the entry, in the order given.
    pub sales: Vec<String>,
    /// Categories booked on the fallback revenue account.
    pub fallbacks: Vec<Fallback>,
}

/// The day's figures as the POS sees them, for the Z-report reconciliation:
/// sums of the sales' own totals, sales and refunds together.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct DayTotals {
    /// One per VAT rate, in ascending rate.
    pub vat: Vec<RateTotals>,
    /// Net amount per payment method (refunds subtracted).
    pub payments: BTreeMap<String, Minor>,
    pub net: Minor,
    pub service_charges: Minor,
    pub tips: Minor,
    pub cash_rounding: Minor,
    /// What the VAT basis left over, over all rates.
    pub vat_rounding: Minor,
    pub gross: Minor,
    pub sales: usize,
    pub refunds: usize,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RateTotals {
    pub rate: Decimal,
    pub net: Minor,
    /// The sales' own VAT at this rate (what the receipts say).
    pub declared_vat: Minor,
    /// The VAT the entry books at this rate.
    pub vat: Minor,
}

/// A sale that holds its day's closure.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HeldSale {
    pub external_id: String,
    pub unmapped: Vec<Unmapped>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClosureError {
    /// The caller passed sales of another location or day.
    #[error("sales not of this location and business day: {}", .0.join(", "))]
    NotInDay(Vec<String>),
    /// The same sale twice would be booked twice.
    #[error("sales given more than once: {}", .0.join(", "))]
    Duplicate(Vec<String>),
    #[error("invalid sales: {}", .0.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<(String, Vec<FieldError>)>),
    /// Unmapped values: the day waits for its mapping (quarantine).
    #[error("held by unmapped sales: {}", .0.iter().map(|h| h.external_id.as_str()).collect::<Vec<_>>().join(", "))]
    Held(Vec<HeldSale>),
    #[error("an amount overflows")]
    Overflow,
}

/// Books the day of `location` on `business_date` from all its `sales`
/// (sales and refunds alike, as the POS recorded them).
pub fn daily_closure(
    location: &str,
    business_date: NaiveDate,
    sales: &[SaleInput],
    ledger: &Ledger,
) -> Result<DailyClosure, ClosureError> {
    let mut foreign = Vec::new();
    let mut seen = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for sale in sales {
        if sale.location_id.as_deref() != Some(location) || sale.business_date != business_date {
            foreign.push(sale.external_id.clone());
        }
        if !seen.insert(sale.external_id.as_str()) {
            duplicates.insert(sale.external_id.clone());
        }
    }
    if !foreign.is_empty() {
        return Err(ClosureError::NotInDay(foreign));
    }
    if !duplicates.is_empty() {
        return Err(ClosureError::Duplicate(duplicates.into_iter().collect()));
    }

    let mut invalid = Vec::new();
    let mut held = Vec::new();
    let mut by_currency: BTreeMap<Currency, Vec<SaleDocument>> = BTreeMap::new();
    for sale in sales {
        match sale_document(sale, ledger) {
            Ok(doc) => by_currency.entry(doc.currency).or_default().push(doc),
            Err(BookingError::Invalid(errors)) => invalid.push((sale.external_id.clone(), errors)),
            Err(BookingError::Unmapped(unmapped)) => held.push(HeldSale {
                external_id: sale.external_id.clone(),
                unmapped,
            }),
            Err(BookingError::Overflow) => return Err(ClosureError::Overflow),
        }
    }
    if !invalid.is_empty() {
        return Err(ClosureError::Invalid(invalid));
    }
    if !held.is_empty() {
        return Err(ClosureError::Held(held));
    }

    let entries = by_currency
        .into_iter()
        .map(|(currency, docs)| closure_entry(currency, &docs, ledger))
        .collect::<Result<_, BookingError>>()
        .map_err(|_| ClosureError::Overflow)?;
    Ok(DailyClosure {
        location: location.to_owned(),
        business_date,
        entries,
    })
}

fn closure_entry(
    currency: Currency,
    docs: &[SaleDocument],
    ledger: &Ledger,
) -> Result<ClosureEntry, BookingError> {
    let mut postings = Postings::new(ledger);
    for doc in docs {
        postings.add(doc);
    }
    Ok(ClosureEntry {
        currency,
        entry: postings.finish(currency)?,
        totals: day_totals(docs, ledger).ok_or(BookingError::Overflow)?,
        sales: docs.iter().map(|d| d.external_id.clone()).collect(),
        fallbacks: docs
            .iter()
            .flat_map(|d| d.fallbacks.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    })
}

/// The day's totals from its documents, with the VAT booked per rate by the
/// same rule as the entry (per rate and flow, on the day's base).
fn day_totals(docs: &[SaleDocument], ledger: &Ledger) -> Option<DayTotals> {
    let mut t = DayTotals::default();
    // (rate, flow) → (net, declared VAT)
    let mut bases: BTreeMap<(Decimal, Flow), (Minor, Minor)> = BTreeMap::new();
    for doc in docs {
        let flow = match doc.kind {
            super::DocumentKind::Invoice => {
                t.sales += 1;
                Flow::Sale
            }
            super::DocumentKind::CreditNote { .. } => {
                t.refunds += 1;
                Flow::Refund
            }
        };
        for v in &doc.vat {
            let base = bases.entry((v.rate, flow)).or_default();
            base.0 = base.0.checked_add(v.net)?;
            base.1 = base.1.checked_add(v.declared_vat)?;
        }
        for p in &doc.payments {
            let sum = t.payments.entry(p.method.clone()).or_default();
            *sum = sum.checked_add(p.amount)?;
        }
        let charges = doc
            .service_charges
            .iter()
            .try_fold(0, |s: Minor, c| s.checked_add(c.net))?;
        t.service_charges = t.service_charges.checked_add(charges)?;
        t.net = t.net.checked_add(doc.net)?;
        t.tips = t.tips.checked_add(doc.tip)?;
        t.cash_rounding = t.cash_rounding.checked_add(doc.cash_rounding)?;
        t.gross = t.gross.checked_add(doc.gross)?;
    }
    let mut per_rate: BTreeMap<Decimal, RateTotals> = BTreeMap::new();
    for ((rate, _), (net, declared)) in bases {
        let (vat, rounding) = booked_vat(ledger.vat_basis(), rate, net, declared)?;
        let r = per_rate.entry(rate).or_insert(RateTotals {
            rate,
            net: 0,
            declared_vat: 0,
            vat: 0,
        });
        r.net = r.net.checked_add(net)?;
        r.declared_vat = r.declared_vat.checked_add(declared)?;
        r.vat = r.vat.checked_add(vat)?;
        t.vat_rounding = t.vat_rounding.checked_add(rounding)?;
    }
    t.vat = per_rate.into_values().collect();
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::books::journal::tests::{cent_sale, rows};
    use crate::books::ledger::tests::{d, sample_ledger, sample_mapping};
    use crate::domain::{sample_refund, sample_sale};

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 1).expect("date")
    }

    /// A sale, its partial refund the same day, and a cash sale whose VAT
    /// leaves a cent of rounding.
    fn day_sales() -> Vec<SaleInput> {
        let mut refund = sample_refund("r-1", "s-1");
        refund.business_date = day();
        vec![sample_sale("s-1"), refund, cent_sale()]
    }

    #[test]
    fn books_closure_day_by_hand() {
        let closure =
            daily_closure("store-amsterdam", day(), &day_sales(), &sample_ledger()).expect("books");
        assert_eq!(closure.entries.len(), 1);
        let e = &closure.entries[0];
        assert!(e.entry.balances());
        assert_eq!(
            rows(&e.entry),
            [
                ("1110", 3510, 0, None),
                ("1110", 0, 1573, None),
                ("1000", 12, 0, None),
                ("8000", 0, 1000, Some("V9")),
                ("8000", 333, 0, Some("V9")),
                ("8010", 0, 10, Some("V10")),
                ("8010", 0, 2000, Some("V21")),
                ("8010", 1000, 0, Some("V21")),
                ("2009", 0, 90, Some("V9")),
                ("2009", 30, 0, Some("V9")),
                ("2010", 0, 1, Some("V10")),
                ("2021", 0, 420, Some("V21")),
                ("2021", 210, 0, Some("V21")),
                ("8900", 0, 1, None),
            ]
        );
        assert_eq!(e.entry.debits(), Some(5095));
        let t = &e.totals;
        let per_rate: Vec<(Decimal, Minor, Minor, Minor)> = t
            .vat
            .iter()
            .map(|r| (r.rate, r.net, r.declared_vat, r.vat))
            .collect();
        assert_eq!(
            per_rate,
            [
                (d("9"), 667, 60, 60),
                (d("10"), 10, 2, 1),
                (d("21"), 1000, 210, 210)
            ]
        );
        assert_eq!(
            t.payments,
            BTreeMap::from([("card".to_owned(), 1937), ("cash".to_owned(), 12)])
        );
        assert_eq!((t.net, t.gross, t.vat_rounding), (1677, 1949, 1));
        assert_eq!((t.sales, t.refunds), (2, 1));
        assert_eq!(e.sales, ["s-1", "r-1", "c-1"]);
        assert_eq!(
            e.fallbacks,
            [Fallback {
                category: Some("bakery".into()),
                account: "8000".into()
            }]
        );
    }

    #[test]
    fn books_closure_unmapped_sale_holds_the_day_and_says_which() {
        let mut sales = day_sales();
        let mut twint = sample_sale("s-2");
        twint.payments[0].method = "twint".into();
        sales.push(twint);
        let err =
            daily_closure("store-amsterdam", day(), &sales, &sample_ledger()).expect_err("held");
        assert_eq!(
            err,
            ClosureError::Held(vec![HeldSale {
                external_id: "s-2".into(),
                unmapped: vec![Unmapped::PaymentMethod {
                    method: "twint".into(),
                    field: "payments[0].method".into()
                }],
            }])
        );
        assert_eq!(err.to_string(), "held by unmapped sales: s-2");

        // Once mapped, the day books, the held sale included.
        let mut mapping = sample_mapping();
        mapping
            .payment_methods
            .insert("twint".into(), "1120".into());
        let ledger = Ledger::new(mapping).expect("valid");
        let closure = daily_closure("store-amsterdam", day(), &sales, &ledger).expect("books");
        assert_eq!(closure.entries[0].totals.payments["twint"], 3510);
    }

    #[test]
    fn books_closure_refuses_other_days_and_duplicates() {
        let mut sales = day_sales();
        sales[2].location_id = Some("store-utrecht".into());
        let err = daily_closure("store-amsterdam", day(), &sales, &sample_ledger());
        assert_eq!(err, Err(ClosureError::NotInDay(vec!["c-1".into()])));

        let mut sales = day_sales();
        sales.push(sample_sale("s-1"));
        let err = daily_closure("store-amsterdam", day(), &sales, &sample_ledger());
        assert_eq!(err, Err(ClosureError::Duplicate(vec!["s-1".into()])));

        let mut sales = day_sales();
        sales[0].totals.net += 1;
        let err = daily_closure("store-amsterdam", day(), &sales, &sample_ledger());
        assert!(
            matches!(err, Err(ClosureError::Invalid(ref v)) if v[0].0 == "s-1"),
            "{err:?}"
        );
    }

    #[test]
    fn books_closure_one_entry_per_currency() {
        let mut sales = day_sales();
        let mut yen = sample_sale("y-1");
        yen.currency = Currency::JPY;
        sales.push(yen);
        let closure =
            daily_closure("store-amsterdam", day(), &sales, &sample_ledger()).expect("books");
        let currencies: Vec<&str> = closure.entries.iter().map(|e| e.currency.code()).collect();
        assert_eq!(currencies, ["EUR", "JPY"]);
        assert_eq!(closure.entries[1].sales, ["y-1"]);
        assert!(closure.entries.iter().all(|e| e.entry.balances()));

        let empty = daily_closure("store-amsterdam", day(), &[], &sample_ledger()).expect("books");
        assert!(empty.entries.is_empty());
    }
}
