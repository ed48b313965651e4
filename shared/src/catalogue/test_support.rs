//! Helpers for the catalogue's table tests.

use crate::domain::FieldError;

/// Expected problems, in order: (field, part of the problem).
pub(crate) type Expected = Vec<(&'static str, &'static str)>;

/// Asserts that `got` has exactly the expected fields, in order, and that
/// each problem contains the expected part.
pub(crate) fn assert_errors(context: &str, got: &[FieldError], expected: &Expected) {
    assert_eq!(got.len(), expected.len(), "{context}: {got:?}");
    for (error, (field, part)) in got.iter().zip(expected) {
        assert_eq!(error.field, *field, "{context}: {got:?}");
        assert!(
            error.problem.contains(part),
            "{context}: {}: {:?} lacks {part:?}",
            error.field,
            error.problem
        );
    }
}
