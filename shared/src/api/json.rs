//! Reading JSON request bodies. axum's own `Json` extractor answers in plain
//! text and says little about *where* a body is wrong; this one insists on a
//! JSON Content-Type (415), enforces the body limit (413) and deadline
//! (408), and reports type errors with the path of the offending field
//! (`lines[0].quantity`), all in the API's one error shape. Every body is `screen`ed first: repeated keys
//! and NUL characters are refused before any route sees them.

mod screen;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::{ApiError, BodyLimits};
use crate::domain::FieldError;

/// A request body parsed as `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S> FromRequest<S> for JsonBody<T>
where
    BodyLimits: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !content_type.is_some_and(is_json_content_type) {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&read_body(req, state).await?).map(JsonBody)
    }
}

/// An optional request body: an empty one (with or without a Content-Type)
/// or a JSON `null` is `T::default()`; any other is checked and parsed as
/// `JsonBody` does.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S> FromRequest<S> for OptionalJsonBody<T>
where
    BodyLimits: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_typed = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_content_type);
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !json_typed {
            return Err(ApiError::UnsupportedMediaType);
        }
        let value: Option<T> = parse_json(&bytes)?;
        Ok(OptionalJsonBody(value.unwrap_or_default()))
    }
}

/// The whole body, within the size limit and the read deadline.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError>
where
    BodyLimits: FromRef<S>,
{
    let limits = BodyLimits::from_ref(state);
    // A deadline on the whole body, not on each read: a client trickling
    // a byte at a time would pass any per-read timeout.
    let waited = limits.read_timeout;
    let read = tokio::time::timeout(waited, Bytes::from_request(req, state));
    let read = read.await.map_err(|_| ApiError::BodyTimeout { waited })?;
    read.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: limits.max_bytes,
            }
        } else {
            ApiError::InvalidJson {
                message: format!("could not read the request body: {rejection}"),
                fields: vec![],
            }
        }
    })
}

/// `application/json`, optionally with parameters (`; charset=utf-8`) or as
/// a `+json` structured syntax suffix (`application/problem+json`).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses bytes as `T`, naming the field when the JSON is well-formed but of
/// the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    screen::screen(bytes).map_err(screen_error)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    // Trailing garbage after the value (`{…} x`) is malformed too.
    de.end().map_err(|e| ApiError::InvalidJson {
        message: format!("malformed JSON: {e}"),
        fields: vec![],
    })?;
    Ok(value)
}

/// Converts an already parsed JSON value into `T`, reporting the field path
/// of the first mismatch (used for batch items, which are checked one by one).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

/// A repeated key makes the JSON ambiguous (400); a NUL character is
/// well-formed JSON that no field may hold (422).
fn screen_error(f: screen::Finding) -> ApiError {
    match f {
        screen::Finding::Malformed(e) => ApiError::InvalidJson {
            message: format!("malformed JSON: {e}"),
            fields: vec![],
        },
        screen::Finding::DuplicateKey { path, key } => ApiError::InvalidJson {
            message: format!("malformed JSON: key '{key}' appears more than once at {path}"),
            fields: vec![FieldError::new(
                path,
                "key appears more than once in the same object",
            )],
        },
        screen::Finding::Nul { path } => ApiError::Validation(vec![FieldError::new(
            path,
            "must not contain NUL characters (U+0000)",
        )]),
    }
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ApiError::InvalidJson {
            message: format!("malformed JSON: {inner}"),
            fields: vec![],
        };
    }
    // A missing top-level field has the root path "."; name it "$".
    let field = if path == "." { "$".to_string() } else { path };
    ApiError::InvalidJson {
        message: format!("JSON does not match the expected shape at {field}: {inner}"),
        fields: vec![FieldError::new(field, inner.to_string())],
    }
}

/// For `#[serde(default, deserialize_with = "not_null")]`: a field that may
/// be absent (`None`: the default applies) but not `null`. The API document
/// says which fields are nullable, and only those are.
pub fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SaleInput, sample_sale};
    use serde_json::Value;

    #[test]
    fn content_types() {
        for (ct, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/jsonx", false),
            ("", false),
            ("multipart/form-data", false),
        ] {
            assert_eq!(is_json_content_type(ct), ok, "{ct}");
        }
    }

    fn invalid(err: ApiError) -> (String, Vec<FieldError>) {
        match err {
            ApiError::InvalidJson { message, fields } => (message, fields),
            other => panic!("expected InvalidJson, got {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let mut v = serde_json::to_value(sample_sale("s-1")).unwrap();
        v["lines"][0]["quantity"] = serde_json::json!({"no": 1});
        let bytes = serde_json::to_vec(&v).unwrap();
        let (_, fields) = invalid(parse_json::<SaleInput>(&bytes).err().unwrap());
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].field, "lines[0].quantity");

        let (_, fields) = invalid(from_value::<SaleInput>(v).err().unwrap());
        assert_eq!(fields[0].field, "lines[0].quantity");
    }

    #[test]
    fn malformed_json_has_no_fields() {
        for body in [&b"{"[..], b"not json", b"{} trailing", b""] {
            let (message, fields) = invalid(parse_json::<serde_json::Value>(body).err().unwrap());
            assert!(message.starts_with("malformed JSON"), "{message}");
            assert!(fields.is_empty());
        }
    }

    #[test]
    fn repeated_keys_and_nul_characters_are_refused_with_their_path() {
        let body = br#"{"sales": [{"external_id": "a", "external_id": "b"}]}"#;
        let (message, fields) = invalid(parse_json::<Value>(body).err().unwrap());
        assert!(message.contains("more than once"), "{message}");
        assert_eq!(fields[0].field, "sales[0].external_id");

        let body = br#"{"note": "a\u0000b"}"#;
        match parse_json::<Value>(body) {
            Err(ApiError::Validation(fields)) => {
                assert_eq!(fields[0].field, "note");
                assert!(fields[0].problem.contains("NUL"));
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn missing_and_unknown_fields_are_reported() {
        let (_, fields) = invalid(parse_json::<SaleInput>(b"{}").err().unwrap());
        assert_eq!(fields[0].field, "$");
        assert!(fields[0].problem.contains("missing field"));

        let mut v = serde_json::to_value(sample_sale("s-1")).unwrap();
        v["totals"]["grosss"] = 1.into();
        let (_, fields) = invalid(from_value::<SaleInput>(v).err().unwrap());
        assert!(fields[0].field.starts_with("totals"), "{fields:?}");
        assert!(fields[0].problem.contains("grosss"));
    }
}
