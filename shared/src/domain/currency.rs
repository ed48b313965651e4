//! ISO 4217 currencies. A `Currency` can only be obtained from the built-in
//! table, so holding one proves the code is real and tells how many minor units
//! (cents, fils, …) make up one major unit — which is what every `Minor` amount
//! of a sale is counted in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A known ISO 4217 currency. Serialized as its uppercase code, e.g. `"EUR"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    minor_units: u8,
}

/// Active ISO 4217 currencies with their minor-unit exponent, sorted by code so
/// lookups can binary-search. Fund codes (BOV, CLF, COU, …), precious metals
/// (XAU, …) and testing codes (XTS, XXX) are left out on purpose: nobody rings
/// up a sale in them, and accepting them would only let typos through.
/// Recently withdrawn codes still in circulation for historical sales (ANG,
/// BGN) are kept next to their successors (XCG, EUR).
const TABLE: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

impl Currency {
    // A handful of constants so code (and the sample sales) can name common
    // currencies without a fallible parse. A unit test checks they agree with
    // the table.
    pub const EUR: Currency = Currency::known("EUR", 2);
    pub const USD: Currency = Currency::known("USD", 2);
    pub const GBP: Currency = Currency::known("GBP", 2);
    pub const CHF: Currency = Currency::known("CHF", 2);
    pub const JPY: Currency = Currency::known("JPY", 0);

    const fn known(code: &'static str, minor_units: u8) -> Self {
        Self { code, minor_units }
    }

    /// Looks `code` up in the ISO 4217 table. Codes are case-sensitive
    /// (uppercase): the canonical form is what gets hashed and forwarded, so
    /// accepting `eur` here would let two spellings of one sale differ.
    pub fn parse(code: &str) -> Result<Currency, String> {
        if let Ok(i) = TABLE.binary_search_by(|(c, _)| (*c).cmp(code)) {
            let (code, minor_units) = TABLE[i];
            return Ok(Currency { code, minor_units });
        }
        let upper = code.to_ascii_uppercase();
        if upper != code && TABLE.binary_search_by(|(c, _)| (*c).cmp(&upper)).is_ok() {
            return Err(format!(
                "unknown ISO 4217 currency code '{code}' (codes are uppercase: '{upper}')"
            ));
        }
        Err(format!("unknown ISO 4217 currency code '{code}'"))
    }

    /// The three-letter uppercase code, e.g. `"EUR"`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// How many decimal digits the minor unit has: 2 for EUR (cents), 0 for
    /// JPY, 3 for KWD. An amount of `n` minor units is `n / 10^minor_units`.
    #[must_use]
    pub const fn minor_units(&self) -> u32 {
        self.minor_units as u32
    }

    /// Every currency `parse` accepts, in code order.
    pub fn all() -> impl Iterator<Item = Currency> {
        TABLE
            .iter()
            .map(|&(code, minor_units)| Currency { code, minor_units })
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl FromStr for Currency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// In the API document: a string limited to the codes this table knows, so
/// a client (or a fuzzer) sees exactly what is accepted.
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("ISO 4217 currency code"))
            .enum_values(Some(TABLE.iter().map(|(code, _)| *code)))
            .into()
    }
}

impl utoipa::ToSchema for Currency {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_currency_table_is_sorted_unique_and_well_formed() {
        for pair in TABLE.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (code, minor) in TABLE {
            assert_eq!(code.len(), 3, "{code}");
            assert!(code.bytes().all(|b| b.is_ascii_uppercase()), "{code}");
            assert!(*minor <= 4, "{code}");
        }
    }

    #[test]
    fn domain_currency_minor_units() {
        let cases = [
            ("EUR", 2),
            ("USD", 2),
            ("GBP", 2),
            ("CHF", 2),
            ("SEK", 2),
            ("ISK", 0),
            ("JPY", 0),
            ("KRW", 0),
            ("CLP", 0),
            ("VND", 0),
            ("XOF", 0),
            ("XAF", 0),
            ("KWD", 3),
            ("BHD", 3),
            ("OMR", 3),
            ("JOD", 3),
            ("TND", 3),
        ];
        for (code, minor) in cases {
            let c = Currency::parse(code).expect(code);
            assert_eq!(c.code(), code);
            assert_eq!(c.minor_units(), minor, "{code}");
        }
    }

    #[test]
    fn domain_currency_requested_codes_are_present() {
        for code in [
            "EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RON", "BGN",
            "ISK", "JPY", "KRW", "CNY", "HKD", "SGD", "AUD", "NZD", "CAD", "MXN", "BRL", "ARS",
            "CLP", "COP", "ZAR", "TRY", "INR", "IDR", "THB", "MYR", "PHP", "AED", "SAR", "ILS",
            "KWD", "BHD", "OMR", "JOD", "TND", "UAH", "VND", "XOF", "XAF", "EGP", "NGN", "KES",
            "MAD", "QAR", "TWD",
        ] {
            assert!(Currency::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn domain_currency_constants_match_table() {
        for c in [
            Currency::EUR,
            Currency::USD,
            Currency::GBP,
            Currency::CHF,
            Currency::JPY,
        ] {
            assert_eq!(Currency::parse(c.code()), Ok(c));
        }
    }

    #[test]
    fn domain_currency_rejects_unknown_and_lowercase() {
        assert_eq!(
            Currency::parse("XYZ"),
            Err("unknown ISO 4217 currency code 'XYZ'".to_owned())
        );
        assert!(Currency::parse("").is_err());
        assert!(Currency::parse("EURO").is_err());
        let lower = Currency::parse("eur").expect_err("lowercase is not canonical");
        assert!(lower.contains("'EUR'"), "{lower}");
    }

    #[test]
    fn domain_currency_serde() {
        assert_eq!(
            serde_json::to_string(&Currency::EUR).expect("serialize"),
            "\"EUR\""
        );
        let jpy: Currency = serde_json::from_str("\"JPY\"").expect("deserialize");
        assert_eq!(jpy, Currency::JPY);
        let err = serde_json::from_str::<Currency>("\"XYZ\"").expect_err("unknown code");
        assert!(
            err.to_string()
                .contains("unknown ISO 4217 currency code 'XYZ'"),
            "{err}"
        );
    }
}
