//! One HTTP attempt at a target: a signed POST (Standard Webhooks headers,
//! `Idempotency-Key`, optional bearer token, W3C `traceparent`), and the
//! answer reduced to an [`HttpOutcome`] plus what the attempt log records.
//! The client is built once so connections to a target are pooled.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use salesync_core::egress::{self, EgressClient, EgressPolicy};
use salesync_core::integration_store::IntegrationSecrets;
use salesync_core::signing;
use salesync_core::telemetry;

use crate::classify::{HttpOutcome, TransportError, parse_retry_after};

/// Most of a response body that is read: small bodies are drained whole so the
/// connection can return to the pool; a huge one is cut off (and its
/// connection dropped) rather than buffered.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

const USER_AGENT: &str = concat!("salesync-forwarder/", env!("CARGO_PKG_VERSION"));

/// One request to send.
#[derive(Debug)]
pub struct Request<'a> {
    pub url: &'a str,
    /// `webhook-id` and `Idempotency-Key`: the same on every attempt.
    pub target_ref: &'a str,
    /// The exact bytes that are signed and sent.
    pub body: &'a [u8],
    pub secrets: &'a IntegrationSecrets,
}

/// What one attempt produced, for the verdict and the attempt log.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub outcome: HttpOutcome,
    /// The response body (up to [`MAX_RESPONSE_BYTES`]), lossily decoded.
    pub response_excerpt: Option<String>,
    /// A body that broke off after the status arrived; the status still counts.
    pub body_error: Option<String>,
}

impl Attempt {
    pub fn status_code(&self) -> Option<u16> {
        match &self.outcome {
            HttpOutcome::Response { status, .. } => Some(*status),
            HttpOutcome::Transport(_) => None,
        }
    }
}

#[derive(Clone)]
pub struct Deliverer {
    client: EgressClient,
}

