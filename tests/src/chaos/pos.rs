//! The POS of the campaign: a steady stream of sales at a set rate, half as
//! batch requests and half as single ones, posted by a few concurrent
//! clients across the ingest replicas. Like a real till it never gives up on
//! a sale: a connection error, a timeout, a 5xx (503 while the database is
//! down) or a 429 is retried with the SAME payload — safe because ingest
//! dedupes by external id — and a sale counts as accepted only once a 2xx
//! answer named its id.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::sales::mixed;

#[derive(Clone, Debug)]
pub struct PosConfig {
    /// External ids are `<prefix>-<index>`.
    pub prefix: String,
    pub sales: usize,
    /// Sales per second, averaged (batches go out whole when due).
    pub rate: f64,
    /// Sales per batch request, and per run of single requests.
    pub batch: usize,
    /// Concurrent clients.
    pub clients: usize,
}

/// What one request (or a batch of them) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unit {
    Batch(Range<usize>),
    Single(usize),
}

impl Unit {
    fn first(&self) -> usize {
        match self {
            Unit::Batch(r) => r.start,
            Unit::Single(i) => *i,
        }
    }
}

/// The requests to make, in order: chunks of `batch` sales, alternately one
/// batch request and `batch` single requests.
pub fn units(sales: usize, batch: usize) -> Vec<Unit> {
    let batch = batch.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut chunk = 0;
    while start < sales {
        let end = (start + batch).min(sales);
        if chunk % 2 == 0 {
            out.push(Unit::Batch(start..end));
        } else {
            out.extend((start..end).map(Unit::Single));
        }
        start = end;
        chunk += 1;
    }
    out
}

/// What an answer means to the POS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Try the same payload again; the label says why (for the summary).
    Retry(&'static str),
    /// A permanent refusal of a valid sale: a finding.
    Refused,
}

/// `None` = no HTTP answer (connection refused or broken, timeout).
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        None => Verdict::Retry("no answer (connection error or timeout)"),
        Some(200 | 201) => Verdict::Accepted,
        Some(429) => Verdict::Retry("429 rate limited"),
        Some(503) => Verdict::Retry("503 unavailable"),
        Some(500..=599) => Verdict::Retry("other 5xx"),
        Some(_) => Verdict::Refused,
    }
}

/// One accepted sale.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub sale_id: String,
    /// When the POS got the 2xx (the start of the sale's delivery delay).
    pub accepted_at: DateTime<Utc>,
}

/// Everything the POS did, by sale index.
#[derive(Clone, Debug, Default)]
pub struct PosLog {
    pub accepted: BTreeMap<usize, Accepted>,
    /// Sales refused for good, with the answer.
    pub refused: BTreeMap<usize, String>,
    /// Retries by reason.
    pub retries: BTreeMap<String, u64>,
    pub batch_requests: u64,
    pub single_requests: u64,
}

impl PosLog {
    pub fn retry_count(&self) -> u64 {
        self.retries.values().sum()
    }
}

/// Posts `cfg.sales` sales through `apis` (one client per ingest replica,
/// with the tenant's token) until done or `stop`; progress goes to
/// `on_accepted` (the number accepted so far).
pub async fn run(
    cfg: &PosConfig,
    apis: &[Api],
    log: &Mutex<PosLog>,
    stop: &CancellationToken,
    on_accepted: &(dyn Fn(usize) + Sync),
) {
    let plan = units(cfg.sales, cfg.batch);
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let rate = if cfg.rate > 0.0 { cfg.rate } else { f64::MAX };
    let client = |worker: usize| {
        let plan = &plan;
        let next = &next;
        async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(unit) = plan.get(n) else { return };
                let due = started + Duration::from_secs_f64(unit.first() as f64 / rate);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(due) => {}
                }
                let done = post_unit(unit, &cfg.prefix, apis, worker, log, stop).await;
                if !done {
                    return;
                }
                let accepted = lock(log).accepted.len();
                on_accepted(accepted);
            }
        }
    };
    futures::future::join_all((0..cfg.clients.max(1)).map(client)).await;
}

