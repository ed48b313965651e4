//! The per-sale document: an invoice, or for a refund a credit note that
//! references the refunded sale. It carries the sale's own figures (the
//! source is the authority on amounts, as in `domain::validation`) with the
//! accounts and VAT codes of the ledger added, so its totals per rate are
//! the sale's totals per rate, to the minor unit.
//!
//! Amounts keep the sale's sign: a refund's are negative. A writer for a
//! format whose credit notes carry positive amounts (UBL) flips them.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::BookingError;
use super::ledger::{Fallback, Ledger, Unmapped, VatBasis};
use crate::domain::{Currency, Minor, SaleInput, validate_sale, vat_of};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DocumentKind {
    Invoice,
    /// `refund_of` is the refunded sale's `external_id`.
    CreditNote {
        refund_of: String,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SaleDocument {
    #[serde(flatten)]
    pub kind: DocumentKind,
    pub external_id: String,
    pub sale_number: Option<String>,
    pub location_id: Option<String>,
    pub business_date: NaiveDate,
    pub currency: Currency,
    pub lines: Vec<DocumentLine>,
    pub service_charges: Vec<DocumentCharge>,
    /// One entry per VAT rate, in ascending rate.
    pub vat: Vec<DocumentVat>,
    /// Lines and service charges, before VAT.
    pub net: Minor,
    pub discount: Minor,
    pub tip: Minor,
    /// Cash rounding, as the sale declares it.
    pub cash_rounding: Minor,
    pub gross: Minor,
    pub payments: Vec<DocumentPayment>,
    /// Categories booked on the fallback revenue account.
    pub fallbacks: Vec<Fallback>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DocumentLine {
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub quantity: Decimal,
    pub unit_price: Minor,
    pub discount: Minor,
    pub net: Minor,
    pub vat_rate: Decimal,
    pub vat_code: String,
    /// The line's own VAT, as the sale declares it.
    pub vat: Minor,
    pub revenue_account: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DocumentCharge {
    pub name: String,
    pub net: Minor,
    pub vat_rate: Decimal,
    pub vat_code: String,
    pub vat: Minor,
    pub account: String,
}

/// The VAT of one rate.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DocumentVat {
    /// Normalized (21, not 21.00).
    pub rate: Decimal,
    pub code: String,
    pub account: String,
    /// Net of the lines and service charges at this rate (the taxable base).
    pub net: Minor,
    /// The sum of the lines' and charges' VAT: the sale's `totals.vat`.
    pub declared_vat: Minor,
    /// The VAT booked, per the ledger's [`VatBasis`].
    pub vat: Minor,
    /// `declared_vat − vat`: what per-line rounding left over, booked on
    /// the rounding account.
    pub rounding: Minor,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DocumentPayment {
    pub method: String,
    pub account: String,
    pub amount: Minor,
}

impl SaleDocument {
    /// VAT booked over all rates.
    #[must_use]
    pub fn vat_total(&self) -> Minor {
        self.vat.iter().map(|v| v.vat).sum()
    }

    /// What goes on the rounding account: the cash rounding and the VAT
    /// rounding of every rate.
    #[must_use]
    pub fn rounding_total(&self) -> Minor {
        self.cash_rounding + self.vat.iter().map(|v| v.rounding).sum::<Minor>()
    }
}

/// The VAT booked for a base at `rate` whose lines declare `declared` VAT,
/// and the rounding left over (`declared − booked`). Shared by documents and
/// daily entries so both follow one rule.
pub(crate) fn booked_vat(
    basis: VatBasis,
    rate: Decimal,
    net: Minor,
    declared: Minor,
) -> Option<(Minor, Minor)> {
    let vat = match basis {
        VatBasis::PerRate => vat_of(net, rate)?,
        VatBasis::PerLine => declared,
    };
    Some((vat, declared.checked_sub(vat)?))
}

/// The document for `sale`. The sale must be valid (its figures add up) and
/// fully mapped; an unmapped sale is refused with every reason, for the
/// caller to quarantine.
pub fn sale_document(sale: &SaleInput, ledger: &Ledger) -> Result<SaleDocument, BookingError> {
    validate_sale(sale).map_err(BookingError::Invalid)?;
    let unmapped = ledger.unmapped(sale);
    if !unmapped.is_empty() {
        return Err(BookingError::Unmapped(unmapped));
    }
    let code = |rate: Decimal| {
        // `unmapped` is empty, so every rate has a mapping.
        ledger.vat(rate).map(|v| v.code.clone()).unwrap_or_default()
    };

    let lines = sale
        .lines
        .iter()
        .map(|l| DocumentLine {
            sku: l.sku.clone(),
            name: l.name.clone(),
            category: l.category.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            discount: l.discount,
            net: l.net_amount,
            vat_rate: l.vat_rate.normalize(),
            vat_code: code(l.vat_rate),
            vat: l.vat_amount,
            revenue_account: ledger.revenue_account(l.category.as_deref()).0.to_owned(),
        })
        .collect();
    let service_charges = sale
        .service_charges
        .iter()
        .map(|c| DocumentCharge {
            name: c.name.clone(),
            net: c.net_amount,
            vat_rate: c.vat_rate.normalize(),
            vat_code: code(c.vat_rate),
            vat: c.vat_amount,
            account: ledger.service_charge_account().to_owned(),
        })
        .collect();
    // The sale's own totals per rate: validation has checked they are the
    // sums of its lines and charges.
    let mut vat = sale
        .totals
        .vat
        .iter()
        .map(|t| {
            let rate = t.rate.normalize();
            let mapping = ledger.vat(rate).ok_or_else(|| {
                BookingError::Unmapped(vec![Unmapped::VatRate {
                    rate,
                    field: "totals.vat".into(),
                }])
            })?;
            let (booked, rounding) =
                booked_vat(ledger.vat_basis(), rate, t.net, t.vat).ok_or(BookingError::Overflow)?;
            Ok(DocumentVat {
                rate,
                code: mapping.code.clone(),
                account: mapping.account.clone(),
                net: t.net,
                declared_vat: t.vat,
                vat: booked,
                rounding,
            })
        })
        .collect::<Result<Vec<_>, BookingError>>()?;
    vat.sort_by_key(|v| v.rate);
    let payments = sale
        .payments
        .iter()
        .map(|p| DocumentPayment {
            method: p.method.clone(),
            account: ledger
                .payment_account(&p.method)
                .unwrap_or_default()
                .to_owned(),
            amount: p.amount,
        })
        .collect();

    Ok(SaleDocument {
        kind: match &sale.refund_of {
            Some(original) => DocumentKind::CreditNote {
                refund_of: original.clone(),
            },
            None => DocumentKind::Invoice,
        },
        external_id: sale.external_id.clone(),
        sale_number: sale.sale_number.clone(),
        location_id: sale.location_id.clone(),
        business_date: sale.business_date,
        currency: sale.currency,
        lines,
        service_charges,
        vat,
        net: sale.totals.net,
        discount: sale.totals.discount,
        tip: sale.tip,
        cash_rounding: sale.totals.rounding,
        gross: sale.totals.gross,
        payments,
        fallbacks: ledger.fallbacks(sale).into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::books::ledger::tests::{d, sample_ledger};
    use crate::domain::{sample_refund, sample_sale};

    #[test]
    fn books_document_invoice_carries_the_sale_totals_per_rate() {
        let doc = sale_document(&sample_sale("s-1"), &sample_ledger()).expect("books");
        assert_eq!(doc.kind, DocumentKind::Invoice);
        let per_rate: Vec<(Decimal, Minor, Minor, Minor, &str)> = doc
            .vat
            .iter()
            .map(|v| (v.rate, v.net, v.declared_vat, v.vat, v.code.as_str()))
            .collect();
        assert_eq!(
            per_rate,
            [
                (d("9"), 1000, 90, 90, "V9"),
                (d("21"), 2000, 420, 420, "V21")
            ]
        );
        assert_eq!((doc.net, doc.vat_total(), doc.gross), (3000, 510, 3510));
        assert_eq!(doc.rounding_total(), 0);
        assert_eq!(doc.lines[0].revenue_account, "8010");
        assert_eq!(doc.lines[1].revenue_account, "8000");
        assert_eq!(doc.payments[0].account, "1110");
        assert_eq!(doc.fallbacks.len(), 1);
    }

    #[test]
    fn books_document_refund_is_a_credit_note_referencing_the_sale() {
        let doc = sale_document(&sample_refund("r-1", "s-1"), &sample_ledger()).expect("books");
        assert_eq!(
            doc.kind,
            DocumentKind::CreditNote {
                refund_of: "s-1".into()
            }
        );
        let json = serde_json::to_value(&doc).expect("serialize");
        assert_eq!(json["kind"], "credit_note");
        assert_eq!(json["refund_of"], "s-1");
        // 9 % of −333 is −29.97: −30 on the line and on the rate.
        let nine = &doc.vat[0];
        assert_eq!((nine.net, nine.declared_vat, nine.vat), (-333, -30, -30));
        assert_eq!(doc.gross, -1573);
    }

    #[test]
    fn books_document_refuses_unmapped_and_invalid_sales() {
        let mut sale = sample_sale("s-1");
        sale.payments[0].method = "twint".into();
        let err = sale_document(&sale, &sample_ledger()).expect_err("unmapped");
        assert!(
            matches!(&err, BookingError::Unmapped(u) if u.len() == 1),
            "{err}"
        );

        let mut sale = sample_sale("s-1");
        sale.totals.gross += 1;
        let err = sale_document(&sale, &sample_ledger()).expect_err("invalid");
        assert!(matches!(err, BookingError::Invalid(_)), "{err}");
    }
}
