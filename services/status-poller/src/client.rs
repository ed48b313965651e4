//! Sends one lookup request to a target and turns whatever comes back into
//! either the answer (`lookup::parse_response`) or a classified failure the
//! poller logs and counts. The HTTP client is built once per process, with a
//! total timeout so a stalled target costs at most `REQUEST_TIMEOUT`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderName, HeaderValue};
use salesync_core::egress::{self, EgressClient, EgressPolicy};
use salesync_core::metrics::Metrics;
use salesync_core::telemetry;

use crate::lookup::{self, LookupError, LookupRequest};

/// Largest answer read from a target; a real answer for a chunk of ≤500 ids
/// is a small fraction of this, anything bigger is garbage we don't buffer.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The process's HTTP client for lookups: it reaches only what `egress` allows.
pub fn build_http_client(
    request_timeout: Duration,
    egress: EgressPolicy,
) -> anyhow::Result<EgressClient> {
    let builder = egress
        .client_builder()
        // Covers connect, headers and body: a target that stalls mid-body is cut off too.
        .timeout(request_timeout)
        .connect_timeout(request_timeout.min(Duration::from_secs(5)))
        .user_agent(concat!(
            "salesync-status-poller/",
            env!("CARGO_PKG_VERSION")
        ));
    EgressClient::new(egress, builder)
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("target did not answer within the request timeout")]
    Timeout,
    #[error("cannot reach target: {0}")]
    Transport(String),
    #[error("target answered HTTP {0}")]
    Status(u16),
    #[error("target answer exceeds {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("target answer refused: {0}")]
    Answer(#[from] LookupError),
    #[error("credentials unusable: {0}")]
    Credentials(String),
    #[error("target refused by salesync: {0}")]
    Refused(#[from] egress::Refused),
}

impl PollError {
    /// Metric label: a small fixed set.
    pub fn outcome(&self) -> &'static str {
        match self {
            PollError::Timeout => "timeout",
            PollError::Transport(_) => "unreachable",
            PollError::Status(_) => "http_error",
            PollError::TooLarge | PollError::Answer(_) => "bad_response",
            PollError::Credentials(_) => "credentials",
            PollError::Refused(_) => "refused",
        }
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        if let Some(refused) = egress::refusal_in(&e) {
            PollError::Refused(refused.clone())
        } else if e.is_timeout() {
            PollError::Timeout
        } else {
            // Without the URL: it may carry query secrets and is logged elsewhere.
            PollError::Transport(e.without_url().to_string())
        }
    }
}

/// Asks the target; target ref → reported status.
pub async fn lookup(
    http: &EgressClient,
    metrics: &Metrics,
    req: &LookupRequest,
    bearer_token: Option<&str>,
) -> Result<BTreeMap<String, String>, PollError> {
    let mut builder = http
        .post(&req.url)?
        .header(ACCEPT, "application/json")
        .json(&req.body);
    if let Some(token) = bearer_token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| PollError::Credentials("bearer token is not a valid header".into()))?;
        builder = builder.header(AUTHORIZATION, value);
    }
    // Continue the current trace at the target (`traceparent`, `tracestate`).
    for (k, v) in telemetry::current_trace_headers() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            builder = builder.header(name, value);
        }
    }
    let started = Instant::now();
    let result = send(builder).await;
    metrics.target_request("status_poll", started.elapsed().as_secs_f64());
    let body = result?;
    Ok(lookup::parse_response(req.protocol, &body)?)
}

async fn send(builder: reqwest::RequestBuilder) -> Result<Vec<u8>, PollError> {
    let mut response = builder.send().await.map_err(PollError::from_reqwest)?;
    let status = response.status();
    if !status.is_success() {
        return Err(PollError::Status(status.as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(PollError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(PollError::from_reqwest)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(PollError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