fn lock(log: &Mutex<PosLog>) -> std::sync::MutexGuard<'_, PosLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// Posts one unit until its answer is final; `false` if `stop` came first.
async fn post_unit(
    unit: &Unit,
    prefix: &str,
    apis: &[Api],
    worker: usize,
    log: &Mutex<PosLog>,
    stop: &CancellationToken,
) -> bool {
    let (path, body) = match unit {
        Unit::Batch(r) => {
            let sales: Vec<_> = r.clone().map(|i| mixed(prefix, i)).collect();
            ("/v1/sales/batch", json!({ "sales": sales }))
        }
        Unit::Single(i) => (
            "/v1/sales",
            serde_json::to_value(mixed(prefix, *i)).unwrap_or(Value::Null),
        ),
    };
    let mut wait = Duration::from_millis(100);
    let mut attempt = 0usize;
    loop {
        // Each retry goes to the next ingest replica: one may be down.
        let Some(api) = apis.get((worker + attempt) % apis.len().max(1)) else {
            return false;
        };
        attempt += 1;
        let answer = api.raw(Method::POST, path, Some(&body)).await.ok();
        let status = answer.as_ref().map(|(s, _)| s.as_u16());
        match verdict(status) {
            Verdict::Accepted => {
                let body = answer.map(|(_, b)| b).unwrap_or(Value::Null);
                record(unit, &body, log);
                return true;
            }
            Verdict::Refused => {
                let text = format!("{status:?}: {}", answer.map(|(_, b)| b).unwrap_or_default());
                let mut log = lock(log);
                for i in indexes(unit) {
                    log.refused.insert(i, text.clone());
                }
                return true;
            }
            Verdict::Retry(reason) => {
                *lock(log).retries.entry(reason.to_string()).or_default() += 1;
                let pause = if status == Some(429) {
                    Duration::from_secs(1)
                } else {
                    wait
                };
                wait = (wait * 2).min(Duration::from_secs(2));
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

fn indexes(unit: &Unit) -> Vec<usize> {
    match unit {
        Unit::Batch(r) => r.clone().collect(),
        Unit::Single(i) => vec![*i],
    }
}

/// Books a 2xx answer: the sale's id, or per item of a batch.
fn record(unit: &Unit, body: &Value, log: &Mutex<PosLog>) {
    let now = Utc::now();
    let mut log = lock(log);
    match unit {
        Unit::Single(i) => {
            log.single_requests += 1;
            match body.get("id").and_then(Value::as_str) {
                Some(id) => {
                    log.accepted.insert(
                        *i,
                        Accepted {
                            sale_id: id.to_string(),
                            accepted_at: now,
                        },
                    );
                }
                None => {
                    log.refused.insert(*i, format!("2xx without an id: {body}"));
                }
            }
        }
        Unit::Batch(r) => {
            log.batch_requests += 1;
            let results = body
                .get("results")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (offset, i) in r.clone().enumerate() {
                let item = results
                    .iter()
                    .find(|x| x.get("index").and_then(Value::as_u64) == Some(offset as u64));
                match batch_item(item) {
                    Ok(id) => {
                        log.accepted.insert(
                            i,
                            Accepted {
                                sale_id: id,
                                accepted_at: now,
                            },
                        );
                    }
                    Err(why) => {
                        log.refused.insert(i, why);
                    }
                }
            }
        }
    }
}

/// The id of an item the batch accepted (created, or already there).
pub fn batch_item(item: Option<&Value>) -> Result<String, String> {
    let Some(item) = item else {
        return Err("missing from the batch answer".into());
    };
    let outcome = item.get("outcome").and_then(Value::as_str).unwrap_or("");
    match (outcome, item.get("id").and_then(Value::as_str)) {
        ("created" | "duplicate", Some(id)) => Ok(id.to_string()),
        _ => Err(format!("batch item refused: {item}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_alternate_batches_and_singles() {
        assert_eq!(
            units(7, 2),
            vec![
                Unit::Batch(0..2),
                Unit::Single(2),
                Unit::Single(3),
                Unit::Batch(4..6),
                Unit::Single(6),
            ]
        );
        assert_eq!(units(0, 5), vec![]);
        assert_eq!(
            units(3, 0),
            vec![Unit::Batch(0..1), Unit::Single(1), Unit::Batch(2..3)]
        );
        let all: usize = units(1000, 50).iter().map(|u| indexes(u).len()).sum();
        assert_eq!(all, 1000);
    }

    #[test]
    fn verdicts_retry_what_may_pass_later() {
        for (status, want) in [
            (
                None,
                Verdict::Retry("no answer (connection error or timeout)"),
            ),
            (Some(200), Verdict::Accepted),
            (Some(201), Verdict::Accepted),
            (Some(429), Verdict::Retry("429 rate limited")),
            (Some(503), Verdict::Retry("503 unavailable")),
            (Some(500), Verdict::Retry("other 5xx")),
            (Some(502), Verdict::Retry("other 5xx")),
            (Some(400), Verdict::Refused),
            (Some(409), Verdict::Refused),
            (Some(422), Verdict::Refused),
        ] {
            assert_eq!(verdict(status), want, "{status:?}");
        }
    }

    #[test]
    fn batch_items_count_when_created_or_duplicate() {
        let id = "0190a1b2-0000-7000-8000-000000000001";
        for (item, ok) in [
            (
                Some(json!({"index": 0, "outcome": "created", "id": id})),
                true,
            ),
            (
                Some(json!({"index": 0, "outcome": "duplicate", "id": id})),
                true,
            ),
            (Some(json!({"index": 0, "outcome": "conflict"})), false),
            (
                Some(json!({"index": 0, "outcome": "invalid", "error": {}})),
                false,
            ),
            (Some(json!({"index": 0, "outcome": "created"})), false),
            (None, false),
        ] {
            assert_eq!(batch_item(item.as_ref()).is_ok(), ok, "{item:?}");
        }
    }
}
