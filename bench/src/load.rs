//! The load generators that play the POS: open-loop pacing of single-sale
//! POSTs at a fixed rate, and closed-loop batch POSTs from several clients as
//! fast as ingest answers. Each sale's send and acceptance times go into the
//! phase's `Timeline` under its sequence number; a refused sale is withdrawn
//! so "sent" always means "accepted by ingest, must arrive".
//!
//! Request bodies are serialized once per request from
//! `salesync_e2e::sales::mixed` (valid, varied sales) with a lean reqwest
//! client: the generator shares the machine with what it measures.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::stats::Window;
use salesync_e2e::partner;

use crate::timeline::Timeline;

/// A POST client for one tenant's sales endpoints.
pub struct SalesClient {
    http: reqwest::Client,
    base: String,
    token: String,
    prefix: String,
    /// Sales go as a provider's orders: a flow, products and answers.
    orders: bool,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    index: usize,
    outcome: String,
}

impl SalesClient {
    pub fn new(base_url: &str, token: &str, prefix: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            prefix: prefix.to_string(),
            orders: false,
        })
    }

    /// Every sale placed through A's flow, its lines selling the provider's
    /// products with A's answers (`partner::as_order`).
    #[must_use]
    pub fn with_orders(mut self) -> Self {
        self.orders = true;
        self
    }

    /// Sale `i` of the mix, as an order when the client sends orders.
    fn sale(&self, i: usize) -> salesync_core::domain::sale::SaleInput {
        let sale = salesync_e2e::sales::mixed(&self.prefix, i);
        if self.orders {
            partner::as_order(sale, partner::A_FLOW, &[partner::FIXED, partner::GREEN])
        } else {
            sale
        }
    }

    fn post(&self, path: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    }

    /// `POST /v1/sales` of sale `i`; records it sent, then accepted or withdrawn.
    pub async fn post_single(&self, i: usize, timeline: &Timeline) -> Result<(), String> {
        let sale = self.sale(i);
        let body = serde_json::to_vec(&sale).map_err(|e| e.to_string())?;
        timeline.sent(i, timeline.now());
        let answer = self.post("/v1/sales", body).send().await;
        let now = timeline.now();
        match answer {
            Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                timeline.accepted(i, now);
                Ok(())
            }
            Ok(r) => {
                timeline.withdrawn(i);
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                Err(format!("POST /v1/sales: {status} {text}"))
            }
            Err(e) => {
                timeline.withdrawn(i);
                Err(format!("POST /v1/sales: {e}"))
            }
        }
    }

    /// `POST /v1/sales/batch` of sales `range`; returns how many were not
    /// created (and the first reason), and whether ingest rate-limited us.
    pub async fn post_batch(&self, range: Range<usize>, timeline: &Timeline) -> BatchOutcome {
        let sales: Vec<_> = range.clone().map(|i| self.sale(i)).collect();
        let body = match serde_json::to_vec(&serde_json::json!({ "sales": sales })) {
            Ok(b) => b,
            Err(e) => return BatchOutcome::failed(range.len(), e.to_string(), false),
        };
        let t = timeline.now();
        for i in range.clone() {
            timeline.sent(i, t);
        }
        let mut throttled = false;
        let answer = match self.post("/v1/sales/batch", body).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => {
                r.json::<BatchAnswer>().await.map_err(|e| e.to_string())
            }
            Ok(r) => {
                let status = r.status();
                throttled = status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                Err(format!(
                    "POST /v1/sales/batch: {status} {}",
                    r.text().await.unwrap_or_default()
                ))
            }
            Err(e) => Err(format!("POST /v1/sales/batch: {e}")),
        };
        let now = timeline.now();
        match answer {
            Ok(a) => {
                let mut created = vec![false; range.len()];
                for r in a.results {
                    if r.outcome == "created"
                        && let Some(c) = created.get_mut(r.index)
                    {
                        *c = true;
                    }
                }
                let mut refused = 0;
                for (k, ok) in created.iter().enumerate() {
                    if *ok {
                        timeline.accepted(range.start + k, now);
                    } else {
                        timeline.withdrawn(range.start + k);
                        refused += 1;
                    }
                }
                let why = (refused > 0).then(|| format!("{refused} batch items not created"));
                BatchOutcome {
                    refused,
                    why,
                    throttled: false,
                }
            }
            Err(e) => {
                for i in range.clone() {
                    timeline.withdrawn(i);
                }
                BatchOutcome::failed(range.len(), e, throttled)
            }
        }
    }
}

/// What became of one batch request.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOutcome {
    /// Sales of the batch not created.
    pub refused: u64,
    pub why: Option<String>,
    /// Ingest answered 429: the client should pause before the next request.
    pub throttled: bool,
}

impl BatchOutcome {
    fn failed(n: usize, why: String, throttled: bool) -> Self {
        Self {
            refused: n as u64,
            why: Some(why),
            throttled,
        }
    }
}

/// A client's pause after ingest rate-limited it, so a limit shows as a
/// lower accepted rate rather than a storm of refused requests.
const THROTTLE_PAUSE: Duration = Duration::from_millis(100);

/// How long a phase loads the system, and an optional cap on sales.
#[derive(Clone, Copy, Debug)]
pub struct LoadPlan {
    pub warmup: Duration,
    pub duration: Duration,
    pub max_sales: Option<u64>,
}

impl LoadPlan {
    fn total(&self) -> Duration {
        self.warmup + self.duration
    }
}

/// What a generator reports back.
#[derive(Clone, Debug, Default)]
pub struct LoadOutcome {
    /// The measured window (after warm-up, until the load stopped).
    pub window: Option<Window>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub requests: u64,
}

