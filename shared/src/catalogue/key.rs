//! The identifiers of a catalogue: question keys (they become JSON keys and
//! parts of field paths such as `lines[2].answers.iban`), product and flow
//! keys (they travel as `product_ref` and `flow` on orders), and the limits on
//! the free text around them.

use crate::domain::FieldError;

pub const MAX_KEY_CHARS: usize = 64;
pub const MAX_LABEL_CHARS: usize = 256;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// `[a-z0-9_]{1,64}`: a question key.
#[must_use]
pub fn is_question_key(s: &str) -> bool {
    is_key_of(s, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
    })
}

/// `[a-z0-9_-]{1,64}`: a product or flow key. Dashes are allowed because
/// product slugs such as `fixed-3y` are common and never end up in a path.
#[must_use]
pub fn is_slug(s: &str) -> bool {
    is_key_of(s, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
    })
}

fn is_key_of(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    (1..=MAX_KEY_CHARS).contains(&s.len()) && s.bytes().all(allowed)
}

/// Checks a question key, pushing the problem to `errors`.
pub fn check_question_key(errors: &mut Vec<FieldError>, field: &str, key: &str) {
    if !is_question_key(key) {
        errors.push(FieldError::new(
            field,
            format!(
                "must be 1 to {MAX_KEY_CHARS} characters of a-z, 0-9 or '_', got {:?}",
                clip(key)
            ),
        ));
    }
}

/// Checks a product or flow key, pushing the problem to `errors`.
pub fn check_slug(errors: &mut Vec<FieldError>, field: &str, key: &str) {
    if !is_slug(key) {
        errors.push(FieldError::new(
            field,
            format!(
                "must be 1 to {MAX_KEY_CHARS} characters of a-z, 0-9, '_' or '-', got {:?}",
                clip(key)
            ),
        ));
    }
}

/// Checks a human text: `min..=max` characters, no control characters
/// (PostgreSQL cannot store NUL, and the others are never legitimate in a
/// label).
pub(crate) fn check_text(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) {
    let n = value.chars().count();
    if n < min || (min > 0 && value.trim().is_empty()) {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if n > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters, got {n}"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

/// A caller-supplied string cut to a length fit for a field path or message,
/// so a hostile 1 MB key does not come back in every error.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = MAX_KEY_CHARS;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_key_formats() {
        let long = "a".repeat(MAX_KEY_CHARS);
        let too_long = "a".repeat(MAX_KEY_CHARS + 1);
        // (input, question key?, slug?)
        let cases: &[(&str, bool, bool)] = &[
            ("iban", true, true),
            ("contract_type_2", true, true),
            ("0", true, true),
            (&long, true, true),
            ("fixed-3y", false, true),
            ("", false, false),
            (&too_long, false, false),
            ("Iban", false, false),
            ("iban ", false, false),
            ("ib.an", false, false),
            ("ïban", false, false),
            ("a/b", false, false),
        ];
        for (input, question, slug) in cases {
            assert_eq!(is_question_key(input), *question, "question key {input:?}");
            assert_eq!(is_slug(input), *slug, "slug {input:?}");
        }
    }

    #[test]
    fn catalogue_key_check_text() {
        // (value, min, max, expected problems)
        let cases: &[(&str, usize, usize, &[&str])] = &[
            ("Energy", 1, 10, &[]),
            ("", 0, 10, &[]),
            ("", 1, 10, &["must not be empty"]),
            ("   ", 1, 10, &["must not be empty"]),
            (
                "0123456789x",
                1,
                10,
                &["must be at most 10 characters, got 11"],
            ),
            ("two\nlines", 1, 10, &[]),
            ("nul\0", 1, 10, &["must not contain control characters"]),
            ("bell\u{7}", 1, 10, &["must not contain control characters"]),
        ];
        for (value, min, max, expected) in cases {
            let mut errors = Vec::new();
            check_text(&mut errors, "name", value, *min, *max);
            let got: Vec<&str> = errors.iter().map(|e| e.problem.as_str()).collect();
            assert_eq!(got, *expected, "{value:?}");
        }
    }

    #[test]
    fn catalogue_key_clip() {
        assert_eq!(clip("iban"), "iban");
        let clipped = clip(&"x".repeat(1000));
        assert_eq!(clipped.chars().count(), MAX_KEY_CHARS + 1);
        assert!(clipped.ends_with('…'));
    }
}
