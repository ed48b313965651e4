//! Calls to a provider's partner routes (`GET /v1/integration`,
//! `GET /v1/integration/catalogue`, `PUT /v1/integration/subscription`),
//! through the egress policy like every URL a tenant chose. Each failure is
//! classified, so that a person is told what is wrong in plain words
//! (`connection`) and a sync knows whether to try again later.

use std::time::Duration;

use reqwest::Method;
use salesync_core::egress::{EgressClient, EgressPolicy, refusal_in};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::routes::integration::{GrantedCatalogue, IntegrationAccess};

/// Longest a provider may take to answer one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from a provider (a catalogue of many products).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Why a call to the provider failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("the provider's name does not resolve: {0}")]
    Dns(String),
    #[error("the provider refused the connection: {0}")]
    Refused(String),
    #[error("the provider did not answer within {} s", CALL_TIMEOUT.as_secs())]
    Timeout,
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("salesync does not call this address: {0}")]
    Blocked(String),
    #[error("the provider answered HTTP {status}: {excerpt}")]
    Http { status: u16, excerpt: String },
    #[error("the provider rejected the token (HTTP 401)")]
    TokenRejected,
    #[error("the token may not read this (HTTP 403): {0}")]
    Forbidden(String),
    #[error("the provider's answer is not what a salesync provider sends: {0}")]
    Garbage(String),
}

/// The provider at `base_url` (its control plane), called with `token`.
pub struct Provider<'a> {
    pub http: &'a EgressClient,
    pub base_url: &'a str,
    pub token: &'a str,
}

/// The HTTP client for provider calls: only where `egress` allows, each
/// call cut off after `CALL_TIMEOUT`.
pub fn http_client(egress: &EgressPolicy) -> anyhow::Result<EgressClient> {
    let builder = egress
        .client_builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("salesync-console/", env!("CARGO_PKG_VERSION")));
    EgressClient::new(egress.clone(), builder)
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))
}

#[derive(Serialize)]
struct Subscription<'a> {
    url: &'a str,
}

/// B's answer to a subscription: the secret it signs callbacks with.
#[derive(serde::Deserialize, Debug)]
pub struct Subscribed {
    pub secret: String,
}

impl Provider<'_> {
    /// Who the token is, as the provider sees it.
    pub async fn access(&self) -> Result<IntegrationAccess, CallError> {
        self.call(Method::GET, "/v1/integration", None::<&()>).await
    }

    /// What the token's organization is granted.
    pub async fn catalogue(&self) -> Result<GrantedCatalogue, CallError> {
        self.call(Method::GET, "/v1/integration/catalogue", None::<&()>)
            .await
    }

    /// Asks the provider to call `url` when the granted catalogue changes.
    pub async fn subscribe(&self, url: &str) -> Result<Subscribed, CallError> {
        self.call(
            Method::PUT,
            "/v1/integration/subscription",
            Some(&Subscription { url }),
        )
        .await
    }

    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.base_url.trim_end_matches('/'));
        let mut req = self
            .http
            .request(method, &url)
            .map_err(|r| CallError::Blocked(r.to_string()))?
            .bearer_auth(self.token);
        // The provider's request continues this one's trace.
        for (k, v) in salesync_core::telemetry::current_trace_headers() {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| transport(&e))?;
        let status = resp.status().as_u16();
        let bytes = read_capped(resp).await?;
        match status {
            200..=299 => {
                serde_json::from_slice(&bytes).map_err(|e| CallError::Garbage(e.to_string()))
            }
            401 => Err(CallError::TokenRejected),
            403 => Err(CallError::Forbidden(error_message(&bytes))),
            _ => Err(CallError::Http {
                status,
                excerpt: error_message(&bytes),
            }),
        }
    }
}

/// The body, refused past `MAX_ANSWER_BYTES`.
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(&e))? {
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CallError::Garbage(format!(
                "answer larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The error's `message` when the body is salesync's error shape, else the
/// start of the body.
fn error_message(bytes: &[u8]) -> String {
    let parsed: Option<String> = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string));
    let text = parsed.unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
    text.chars().take(200).collect()
}

/// Classifies a transport failure by what its chain of sources says.
fn transport(e: &reqwest::Error) -> CallError {
    if let Some(refused) = refusal_in(e) {
        return CallError::Blocked(refused.to_string());
    }
    if e.is_timeout() {
        return CallError::Timeout;
    }
    let chain = chain_text(e);
    let lower = chain.to_lowercase();
    if lower.contains("dns error") || lower.contains("failed to lookup") {
        CallError::Dns(chain)
    } else if ["tls", "ssl", "certificate", "handshake"]
        .iter()
        .any(|w| lower.contains(w))
    {
        CallError::Tls(chain)
    } else if e.is_connect() {
        CallError::Refused(chain)
    } else {
        CallError::Garbage(chain)
    }
}

/// Every message down the error's chain of sources, joined.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ").chars().take(300).collect()
}
