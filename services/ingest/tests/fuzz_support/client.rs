//! Sends campaign requests through the real router, in process, and holds
//! every answer to the API's promises: never a 5xx, never a panic (each
//! request runs in its own task, so a panicking handler shows up as a failed
//! join instead of tearing the campaign down), and every 4xx is the
//! contract's JSON error `{"error": {"code", "message", "fields"?}}` naming
//! the problem. Findings are collected, not thrown, so one run reports every
//! kind of failure at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use serde_json::Value;
use tokio::runtime::Handle;
use tower::ServiceExt;

/// Which statuses a request may get, on top of the rules every answer obeys.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// Any status below 500.
    Any,
    /// One of these.
    OneOf(Vec<u16>),
}

/// One request of the campaign.
pub struct Req {
    /// The phase or case family, for the summary.
    pub label: &'static str,
    pub method: Method,
    pub uri: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Body,
    /// A short printable form of the body, for findings.
    pub excerpt: String,
    pub expect: Expect,
    /// Fields an error answer must name one of (in `fields`, or a batch
    /// item's); empty: any.
    pub names: Vec<String>,
}

impl Req {
    pub fn new(label: &'static str, method: Method, uri: impl Into<String>) -> Self {
        Self {
            label,
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Body::empty(),
            excerpt: String::new(),
            expect: Expect::Any,
            names: Vec::new(),
        }
    }

    pub fn post(label: &'static str, uri: impl Into<String>) -> Self {
        Self::new(label, Method::POST, uri)
    }

    /// `Authorization: Bearer <token>`; a token no header can carry is left out.
    pub fn bearer(self, token: &str) -> Self {
        self.header_bytes("authorization", format!("Bearer {token}").as_bytes())
    }

    /// Adds a header; values no header can carry (CR, LF, NUL) are left out,
    /// since no HTTP client could send them either.
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            self.headers.push((n, v));
        }
        self
    }

    /// A body with `Content-Type: application/json`.
    pub fn json(self, body: Vec<u8>) -> Self {
        self.header_bytes("content-type", b"application/json")
            .body(body)
    }

    /// A body with whatever headers were set.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.excerpt = excerpt(&body);
        self.body = Body::from(body);
        self
    }

    /// A body of unknown length (chunked), as a streaming client sends it.
    pub fn streamed(mut self, chunk: Vec<u8>, chunks: usize) -> Self {
        self.excerpt = format!("{} chunks of {}", chunks, excerpt(&chunk));
        let stream = futures_stream(chunk, chunks);
        self.body = Body::from_stream(stream);
        self
    }

    pub fn expect(mut self, statuses: &[u16]) -> Self {
        self.expect = Expect::OneOf(statuses.to_vec());
        self
    }

    /// The error answer must name `field` (or another field given so).
    pub fn naming(mut self, field: impl Into<String>) -> Self {
        self.names.push(field.into());
        self
    }
}

fn futures_stream(
    chunk: Vec<u8>,
    chunks: usize,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::iter((0..chunks).map(move |_| Ok(chunk.clone())))
}

