//! Into the books: the pure money core that turns validated sales into
//! accounting documents and balanced journal entries. No I/O here: the
//! connectors, the quarantine store and the closures API build on it.
//!
//! - `money`: splitting an amount exactly (a global discount across VAT
//!   rates, a total across payments) and converting to and from major units
//! - `ledger`: the tenant's mapping of VAT rates, categories, payment methods,
//!   tips, service charges and rounding to accounts; what a sale leaves
//!   unmapped (quarantine) and what fell back
//! - `document`: the per-sale invoice or credit note
//! - `journal`: journal entries in minor units, per sale
//! - `closure`: the daily closure, one entry per location, business day and
//!   currency, with the totals a Z-report is reconciled against
//!
//! The booking model (accounts, signs, rounding) is described in
//! `docs/books.md`.

pub mod closure;
pub mod document;
pub mod journal;
pub mod ledger;
pub mod money;

#[cfg(test)]
mod proptests;

pub use closure::{
    ClosureEntry, ClosureError, DailyClosure, DayTotals, HeldSale, RateTotals, daily_closure,
};
pub use document::{
    DocumentCharge, DocumentKind, DocumentLine, DocumentPayment, DocumentVat, SaleDocument,
    sale_document,
};
pub use journal::{Flow, JournalEntry, JournalLine, LineRole, sale_entry};
pub use ledger::{
    Fallback, Ledger, LedgerMapping, TipMapping, TipTreatment, Unmapped, VatBasis, VatRateMapping,
};

use crate::domain::FieldError;

/// Why a sale could not be turned into a document or entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BookingError {
    /// The sale's own figures do not add up; it should never have been
    /// accepted, and booking it would carry the error into the books.
    #[error("the sale is not valid: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// A value with no mapping: the sale goes to quarantine, it is not
    /// booked on a guess.
    #[error("the sale is not mapped: {}", join(.0))]
    Unmapped(Vec<Unmapped>),
    /// A sum left `i64`; only absurd days get here.
    #[error("an amount overflows")]
    Overflow,
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
