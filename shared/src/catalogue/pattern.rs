//! A question's answer pattern: a regular expression the whole text form of
//! an answer must match (as an HTML `pattern` attribute does, so `[0-9]{4}`
//! means "exactly four digits", not "contains four digits").
//!
//! The pattern is compiled once, when the question is built or deserialized,
//! because it is matched on every order line. The `regex` crate matches in
//! linear time, and the compiled size is capped, so a tenant's pattern cannot
//! stall or exhaust the service that checks orders.

use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const MAX_PATTERN_CHARS: usize = 1000;
/// Bytes a compiled pattern may take; far above what a form pattern needs.
const COMPILED_SIZE_LIMIT: usize = 1 << 20;

/// A pattern as written, with the result of compiling it. An invalid pattern
/// can still be held (so a question definition deserializes and its check
/// reports the problem as a field error); it never matches.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    compiled: Result<Regex, String>,
}

impl Pattern {
    #[must_use]
    pub fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let compiled = compile(&source);
        Self { source, compiled }
    }

    /// The pattern as the tenant wrote it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Why the pattern cannot be used, if it cannot.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        self.compiled.as_ref().err().map(String::as_str)
    }

    /// Whether all of `text` matches. False for an invalid pattern.
    #[must_use]
    pub fn matches(&self, text: &str) -> bool {
        self.compiled.as_ref().is_ok_and(|re| re.is_match(text))
    }
}

fn compile(source: &str) -> Result<Regex, String> {
    let chars = source.chars().count();
    if chars > MAX_PATTERN_CHARS {
        return Err(format!(
            "must be at most {MAX_PATTERN_CHARS} characters, got {chars}"
        ));
    }
    let build = |pattern: &str| {
        RegexBuilder::new(pattern)
            .size_limit(COMPILED_SIZE_LIMIT)
            .dfa_size_limit(COMPILED_SIZE_LIMIT)
            .build()
    };
    // Compiled alone first: wrapped straight away, an unbalanced `a)(b` would
    // become the valid `\A(?:a)(b)\z`.
    build(source).map_err(|e| format!("is not a valid regular expression: {e}"))?;
    build(&format!(r"\A(?:{source})\z"))
        .map_err(|e| format!("is not a valid regular expression: {e}"))
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Pattern::new)
    }
}

impl utoipa::PartialSchema for Pattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Regular expression (Rust regex syntax) the whole answer must match",
            ))
            .max_length(Some(MAX_PATTERN_CHARS))
            .into()
    }
}

impl utoipa::ToSchema for Pattern {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_pattern_matches_the_whole_text() {
        // (pattern, text, matches)
        let cases: &[(&str, &str, bool)] = &[
            ("[0-9]{4}", "1234", true),
            ("[0-9]{4}", "12345", false),
            ("[0-9]{4}", "a1234", false),
            ("[0-9]{4}", "1234\n", false),
            ("a|b", "a", true),
            // Alternation stays inside the anchors.
            ("a|b", "ab", false),
            ("(?i)nl[0-9]{2}", "NL91", true),
            ("", "", true),
            ("", "x", false),
            // Invalid patterns never match.
            ("a)(b", "a)(b", false),
            ("(", "(", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Pattern::new(*pattern).matches(text),
                *expected,
                "{pattern:?} on {text:?}"
            );
        }
    }

    #[test]
    fn catalogue_pattern_errors() {
        let too_long = "a".repeat(MAX_PATTERN_CHARS + 1);
        let huge = "[a-z]{1000}{1000}";
        // (pattern, error contains)
        let cases: &[(&str, Option<&str>)] = &[
            ("[0-9]{4}", None),
            (&"a".repeat(MAX_PATTERN_CHARS), None),
            ("a)(b", Some("not a valid regular expression")),
            ("(", Some("not a valid regular expression")),
            ("[z-a]", Some("not a valid regular expression")),
            // Look-around is not supported by a linear-time engine.
            ("(?=a)", Some("not a valid regular expression")),
            (huge, Some("not a valid regular expression")),
            (&too_long, Some("must be at most 1000 characters, got 1001")),
        ];
        for (pattern, expected) in cases {
            let got = Pattern::new(*pattern);
            match expected {
                None => assert_eq!(got.error(), None, "{pattern:?}"),
                Some(part) => {
                    let error = got.error().unwrap_or_default();
                    assert!(error.contains(part), "{pattern:?}: {error}");
                }
            }
        }
    }

    #[test]
    fn catalogue_pattern_serde_keeps_the_source() {
        let p: Pattern = serde_json::from_str(r#""[0-9]{4}""#).expect("deserialize");
        assert!(p.matches("2024"));
        assert_eq!(
            serde_json::to_string(&p).expect("serialize"),
            r#""[0-9]{4}""#
        );
        let bad: Pattern = serde_json::from_str(r#""(""#).expect("an invalid pattern still loads");
        assert!(bad.error().is_some());
        assert_eq!(bad, Pattern::new("("));
    }
}
