//! The formats an answer can have beyond JSON's own types: dates, decimals,
//! IBANs, e-mail addresses, phone numbers and postcodes. Each check returns
//! the canonical form (what is stored and forwarded) or why the text is not
//! of that format.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::Value;

pub const IBAN_CHARS: std::ops::RangeInclusive<usize> = 15..=34;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 6..=15;
pub const MAX_POSTCODE_CHARS: usize = 10;

/// A calendar date written exactly as `YYYY-MM-DD` (chrono alone would also
/// take `2024-1-5`).
#[must_use]
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// A decimal from a JSON number (any spelling, `1e3` included) or from a
/// string in plain notation (`-12.50`). `None` when it is neither, or does
/// not fit a `Decimal` (28 significant digits).
#[must_use]
pub fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => {
            // serde_json writes a float in its shortest exact form, so the
            // text is what the sender wrote (0.1 stays 0.1).
            let text = n.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .ok()
                .or_else(|| {
                    // Smaller than a decimal's 28 places can tell from 0
                    // (1e-109): 0, as the sale model reads it.
                    let f = n.as_f64()?;
                    (f.is_finite() && f.abs() < 1e-28).then_some(Decimal::ZERO)
                })
        }
        Value::String(s) => {
            let plain = s.strip_prefix('-').unwrap_or(s);
            let (whole, fraction) = plain.split_once('.').unwrap_or((plain, "0"));
            let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            if digits(whole) && digits(fraction) {
                Decimal::from_str(s).ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

/// An IBAN (ISO 13616): spaces are allowed and dropped, letters are
/// uppercased, the country code is two letters followed by two check digits,
/// and the whole must pass the mod-97 check. The length per country is not
/// checked: any 15 to 34 characters.
pub fn normalize_iban(s: &str) -> Result<String, String> {
    let compact: String = s
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    if !compact.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("an IBAN has only letters, digits and spaces".into());
    }
    if !IBAN_CHARS.contains(&compact.len()) {
        return Err(format!(
            "an IBAN has {} to {} letters and digits, got {}",
            IBAN_CHARS.start(),
            IBAN_CHARS.end(),
            compact.len()
        ));
    }
    let b = compact.as_bytes();
    if !(b[0].is_ascii_alphabetic()
        && b[1].is_ascii_alphabetic()
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit())
    {
        return Err("an IBAN starts with a two-letter country code and two check digits".into());
    }
    if iban_mod97(b) != 1 {
        return Err("is not a valid IBAN: its check digits do not match (mod 97)".into());
    }
    Ok(compact)
}

/// ISO 7064 mod 97-10 over the IBAN with its first four characters moved to
/// the end and each letter read as two digits (A = 10 … Z = 35).
fn iban_mod97(compact: &[u8]) -> u32 {
    let (head, tail) = compact.split_at(4);
    tail.iter().chain(head).fold(0u32, |rem, &c| {
        if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        }
    })
}

/// A pragmatic e-mail check: one `@`, something before it, a domain with a
/// dot and no empty labels, no spaces, at most 254 characters. Deliverability
/// is the provider's business; this catches what is plainly not an address.
pub fn check_email(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n > MAX_EMAIL_CHARS {
        return Err(format!(
            "an e-mail address has at most {MAX_EMAIL_CHARS} characters, got {n}"
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an e-mail address has no spaces".into());
    }
    let Some((local, domain)) = s.split_once('@') else {
        return Err("an e-mail address has an '@'".into());
    };
    if domain.contains('@') {
        return Err("an e-mail address has one '@'".into());
    }
    if local.is_empty() {
        return Err("an e-mail address has a name before the '@'".into());
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return Err("an e-mail address has a domain such as example.com after the '@'".into());
    }
    Ok(())
}

/// A phone number, E.164-ish: an optional leading `+`, then 6 to 15 digits,
/// spaces and dashes allowed between them. The canonical form drops the
/// spaces and dashes: `+31 6-1234 5678` → `+31612345678`.
pub fn normalize_phone(s: &str) -> Result<String, String> {
    let (plus, rest) = match s.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", s),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' => {}
            _ => {
                return Err(
                    "a phone number has only digits, spaces and dashes, after an optional '+'"
                        .into(),
                );
            }
        }
    }
    if !PHONE_DIGITS.contains(&digits.len()) {
        return Err(format!(
            "a phone number has {} to {} digits, got {}",
            PHONE_DIGITS.start(),
            PHONE_DIGITS.end(),
            digits.len()
        ));
    }
    Ok(format!("{plus}{digits}"))
}

