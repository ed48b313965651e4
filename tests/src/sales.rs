//! Sample sales for tests, built on `salesync_core`'s `sample_sale` (two
//! lines: 2 × COF-001 at 10.00 @ 21 % VAT and 3 × BRD-002 at 4.00 less 2.00
//! discount @ 9 %; gross 35.10 EUR, paid by card) and varied without
//! breaking its arithmetic: SKUs and status are free text, and scaling every
//! amount by a whole factor keeps each VAT figure exact (21 % of 2000k is
//! 420k, 9 % of 1000k is 90k).

use salesync_core::domain::sale::SaleInput;
use salesync_core::domain::validation::sample_sale;

/// Statuses the mixes cycle through.
pub const STATUSES: [&str; 3] = ["completed", "paid", "open"];

/// SKUs the first line cycles through (the second line stays BRD-002).
pub const SKUS: [&str; 4] = ["COF-001", "TEA-002", "CAKE-003", "MUG-004"];

/// `sample_sale` with its own external id, status and first-line SKU.
pub fn sale(external_id: &str, status: &str, sku: &str) -> SaleInput {
    let mut s = sample_sale(external_id);
    s.status = status.to_string();
    s.lines[0].sku = sku.to_string();
    s
}

/// Every amount multiplied by `factor` (≥ 1); the sale stays valid.
pub fn scaled(mut s: SaleInput, factor: i64) -> SaleInput {
    let factor = factor.max(1);
    for l in &mut s.lines {
        l.unit_price *= factor;
        l.discount *= factor;
        l.net_amount *= factor;
        l.vat_amount *= factor;
    }
    for v in &mut s.totals.vat {
        v.net *= factor;
        v.vat *= factor;
    }
    s.totals.net *= factor;
    s.totals.gross *= factor;
    s.totals.discount *= factor;
    for p in &mut s.payments {
        p.amount *= factor;
    }
    s
}

/// The `i`-th sale of a deterministic mix: statuses, SKUs and amounts vary
/// independently (different cycle lengths), so every combination occurs.
pub fn mixed(prefix: &str, i: usize) -> SaleInput {
    let s = sale(
        &format!("{prefix}-{i:05}"),
        STATUSES[i % STATUSES.len()],
        SKUS[(i / 3) % SKUS.len()],
    );
    scaled(s, 1 + (i % 7) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::domain::validation::validate_sale;
    use std::collections::BTreeSet;

    #[test]
    fn variations_stay_valid() {
        for i in 0..84 {
            let s = mixed("t", i);
            assert_eq!(validate_sale(&s), Ok(()), "mix {i}");
        }
        for factor in [1, 2, 7, 1000] {
            let s = scaled(sale("x", "paid", "MUG-004"), factor);
            assert_eq!(validate_sale(&s), Ok(()), "factor {factor}");
            assert_eq!(s.totals.gross, 3510 * factor);
        }
    }

    #[test]
    fn the_mix_covers_every_status_and_sku_combination() {
        let combos: BTreeSet<(String, String)> = (0..12)
            .map(|i| {
                let s = mixed("t", i);
                (s.status.clone(), s.lines[0].sku.clone())
            })
            .collect();
        assert_eq!(combos.len(), STATUSES.len() * SKUS.len());
        assert_eq!(mixed("t", 3).external_id, "t-00003");
    }
}
