//! The polling loop. Each tick: claim the due deliveries (one statement,
//! replicas never share one; deliveries of integrations that don't poll are
//! retired on the way), ask each integration's target about its
//! deliveries in chunks (one request per chunk, different targets
//! concurrently), plan the changes, and write them with their `StatusUpdate`
//! messages in one transaction; the outbox relay publishes them.
//!
//! A target that fails, answers garbage or stalls is logged and counted and
//! simply asked again next interval (the claim already moved its deliveries'
//! `poll_after`); it never holds up the others beyond one request timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use salesync_core::crypto::SecretBox;
use salesync_core::domain::ids::IntegrationId;
use salesync_core::metrics::Metrics;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::client::{self, PollError};
use crate::lookup;
use crate::plan::{self, Change, ClaimedDelivery};
use crate::store::{self, LoadedIntegration};

/// How the poller paces and sizes its work.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Time between two checks of one delivery (and between ticks).
    pub interval: Duration,
    /// Most deliveries claimed per tick.
    pub batch: i64,
    /// Most target refs in one lookup request.
    pub lookup_chunk: usize,
    /// Most targets asked at the same time.
    pub concurrency: usize,
}

pub struct Poller {
    pub pool: PgPool,
    pub http: salesync_core::egress::EgressClient,
    pub secret_box: SecretBox,
    pub settings: PollSettings,
    pub metrics: Metrics,
    /// The outbox relay, woken after each commit that queued updates.
    pub wake: Arc<Notify>,
}

/// What one tick did (for logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Due deliveries asked about this tick.
    pub claimed: usize,
    /// Due deliveries no longer watched (their integration doesn't poll).
    pub retired: usize,
    pub requests: usize,
    pub failed_requests: usize,
    /// `StatusUpdate`s queued in the outbox.
    pub updates: usize,
    /// Of those, statuses that are not synchronised (unmapped): recorded on
    /// the sale with their reason, the sale's status unchanged.
    pub unmapped: usize,
}

/// One integration's share of a tick.
#[derive(Default)]
struct IntegrationResult {
    changes: Vec<Change>,
    requests: usize,
    failed: usize,
}

impl Poller {
    /// Ticks every `interval` until `shutdown`; a tick in progress is finished.
    /// A tick that claimed a full batch is followed at once by the next, so a
    /// backlog drains at full speed rather than one batch per interval.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            interval = ?self.settings.interval,
            batch = self.settings.batch,
            lookup_chunk = self.settings.lookup_chunk,
            "status polling started"
        );
        let mut next = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            next = started + self.settings.interval;
            match self.tick().await {
                Ok(r) => {
                    if r.claimed + r.retired > 0 {
                        tracing::debug!(?r, "status poll tick");
                    }
                    if (r.claimed + r.retired) as i64 >= self.settings.batch {
                        next = Instant::now();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "status poll tick failed; trying again next interval")
                }
            }
        }
        tracing::info!("status polling stopped");
    }

    /// One round: claim, ask, plan, write. `Err` only for database failures;
    /// the claimed deliveries are then asked about again next interval.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        let span = tracing::info_span!(
            "status_poll_tick",
            claimed = tracing::field::Empty,
            updates = tracing::field::Empty
        );
        self.tick_inner().instrument(span).await
    }

    async fn tick_inner(&self) -> anyhow::Result<TickReport> {
        let claim =
            store::claim_due(&self.pool, self.settings.interval, self.settings.batch).await?;
        let claimed = claim.deliveries;
        let mut report = TickReport {
            claimed: claimed.len(),
            retired: claim.retired,
            ..Default::default()
        };
        tracing::Span::current().record("claimed", claimed.len());
        if claimed.is_empty() {
            return Ok(report);
        }

        let mut by_integration: BTreeMap<IntegrationId, Vec<ClaimedDelivery>> = BTreeMap::new();
        for d in claimed {
            by_integration.entry(d.integration_id).or_default().push(d);
        }
        let ids: Vec<IntegrationId> = by_integration.keys().copied().collect();
        let integrations = store::load_integrations(&self.pool, &self.secret_box, &ids).await?;

        // Futures built eagerly (not in a stream closure) keep the lifetimes
        // simple enough for the task to be `Send`.
        let work: Vec<_> = integrations
            .iter()
            .filter_map(|i| {
                by_integration
                    .get(&i.config.id)
                    .map(|deliveries| self.poll_integration(i, deliveries))
            })
            .collect();
        let results: Vec<IntegrationResult> = futures::stream::iter(work)
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;

        let mut changes = Vec::new();
        for r in results {
            report.requests += r.requests;
            report.failed_requests += r.failed;
            changes.extend(r.changes);
        }
        let queued = store::apply_changes(&self.pool, &changes).await?;
        report.updates = queued.len();
        if report.updates > 0 {
            self.wake.notify_one();
            self.metrics.status_updates(report.updates as u64);
        }
        for update in queued {
            if let Some(reason) = &update.unmapped_reason {
                let kind = integrations
                    .iter()
                    .find(|i| i.config.id == update.integration_id)
                    .map_or("unknown", |i| i.config.target_kind.as_str());
                self.metrics.status_unmapped(kind);
                tracing::info!(
                    integration_id = %update.integration_id,
                    delivery_id = %update.delivery_id,
                    target_status = %update.target_status,
                    reason = %reason,
                    "target status not synchronised"
                );
                report.unmapped += 1;
            }
        }
        tracing::Span::current().record("updates", report.updates);
        Ok(report)
    }

    /// Asks one integration's target about its deliveries, chunk by chunk.
    /// The first failure ends this integration's round: its target is
    /// unwell, and further chunks would only stretch the tick.
    async fn poll_integration(
        &self,
        integration: &LoadedIntegration,
        deliveries: &[ClaimedDelivery],
    ) -> IntegrationResult {
        let cfg = &integration.config;
        let span = tracing::info_span!(
            "status_lookup",
            integration_id = %cfg.id,
            target_kind = cfg.target_kind.as_str(),
            deliveries = deliveries.len()
        );
        async move {
            let mut result = IntegrationResult::default();
            let bearer = match &integration.secrets {
                Ok(s) => s.credentials.bearer_token.clone(),
                Err(e) => {
                    let err = PollError::Credentials(e.to_string());
                    self.count_failure(&err);
                    return result;
                }
            };
            for chunk in deliveries.chunks(self.settings.lookup_chunk.max(1)) {
                let refs: Vec<String> = chunk.iter().map(|d| d.target_ref.clone()).collect();
                // The claim only selects askable targets; a config changed since is skipped.
                let Some(req) = lookup::build_request(cfg, &refs) else {
                    return result;
                };
                result.requests += 1;
                match client::lookup(&self.http, &self.metrics, &req, bearer.as_deref()).await {
                    Ok(answers) => {
                        self.metrics.status_poll("ok");
                        result
                            .changes
                            .extend(plan::plan(cfg, chunk, &answers, Utc::now()));
                    }
                    Err(err) => {
                        result.failed += 1;
                        self.count_failure(&err);
                        return result;
                    }
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    fn count_failure(&self, err: &PollError) {
        self.metrics.status_poll(err.outcome());
        tracing::warn!(error = %err, outcome = err.outcome(), "status lookup failed; will ask again next interval");
    }
}
