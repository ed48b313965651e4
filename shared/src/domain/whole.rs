//! Whole numbers from JSON. JSON has one number type, and JSON Schema calls
//! `100.0` an integer too, so a field documented as an integer takes a whole
//! number in any spelling (`100`, `100.0`, `1e2`); a fraction, a number
//! outside `i64`, or a float too large to hold every whole number exactly, is
//! refused with a message naming the value.

use serde::Deserialize;

/// `#[serde(deserialize_with = "whole")]` for an `i64` field.
pub fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct WholeVisitor;

    impl serde::de::Visitor<'_> for WholeVisitor {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            // Beyond 2^53 an f64 no longer holds every whole number, so it
            // may not be the number that was written: refused.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if v.fract() == 0.0 && (-EXACT..=EXACT).contains(&v) {
                Ok(v as i64)
            } else {
                Err(E::custom(format!("{v} is not a whole number")))
            }
        }
    }

    d.deserialize_any(WholeVisitor)
}

/// `whole` for an optional field: `null` (or, with `#[serde(default)]`, no
/// field) is `None`.
pub fn optional_whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] i64);
    Ok(Option::<Whole>::deserialize(d)?.map(|w| w.0))
}

/// `optional_whole` for a `u32` field: a whole number from 0 to `u32::MAX`.
pub fn optional_whole_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    optional_whole(d)?
        .map(|v| {
            u32::try_from(v).map_err(|_| {
                serde::de::Error::custom(format!("{v} is out of range (0 to {})", u32::MAX))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_in_any_json_spelling() {
        #[derive(serde::Deserialize)]
        struct A {
            #[serde(deserialize_with = "whole")]
            v: i64,
        }
        let parse = |json: &str| serde_json::from_str::<A>(json).map(|a| a.v);
        assert_eq!(parse(r#"{"v": 100}"#).unwrap(), 100);
        assert_eq!(parse(r#"{"v": -100.0}"#).unwrap(), -100);
        assert_eq!(parse(r#"{"v": 1e3}"#).unwrap(), 1000);
        assert_eq!(parse(r#"{"v": -0}"#).unwrap(), 0);
        assert_eq!(parse(r#"{"v": 9223372036854775807}"#).unwrap(), i64::MAX);
        // Read exactly (serde_json's `float_roundtrip`): the fast float
        // parser made this 2130175252722124.75, "not a whole number".
        assert_eq!(
            parse(r#"{"v": 2130175252722125.0}"#).unwrap(),
            2_130_175_252_722_125
        );
        for bad in [
            r#"{"v": 1.5}"#,
            r#"{"v": 9223372036854775808}"#,
            r#"{"v": 1e19}"#,
            r#"{"v": -9223372036854775809}"#,
            r#"{"v": 1e16}"#,
            r#"{"v": "100"}"#,
            r#"{"v": null}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn optional_whole_numbers_and_null() {
        #[derive(serde::Deserialize)]
        struct A {
            #[serde(default, deserialize_with = "optional_whole")]
            v: Option<i64>,
        }
        let parse = |json: &str| serde_json::from_str::<A>(json).map(|a| a.v);
        assert_eq!(parse(r#"{"v": 12499.0}"#).unwrap(), Some(12499));
        assert_eq!(parse(r#"{"v": 7}"#).unwrap(), Some(7));
        assert_eq!(parse(r#"{"v": null}"#).unwrap(), None);
        assert_eq!(parse(r#"{}"#).unwrap(), None);
        assert!(parse(r#"{"v": 0.5}"#).is_err());
        assert!(parse(r#"{"v": "7"}"#).is_err());
    }

    #[test]
    fn unsigned_whole_numbers_in_any_json_spelling() {
        #[derive(serde::Deserialize)]
        struct A {
            #[serde(default, deserialize_with = "optional_whole_u32")]
            v: Option<u32>,
        }
        let parse = |json: &str| serde_json::from_str::<A>(json).map(|a| a.v);
        assert_eq!(parse(r#"{"v": 105965897.0}"#).unwrap(), Some(105_965_897));
        assert_eq!(parse(r#"{"v": 4294967295}"#).unwrap(), Some(u32::MAX));
        assert_eq!(parse(r#"{"v": null}"#).unwrap(), None);
        assert_eq!(parse(r#"{}"#).unwrap(), None);
        for bad in [r#"{"v": -1}"#, r#"{"v": 4294967296}"#, r#"{"v": 1.5}"#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
