//! `TestTarget`: a real HTTP server standing in for a downstream system (an
//! accounting connector, a tenant's status webhook). Its behaviour is set per
//! test — succeed, fail n times, stall, answer garbage, rate-limit — and it
//! records every request, verifies each Standard Webhooks signature against
//! the secret it was given, and serves a status lookup (`POST /status`) whose
//! answers the test controls.
//!
//! The decision "what do I answer to attempt k of key K" is the pure
//! function `respond`, unit-tested below; the server is the I/O around it.
//!
//! Misbehaviour below HTTP (hang, close the connection mid-response) needs
//! the socket: every connection is wrapped in a `CutIo` whose writes a
//! handler can limit to n more bytes, after which the connection breaks —
//! hyper then drops it, and the caller sees a truncated answer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::IncomingStream;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How the target answers requests (other than `POST /status`).
#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// 200 `{"ok": true}`.
    Ok,
    /// Per idempotency key: the first `n` attempts get `status`, then 200.
    FailTimes(u32, u16),
    /// Every request gets `status`.
    Always(u16),
    /// Each request, independently: `status` with `percent` % probability,
    /// otherwise 200.
    FailRandomly(u8, u16),
    /// Every request waits this long, then 200 (the caller has usually gone).
    Stall(Duration),
    /// Per key: the first `n` attempts wait `duration`, then 200 at once.
    StallTimes(u32, Duration),
    /// 200 with a body that is not JSON.
    Garbage,
    /// Per key: the first attempt gets 429 with `Retry-After: secs`, then 200.
    RetryAfter(u64),
    /// Holds every request this long (past the caller's timeout), then
    /// closes the connection without a word: no status line, no effect.
    Hang(Duration),
    /// Closes the connection in the middle of the status line: the caller
    /// gets no answer, and the target books nothing.
    CloseInHead,
    /// Sends a complete `200` head and part of the body, then closes the
    /// connection: the target booked it, the answer breaks off.
    CloseInBody,
}

/// Bytes of the response written before `CloseInHead` cuts: "HTTP/1.1 200".
pub const HEAD_CUT_BYTES: usize = 12;
/// Bytes written before `CloseInBody` cuts: past any head we send (about 150
/// bytes), well short of the padded body.
pub const BODY_CUT_BYTES: usize = 600;
/// Size of the body `CloseInBody` announces (and never completes).
const PADDED_BODY_BYTES: usize = 4096;

/// What the server does for one request: optionally wait, then answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub delay: Option<Duration>,
    /// The status the caller receives; 0 when no complete status line
    /// reaches it (the connection is cut first).
    pub status: u16,
    pub retry_after: Option<u64>,
    pub garbage: bool,
    /// Break the connection after this many bytes of the response.
    pub cut_after: Option<usize>,
}

impl Reply {
    fn status(status: u16) -> Self {
        Self {
            delay: None,
            status,
            retry_after: None,
            garbage: false,
            cut_after: None,
        }
    }
}

/// The reply to the `attempt`-th request (1-based) carrying one key; `roll`
/// is a random draw in [0, 1) for the behaviours that need one.
pub fn respond(behaviour: &Behaviour, attempt: u32, roll: f64) -> Reply {
    match behaviour {
        Behaviour::Ok => Reply::status(200),
        Behaviour::FailRandomly(percent, status) if roll * 100.0 < f64::from(*percent) => {
            Reply::status(*status)
        }
        Behaviour::FailRandomly(..) => Reply::status(200),
        Behaviour::FailTimes(n, status) if attempt <= *n => Reply::status(*status),
        Behaviour::FailTimes(..) => Reply::status(200),
        Behaviour::Always(status) => Reply::status(*status),
        Behaviour::Stall(d) => Reply {
            delay: Some(*d),
            ..Reply::status(200)
        },
        Behaviour::StallTimes(n, d) if attempt <= *n => Reply {
            delay: Some(*d),
            ..Reply::status(200)
        },
        Behaviour::StallTimes(..) => Reply::status(200),
        Behaviour::Garbage => Reply {
            garbage: true,
            ..Reply::status(200)
        },
        Behaviour::RetryAfter(secs) if attempt <= 1 => Reply {
            retry_after: Some(*secs),
            ..Reply::status(429)
        },
        Behaviour::RetryAfter(_) => Reply::status(200),
        Behaviour::Hang(d) => Reply {
            delay: Some(*d),
            cut_after: Some(0),
            ..Reply::status(0)
        },
        Behaviour::CloseInHead => Reply {
            cut_after: Some(HEAD_CUT_BYTES),
            ..Reply::status(0)
        },
        Behaviour::CloseInBody => Reply {
            cut_after: Some(BODY_CUT_BYTES),
            ..Reply::status(200)
        },
    }
}

