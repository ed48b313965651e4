//! A posted HTML form: its fields (repeated names kept, for checkbox lists)
//! and the CSRF check every state-changing page request passes through.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use salesync_core::api::auth::constant_time_eq;

use super::page::WebError;
use super::session::Session;
use crate::AppState;

/// The name of the hidden field that carries the session's CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// `application/x-www-form-urlencoded` fields in the order sent.
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-blank value of `name` (checkbox lists, multi-selects).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// Fields whose name starts with `prefix`, with the prefix cut off.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0
            .iter()
            .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v.trim())))
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A form posted by a signed-in viewer whose CSRF token matched: the only
/// way a page handler receives a POST body.
pub struct Posted {
    pub session: Session,
    pub fields: Fields,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_parts(&mut parts, state).await?;
        let is_form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(WebError::BadRequest("expected a form submission".into()).into_response());
        }
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = Fields::parse(&bytes);
        match fields.get(CSRF_FIELD) {
            Some(token) if constant_time_eq(token, &session.csrf) => Ok(Self { session, fields }),
            _ => Err(WebError::Csrf.into_response()),
        }
    }
}

/// A form posted without a session (sign-in): fields only.
pub struct AnonymousForm(pub Fields);

impl FromRequest<AppState> for AnonymousForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self(Fields::parse(&bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_repeats_and_drop_blanks() {
        let f = Fields::parse(b"a=1&b=+&c=x&c=y&c=&map.q1=k%20one&map.q2=");
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), None);
        assert_eq!(f.get("missing"), None);
        assert_eq!(f.all("c"), vec!["x", "y"]);
        assert_eq!(
            f.with_prefix("map.").collect::<Vec<_>>(),
            vec![("q1", "k one"), ("q2", "")]
        );
        assert!(f.checked("a") && !f.checked("b"));
    }
}