/// A postcode of any country: 1 to 10 letters, digits, spaces or dashes
/// (surrounding spaces ignored), with at least one letter or digit. The
/// canonical form is trimmed and uppercased: `1234 ab` → `1234 AB`.
pub fn normalize_postcode(s: &str) -> Result<String, String> {
    let trimmed = s.trim_matches(' ');
    let n = trimmed.chars().count();
    let allowed = trimmed
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
    let has_alnum = trimmed.chars().any(|c| c.is_ascii_alphanumeric());
    if !allowed || !has_alnum || n > MAX_POSTCODE_CHARS {
        return Err(format!(
            "a postcode has 1 to {MAX_POSTCODE_CHARS} letters, digits, spaces or dashes"
        ));
    }
    Ok(trimmed.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (input, canonical form or part of the problem)
    type Case<'a> = (&'a str, Result<&'a str, &'a str>);

    #[test]
    fn catalogue_formats_parse_date() {
        type Ymd = (i32, u32, u32);
        let cases: &[(&str, Option<Ymd>)] = &[
            ("2024-02-29", Some((2024, 2, 29))),
            ("1999-12-31", Some((1999, 12, 31))),
            ("2023-02-29", None),
            ("2024-13-01", None),
            ("2024-1-05", None),
            ("2024-01-5", None),
            ("24-01-05", None),
            ("2024/01/05", None),
            ("2024-01-05T00:00:00Z", None),
            (" 2024-01-05", None),
            ("", None),
        ];
        for (input, expected) in cases {
            let expected =
                expected.map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).expect("date"));
            assert_eq!(parse_date(input), expected, "{input:?}");
        }
    }

    #[test]
    fn catalogue_formats_decimal_of() {
        let cases: &[(Value, Option<&str>)] = &[
            (json!(12), Some("12")),
            (json!(-3), Some("-3")),
            (json!(0.1), Some("0.1")),
            (json!(12.5), Some("12.5")),
            (json!(1e3), Some("1000")),
            (json!("12.50"), Some("12.50")),
            (json!("-0.001"), Some("-0.001")),
            (json!("7"), Some("7")),
            (json!("1e3"), None),
            (json!("12,50"), None),
            (json!("+1"), None),
            (json!("1_000"), None),
            (json!(".5"), None),
            (json!("5."), None),
            (json!(""), None),
            (json!(" 1"), None),
            (json!("99999999999999999999999999999999"), None),
            (json!(1e300), None),
            (json!(1e-109), Some("0")),
            (json!(-1.103287280735863e-109), Some("0")),
            (json!(true), None),
            (json!(null), None),
            (json!(["1"]), None),
        ];
        for (input, expected) in cases {
            let expected = expected.map(|s| Decimal::from_str(s).expect("decimal"));
            assert_eq!(decimal_of(input), expected, "{input}");
        }
    }

    #[test]
    fn catalogue_formats_iban() {
        let cases: &[Case] = &[
            ("NL91ABNA0417164300", Ok("NL91ABNA0417164300")),
            ("NL91 ABNA 0417 1643 00", Ok("NL91ABNA0417164300")),
            ("nl91abna0417164300", Ok("NL91ABNA0417164300")),
            ("GB82WEST12345698765432", Ok("GB82WEST12345698765432")),
            ("DE89370400440532013000", Ok("DE89370400440532013000")),
            ("BE68539007547034", Ok("BE68539007547034")),
            // The shortest in use (Norway, 15) passes; the longest allowed is 34.
            ("NO9386011117947", Ok("NO9386011117947")),
            ("NL91ABNA0417164301", Err("check digits")),
            ("NL19ABNA0417164300", Err("check digits")),
            (
                "NL91-ABNA-0417-1643-00",
                Err("only letters, digits and spaces"),
            ),
            ("NL91ABNA041716430€", Err("only letters, digits and spaces")),
            ("NL91ABNA04171", Err("15 to 34 letters and digits, got 13")),
            // 34 characters with valid check digits, and one too many.
            (
                "XX46ABCD12345678901234567890123456",
                Ok("XX46ABCD12345678901234567890123456"),
            ),
            ("NL91ABNA041716430012345678901234567", Err("got 35")),
            ("1291ABNA0417164300", Err("two-letter country code")),
            ("NLA1ABNA0417164300", Err("two-letter country code")),
            ("", Err("got 0")),
        ];
        for (input, expected) in cases {
            match (normalize_iban(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{input}"),
                (Err(got), Err(part)) => assert!(got.contains(part), "{input}: {got}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn catalogue_formats_email() {
        let long_local = "a".repeat(MAX_EMAIL_CHARS - "@example.com".len());
        let ok_long = format!("{long_local}@example.com");
        let too_long = format!("a{ok_long}");
        let cases: &[(&str, Result<(), &str>)] = &[
            ("ann@example.com", Ok(())),
            ("ann.de.vries+sales@mail.example.nl", Ok(())),
            (&ok_long, Ok(())),
            (&too_long, Err("at most 254 characters, got 255")),
            ("ann example.com", Err("no spaces")),
            ("ann@example .com", Err("no spaces")),
            ("ann@exa\tmple.com", Err("no spaces")),
            ("ann.example.com", Err("has an '@'")),
            ("ann@b@example.com", Err("one '@'")),
            ("@example.com", Err("a name before")),
            ("ann@localhost", Err("a domain")),
            ("ann@.example.com", Err("a domain")),
            ("ann@example.com.", Err("a domain")),
            ("ann@example..com", Err("a domain")),
            ("", Err("has an '@'")),
        ];
        for (input, expected) in cases {
            match (check_email(input), expected) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(part)) => assert!(got.contains(part), "{input}: {got}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn catalogue_formats_phone() {
        let cases: &[Case] = &[
            ("+31612345678", Ok("+31612345678")),
            ("+31 6-1234 5678", Ok("+31612345678")),
            ("0612345678", Ok("0612345678")),
            ("123456", Ok("123456")),
            ("+123456789012345", Ok("+123456789012345")),
            ("12345", Err("6 to 15 digits, got 5")),
            ("+1234567890123456", Err("got 16")),
            ("+", Err("got 0")),
            ("", Err("got 0")),
            ("(020) 1234567", Err("only digits, spaces and dashes")),
            ("06.12345678", Err("only digits, spaces and dashes")),
            ("06+12345678", Err("only digits, spaces and dashes")),
            ("06 1234 5678 x12", Err("only digits, spaces and dashes")),
            ("٠٦١٢٣٤٥٦٧٨", Err("only digits, spaces and dashes")),
        ];
        for (input, expected) in cases {
            match (normalize_phone(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{input}"),
                (Err(got), Err(part)) => assert!(got.contains(part), "{input}: {got}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn catalogue_formats_postcode() {
        let cases: &[(&str, Option<&str>)] = &[
            ("1234 AB", Some("1234 AB")),
            ("1234ab", Some("1234AB")),
            (" 1234 ab ", Some("1234 AB")),
            ("SW1A 1AA", Some("SW1A 1AA")),
            ("75001", Some("75001")),
            ("1000-123", Some("1000-123")),
            ("K", Some("K")),
            ("1234567890", Some("1234567890")),
            ("12345678901", None),
            ("", None),
            ("   ", None),
            ("--", None),
            ("1234_AB", None),
            ("1234 ÄB", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                normalize_postcode(input).ok().as_deref(),
                *expected,
                "{input:?}"
            );
        }
    }
}
