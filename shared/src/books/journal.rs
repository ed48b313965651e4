//! Journal entries in minor units. Every entry balances: the sum of debits
//! equals the sum of credits, exactly.
//!
//! Signs: money received is a debit on the payment method's clearing
//! account; revenue, service charges, VAT owed and tips are credits. A refund
//! has negative amounts, so it lands on the other side: revenue **and** VAT
//! are debited (reversed), the clearing account credited. Sale and refund
//! lines are kept apart (the line's `flow`) so a reversal stays visible in a
//! daily entry instead of vanishing into a net figure.
//!
//! The rounding line takes the sale's cash rounding and whatever the VAT
//! basis leaves over (see `ledger::VatBasis`), so an entry balances without
//! any amount being nudged.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::BookingError;
use super::document::{DocumentKind, SaleDocument, booked_vat};
use super::ledger::{Ledger, TipTreatment, Unmapped};
use crate::domain::{Currency, Minor};

/// Whether a line comes from sales or from refunds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    Sale,
    Refund,
}

/// What a line books. Variant order is line order within an entry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LineRole {
    Payment { method: String },
    Revenue { rate: Decimal },
    ServiceCharge { rate: Decimal },
    Vat { rate: Decimal },
    Tip,
    Rounding,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JournalLine {
    pub account: String,
    /// At most one of `debit` and `credit` is non-zero; neither is negative.
    pub debit: Minor,
    pub credit: Minor,
    pub vat_code: Option<String>,
    pub description: String,
    pub role: LineRole,
    /// `None` for the rounding line, which sums both.
    pub flow: Option<Flow>,
}

impl JournalLine {
    /// Credit minus debit: positive for income and liabilities.
    #[must_use]
    pub fn signed(&self) -> Minor {
        self.credit - self.debit
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub currency: Currency,
    pub lines: Vec<JournalLine>,
}

impl JournalEntry {
    /// `None` on overflow.
    #[must_use]
    pub fn debits(&self) -> Option<Minor> {
        self.lines
            .iter()
            .try_fold(0, |sum: Minor, l| sum.checked_add(l.debit))
    }

    #[must_use]
    pub fn credits(&self) -> Option<Minor> {
        self.lines
            .iter()
            .try_fold(0, |sum: Minor, l| sum.checked_add(l.credit))
    }

    /// Debits equal credits, and no line is negative or on both sides.
    #[must_use]
    pub fn balances(&self) -> bool {
        let lines_ok = self
            .lines
            .iter()
            .all(|l| l.debit >= 0 && l.credit >= 0 && (l.debit == 0 || l.credit == 0));
        lines_ok && self.debits().is_some() && self.debits() == self.credits()
    }
}

/// The journal entry of one sale: its document's lines, VAT per rate and
/// payments, in the ledger's accounts.
pub fn sale_entry(doc: &SaleDocument, ledger: &Ledger) -> Result<JournalEntry, BookingError> {
    let mut postings = Postings::new(ledger);
    postings.add(doc);
    postings.finish(doc.currency)
}

/// Where a line goes; lines with the same key are summed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    role: LineRole,
    flow: Option<Flow>,
    account: String,
    vat_code: Option<String>,
}

/// The taxable base and declared VAT of one rate and flow.
#[derive(Default)]
struct VatBase {
    net: Minor,
    declared: Minor,
}

/// Sums documents into entry lines. One document gives the per-sale entry,
/// a day's documents the daily entry: one rule for both.
pub(crate) struct Postings<'a> {
    ledger: &'a Ledger,
    /// Credit positive, debit negative.
    amounts: BTreeMap<Key, Minor>,
    vat: BTreeMap<(Decimal, Flow), VatBase>,
    rounding: Minor,
    overflow: bool,
}

impl<'a> Postings<'a> {
    pub(crate) fn new(ledger: &'a Ledger) -> Self {
        Postings {
            ledger,
            amounts: BTreeMap::new(),
            vat: BTreeMap::new(),
            rounding: 0,
            overflow: false,
        }
    }

