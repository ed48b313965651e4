//! Signing in and out.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::form::{AnonymousForm, Posted};
use super::page::{self, PageResult, Section};
use super::session;
use crate::AppState;

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this console may be where sign-in leads (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/ui/",
    }
}

fn login_page(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    page::render(
        status,
        None,
        Section::None,
        "Sign in",
        html! {
            div.login {
                h1 { "Sign in" }
                p.muted { "Operators use their operator token; tenant users their API token. The token is exchanged for a session and not kept in the browser." }
                @if let Some(p) = problem {
                    div.errors role="alert" { (p) }
                }
                form.stack method="post" action="/ui/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    div.actions { button type="submit" { "Sign in" } }
                }
            }
        },
    )
}

pub async fn show(Query(q): Query<LoginQuery>) -> Response {
    login_page(StatusCode::OK, safe_next(q.next.as_deref()), None)
}

/// Whether cookies must be `Secure`: the console is reached over TLS.
pub fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A sign-in posted from another site is refused: the browser names the
/// page's origin, which must be this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    AnonymousForm(f): AnonymousForm,
) -> PageResult {
    let next = safe_next(f.get("next")).to_string();
    if !same_origin(&headers) {
        return Ok(login_page(
            StatusCode::FORBIDDEN,
            &next,
            Some("This sign-in did not come from this console's page."),
        ));
    }
    let Some(token) = f.get("token") else {
        return Ok(login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &next,
            Some("token: enter your token"),
        ));
    };
    match session::sign_in(&state, token, secure(&state, &headers)).await? {
        Some(cookie) => Ok(session::with_cookie(cookie, Redirect::to(&next))),
        None => Ok(login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some(
                "That token signs in as nobody: it is unknown, revoked, or an integration-only (Agent) token.",
            ),
        )),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Posted,
) -> PageResult {
    let cookie = session::sign_out(&state.pool, &posted.session, secure(&state, &headers)).await?;
    Ok(session::with_cookie(cookie, Redirect::to("/ui/login")))
}

/// `/ui/`: where a viewer starts.
pub async fn home(s: session::Session) -> Response {
    if s.viewer.is_operator() {
        Redirect::to("/ui/overview").into_response()
    } else {
        Redirect::to("/ui/integrations").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(safe_next(Some("/ui/sales/1")), "/ui/sales/1");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/admin/dlq",
            "/ui\\..",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn origin_must_be_this_host() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8081"));
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8081"));
        assert!(same_origin(&h));
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
    }
}