/// One request as the target saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<String>,
    pub webhook_signature: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The W3C trace context the caller sent (its trace continues here).
    pub traceparent: Option<String>,
    /// The body as JSON (`Value::Null` when it was not JSON).
    pub body: Value,
    pub raw_body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// 1-based count of requests with this idempotency key so far.
    pub attempt: u32,
    /// `None` when no secret was set; otherwise whether it verified.
    pub signature_ok: Option<bool>,
    /// The status the target answered with (0: none reached the caller —
    /// a hang or a connection cut inside the head).
    pub answered: u16,
}

#[derive(Default)]
struct Inner {
    behaviour: Option<Behaviour>,
    secrets: Vec<String>,
    requests: Vec<RecordedRequest>,
    attempts: HashMap<String, u32>,
    statuses: BTreeMap<String, String>,
    status_lookups: u64,
    bad_signatures: u64,
    unsigned: u64,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic in a handler leaves valid data behind; keep serving.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct TestTarget {
    addr: SocketAddr,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl TestTarget {
    /// Starts a target on 127.0.0.1 (free port) with `behaviour`.
    pub async fn start(behaviour: Behaviour) -> anyhow::Result<Self> {
        let state = Shared::default();
        state.lock().behaviour = Some(behaviour);
        let app = Router::new()
            .route("/status", post(status_lookup))
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                CutListener(listener),
                app.into_make_service_with_connect_info::<Cutter>(),
            )
            .await;
        });
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A URL under the target (any path but `/status` is recorded).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The status lookup endpoint (`status_url` of an integration).
    pub fn status_url(&self) -> String {
        self.url("/status")
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.state.lock().behaviour = Some(behaviour);
    }

    /// The signing secret to verify requests with (from integration creation
    /// or `PUT /v1/webhook`); replaces earlier ones.
    pub fn set_secret(&self, secret: &str) {
        self.state.lock().secrets = vec![secret.to_string()];
    }