    fn credit(
        &mut self,
        role: LineRole,
        flow: Option<Flow>,
        account: &str,
        vat_code: Option<&str>,
        amount: Minor,
    ) {
        let key = Key {
            role,
            flow,
            account: account.to_owned(),
            vat_code: vat_code.map(str::to_owned),
        };
        let sum = self.amounts.entry(key).or_insert(0);
        match sum.checked_add(amount) {
            Some(s) => *sum = s,
            None => self.overflow = true,
        }
    }

    fn add_to(overflow: &mut bool, target: &mut Minor, amount: Minor) {
        match target.checked_add(amount) {
            Some(s) => *target = s,
            None => *overflow = true,
        }
    }

    pub(crate) fn add(&mut self, doc: &SaleDocument) {
        let flow = match doc.kind {
            DocumentKind::Invoice => Flow::Sale,
            DocumentKind::CreditNote { .. } => Flow::Refund,
        };
        for p in &doc.payments {
            let role = LineRole::Payment {
                method: p.method.clone(),
            };
            // Money in is a debit: minus on the credit-positive scale.
            match p.amount.checked_neg() {
                Some(amount) => self.credit(role, Some(flow), &p.account, None, amount),
                None => self.overflow = true,
            }
        }
        for l in &doc.lines {
            let role = LineRole::Revenue { rate: l.vat_rate };
            self.credit(
                role,
                Some(flow),
                &l.revenue_account,
                Some(&l.vat_code),
                l.net,
            );
        }
        for c in &doc.service_charges {
            let role = LineRole::ServiceCharge { rate: c.vat_rate };
            self.credit(role, Some(flow), &c.account, Some(&c.vat_code), c.net);
        }
        for v in &doc.vat {
            let base = self.vat.entry((v.rate, flow)).or_default();
            Self::add_to(&mut self.overflow, &mut base.net, v.net);
            Self::add_to(&mut self.overflow, &mut base.declared, v.declared_vat);
        }
        if doc.tip != 0 {
            let ledger = self.ledger;
            let account = &ledger.tip().account;
            self.credit(LineRole::Tip, Some(flow), account, None, doc.tip);
        }
        Self::add_to(&mut self.overflow, &mut self.rounding, doc.cash_rounding);
    }

    /// Books VAT per rate and flow on the summed base, the rounding left
    /// over, and turns the sums into lines.
    pub(crate) fn finish(mut self, currency: Currency) -> Result<JournalEntry, BookingError> {
        let ledger = self.ledger;
        let bases = std::mem::take(&mut self.vat);
        for ((rate, flow), base) in bases {
            let mapping = ledger.vat(rate).ok_or_else(|| {
                BookingError::Unmapped(vec![Unmapped::VatRate {
                    rate,
                    field: "totals.vat".into(),
                }])
            })?;
            let (vat, rounding) = booked_vat(ledger.vat_basis(), rate, base.net, base.declared)
                .ok_or(BookingError::Overflow)?;
            self.credit(
                LineRole::Vat { rate },
                Some(flow),
                &mapping.account,
                Some(&mapping.code),
                vat,
            );
            Self::add_to(&mut self.overflow, &mut self.rounding, rounding);
        }
        let rounding = self.rounding;
        self.credit(
            LineRole::Rounding,
            None,
            ledger.rounding_account(),
            None,
            rounding,
        );
        if self.overflow {
            return Err(BookingError::Overflow);
        }
        let tip = ledger.tip();
        let mut lines = Vec::with_capacity(self.amounts.len());
        for (key, amount) in self.amounts {
            if amount == 0 {
                continue;
            }
            let (debit, credit) = if amount > 0 {
                (0, amount)
            } else {
                (amount.checked_neg().ok_or(BookingError::Overflow)?, 0)
            };
            lines.push(JournalLine {
                description: describe(&key.role, key.flow, tip.treatment),
                account: key.account,
                debit,
                credit,
                vat_code: key.vat_code,
                role: key.role,
                flow: key.flow,
            });
        }
        Ok(JournalEntry { currency, lines })
    }
}

