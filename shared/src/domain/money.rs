//! Money arithmetic. Amounts are whole minor units (cents) in an `i64`;
//! quantities and VAT rates are exact decimals. Floating point never touches
//! money: 0.1 + 0.2 ≠ 0.3 is not acceptable in a ledger.
//!
//! Every function returns `None` instead of overflowing, so callers can turn an
//! absurd input into a validation error rather than a panic.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

/// An amount in minor units of the sale's currency (cents for EUR, yen for
/// JPY, fils for KWD). Negative for refunds.
pub type Minor = i64;

/// Rounds to a whole number, halves away from zero: 0.5 → 1, 2.5 → 3,
/// −0.5 → −1. Symmetric rounding means a refund mirrors its sale to the cent,
/// which banker's rounding or plain "round up" would not guarantee.
/// `None` when the result does not fit in an `i64`.
#[must_use]
pub fn round_half_up(value: Decimal) -> Option<i64> {
    value
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
}

/// Net amount of a line: `quantity × unit_price`, rounded half-up to a whole
/// minor unit, minus the discount allocated to the line. Rounding happens
/// before the discount because the discount is already in minor units.
#[must_use]
pub fn line_net(quantity: Decimal, unit_price: Minor, discount: Minor) -> Option<Minor> {
    let gross = quantity.checked_mul(Decimal::from(unit_price))?;
    round_half_up(gross)?.checked_sub(discount)
}

/// VAT due on `net` at `rate_percent` (21 for 21 %), rounded half-up.
#[must_use]
pub fn vat_of(net: Minor, rate_percent: Decimal) -> Option<Minor> {
    let vat = Decimal::from(net)
        .checked_mul(rate_percent)?
        .checked_div(Decimal::ONE_HUNDRED)?;
    round_half_up(vat)
}

/// Deserializes an amount in minor units: a whole number in any JSON
/// spelling (`100`, `100.0`, `1e2`; see [`super::whole::whole`]).
pub use super::whole::whole as minor_units;

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    #[test]
    fn domain_money_round_half_up() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("0.4", Some(0)),
            ("0.5", Some(1)),
            ("1.5", Some(2)),
            ("2.5", Some(3)),
            ("2.4999999", Some(2)),
            ("-0.4", Some(0)),
            ("-0.5", Some(-1)),
            ("-2.5", Some(-3)),
            ("-2.51", Some(-3)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775807.4", Some(i64::MAX)),
            ("9223372036854775807.5", None),
            ("-9223372036854775808", Some(i64::MIN)),
            ("-9223372036854775808.5", None),
            ("79228162514264337593543950335", None),
        ];
        for (input, expected) in cases {
            assert_eq!(round_half_up(d(input)), *expected, "round_half_up({input})");
        }
    }

    #[test]
    fn domain_money_line_net() {
        // (quantity, unit_price, discount, expected)
        let cases: &[(&str, Minor, Minor, Option<Minor>)] = &[
            ("1", 1000, 0, Some(1000)),
            ("3", 400, 200, Some(1000)),
            // 0.333 kg × 1.99 = 0.66267 → 66 cents
            ("0.333", 199, 0, Some(66)),
            // 1.5 × 333 = 499.5 → 500 (half away from zero)
            ("1.5", 333, 0, Some(500)),
            ("-1.5", 333, 0, Some(-500)),
            // return with its (negative) discount
            ("-3", 400, -200, Some(-1000)),
            ("-1", 1000, 0, Some(-1000)),
            // 0-decimal currency (JPY): 2 × ¥1,280
            ("2", 1280, 0, Some(2560)),
            // weighed item in JPY: 0.25 × ¥998 = 249.5 → ¥250
            ("0.25", 998, 0, Some(250)),
            ("1", i64::MAX, 0, Some(i64::MAX)),
            ("2", i64::MAX, 0, None),
            ("1", i64::MIN, 1, None),
            ("1", 0, i64::MIN, None),
            ("1000000", 10_000_000_000_000, 0, None),
        ];
        for (q, price, disc, expected) in cases {
            assert_eq!(
                line_net(d(q), *price, *disc),
                *expected,
                "line_net({q}, {price}, {disc})"
            );
        }
    }

    #[test]
    fn domain_money_vat_of() {
        let cases: &[(Minor, &str, Option<Minor>)] = &[
            (1000, "21", Some(210)),
            (1240, "21", Some(260)),
            // 9 % of 333 = 29.97 → 30
            (333, "9", Some(30)),
            (-333, "9", Some(-30)),
            // 5.5 % of 1000 = 55
            (1000, "5.5", Some(55)),
            // 5.5 % of 10 = 0.55 → 1
            (10, "5.5", Some(1)),
            // 10 % of 5 = 0.5 → 1, and −0.5 → −1
            (5, "10", Some(1)),
            (-5, "10", Some(-1)),
            (12345, "0", Some(0)),
            (0, "21", Some(0)),
            // JPY, 8 % of ¥999 = 79.92 → ¥80
            (999, "8", Some(80)),
            (i64::MAX, "100", Some(i64::MAX)),
            (i64::MAX, "100.01", None),
            (i64::MIN, "100.01", None),
        ];
        for (net, rate, expected) in cases {
            assert_eq!(vat_of(*net, d(rate)), *expected, "vat_of({net}, {rate})");
        }
    }
}
