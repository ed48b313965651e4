//! `CountingTarget`: the downstream system of the benchmark — an HTTP server
//! that does as little as possible per request: note the arrival time, read
//! the sale's external id from the webhook body (`data.sale.external_id`) or
//! from a salesync target's body (`sale_number`),
//! record the arrival in the phase's `Timeline`, answer 200. The harness's
//! verifying `TestTarget` keeps every request and checks signatures, which
//! is right for tests and too much work for a throughput measurement on a
//! two-core box.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::timeline::Timeline;

#[derive(Deserialize)]
struct Hook {
    data: HookData,
}

#[derive(Deserialize)]
struct HookData {
    sale: HookSale,
}

#[derive(Deserialize)]
struct HookSale {
    external_id: String,
}

/// A sale as a salesync target receives it (`POST /v1/sales`): its
/// external id is the delivery's, the source's is the sale number.
#[derive(Deserialize)]
struct ForwardedSale {
    sale_number: String,
}

/// The source sale's external id in a `sale.forwarded` webhook body, or in
/// the body a salesync target receives (`sale_number`); other fields are
/// skipped without being built.
pub fn external_id_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Hook>(body)
        .map(|h| h.data.sale.external_id)
        .or_else(|_| serde_json::from_slice::<ForwardedSale>(body).map(|s| s.sale_number))
        .ok()
}

/// The benchmark's sequence number in an external id `<prefix>-<n>` (the
/// shape `salesync_e2e::sales::mixed` gives).
pub fn sale_index(external_id: &str, prefix: &str) -> Option<usize> {
    external_id
        .strip_prefix(prefix)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

struct Shared {
    timeline: Arc<Timeline>,
    prefix: String,
}

async fn receive(State(shared): State<Arc<Shared>>, body: Bytes) -> impl IntoResponse {
    // Read the clock first: parsing is the target's time, not salesync's.
    let now = shared.timeline.now();
    match external_id_of(&body).and_then(|id| sale_index(&id, &shared.prefix)) {
        Some(i) => shared.timeline.arrived(i, now),
        None => shared.timeline.unknown(),
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
}

pub struct CountingTarget {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl CountingTarget {
    /// Listens on a free port of 127.0.0.1; every POST to any path counts.
    pub async fn start(timeline: Arc<Timeline>, prefix: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            timeline,
            prefix: prefix.to_string(),
        });
        let app = Router::new().fallback(receive).with_state(shared);
        let stop = CancellationToken::new();
        let until = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await
            {
                eprintln!("salesync-bench: counting target stopped: {e}");
            }
        });
        Ok(Self { addr, stop, task })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for CountingTarget {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_external_id_in_webhook_bodies() {
        for (body, want) in [
            (
                r#"{"type":"sale.forwarded","timestamp":"t","data":{"sale_id":"x","tenant_id":"y","status":"paid","sale":{"external_id":"b1-00042","lines":[]}}}"#,
                Some("b1-00042"),
            ),
            (
                r#"{"external_id":"0193-delivery","sale_number":"b1-00007","flow":"door","lines":[]}"#,
                Some("b1-00007"),
            ),
            (r#"{"data":{"sale":{}}}"#, None),
            (r#"{"data":{"sale":{"external_id":7}}}"#, None),
            ("not json", None),
            ("", None),
        ] {
            assert_eq!(external_id_of(body.as_bytes()).as_deref(), want, "{body}");
        }
    }

    #[test]
    fn sequence_numbers_from_external_ids() {
        for (id, want) in [
            ("fixed-00042", Some(42)),
            ("fixed-1234567", Some(1_234_567)),
            ("fixed-", None),
            ("fixed42", None),
            ("other-00042", None),
            ("fixed-x1", None),
            ("fixed--1", None),
        ] {
            assert_eq!(sale_index(id, "fixed"), want, "{id}");
        }
    }

    #[tokio::test]
    async fn counts_arrivals_over_http() {
        let timeline = Arc::new(Timeline::new());
        timeline.sent(3, 0);
        let target = CountingTarget::start(timeline.clone(), "p")
            .await
            .expect("target");
        let http = reqwest::Client::new();
        for body in [
            r#"{"data":{"sale":{"external_id":"p-00003"}}}"#,
            r#"{"data":{"sale":{"external_id":"p-00003"}}}"#,
            r#"{"nothing":1}"#,
        ] {
            let r = http
                .post(target.url("/hook"))
                .body(body)
                .send()
                .await
                .expect("post");
            assert_eq!(r.status(), reqwest::StatusCode::OK);
        }
        let r = timeline.snapshot();
        assert!(r.arrived.get(3).copied().flatten().is_some());
        assert_eq!((r.duplicates, r.unknown), (1, 1));
        assert_eq!(timeline.delivered_count(), 1);
    }
}
