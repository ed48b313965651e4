//! The one error type of the ingest API. Every failure a handler can meet maps
//! to exactly one HTTP status and the contract's JSON shape
//! `{"error": {"code", "message", "fields"?}}`, so callers can branch on
//! `code` and never have to parse prose. Database failures become a generic
//! 503: the details go to the log, never to the caller (no SQL leaks).

use crate::domain::FieldError;
use axum::Json;
use axum::http::header::{CONNECTION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or JSON of the wrong shape (type errors, unknown fields).
    #[error("{message}")]
    InvalidJson {
        message: String,
        fields: Vec<FieldError>,
    },
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("missing or invalid API token")]
    Unauthorized,
    #[error("this token is limited to integration routes and may not call this one")]
    Forbidden,
    /// A route for a partner's Agent token, called with another token.
    #[error(
        "only an Agent's token (issued by the provider for your organization) may call this route"
    )]
    AgentTokenRequired,
    /// `what` names the missing thing ("sale", "integration", "route" …).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("a different sale with external_id '{external_id}' already exists")]
    SaleConflict { external_id: String },
    /// Another conflict with existing state, e.g. a tenant name already taken.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive in time (`BODY_READ_TIMEOUT`).
    #[error("the request body did not arrive within {} ms", .waited.as_millis())]
    BodyTimeout { waited: std::time::Duration },
    /// The tenant is over its rate limit; answered with `Retry-After`.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the request is well-formed but not valid")]
    Validation(Vec<FieldError>),
    #[error("the service is temporarily unavailable; try again")]
    Unavailable,
    /// Our own fault (e.g. a secret that no longer decrypts); logged where it happens.
    #[error("internal error")]
    Internal,
}

/// The inner object of an error response; also used for per-item errors in
/// batch results.
#[derive(Serialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct ErrorBody {
    /// snake_case and stable: branch on it, never on `message`.
    #[schema(examples("invalid_json", "validation_failed", "not_found"))]
    pub code: &'static str,
    pub message: String,
    /// Every field at fault: for `validation_failed`, and for `invalid_json`
    /// type errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<FieldError>)]
    pub fields: Option<Vec<FieldError>>,
}

/// Every error answer: `{"error": {...}}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct Envelope {
    error: ErrorBody,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::AgentTokenRequired => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::SaleConflict { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson { .. } => "invalid_json",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::AgentTokenRequired => "agent_token_required",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::SaleConflict { .. } => "sale_conflict",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BodyTimeout { .. } => "request_timeout",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let fields = match self {
            ApiError::Validation(f) => Some(f.clone()),
            ApiError::InvalidJson { fields, .. } if !fields.is_empty() => Some(fields.clone()),
            _ => None,
        };
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            fields,
        }
    }

    /// A 422 with one field error.
    pub fn invalid_field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, problem)])
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // Full detail for operators, a generic answer for callers.
        tracing::error!(error = %e, "database error");
        ApiError::Unavailable
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(Envelope { error: self.body() })).into_response();
        match self {
            ApiError::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            // The rest of the body may still be on its way; the connection
            // cannot carry another request.
            ApiError::BodyTimeout { .. } => {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_status_and_code() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (
                ApiError::InvalidJson {
                    message: "x".into(),
                    fields: vec![],
                },
                400,
                "invalid_json",
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::Forbidden, 403, "forbidden"),
            (ApiError::AgentTokenRequired, 403, "agent_token_required"),
            (ApiError::NotFound("sale"), 404, "not_found"),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (
                ApiError::SaleConflict {
                    external_id: "a".into(),
                },
                409,
                "sale_conflict",
            ),
            (
                ApiError::Conflict {
                    code: "tenant_exists",
                    message: "m".into(),
                },
                409,
                "tenant_exists",
            ),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (
                ApiError::BodyTimeout {
                    waited: std::time::Duration::from_secs(60),
                },
                408,
                "request_timeout",
            ),
            (
                ApiError::RateLimited {
                    retry_after_secs: 2,
                },
                429,
                "rate_limited",
            ),
            (ApiError::Validation(vec![]), 422, "validation_failed"),
            (ApiError::Unavailable, 503, "unavailable"),
            (ApiError::Internal, 500, "internal"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
        }
    }

    #[test]
    fn fields_appear_only_when_there_are_some() {
        let v = serde_json::to_value(ApiError::NotFound("sale").body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "not_found", "message": "sale not found"})
        );
        let v = serde_json::to_value(ApiError::invalid_field("status", "bad").body()).unwrap();
        assert_eq!(v["fields"][0]["field"], "status");
        let sale_conflict = ApiError::SaleConflict {
            external_id: "pos-1".into(),
        };
        assert!(sale_conflict.body().message.contains("pos-1"));
    }

    #[test]
    fn rate_limited_answers_carry_retry_after() {
        let r = ApiError::RateLimited {
            retry_after_secs: 3,
        }
        .into_response();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(
            r.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
        let r = ApiError::NotFound("sale").into_response();
        assert!(r.headers().get(RETRY_AFTER).is_none());
    }

    #[test]
    fn database_errors_do_not_leak() {
        let e = ApiError::from(sqlx::Error::Protocol("SELECT secret FROM x".into()));
        assert_eq!(e.status().as_u16(), 503);
        assert!(!e.body().message.contains("SELECT"));
    }
}
