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
