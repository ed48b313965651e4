//! The page shell every console page is rendered in, the small pieces pages
//! share (times, badges, field errors) and the error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use salesync_core::api::ApiError;
use salesync_core::domain::FieldError;

use super::assets::{CSS_PATH, JS_PATH};
use super::form::CSRF_FIELD;
use super::session::Session;

/// Which top-level section a page belongs to (marks the nav link).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Section {
    Overview,
    Integrations,
    Sales,
    DeadLetters,
    None,
}

/// A whole page: `status`, title and body inside the shell.
pub fn render(
    status: StatusCode,
    session: Option<&Session>,
    section: Section,
    title: &str,
    body: Markup,
) -> Response {
    let nav = |href: &str, label: &str, s: Section| {
        html! {
            a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · salesync console" }
                link rel="stylesheet" href=(CSS_PATH);
                script src=(JS_PATH) defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" { "salesync" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            @if s.viewer.is_operator() {
                                (nav("/ui/overview", "Overview", Section::Overview))
                            }
                            (nav("/ui/integrations", "Integrations", Section::Integrations))
                            (nav("/ui/sales", "Sales", Section::Sales))
                            (nav("/ui/dead-letters", "Dead letters", Section::DeadLetters))
                        }
                        div.who {
                            span { (s.viewer.label()) }
                            form method="post" action="/ui/logout" {
                                (csrf(s))
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

pub fn ok(session: &Session, section: Section, title: &str, body: Markup) -> Response {
    render(StatusCode::OK, Some(session), section, title, body)
}

/// The hidden CSRF field every POST form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf); }
}

/// A time the viewer's browser shows in its own zone (UTC without script).
pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

pub fn time_or_dash(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.muted { "—" } },
    }
}

/// `ok`, `bad`, `warn` or plain.
pub fn badge(kind: &str, text: &str) -> Markup {
    html! { span class={ "badge " (kind) } { (text) } }
}

/// A notice after an action (`?notice=` on the page it redirected to).
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.notice role="status" { (t) }
        }
    }
}

/// The problems of a refused form, each naming its field.
pub fn field_errors(message: &str, fields: &[FieldError]) -> Markup {
    html! {
        div.errors role="alert" {
            strong { (message) }
            @if !fields.is_empty() {
                ul {
                    @for f in fields {
                        li { code { (f.field) } ": " (f.problem) }
                    }
                }
            }
        }
    }
}

/// What a refused API call says, for the page that made it.
pub fn api_error(e: &ApiError) -> Markup {
    let body = e.body();
    field_errors(&body.message, body.fields.as_deref().unwrap_or_default())
}

/// Redirect after a successful POST, with a notice for the next page.
pub fn see_other(path: &str, notice: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    let q: String = url::form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    Redirect::to(&format!("{path}{sep}notice={q}")).into_response()
}

/// Text a tenant or target wrote, shortened for a table cell.
pub fn excerpt(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

pub fn json_pretty(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre { (text) } }
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum WebError {
    /// Not there, or not the viewer's: the two look the same.
    NotFound,
    /// The form's CSRF token did not match the session's.
    Csrf,
    BadRequest(String),
    Api(ApiError),
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(_) => WebError::NotFound,
            e => WebError::Api(e),
        }
    }
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        WebError::Api(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, text) = match &self {
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it is not yours to see.".to_string(),
            ),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from this session's page. Go back, reload and try again."
                    .to_string(),
            ),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m.clone()),
            WebError::Api(e) => (e.status(), "Something went wrong", e.to_string()),
        };
        render(
            status,
            None,
            Section::None,
            title,
            html! {
                h1 { (title) }
                p { (text) }
                p { a href="/ui/" { "Back to the console" } }
            },
        )
    }
}

/// A chunk of trusted, server-generated markup (SVG charts).
pub fn trusted(svg: String) -> Markup {
    PreEscaped(svg)
}

pub type PageResult = Result<Response, WebError>;
