//! Cross-cutting HTTP layers: a tracing span per request (continuing the
//! caller's W3C trace if it sent one) and request counts by matched route
//! and status. Routes are labelled by their pattern (`/v1/sales/{id}`), never
//! by the raw path, so ids cannot blow up metric cardinality.

use std::collections::BTreeMap;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use salesync_core::metrics::Metrics;
use salesync_core::telemetry;

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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
