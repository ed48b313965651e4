//! Prometheus metrics. One `Metrics` value per process, registered once and
//! shared by handle; each service uses the families that apply to it.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;

/// A circuit breaker's state as `salesync_target_breaker_state` exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    consumed: Family<Labels, Counter>,
    published: Family<Labels, Counter>,
    retried: Family<Labels, Counter>,
    dead_lettered: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
    decisions: Family<Labels, Counter>,
    http_requests: Family<Labels, Counter>,
    target_request_seconds: Family<Labels, Histogram>,
    end_to_end_seconds: Histogram,
    outbox_pending: Gauge,
    status_polls: Family<Labels, Counter>,
    status_updates: Counter,
    status_unmapped: Family<Labels, Counter>,
    breaker_transitions: Family<Labels, Counter>,
    deferred: Family<Labels, Counter>,
    retention_rows: Family<Labels, Counter>,
    target_concurrency_share: Family<Labels, Gauge>,
    forwarder_replicas_live: Gauge,
    outbox_oldest_age: Gauge<f64, AtomicU64>,
    breaker_state: Family<Labels, Gauge>,
    integration_failures: Family<Labels, Counter>,
    integrations_paused: Family<Labels, Gauge>,
    /// The label sets last exported as paused, to remove resumed ones.
    paused_last: std::sync::Mutex<Vec<Labels>>,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "salesync",
            [(
                std::borrow::Cow::Borrowed("service"),
                std::borrow::Cow::Owned(service.to_string()),
            )]
            .into_iter(),
        );
        let consumed = Family::<Labels, Counter>::default();
        let published = Family::<Labels, Counter>::default();
        let retried = Family::<Labels, Counter>::default();
        let dead_lettered = Family::<Labels, Counter>::default();
        let deliveries = Family::<Labels, Counter>::default();
        let decisions = Family::<Labels, Counter>::default();
        let http_requests = Family::<Labels, Counter>::default();
        let target_request_seconds =
            Family::<Labels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let end_to_end_seconds = latency_histogram();
        let outbox_pending = Gauge::default();
        let status_polls = Family::<Labels, Counter>::default();
        let status_updates = Counter::default();
        let status_unmapped = Family::<Labels, Counter>::default();
        let breaker_transitions = Family::<Labels, Counter>::default();
        let deferred = Family::<Labels, Counter>::default();
        let retention_rows = Family::<Labels, Counter>::default();
        let target_concurrency_share = Family::<Labels, Gauge>::default();
        let forwarder_replicas_live = Gauge::default();
        let outbox_oldest_age = Gauge::<f64, AtomicU64>::default();
        let breaker_state = Family::<Labels, Gauge>::default();
        let integration_failures = Family::<Labels, Counter>::default();
        let integrations_paused = Family::<Labels, Gauge>::default();
        registry.register(
            "messages_consumed",
            "Messages taken from a queue, by queue and outcome",
            consumed.clone(),
        );
        registry.register(
            "messages_published",
            "Messages confirmed by the broker, by routing key",
            published.clone(),
        );
        registry.register(
            "deliveries_retried",
            "Delivery attempts scheduled for retry, by reason",
            retried.clone(),
        );
        registry.register(
            "messages_dead_lettered",
            "Messages sent to the dead-letter queue, by reason",
            dead_lettered.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts to targets, by purpose and outcome",
            deliveries.clone(),
        );
        registry.register(
            "forwarding_decisions",
            "Forwarding decisions recorded (sale x integration), by outcome",
            decisions.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests served, by route and status",
            http_requests.clone(),
        );
        registry.register(
            "target_request_seconds",
            "Duration of HTTP requests to targets",
            target_request_seconds.clone(),
        );
        registry.register(
            "sale_delivery_seconds",
            "Time from a sale's acceptance by ingest to its delivery at the target",
            end_to_end_seconds.clone(),
        );
        registry.register(
            "outbox_pending",
            "Outbox rows seen waiting to be published at the last relay pass",
            outbox_pending.clone(),
        );
        registry.register(
            "status_polls",
            "Status lookup requests to targets, by outcome",
            status_polls.clone(),
        );
        registry.register(
            "status_updates",
            "Target status changes found and queued for the source",
            status_updates.clone(),
        );
        registry.register(
            "status_updates_unmapped",
            "Target statuses not synchronised because the integration does not map them, by target kind",
            status_unmapped.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Circuit breaker state changes of targets, by the state entered",
            breaker_transitions.clone(),
        );
        registry.register(
            "deliveries_deferred",
            "Deliveries put back to a delay queue without an attempt, by reason",
            deferred.clone(),
        );
        registry.register(
            "retention_rows",
            "Rows retention removed or cleared, by what (deliveries, excerpts, decisions, status_history) and action",
            retention_rows.clone(),
        );
        registry.register(
            "target_concurrency_share",
            "Requests this forwarder replica may have in flight to a target (its share of TARGET_CONCURRENCY)",
            target_concurrency_share.clone(),
        );
        registry.register(
            "forwarder_replicas_live",
            "Forwarder replicas this one last saw heartbeating, itself included",
            forwarder_replicas_live.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet published (0: the outbox is empty), sampled every few seconds",
            outbox_oldest_age.clone(),
        );
        registry.register(
            "target_breaker_state",
            "Circuit breaker state of each target as this forwarder replica holds it: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        registry.register(
            "integration_delivery_failures",
            "Failed delivery attempts by integration and outcome (retry, dead)",
            integration_failures.clone(),
        );
        registry.register(
            "integration_paused",
            "1 for each paused integration, by integration, tenant and who paused it; refreshed every pause check",
            integrations_paused.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                consumed,
                published,
                retried,
                dead_lettered,
                deliveries,
                decisions,
                http_requests,
                target_request_seconds,
                end_to_end_seconds,
                outbox_pending,
                status_polls,
                status_updates,
                status_unmapped,
                breaker_transitions,
                deferred,
                retention_rows,
                target_concurrency_share,
                forwarder_replicas_live,
                outbox_oldest_age,
                breaker_state,
                integration_failures,
                integrations_paused,
                paused_last: std::sync::Mutex::default(),
            }),
        }
    }

    pub fn consumed(&self, queue: &str, outcome: &str, n: u64) {
        self.inner
            .consumed
            .get_or_create(&vec![("queue", queue.into()), ("outcome", outcome.into())])
            .inc_by(n);
    }
    pub fn published(&self, routing_key: &str, n: u64) {
        self.inner
            .published
            .get_or_create(&vec![("routing_key", routing_key.into())])
            .inc_by(n);
    }
    pub fn retried(&self, reason: &str) {
        self.inner
            .retried
            .get_or_create(&vec![("reason", reason.into())])
            .inc();
    }
    pub fn dead_lettered(&self, reason_kind: &str) {
        self.inner
            .dead_lettered
            .get_or_create(&vec![("reason", reason_kind.into())])
            .inc();
    }
    pub fn delivery(&self, purpose: &str, outcome: &str) {
        self.inner
            .deliveries
            .get_or_create(&vec![
                ("purpose", purpose.into()),
                ("outcome", outcome.into()),
            ])
            .inc();
    }
    /// One forwarding decision (condition-filter): `outcome` is a small fixed
    /// set such as "forwarded", "skipped", "already_forwarded".
    pub fn decision(&self, outcome: &str) {
        self.inner
            .decisions
            .get_or_create(&vec![("outcome", outcome.into())])
            .inc();
    }
    pub fn http_request(&self, route: &str, status: u16) {
        self.inner
            .http_requests
            .get_or_create(&vec![
                ("route", route.into()),
                ("status", status.to_string()),
            ])
            .inc();
    }
    pub fn target_request(&self, purpose: &str, seconds: f64) {
        self.inner
            .target_request_seconds
            .get_or_create(&vec![("purpose", purpose.into())])
            .observe(seconds);
    }
    pub fn sale_delivered_after(&self, seconds: f64) {
        self.inner.end_to_end_seconds.observe(seconds);
    }
    pub fn outbox_pending(&self, n: i64) {
        self.inner.outbox_pending.set(n);
    }
    /// One status lookup request (status-poller); `outcome` is a small fixed
    /// set such as "ok", "timeout", "http_error", "bad_response".
    pub fn status_poll(&self, outcome: &str) {
        self.inner
            .status_polls
            .get_or_create(&vec![("outcome", outcome.into())])
            .inc();
    }
    /// Target status changes queued (status-poller).
    pub fn status_updates(&self, n: u64) {
        self.inner.status_updates.inc_by(n);
    }
    /// A target status skipped as unmapped (status-poller); `target_kind`
    /// is "salesync" or "webhook".
    pub fn status_unmapped(&self, target_kind: &str) {
        self.inner
            .status_unmapped
            .get_or_create(&vec![("target_kind", target_kind.into())])
            .inc();
    }

    /// A target's circuit breaker entered `state` ("open", "half_open", "closed").
    pub fn breaker_transition(&self, state: &str) {
        self.inner
            .breaker_transitions
            .get_or_create(&vec![("state", state.into())])
            .inc();
    }
    /// A delivery was not sent but put back to a delay queue (forwarder);
    /// `reason` is a small fixed set such as "circuit_open", "target_busy".
    pub fn deferred(&self, reason: &str) {
        self.inner
            .deferred
            .get_or_create(&vec![("reason", reason.into())])
            .inc();
    }

    /// Rows a retention pass dealt with (status-poller): `what` is the kind
    /// of row, `action` "removed", "cleared" or "marked".
    pub fn retention_rows(&self, what: &str, action: &str, n: u64) {
        if n > 0 {
            self.inner
                .retention_rows
                .get_or_create(&vec![("what", what.into()), ("action", action.into())])
                .inc_by(n);
        }
    }

    /// This forwarder replica's share of a target's concurrency limit.
    pub fn target_concurrency_share(&self, target: &str, slots: usize) {
        self.inner
            .target_concurrency_share
            .get_or_create(&vec![("target", target.into())])
            .set(i64::try_from(slots).unwrap_or(i64::MAX));
    }
    /// Forwarder replicas live in this one's last view of the membership.
    pub fn forwarder_replicas_live(&self, n: usize) {
        self.inner
            .forwarder_replicas_live
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Seconds the oldest unpublished outbox row has waited (0: none waits).
    pub fn outbox_oldest_age(&self, seconds: f64) {
        self.inner.outbox_oldest_age.set(seconds);
    }

    /// A target's breaker as this replica holds it.
    pub fn breaker_state(&self, target: &str, state: BreakerState) {
        self.inner
            .breaker_state
            .get_or_create(&vec![("target", target.into())])
            .set(state as i64);
    }

    /// A failed attempt of one integration's delivery; `outcome` is
    /// "retry" or "dead". Only failures are counted per integration, so the
    /// series are as many as the integrations that fail.
    pub fn integration_failure(&self, integration: &str, outcome: &str) {
        self.inner
            .integration_failures
            .get_or_create(&vec![
                ("integration", integration.into()),
                ("outcome", outcome.into()),
            ])
            .inc();
    }

    /// Replaces the set of paused integrations: (integration, tenant,
    /// paused_by) of each. Resumed ones disappear.
    pub fn integrations_paused(&self, paused: &[(String, String, String)]) {
        let family = &self.inner.integrations_paused;
        let now: Vec<Labels> = paused
            .iter()
            .map(|(integration, tenant, by)| {
                vec![
                    ("integration", integration.clone()),
                    ("tenant", tenant.clone()),
                    ("paused_by", by.clone()),
                ]
            })
            .collect();
        // Set the new ones before removing the old, so a scrape in between
        // never sees a paused integration missing.
        for labels in &now {
            family.get_or_create(labels).set(1);
        }
        let mut last = self
            .inner
            .paused_last
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for gone in last.iter().filter(|l| !now.contains(l)) {
            family.remove(gone);
        }
        *last = now;
    }

    /// The Prometheus text exposition of every registered family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(m: &Metrics, name: &str) -> Vec<String> {
        m.render()
            .lines()
            .filter(|l| l.starts_with(name))
            .map(String::from)
            .collect()
    }

    #[test]
    fn paused_integrations_follow_the_latest_set() {
        let m = Metrics::new("console");
        let p = |i: &str| (i.to_string(), "t1".to_string(), "tenant".to_string());
        m.integrations_paused(&[p("a"), p("b")]);
        assert_eq!(lines_of(&m, "salesync_integration_paused{").len(), 2);
        m.integrations_paused(&[p("b")]);
        let left = lines_of(&m, "salesync_integration_paused{");
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].contains(r#"integration="b""#) && left[0].ends_with(" 1"));
        m.integrations_paused(&[]);
        assert!(lines_of(&m, "salesync_integration_paused{").is_empty());
    }

    #[test]
    fn new_gauges_and_counters_render() {
        let m = Metrics::new("forwarder");
        m.breaker_state("example.org:443", BreakerState::Open);
        m.integration_failure("i1", "dead");
        m.outbox_oldest_age(2.5);
        let text = m.render();
        assert!(
            text.contains(
                r#"salesync_target_breaker_state{service="forwarder",target="example.org:443"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"salesync_integration_delivery_failures_total{service="forwarder",integration="i1",outcome="dead"} 1"#
        ), "{text}");
        assert!(
            text.contains(r#"salesync_outbox_oldest_age_seconds{service="forwarder"} 2.5"#),
            "{text}"
        );
    }
}
