//! Cross-cutting HTTP layers: a tracing span per request (continuing the
//! caller's W3C trace if it sent one), request counts by matched route
//! and status, and the contract's JSON shape for errors no handler shaped.
//! Routes are labelled by their pattern (`/v1/sales/{id}`), never by the raw
//! path, so ids cannot blow up metric cardinality.

use std::collections::BTreeMap;

use super::ApiError;
use crate::metrics::Metrics;
use crate::ops::{self, Readiness};
use crate::telemetry;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::trace::TraceLayer;

/// A service's whole HTTP surface around its API routes (state applied):
/// the ops endpoints, JSON answers for unknown routes and methods, the body
/// limit, JSON for every error, per-request spans and counts.
pub fn service(api: Router, readiness: Readiness, metrics: Metrics, body_limit: usize) -> Router {
    api.fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .merge(ops::router(readiness, metrics.clone()))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            count_requests,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

/// Label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

fn route_of<B>(req: &axum::http::Request<B>) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or(UNMATCHED)
}

/// The span a request runs in; events built while handling it (outbox
/// messages) carry its trace context onwards.
pub fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "http_request",
        method = %req.method(),
        route = route_of(req),
        tenant_id = tracing::field::Empty,
    );
    telemetry::set_parent_from_headers(&span, &trace_headers(req.headers()));
    span
}

/// `traceparent` / `tracestate` from incoming HTTP headers.
pub fn trace_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|k| {
            let v = headers.get(k)?.to_str().ok()?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Counts each request by matched route and response status.
pub async fn count_requests(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = route_of(&req).to_string();
    let response = next.run(req).await;
    metrics.http_request(&route, response.status().as_u16());
    response
}

/// Longest plain-text error body kept as the message of its JSON form.
const MAX_PLAIN_ERROR: usize = 1024;

/// Gives every error answer the contract's JSON shape. Handlers answer with
/// `ApiError` already; this catches the rest — rejections of axum's own
/// extractors, such as a path segment that is not UTF-8 once
/// percent-decoded, which axum answers in plain text.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(super::json::is_json_content_type);
    // The web console's pages answer errors as pages, on purpose.
    let is_page = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_page {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let body = serde_json::json!({"error": {"code": error_code(status), "message": message}});
    let mut shaped = (status, Json(body)).into_response();
    // Keep what else the answer said (`Allow`, `Retry-After`, …).
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            shaped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    shaped
}

/// The error code for a status no handler named.
pub fn error_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "bad_request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn codes_for_unshaped_errors() {
        for (status, code) in [
            (400, "bad_request"),
            (404, "not_found"),
            (405, "method_not_allowed"),
            (413, "payload_too_large"),
            (418, "bad_request"),
            (429, "rate_limited"),
            (500, "internal"),
            (502, "internal"),
            (503, "unavailable"),
        ] {
            let s = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            assert_eq!(error_code(s), code, "{status}");
        }
    }

    #[tokio::test]
    async fn plain_text_errors_become_json_and_json_stays() {
        use axum::Router;
        use axum::routing::get;
        use tower::ServiceExt;

        let app = Router::new()
            .route(
                "/plain",
                get(|| async { (StatusCode::BAD_REQUEST, [("allow", "GET")], "Invalid URL") }),
            )
            .route(
                "/json",
                get(|| async { crate::api::ApiError::NotFound("sale") }),
            )
            .route("/ok", get(|| async { "fine" }))
            .route(
                "/page",
                get(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        axum::response::Html("<h1>Not found</h1>"),
                    )
                }),
            )
            .layer(axum::middleware::from_fn(json_errors));
        let call = |uri: &'static str| {
            let app = app.clone();
            async move {
                let req = axum::http::Request::get(uri)
                    .body(axum::body::Body::empty())
                    .unwrap_or_default();
                let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
                let status = resp.status();
                let allow = resp.headers().get("allow").cloned();
                let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap_or_default();
                (status, allow, bytes)
            }
        };
        let (status, allow, bytes) = call("/plain").await;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], "bad_request");
        assert_eq!(v["error"]["message"], "Invalid URL");
        assert_eq!(allow, Some(HeaderValue::from_static("GET")));
        let (_, _, bytes) = call("/json").await;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(v["error"]["message"], "sale not found");
        let (status, _, bytes) = call("/ok").await;
        assert_eq!((status, &bytes[..]), (StatusCode::OK, &b"fine"[..]));
        let (status, _, bytes) = call("/page").await;
        assert_eq!(
            (status, &bytes[..]),
            (StatusCode::NOT_FOUND, &b"<h1>Not found</h1>"[..])
        );
    }

    #[test]
    fn only_trace_headers_are_taken() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        h.insert("authorization", HeaderValue::from_static("Bearer x"));
        let got = trace_headers(&h);
        assert_eq!(got.len(), 1);
        assert!(got.contains_key("traceparent"));
    }
}
