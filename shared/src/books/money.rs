//! Money helpers the books need beyond `domain::money` (which has rounding
//! half-up to a whole minor unit, line nets and VAT of an amount).
//!
//! Splitting uses the largest-remainder method so the parts always add up to
//! the whole, to the minor unit, and the same input always gives the same
//! split: a discount of 10.00 over three rates never books 9.99 or 10.01.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::domain::{Currency, Minor, round_half_up};

/// Splits `total` in proportion to `weights`, in whole minor units.
///
/// Each part is first rounded toward zero; the minor units left over go one
/// each to the parts with the largest remainders, ties to the earlier part,
/// so the parts sum to `total` exactly and deterministically. Every part has
/// the sign of `total`.
///
/// `None` when a weight is negative, or when all weights are zero but
/// `total` is not (nothing could carry it).
#[must_use]
pub fn split_by_weight(total: Minor, weights: &[Minor]) -> Option<Vec<Minor>> {
    if weights.iter().any(|w| *w < 0) {
        return None;
    }
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if sum == 0 {
        return (total == 0).then(|| vec![0; weights.len()]);
    }
    let magnitude = i128::from(total.unsigned_abs());
    // i64 × i64 fits in i128, so no step here can overflow.
    let mut parts: Vec<i128> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(i128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = magnitude * i128::from(*w);
        parts.push(exact / sum);
        remainders.push((exact % sum, i));
    }
    let left = magnitude - parts.iter().sum::<i128>();
    // Largest remainder first, then the earlier index.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders.iter().take(usize::try_from(left).ok()?) {
        parts[*i] += 1;
    }
    let sign = if total < 0 { -1 } else { 1 };
    parts
        .into_iter()
        .map(|p| Minor::try_from(p * sign).ok())
        .collect()
}

/// Splits a sale-level (global) discount across VAT rates in proportion to
/// each rate's base (e.g. its net before the discount). A refund's bases are
/// negative: their magnitudes are the weights, and the parts take the sign of
/// `discount`.
#[must_use]
pub fn split_by_rate(
    discount: Minor,
    base_by_rate: &BTreeMap<Decimal, Minor>,
) -> Option<BTreeMap<Decimal, Minor>> {
    let weights: Vec<Minor> = base_by_rate
        .values()
        .map(|b| Minor::try_from(b.unsigned_abs()).ok())
        .collect::<Option<_>>()?;
    let parts = split_by_weight(discount, &weights)?;
    Some(base_by_rate.keys().copied().zip(parts).collect())
}

/// An amount in major units (35.10 EUR) as minor units (3510), rounded
/// half-up to the currency's minor unit (a Z-report's 35.105 → 3511).
#[must_use]
pub fn to_minor(amount: Decimal, currency: Currency) -> Option<Minor> {
    let scale = Decimal::from(10i64.checked_pow(currency.minor_units())?);
    round_half_up(amount.checked_mul(scale)?)
}

/// Minor units as an exact decimal amount in major units, with the
/// currency's number of decimals (3510 EUR → 35.10, 3510 JPY → 3510,
/// 3510 KWD → 3.510): what a document or an export shows.
#[must_use]
pub fn to_major(amount: Minor, currency: Currency) -> Decimal {
    Decimal::new(amount, currency.minor_units())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    #[test]
    fn books_split_global_discount_across_21_9_0_exactly() {
        // 10.00 off a basket of 50.00 at 21 %, 30.00 at 9 % and 10.00 at 0 %:
        // exact shares 555.56, 333.33, 111.11; rounded down 555 + 333 + 111 =
        // 999; the cent left goes to the largest remainder (21 %: .56).
        let bases = BTreeMap::from([(d("21"), 5000), (d("9"), 3000), (d("0"), 1000)]);
        let split = split_by_rate(1000, &bases).expect("splits");
        assert_eq!(
            split,
            BTreeMap::from([(d("21"), 556), (d("9"), 333), (d("0"), 111)])
        );
        assert_eq!(split.values().sum::<Minor>(), 1000);

        // A refund's negative bases and discount: the mirror image.
        let bases = BTreeMap::from([(d("21"), -5000), (d("9"), -3000), (d("0"), -1000)]);
        let split = split_by_rate(-1000, &bases).expect("splits");
        assert_eq!(
            split,
            BTreeMap::from([(d("21"), -556), (d("9"), -333), (d("0"), -111)])
        );
    }

    #[test]
    fn books_split_by_weight_remainders_are_deterministic() {
        // Three equal parts of 100: 33 each, the 1 left to the first.
        assert_eq!(split_by_weight(100, &[1, 1, 1]), Some(vec![34, 33, 33]));
        // Two left over: to the first two.
        assert_eq!(split_by_weight(101, &[1, 1, 1]), Some(vec![34, 34, 33]));
        assert_eq!(split_by_weight(-101, &[1, 1, 1]), Some(vec![-34, -34, -33]));
        // Remainder by size, not by position: 7 × (1, 2, 4) / 7.
        assert_eq!(split_by_weight(10, &[1, 2, 4]), Some(vec![1, 3, 6]));
        assert_eq!(split_by_weight(0, &[5, 0]), Some(vec![0, 0]));
        assert_eq!(split_by_weight(5, &[0, 7]), Some(vec![0, 5]));
        assert_eq!(split_by_weight(0, &[0, 0]), Some(vec![0, 0]));
        assert_eq!(split_by_weight(1, &[0, 0]), None);
        assert_eq!(split_by_weight(1, &[1, -1]), None);
        assert_eq!(
            split_by_weight(i64::MAX, &[i64::MAX, i64::MAX])
                .map(|p| p.iter().map(|x| i128::from(*x)).sum::<i128>()),
            Some(i128::from(i64::MAX))
        );
        assert_eq!(split_by_weight(i64::MIN, &[1]), Some(vec![i64::MIN]));
    }

    #[test]
    fn books_minor_and_major_units_follow_the_currency() {
        let kwd = Currency::parse("KWD").expect("KWD");
        assert_eq!(to_minor(d("35.10"), Currency::EUR), Some(3510));
        assert_eq!(to_minor(d("35.105"), Currency::EUR), Some(3511));
        assert_eq!(to_minor(d("-35.105"), Currency::EUR), Some(-3511));
        assert_eq!(to_minor(d("35.104"), Currency::EUR), Some(3510));
        assert_eq!(to_minor(d("1280.5"), Currency::JPY), Some(1281));
        assert_eq!(to_minor(d("3.5105"), kwd), Some(3511));
        assert_eq!(to_major(3510, Currency::EUR).to_string(), "35.10");
        assert_eq!(to_major(3510, Currency::JPY).to_string(), "3510");
        assert_eq!(to_major(-3510, kwd).to_string(), "-3.510");
        assert_eq!(
            to_minor(to_major(-1, Currency::EUR), Currency::EUR),
            Some(-1)
        );
    }
}