impl Deliverer {
    /// Sends only where `egress` allows (no redirects: a signed sale must not
    /// be bounced to a host nobody configured).
    pub fn new(
        connect_timeout: Duration,
        request_timeout: Duration,
        egress: EgressPolicy,
    ) -> anyhow::Result<Self> {
        let builder = egress
            .client_builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .user_agent(USER_AGENT)
            .pool_idle_timeout(Duration::from_secs(60));
        let client = EgressClient::new(egress, builder)
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client })
    }

    /// Sends one attempt. Never fails: every failure is an outcome to classify.
    /// Call inside the message's span so `traceparent` continues its trace.
    pub async fn send(&self, req: &Request<'_>) -> Attempt {
        let started_at = Utc::now();
        let clock = Instant::now();
        let unsent = |error: TransportError| Attempt {
            started_at,
            duration: clock.elapsed(),
            outcome: HttpOutcome::Transport(error),
            response_excerpt: None,
            body_error: None,
        };
        let headers = match signed_headers(req, started_at.timestamp()) {
            Ok(h) => h,
            Err(reason) => return unsent(TransportError::InvalidRequest(reason)),
        };
        let post = match self.client.post(req.url) {
            Ok(post) => post,
            Err(refused) => return unsent(refused_target(&refused)),
        };
        let mut response = match post.headers(headers).body(req.body.to_vec()).send().await {
            Ok(r) => r,
            Err(e) => return unsent(transport_error(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let (body, body_error) = read_limited(&mut response, MAX_RESPONSE_BYTES).await;
        let excerpt = String::from_utf8_lossy(&body).into_owned();
        Attempt {
            started_at,
            duration: clock.elapsed(),
            outcome: HttpOutcome::Response {
                status,
                retry_after,
                body_excerpt: excerpt.clone(),
            },
            response_excerpt: Some(excerpt),
            body_error,
        }
    }
}

/// The request headers; `Err` only when the request cannot be signed or a
/// value is not a valid header (a configuration problem, not a network one).
fn signed_headers(req: &Request<'_>, timestamp: i64) -> Result<HeaderMap, String> {
    let signature = signing::sign(
        &req.secrets.signing_secrets,
        req.target_ref,
        timestamp,
        req.body,
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let value =
        |name: &str, v: &str| HeaderValue::from_str(v).map_err(|_| format!("invalid {name} value"));
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("webhook-id", value("webhook-id", req.target_ref)?);
    h.insert(
        "webhook-timestamp",
        value("webhook-timestamp", &timestamp.to_string())?,
    );
    h.insert("webhook-signature", value("webhook-signature", &signature)?);
    h.insert("idempotency-key", value("idempotency-key", req.target_ref)?);
    if let Some(token) = &req.secrets.credentials.bearer_token {
        let mut v = value("authorization", &format!("Bearer {token}"))?;
        v.set_sensitive(true);
        h.insert(AUTHORIZATION, v);
    }
    // A salesync target continues this trace; others ignore the header.
    for (k, v) in telemetry::current_trace_headers() {
        if let (Ok(name), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.insert(name, v);
        }
    }
    Ok(h)
}

/// Reads at most `limit` bytes of the body. A read error after the status
/// line is reported but does not undo the status.
async fn read_limited(response: &mut reqwest::Response, limit: usize) -> (Vec<u8>, Option<String>) {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            Ok(None) => break,
            Err(e) => return (body, Some(format!("response body broke off: {e}"))),
        }
    }
    (body, None)
}

/// A target salesync will not call: no retry changes that, and the request
/// was never sent (so it says nothing about the target's health).
fn refused_target(refused: &egress::Refused) -> TransportError {
    TransportError::InvalidRequest(format!("target refused by salesync: {refused}"))
}

fn transport_error(e: &reqwest::Error) -> TransportError {
    if let Some(refused) = egress::refusal_in(e) {
        return refused_target(refused);
    }
    // The chain carries the useful part ("connection refused", "connection
    // closed before message completed"); the top level is only "error sending request".
    let detail = error_chain(e);
    if e.is_builder() {
        TransportError::InvalidRequest(detail)
    } else if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_connect() {
        TransportError::Connect(detail)
    } else {
        TransportError::Connection(detail)
    }
}

/// An error and its sources, joined with ": ".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::integration::TargetCredentials;

    fn secrets(token: Option<&str>) -> IntegrationSecrets {
        IntegrationSecrets {
            credentials: TargetCredentials {
                bearer_token: token.map(str::to_string),
            },
            signing_secrets: vec![signing::generate_secret()],
        }
    }

    #[test]
    fn headers_are_signed_standard_webhooks() {
        let s = secrets(Some("tok"));
        let req = Request {
            url: "http://127.0.0.1:1/",
            target_ref: "ref-1",
            body: b"{\"a\":1}",
            secrets: &s,
        };
        let h = signed_headers(&req, 1_700_000_000).unwrap();
        let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(get("webhook-id"), "ref-1");
        assert_eq!(get("idempotency-key"), "ref-1");
        assert_eq!(get("webhook-timestamp"), "1700000000");
        assert_eq!(get("authorization"), "Bearer tok");
        assert_eq!(get("content-type"), "application/json");
        assert_eq!(
            signing::verify(
                &s.signing_secrets[0],
                "ref-1",
                "1700000000",
                get("webhook-signature"),
                b"{\"a\":1}",
                1_700_000_000,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn no_bearer_without_credentials() {
        let s = secrets(None);
        let req = Request {
            url: "http://x/",
            target_ref: "r",
            body: b"{}",
            secrets: &s,
        };
        assert!(
            signed_headers(&req, 1)
                .unwrap()
                .get(AUTHORIZATION)
                .is_none()
        );
    }

    #[test]
    fn unsignable_requests_are_refused() {
        let mut s = secrets(None);
        s.signing_secrets.clear();
        let req = Request {
            url: "http://x/",
            target_ref: "r",
            body: b"{}",
            secrets: &s,
        };
        assert!(signed_headers(&req, 1).is_err());
        let s = secrets(Some("bad\ntoken"));
        let req = Request { secrets: &s, ..req };
        assert!(signed_headers(&req, 1).is_err());
    }

    #[tokio::test]
    async fn unreachable_and_invalid_targets_are_transport_errors() {
        let loopback = egress::parse_allow_nets("127.0.0.0/8").unwrap();
        let d = Deliverer::new(
            Duration::from_millis(500),
            Duration::from_secs(1),
            EgressPolicy::new(loopback),
        )
        .unwrap();
        let s = secrets(None);
        let mut req = Request {
            url: "not a url",
            target_ref: "r",
            body: b"{}",
            secrets: &s,
        };
        let a = d.send(&req).await;
        assert!(
            matches!(
                a.outcome,
                HttpOutcome::Transport(TransportError::InvalidRequest(_))
            ),
            "{:?}",
            a.outcome
        );
        // Port 1 on localhost: nothing listens, the connection is refused.
        req.url = "http://127.0.0.1:1/";
        let a = d.send(&req).await;
        assert!(
            matches!(
                a.outcome,
                HttpOutcome::Transport(TransportError::Connect(_))
            ),
            "{:?}",
            a.outcome
        );
    }
}