    /// What `POST /status` reports for `id` (a delivery's target_ref).
    pub fn set_status(&self, id: &str, status: &str) {
        self.state
            .lock()
            .statuses
            .insert(id.to_string(), status.to_string());
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    pub fn total_requests(&self) -> usize {
        self.state.lock().requests.len()
    }

    /// Distinct idempotency keys seen (requests without one are not counted).
    pub fn distinct_keys(&self) -> BTreeSet<String> {
        self.state
            .lock()
            .requests
            .iter()
            .filter_map(|r| r.idempotency_key.clone())
            .collect()
    }

    /// Keys the target accepted (answered 2xx at least once): its deduplicated
    /// view of what it booked.
    pub fn accepted_keys(&self) -> BTreeSet<String> {
        self.state
            .lock()
            .requests
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .filter_map(|r| r.idempotency_key.clone())
            .collect()
    }

    /// For each key, how many requests carried it.
    pub fn attempts_per_key(&self) -> BTreeMap<String, u32> {
        self.state
            .lock()
            .attempts
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Requests whose signature did not verify against the set secret.
    pub fn bad_signatures(&self) -> u64 {
        self.state.lock().bad_signatures
    }

    /// Requests that arrived while no secret was set (not verifiable).
    pub fn unsigned_or_unverified(&self) -> u64 {
        self.state.lock().unsigned
    }

    pub fn status_lookups(&self) -> u64 {
        self.state.lock().status_lookups
    }

    /// The most requests (other than status lookups) that were being
    /// answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().max_in_flight
    }

    /// For each key, how many requests carrying it were answered 2xx.
    pub fn accepted_per_key(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for r in self.state.lock().requests.iter() {
            if let Some(k) = r
                .idempotency_key
                .as_ref()
                .filter(|_| (200..300).contains(&r.answered))
            {
                *out.entry(k.clone()).or_insert(0) += 1;
            }
        }
        out
    }
}

/// Counts one request as in flight until dropped (also when the caller goes
/// away mid-answer and the handler is cancelled).
struct InFlight(Shared);

impl InFlight {
    fn start(state: &Shared, inner: &mut Inner) -> Self {
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
    }
}

impl Drop for TestTarget {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Verifies a request's Standard Webhooks signature against any of `secrets`.
pub fn signature_valid(
    secrets: &[String],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> bool {
    let (Some(id), Some(ts), Some(sig)) = (id, timestamp, signature) else {
        return false;
    };
    secrets
        .iter()
        .any(|s| salesync_core::signing::verify(s, id, ts, sig, body, now, 300).is_ok())
}

async fn record(
    State(state): State<Shared>,
    ConnectInfo(cutter): ConnectInfo<Cutter>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = header(&headers, "idempotency-key");
    let webhook_id = header(&headers, "webhook-id");
    let webhook_timestamp = header(&headers, "webhook-timestamp");
    let webhook_signature = header(&headers, "webhook-signature");
    let (reply, _in_flight) = {
        let mut inner = state.lock();
        let in_flight = InFlight::start(&state, &mut inner);
        let count_key = key
            .clone()
            .or_else(|| webhook_id.clone())
            .unwrap_or_default();
        let attempt = {
            let n = inner.attempts.entry(count_key).or_insert(0);
            *n += 1;
            *n
        };
        let behaviour = inner.behaviour.clone().unwrap_or(Behaviour::Ok);
        let reply = respond(&behaviour, attempt, rand::random::<f64>());
        let signature_ok = (!inner.secrets.is_empty()).then(|| {
            signature_valid(
                &inner.secrets,
                webhook_id.as_deref(),
                webhook_timestamp.as_deref(),
                webhook_signature.as_deref(),
                &body,
                Utc::now().timestamp(),
            )
        });
        match signature_ok {
            Some(false) => inner.bad_signatures += 1,
            None => inner.unsigned += 1,
            Some(true) => {}
        }
        inner.requests.push(RecordedRequest {
            method: method.to_string(),
            path: uri.path().to_string(),
            idempotency_key: key,
            webhook_id,
            webhook_timestamp,
            webhook_signature,
            authorization: header(&headers, "authorization"),
            content_type: header(&headers, "content-type"),
            traceparent: header(&headers, "traceparent"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw_body: body.to_vec(),
            received_at: Utc::now(),
            attempt,
            signature_ok,
            answered: reply.status,
        });
        (reply, in_flight)
    };
    if let Some(d) = reply.delay {
        tokio::time::sleep(d).await;
    }
    if let Some(bytes) = reply.cut_after {
        // The head says 200 and promises a long body; the cut decides how
        // much of it the caller gets.
        cutter.arm(bytes);
        let padded = format!(
            "{{\"ok\":true,\"pad\":\"{}\"}}",
            "x".repeat(PADDED_BODY_BYTES)
        );
        return (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            padded,
        )
            .into_response();
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if reply.garbage {
        return (status, "<html>definitely not json").into_response();
    }
    let mut resp = (status, axum::Json(json!({"ok": status.is_success()}))).into_response();
    if let Some(secs) = reply.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

async fn status_lookup(State(state): State<Shared>, body: Bytes) -> Response {
    let ids: Vec<String> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("ids").cloned())
        .and_then(|ids| serde_json::from_value(ids).ok())
        .unwrap_or_default();
    let mut inner = state.lock();
    inner.status_lookups += 1;
    let statuses: Vec<Value> = ids
        .iter()
        .filter_map(|id| {
            inner
                .statuses
                .get(id)
                .map(|s| json!({"id": id, "status": s}))
        })
        .collect();
    axum::Json(json!({ "statuses": statuses })).into_response()
}

/// A handler's switch over its own connection: not armed (-1), or how many
/// more response bytes may be written before the connection breaks.
#[derive(Clone, Debug)]
pub struct Cutter(Arc<AtomicI64>);

impl Default for Cutter {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(-1)))
    }
}

impl Cutter {
    /// Let `bytes` more bytes through, then break the connection.
    pub fn arm(&self, bytes: usize) {
        self.0
            .store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// How many of `wanted` bytes may be written now: `None` = all (not
    /// armed), `Some(0)` = the connection is to break.
    fn allowance(&self, wanted: usize) -> Option<usize> {
        allowance(self.0.load(Ordering::SeqCst), wanted)
    }

    fn spent(&self, bytes: usize) {
        if self.0.load(Ordering::SeqCst) >= 0 {
            self.0.fetch_sub(bytes as i64, Ordering::SeqCst);
        }
    }
}

/// Pure part of `Cutter::allowance`.
fn allowance(budget: i64, wanted: usize) -> Option<usize> {
    if budget < 0 {
        return None;
    }
    Some(wanted.min(usize::try_from(budget).unwrap_or(usize::MAX)))
}

/// The target's listener: plain TCP, each connection wrapped in a `CutIo`
/// whose `Cutter` handlers receive as `ConnectInfo`.
struct CutListener(tokio::net::TcpListener);

impl axum::serve::Listener for CutListener {
    type Io = CutIo;
    type Addr = Cutter;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, _)) => {
                    let cutter = Cutter::default();
                    return (
                        CutIo {
                            stream,
                            cutter: cutter.clone(),
                        },
                        cutter,
                    );
                }
                // Out of file descriptors and the like: breathe, go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Cutter::default())
    }
}