/// The first bytes of a body, printable.
pub fn excerpt(bytes: &[u8]) -> String {
    // `FUZZ_EXCERPT_BYTES` shows more of each finding when debugging one.
    static MAX_BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let max = *MAX_BYTES.get_or_init(|| {
        std::env::var("FUZZ_EXCERPT_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(240)
    });
    let cut = &bytes[..bytes.len().min(max)];
    let mut s = String::from_utf8_lossy(cut).escape_debug().to_string();
    if bytes.len() > max {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 0 when the handler panicked.
    pub status: u16,
    pub body: Value,
}

#[derive(Default, Debug)]
pub struct Tally {
    pub requests: u64,
    pub server_errors: u64,
    pub panics: u64,
    pub by_label: BTreeMap<&'static str, u64>,
    pub by_status: BTreeMap<u16, u64>,
    pub findings: Vec<String>,
    /// Ids of the sales the API said it created (single and batch).
    pub created: BTreeSet<String>,
}

/// The router under fire and what it answered so far.
pub struct Client {
    app: Router,
    rt: Handle,
    tally: Mutex<Tally>,
}

impl Client {
    pub fn new(app: Router, rt: Handle) -> Self {
        Self {
            app,
            rt,
            tally: Mutex::new(Tally::default()),
        }
    }

    /// Sends from synchronous code (proptest bodies).
    pub fn send(&self, req: Req) -> Answer {
        self.rt.block_on(self.send_async(req))
    }

    pub async fn send_async(&self, req: Req) -> Answer {
        let Req {
            label,
            method,
            uri,
            headers,
            body,
            excerpt,
            expect,
            names,
        } = req;
        let what = format!("{method} {} {excerpt}", clip(&uri, 160));
        let mut builder = Request::builder().method(method).uri(uri.as_str());
        for (n, v) in headers {
            builder = builder.header(n, v);
        }
        let request = match builder.body(body) {
            Ok(r) => r,
            Err(e) => {
                // A URI no client could send: a bug in the campaign itself.
                self.finding(label, &format!("unsendable request ({e})"), &what);
                return Answer {
                    status: 0,
                    body: Value::Null,
                };
            }
        };
        let app = self.app.clone();
        let joined = tokio::spawn(async move {
            let resp = match app.oneshot(request).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            (status, content_type, bytes)
        })
        .await;

        let mut t = self.lock();
        t.requests += 1;
        *t.by_label.entry(label).or_default() += 1;
        let (status, content_type, bytes) = match joined {
            Ok(r) => r,
            Err(e) => {
                t.panics += 1;
                t.findings
                    .push(format!("{label}: handler panicked ({e}) — {what}"));
                return Answer {
                    status: 0,
                    body: Value::Null,
                };
            }
        };
        *t.by_status.entry(status).or_default() += 1;
        if status >= 500 {
            t.server_errors += 1;
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        for problem in judge(status, &content_type, &bytes, &expect) {
            t.findings.push(format!("{label}: {problem} — {what}"));
        }
        if !names.is_empty() && !names.iter().any(|f| names_field(&body, f)) {
            t.findings.push(format!(
                "{label}: {status} does not name {names:?}: {} — {what}",
                clip(&body.to_string(), 300)
            ));
        }
        if (200..300).contains(&status) {
            record_created(&mut t.created, &uri, &body);
        }
        Answer { status, body }
    }

    /// Records a finding that the campaign itself made (e.g. a round trip
    /// that did not give back what was sent).
    pub fn finding(&self, label: &str, problem: &str, what: &str) {
        self.lock()
            .findings
            .push(format!("{label}: {problem} — {what}"));
    }

    pub fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        // A poisoned lock only means another campaign thread panicked; the
        // tally is still worth reporting.
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

fn record_created(created: &mut BTreeSet<String>, uri: &str, body: &Value) {
    if uri == "/v1/sales"
        && body["duplicate"] == false
        && let Some(id) = body["id"].as_str()
    {
        created.insert(id.to_string());
    }
    if uri == "/v1/sales/batch" {
        for item in body["results"].as_array().into_iter().flatten() {
            if item["outcome"] == "created"
                && let Some(id) = item["id"].as_str()
            {
                created.insert(id.to_string());
            }
        }
    }
}

/// Whether an error answer (or a batch item's error) names `field`.
pub fn names_field(body: &Value, field: &str) -> bool {
    let errors = std::iter::once(&body["error"]).chain(
        body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| &item["error"]),
    );
    errors
        .filter_map(|e| e["fields"].as_array())
        .flatten()
        .any(|f| f["field"] == field)
}

/// Everything wrong with one answer. Pure, so the rules are tested below.
pub fn judge(status: u16, content_type: &str, bytes: &[u8], expect: &Expect) -> Vec<String> {
    let mut problems = Vec::new();
    let body: Option<Value> = serde_json::from_slice(bytes).ok();
    if status >= 500 {
        problems.push(format!("server error {status}: {}", excerpt(bytes)));
    }
    if let Expect::OneOf(allowed) = expect
        && !allowed.contains(&status)
    {
        problems.push(format!(
            "status {status}, expected one of {allowed:?}: {}",
            excerpt(bytes)
        ));
    }
    if (400..600).contains(&status) {
        if !content_type.starts_with("application/json") {
            problems.push(format!(
                "{status} answered with Content-Type '{content_type}', not JSON: {}",
                excerpt(bytes)
            ));
        }
        match body.as_ref().map(|b| &b["error"]) {
            Some(e) if e.is_object() => problems.extend(error_problems(status, e)),
            _ => problems.push(format!(
                "{status} without an error object: {}",
                excerpt(bytes)
            )),
        }
    }
    if (200..300).contains(&status)
        && let Some(results) = body.as_ref().and_then(|b| b["results"].as_array())
    {
        for item in results {
            let outcome = item["outcome"].as_str().unwrap_or("");
            if !["created", "duplicate", "conflict", "invalid"].contains(&outcome) {
                problems.push(format!("batch item with outcome '{outcome}': {item}"));
            }
            if matches!(outcome, "invalid" | "conflict") {
                match item.get("error") {
                    Some(e) if e.is_object() => problems.extend(error_problems(422, e)),
                    _ => problems.push(format!("batch item '{outcome}' without an error: {item}")),
                }
            }
        }
    }
    problems
}

/// The rules for one error object: a snake_case code, a message, and for
/// validation errors the fields at fault.
fn error_problems(status: u16, e: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let code = e["code"].as_str().unwrap_or("");
    let snake = !code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !snake {
        problems.push(format!(
            "{status}: error code {:?} is not snake_case",
            e["code"]
        ));
    }
    if e["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
        problems.push(format!("{status}: error without a message: {e}"));
    }
    let fields = e.get("fields");
    if code == "validation_failed" && fields.and_then(Value::as_array).is_none_or(Vec::is_empty) {
        problems.push(format!("{status}: validation error naming no field: {e}"));
    }
    for f in fields.and_then(Value::as_array).into_iter().flatten() {
        let named = f["field"].as_str().is_some()
            && f["problem"].as_str().is_some_and(|p| !p.trim().is_empty());
        if !named {
            problems.push(format!("{status}: field error without field/problem: {f}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_answers() {
        let json = "application/json";
        let ok_err = br#"{"error":{"code":"invalid_json","message":"malformed JSON"}}"#;
        let validation = br#"{"error":{"code":"validation_failed","message":"m","fields":[{"field":"a","problem":"p"}]}}"#;
        let cases: Vec<(u16, &str, &[u8], Expect, usize)> = vec![
            (400, json, ok_err, Expect::Any, 0),
            (422, json, validation, Expect::Any, 0),
            (
                422,
                json,
                br#"{"error":{"code":"validation_failed","message":"m"}}"#,
                Expect::Any,
                1,
            ),
            (400, "text/plain", b"Failed to parse", Expect::Any, 2),
            (503, json, br#"{"error":{"code":"unavailable","message":"m"}}"#, Expect::Any, 1),
            (400, json, br#"{"error":{"code":"Bad Code","message":""}}"#, Expect::Any, 2),
            (201, json, b"{}", Expect::OneOf(vec![400]), 1),
            (200, json, br#"{"results":[{"outcome":"invalid"}]}"#, Expect::Any, 1),
            (
                200,
                json,
                br#"{"results":[{"outcome":"invalid","error":{"code":"invalid_json","message":"m"}},{"outcome":"created"}]}"#,
                Expect::Any,
                0,
            ),
        ];
        for (status, ct, body, expect, n) in cases {
            let got = judge(status, ct, body, &expect);
            assert_eq!(got.len(), n, "{status} {}: {got:#?}", excerpt(body));
        }
    }

    #[test]
    fn naming_fields() {
        let one: Value = serde_json::from_slice(
            br#"{"error":{"code":"validation_failed","message":"m","fields":[{"field":"flow","problem":"p"}]}}"#,
        )
        .unwrap_or_default();
        let batch: Value = serde_json::from_slice(
            br#"{"results":[{"outcome":"invalid","error":{"code":"validation_failed","message":"m","fields":[{"field":"lines[0].answers.x","problem":"p"}]}}]}"#,
        )
        .unwrap_or_default();
        assert!(names_field(&one, "flow"));
        assert!(!names_field(&one, "flo"));
        assert!(names_field(&batch, "lines[0].answers.x"));
        assert!(!names_field(&Value::Null, "flow"));
    }
}