fn describe(role: &LineRole, flow: Option<Flow>, tips: TipTreatment) -> String {
    let what = match role {
        LineRole::Payment { method } => format!("Payments {method}"),
        LineRole::Revenue { rate } => format!("Revenue {rate}% VAT"),
        LineRole::ServiceCharge { rate } => format!("Service charges {rate}% VAT"),
        LineRole::Vat { rate } => format!("VAT {rate}%"),
        LineRole::Tip => match tips {
            TipTreatment::Liability => "Tips owed to staff".to_owned(),
            TipTreatment::Income => "Tips (other income)".to_owned(),
        },
        LineRole::Rounding => "Rounding".to_owned(),
    };
    match flow {
        Some(Flow::Sale) => format!("{what}, sales"),
        Some(Flow::Refund) => format!("{what}, refunds"),
        None => what,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::books::document::sale_document;
    use crate::books::ledger::VatBasis;
    use crate::books::ledger::tests::{d, sample_ledger, sample_mapping};
    use crate::domain::{
        Payment, SaleInput, ServiceCharge, Totals, VatTotal, sample_refund, sample_sale,
    };

    /// (account, debit, credit, vat code) of each line, for hand-checked
    /// comparisons.
    pub(crate) fn rows(entry: &JournalEntry) -> Vec<(&str, Minor, Minor, Option<&str>)> {
        entry
            .lines
            .iter()
            .map(|l| (l.account.as_str(), l.debit, l.credit, l.vat_code.as_deref()))
            .collect()
    }

    fn entry(sale: &SaleInput, ledger: &Ledger) -> JournalEntry {
        let doc = sale_document(sale, ledger).expect("document");
        let entry = sale_entry(&doc, ledger).expect("entry");
        assert!(entry.balances(), "{entry:#?}");
        entry
    }

    #[test]
    fn books_journal_sale_entry_by_hand() {
        let e = entry(&sample_sale("s-1"), &sample_ledger());
        assert_eq!(
            rows(&e),
            [
                ("1110", 3510, 0, None),
                ("8000", 0, 1000, Some("V9")),
                ("8010", 0, 2000, Some("V21")),
                ("2009", 0, 90, Some("V9")),
                ("2021", 0, 420, Some("V21")),
            ]
        );
        assert_eq!(e.lines[1].description, "Revenue 9% VAT, sales");
        assert_eq!((e.debits(), e.credits()), (Some(3510), Some(3510)));
    }

    #[test]
    fn books_journal_refund_reverses_revenue_and_vat() {
        let e = entry(&sample_refund("r-1", "s-1"), &sample_ledger());
        assert_eq!(
            rows(&e),
            [
                ("1110", 0, 1573, None),
                ("8000", 333, 0, Some("V9")),
                ("8010", 1000, 0, Some("V21")),
                ("2009", 30, 0, Some("V9")),
                ("2021", 210, 0, Some("V21")),
            ]
        );
        assert!(e.lines.iter().all(|l| l.flow == Some(Flow::Refund)));
        assert_eq!(e.lines[3].description, "VAT 9%, refunds");
    }

    #[test]
    fn books_journal_tips_and_service_charges_are_not_revenue() {
        let mut sale = sample_sale("s-1");
        sale.tip = 150;
        sale.totals.tip = 150;
        sale.service_charges.push(ServiceCharge {
            name: "Delivery".into(),
            net_amount: 500,
            vat_rate: d("21"),
            vat_amount: 105,
        });
        sale.totals.net = 3500;
        sale.totals.vat[0].net = 2500;
        sale.totals.vat[0].vat = 525;
        sale.totals.gross = 3500 + 525 + 90 + 150;
        sale.payments[0].amount = sale.totals.gross;
        let e = entry(&sale, &sample_ledger());
        assert_eq!(
            rows(&e),
            [
                ("1110", 4265, 0, None),
                ("8000", 0, 1000, Some("V9")),
                ("8010", 0, 2000, Some("V21")),
                ("8400", 0, 500, Some("V21")),
                ("2009", 0, 90, Some("V9")),
                ("2021", 0, 525, Some("V21")),
                ("2300", 0, 150, None),
            ]
        );
        assert_eq!(e.lines[6].description, "Tips owed to staff, sales");
        // Revenue is the lines' net alone: no tip, no service charge.
        let revenue: Minor = e
            .lines
            .iter()
            .filter(|l| matches!(l.role, LineRole::Revenue { .. }))
            .map(JournalLine::signed)
            .sum();
        assert_eq!(revenue, 3000);
    }

    /// Two lines of 0.05 at 10 %: each line's VAT is 0.005 → 0.01, so the
    /// receipt says 0.02 VAT; on the rate's base of 0.10 it is 0.01.
    pub(crate) fn cent_sale() -> SaleInput {
        let mut sale = sample_sale("c-1");
        sale.lines.truncate(1);
        let mut line = sale.lines[0].clone();
        line.quantity = d("1");
        line.unit_price = 5;
        line.vat_rate = d("10");
        line.net_amount = 5;
        line.vat_amount = 1;
        sale.lines = vec![line.clone(), line];
        sale.totals = Totals {
            net: 10,
            vat: vec![VatTotal {
                rate: d("10"),
                net: 10,
                vat: 2,
            }],
            gross: 12,
            discount: 0,
            tip: 0,
            rounding: 0,
        };
        sale.payments = vec![Payment {
            method: "cash".into(),
            amount: 12,
            reference: None,
            refund_of: None,
        }];
        sale
    }

    #[test]
    fn books_journal_a_cent_of_vat_rounding_gets_a_rounding_line() {
        let e = entry(&cent_sale(), &sample_ledger());
        assert_eq!(
            rows(&e),
            [
                ("1000", 12, 0, None),
                ("8010", 0, 10, Some("V10")),
                ("2010", 0, 1, Some("V10")),
                ("8900", 0, 1, None),
            ]
        );
        assert_eq!(e.lines[3].role, LineRole::Rounding);

        // Booking the VAT the receipt declares leaves nothing to round.
        let mut mapping = sample_mapping();
        mapping.vat_basis = VatBasis::PerLine;
        let ledger = Ledger::new(mapping).expect("valid");
        let e = entry(&cent_sale(), &ledger);
        assert_eq!(
            rows(&e),
            [
                ("1000", 12, 0, None),
                ("8010", 0, 10, Some("V10")),
                ("2010", 0, 2, Some("V10")),
            ]
        );
    }

    #[test]
    fn books_journal_cash_rounding_is_booked_on_the_rounding_account() {
        // Paid 35.05 in cash for 35.10: 5 cents rounded away.
        let mut sale = sample_sale("s-1");
        sale.totals.rounding = -5;
        sale.totals.gross = 3505;
        sale.payments[0].method = "cash".into();
        sale.payments[0].amount = 3505;
        let e = entry(&sale, &sample_ledger());
        assert_eq!(
            e.lines[0],
            JournalLine {
                account: "1000".into(),
                debit: 3505,
                credit: 0,
                vat_code: None,
                description: "Payments cash, sales".into(),
                role: LineRole::Payment {
                    method: "cash".into()
                },
                flow: Some(Flow::Sale),
            }
        );
        assert_eq!(rows(&e).last(), Some(&("8900", 5, 0, None)));
    }

    #[test]
    fn books_journal_balances_checks_sides_and_sums() {
        let mut e = entry(&sample_sale("s-1"), &sample_ledger());
        e.lines[1].credit += 1;
        assert!(!e.balances());
        e.lines[1].credit -= 1;
        e.lines[1].debit = 5;
        e.lines[1].credit += 5;
        assert!(!e.balances(), "a line on both sides");
        let e = JournalEntry {
            currency: Currency::EUR,
            lines: vec![],
        };
        assert!(e.balances());
    }
}