/// Counts failures from concurrent tasks, keeping the first reason.
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl Errors {
    fn add(&self, n: u64, why: Option<String>) {
        if n == 0 {
            return;
        }
        self.count.fetch_add(n, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = why;
        }
    }

    fn take(&self) -> (u64, Option<String>) {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        (self.count.load(Ordering::Relaxed), first)
    }
}

/// Sales due after `elapsed` at `rate` per second (open-loop schedule).
pub fn due(rate: u32, elapsed: Duration) -> u64 {
    u64::try_from(u128::from(rate) * elapsed.as_nanos() / 1_000_000_000).unwrap_or(u64::MAX)
}

/// The measured window of a load that started at `started` and stopped at
/// `stopped`: from the end of the warm-up to the nominal end or the stop,
/// whichever came first (empty when it stopped during the warm-up).
pub fn measured_window(
    timeline: &Timeline,
    started: Instant,
    stopped: Instant,
    plan: &LoadPlan,
) -> Window {
    let start = timeline.at(started + plan.warmup);
    let end = timeline.at(stopped.min(started + plan.total())).max(start);
    Window { start, end }
}

/// Open loop: single-sale POSTs at `rate`/s whatever the answers take, at
/// most `max_outstanding` unanswered at once (beyond that it falls behind,
/// which shows as a lower offered rate in the results).
pub async fn open_loop(
    client: Arc<SalesClient>,
    timeline: Arc<Timeline>,
    rate: u32,
    max_outstanding: usize,
    plan: LoadPlan,
) -> LoadOutcome {
    let permits = Arc::new(Semaphore::new(max_outstanding));
    let errors = Arc::new(Errors::default());
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut next: u64 = 0;
    let cap = plan.max_sales.unwrap_or(u64::MAX);
    'pacing: loop {
        ticker.tick().await;
        let elapsed = started.elapsed();
        if elapsed >= plan.total() || next >= cap {
            break;
        }
        let target = due(rate, elapsed).min(cap);
        while next < target {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break 'pacing;
            };
            let (client, timeline, errors) = (client.clone(), timeline.clone(), errors.clone());
            let i = next as usize;
            tokio::spawn(async move {
                if let Err(e) = client.post_single(i, &timeline).await {
                    errors.add(1, Some(e));
                }
                drop(permit);
            });
            next += 1;
        }
    }
    let stopped = Instant::now();
    // Every request answered before the phase goes on to draining.
    let _ = permits.acquire_many(max_outstanding as u32).await;
    let (errors, first_error) = errors.take();
    LoadOutcome {
        window: Some(measured_window(&timeline, started, stopped, &plan)),
        errors,
        first_error,
        requests: next,
    }
}

/// Closed loop: `clients` tasks POST batches of `batch` back to back, each
/// pausing while `max_in_flight` accepted sales have not arrived yet.
pub async fn saturate(
    client: Arc<SalesClient>,
    timeline: Arc<Timeline>,
    clients: usize,
    batch: usize,
    max_in_flight: u64,
    plan: LoadPlan,
) -> LoadOutcome {
    let next = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let started = Instant::now();
    let end = started + plan.total();
    let cap = plan.max_sales.unwrap_or(u64::MAX);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, timeline, errors) = (client.clone(), timeline.clone(), errors.clone());
        let (next, requests) = (next.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                while timeline.in_flight() + batch as u64 > max_in_flight && Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                if Instant::now() >= end {
                    return;
                }
                let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                if first >= cap {
                    return;
                }
                let last = (first + batch as u64).min(cap);
                let outcome = client
                    .post_batch(first as usize..last as usize, &timeline)
                    .await;
                requests.fetch_add(1, Ordering::Relaxed);
                errors.add(outcome.refused, outcome.why);
                if outcome.throttled {
                    tokio::time::sleep(THROTTLE_PAUSE).await;
                }
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            errors.add(1, Some(format!("load client failed: {e}")));
        }
    }
    let stopped = Instant::now();
    let (errors, first_error) = errors.take();
    LoadOutcome {
        window: Some(measured_window(&timeline, started, stopped, &plan)),
        errors,
        first_error,
        requests: requests.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_schedule() {
        for (rate, ms, want) in [
            (1000, 0, 0),
            (1000, 1, 1),
            (1000, 1500, 1500),
            (3, 999, 2),
            (3, 1000, 3),
            (250, 10, 2),
            (u32::MAX, 1000, u64::from(u32::MAX)),
        ] {
            assert_eq!(
                due(rate, Duration::from_millis(ms)),
                want,
                "{rate}/s after {ms} ms"
            );
        }
    }

    #[test]
    fn measured_window_follows_the_warmup_and_the_stop() {
        let timeline = Timeline::new();
        let t0 = Instant::now();
        let plan = LoadPlan {
            warmup: Duration::from_secs(5),
            duration: Duration::from_secs(30),
            max_sales: None,
        };
        let at = |s: u64| t0 + Duration::from_secs(s);
        let base = timeline.at(t0);
        let secs = |w: Window| {
            (
                (w.start - base) / 1_000_000_000,
                (w.end - base) / 1_000_000_000,
            )
        };
        // (stopped after s, window in s)
        for (stop, want) in [(35, (5, 35)), (40, (5, 35)), (20, (5, 20)), (3, (5, 5))] {
            let w = measured_window(&timeline, t0, at(stop), &plan);
            assert_eq!(secs(w), want, "stopped at {stop}");
        }
    }
}
