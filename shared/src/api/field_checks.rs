//! Small checks on single input values that several routes share: status
//! names, target URLs, display names. Pure, so each rule is a table test.
//! The schema types at the end state the same rules in the API document.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Longest accepted note on a status change.
pub const MAX_NOTE_CHARS: usize = 1000;
/// Longest accepted URL (targets, status URLs, webhooks).
pub const MAX_URL_CHARS: usize = 2048;
/// Longest accepted target status name (the target's vocabulary, not ours).
pub const MAX_TARGET_STATUS_CHARS: usize = 64;
/// Longest accepted display name (integrations, tenants, tokens).
pub const MAX_NAME_CHARS: usize = 200;

/// A salesync status: `^[a-z0-9_-]{1,64}$`.
pub fn is_valid_status(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// An absolute `http`/`https` URL with a host. `Err` says what is wrong.
pub fn check_http_url(s: &str) -> Result<(), String> {
    if s.len() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, not '{}'",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("URL needs a host".into());
    }
    Ok(())
}

/// A reason a person gives (for a pause, a discard …): trimmed, not blank,
/// at most `max` characters, no NUL (PostgreSQL cannot store it). `what`
/// completes "say why …" in the refusal. `Ok` is the trimmed reason.
pub fn check_reason(reason: &str, max: usize, what: &str) -> Result<String, String> {
    let reason = reason.trim();
    if reason.is_empty() {
        Err(format!("must not be empty: say why {what}"))
    } else if reason.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if reason.contains('\0') {
        Err("must not contain NUL characters".into())
    } else {
        Ok(reason.to_string())
    }
}

/// A display name: not blank, at most `MAX_NAME_CHARS` characters.
pub fn check_name(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    Ok(())
}

/// A salesync status in the API document: the rule of `is_valid_status`.
pub struct StatusName;

impl utoipa::PartialSchema for StatusName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z0-9_-]{1,64}$"))
            .description(Some("A salesync status"))
            .into()
    }
}

impl utoipa::ToSchema for StatusName {}

/// A target's own status name in the API document.
pub struct TargetStatusName;

impl utoipa::PartialSchema for TargetStatusName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_TARGET_STATUS_CHARS))
            .description(Some("A status in the target's vocabulary"))
            .into()
    }
}

impl utoipa::ToSchema for TargetStatusName {}

/// Text with at least one character that is not white space.
pub struct NonBlankText;

impl utoipa::PartialSchema for NonBlankText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("\\S"))
            .into()
    }
}

impl utoipa::ToSchema for NonBlankText {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for (s, ok) in [
            ("paid", true),
            ("partially_refunded", true),
            ("step-2", true),
            ("0", true),
            (&"a".repeat(64), true),
            (&"a".repeat(65), false),
            ("", false),
            ("Paid", false),
            ("paid ", false),
            ("päid", false),
            ("a.b", false),
        ] {
            assert_eq!(is_valid_status(s), ok, "{s:?}");
        }
    }

    #[test]
    fn urls() {
        for (u, ok) in [
            ("https://example.com/hook", true),
            ("http://127.0.0.1:8080", true),
            ("ftp://example.com", false),
            ("example.com/hook", false),
            ("https://", false),
            ("", false),
            ("javascript:alert(1)", false),
        ] {
            assert_eq!(check_http_url(u).is_ok(), ok, "{u:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(check_http_url(&long).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("Shop A").is_ok());
        assert!(check_name("  ").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