impl Connected<IncomingStream<'_, CutListener>> for Cutter {
    fn connect_info(stream: IncomingStream<'_, CutListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP connection whose writes stop (with an error, so hyper drops the
/// connection) once its `Cutter`'s budget is spent.
struct CutIo {
    stream: TcpStream,
    cutter: Cutter,
}

impl AsyncRead for CutIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CutIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match this.cutter.allowance(buf.len()) {
            None => Pin::new(&mut this.stream).poll_write(cx, buf),
            Some(0) if !buf.is_empty() => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "connection cut by the test target",
            ))),
            Some(n) => {
                let written = Pin::new(&mut this.stream).poll_write(cx, &buf[..n]);
                if let Poll::Ready(Ok(w)) = &written {
                    this.cutter.spent(*w);
                }
                written
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respond_follows_the_behaviour_per_attempt() {
        let ms = Duration::from_millis;
        for (behaviour, attempt, status, delay, retry_after, garbage) in [
            (Behaviour::Ok, 1, 200, None, None, false),
            (Behaviour::FailTimes(2, 503), 1, 503, None, None, false),
            (Behaviour::FailTimes(2, 503), 2, 503, None, None, false),
            (Behaviour::FailTimes(2, 503), 3, 200, None, None, false),
            (Behaviour::Always(400), 7, 400, None, None, false),
            (Behaviour::Stall(ms(50)), 3, 200, Some(ms(50)), None, false),
            (
                Behaviour::StallTimes(1, ms(50)),
                1,
                200,
                Some(ms(50)),
                None,
                false,
            ),
            (Behaviour::StallTimes(1, ms(50)), 2, 200, None, None, false),
            (Behaviour::Garbage, 1, 200, None, None, true),
            (Behaviour::RetryAfter(2), 1, 429, None, Some(2), false),
            (Behaviour::RetryAfter(2), 2, 200, None, None, false),
            // A roll of 0.5: under 60 % fails, 50 % does not.
            (Behaviour::FailRandomly(60, 503), 1, 503, None, None, false),
            (Behaviour::FailRandomly(50, 503), 1, 200, None, None, false),
        ] {
            let r = respond(&behaviour, attempt, 0.5);
            assert_eq!(
                r,
                Reply {
                    delay,
                    status,
                    retry_after,
                    garbage,
                    cut_after: None,
                },
                "{behaviour:?} attempt {attempt}"
            );
        }
    }

    #[test]
    fn connection_level_misbehaviour_cuts_and_books_nothing_without_a_head() {
        let s = Duration::from_secs;
        for (behaviour, attempt, status, delay, cut) in [
            (Behaviour::Hang(s(5)), 1, 0, Some(s(5)), 0),
            (Behaviour::Hang(s(5)), 4, 0, Some(s(5)), 0),
            (Behaviour::CloseInHead, 1, 0, None, HEAD_CUT_BYTES),
            (Behaviour::CloseInHead, 2, 0, None, HEAD_CUT_BYTES),
            (Behaviour::CloseInBody, 1, 200, None, BODY_CUT_BYTES),
        ] {
            let r = respond(&behaviour, attempt, 0.5);
            assert_eq!(
                (r.status, r.delay, r.cut_after),
                (status, delay, Some(cut)),
                "{behaviour:?} attempt {attempt}"
            );
        }
    }

    #[test]
    fn allowance_limits_writes_once_armed() {
        for (budget, wanted, want) in [
            (-1, 100, None),
            (0, 100, Some(0)),
            (12, 100, Some(12)),
            (600, 100, Some(100)),
            (5, 0, Some(0)),
        ] {
            assert_eq!(allowance(budget, wanted), want, "{budget} {wanted}");
        }
    }

    /// What a caller sees of each cut, through a real connection.
    #[tokio::test]
    async fn cuts_reach_the_caller_as_broken_answers() {
        let target = TestTarget::start(Behaviour::CloseInHead)
            .await
            .expect("start");
        let http = reqwest::Client::new();
        let send = || {
            http.post(target.url("/hook"))
                .header("idempotency-key", "k1")
                .body("{}")
                .send()
        };
        let head = send().await;
        assert!(head.is_err(), "no status line: {head:?}");

        target.set_behaviour(Behaviour::CloseInBody);
        let resp = send().await.expect("a complete head");
        assert_eq!(resp.status(), 200);
        assert!(resp.bytes().await.is_err(), "the body breaks off");

        target.set_behaviour(Behaviour::Hang(Duration::from_millis(300)));
        let hung = send().await;
        assert!(hung.is_err(), "a hang ends without an answer: {hung:?}");

        target.set_behaviour(Behaviour::Ok);
        assert_eq!(send().await.expect("ok").status(), 200);
        let answered: Vec<u16> = target.requests().iter().map(|r| r.answered).collect();
        assert_eq!(answered, [0, 200, 0, 200]);
        assert_eq!(target.accepted_keys().len(), 1);
    }

    #[test]
    fn signatures_verify_only_with_the_right_secret() {
        let secret = salesync_core::signing::generate_secret();
        let other = salesync_core::signing::generate_secret();
        let now = Utc::now().timestamp();
        let body = br#"{"a":1}"#;
        let sig = salesync_core::signing::sign(std::slice::from_ref(&secret), "id-1", now, body)
            .expect("sign");
        let ts = now.to_string();
        let check = |secrets: &[String], id: Option<&str>, sig: Option<&str>, body: &[u8]| {
            signature_valid(secrets, id, Some(&ts), sig, body, now)
        };
        assert!(check(
            std::slice::from_ref(&secret),
            Some("id-1"),
            Some(&sig),
            body
        ));
        assert!(check(
            &[other.clone(), secret.clone()],
            Some("id-1"),
            Some(&sig),
            body
        ));
        assert!(!check(
            std::slice::from_ref(&other),
            Some("id-1"),
            Some(&sig),
            body
        ));
        assert!(!check(
            std::slice::from_ref(&secret),
            Some("id-2"),
            Some(&sig),
            body
        ));
        assert!(!check(
            std::slice::from_ref(&secret),
            Some("id-1"),
            None,
            body
        ));
        assert!(!check(
            std::slice::from_ref(&secret),
            Some("id-1"),
            Some(&sig),
            b"{}"
        ));
    }

    #[tokio::test]
    async fn target_records_counts_and_serves_statuses() {
        let target = TestTarget::start(Behaviour::FailTimes(1, 503))
            .await
            .expect("start");
        let secret = salesync_core::signing::generate_secret();
        target.set_secret(&secret);
        let http = reqwest::Client::new();
        let body = br#"{"x":1}"#.to_vec();
        let now = Utc::now().timestamp();
        let sig = salesync_core::signing::sign(std::slice::from_ref(&secret), "k1", now, &body)
            .expect("sign");
        let mut codes = Vec::new();
        for _ in 0..2 {
            let r = http
                .post(target.url("/hook"))
                .header("idempotency-key", "k1")
                .header("webhook-id", "k1")
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", &sig)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("send");
            codes.push(r.status().as_u16());
        }
        assert_eq!(codes, [503, 200]);
        assert_eq!(target.total_requests(), 2);
        assert_eq!(target.distinct_keys().len(), 1);
        assert_eq!(target.accepted_keys().len(), 1);
        assert_eq!(target.bad_signatures(), 0);
        assert_eq!(target.requests()[0].body, json!({"x": 1}));

        target.set_status("k1", "processed");
        let r: Value = http
            .post(target.status_url())
            .json(&json!({"ids": ["k1", "unknown"]}))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(
            r,
            json!({"statuses": [{"id": "k1", "status": "processed"}]})
        );
        assert_eq!(target.status_lookups(), 1);
        assert_eq!(
            target.total_requests(),
            2,
            "status lookups are not recorded as deliveries"
        );
    }
}
