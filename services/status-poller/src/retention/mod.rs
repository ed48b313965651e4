//! Retention: what settled long ago is removed, so the database does not
//! grow without bound. It runs here, in the status-poller, because this is
//! the one service with a timer loop and no part in a sale's way from the
//! POS to its target: a pass never competes with ingest's, condition-filter's
//! or the forwarder's CPU in-process, and its statements are short batches.
//!
//! Each pass (every `RETENTION_INTERVAL`, by one replica at a time through an
//! advisory lock):
//! - clears response excerpts of attempts older than `EXCERPT_RETENTION`
//!   (30 days; the attempt's status code, error and outcome stay);
//! - removes settled deliveries older than `DELIVERY_RETENTION` (90 days)
//!   with their attempts and dead-letter actions: delivered ones the poller
//!   no longer watches, and dead ones a person discarded. Pending, retrying,
//!   watched and dead letters still awaiting a person are never removed;
//! - removes forwarding decisions and status-history rows older than
//!   `DELIVERY_RETENTION`.
//!
//! Sales are kept: they are the books, and `(tenant, external id)` is the
//! sale's idempotency key. A sale's removed forward delivery leaves the
//! integration's id in `sales.settled_forwards` (see `store`).

pub mod store;

use std::time::Duration;

use chrono::{DateTime, Utc};
use salesync_core::metrics::Metrics;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use store::{DeliveryBatch, Walk};

/// How long things are kept and how the work is paced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Time between passes; `None`: retention is off.
    pub interval: Option<Duration>,
    /// Age after which an attempt's response excerpt is cleared.
    pub excerpts: Duration,
    /// Age after which settled deliveries, decisions and history go.
    pub deliveries: Duration,
    /// Most rows one statement touches.
    pub batch: i64,
}

/// The moments before which things go, for a pass at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    pub excerpts: DateTime<Utc>,
    pub deliveries: DateTime<Utc>,
    /// Upper bound of the delivery ids worth reading: deliveries created
    /// after this (a day past the cutoff, for clocks that disagree) cannot
    /// have settled before the cutoff.
    pub delivery_ids_below: Uuid,
}

impl RetentionSettings {
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Cutoffs {
        // Settings are bounded far below these limits; saturate rather than panic.
        let back = |d: Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        let deliveries = back(self.deliveries);
        Cutoffs {
            excerpts: back(self.excerpts),
            deliveries,
            delivery_ids_below: uuid_v7_floor(
                deliveries
                    .checked_add_signed(chrono::Duration::days(1))
                    .unwrap_or(deliveries),
            ),
        }
    }
}

/// The smallest UUIDv7 of the millisecond `t`: every v7 id made before `t`
/// sorts below it, every one made after above.
pub fn uuid_v7_floor(t: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// False when another runner held the lock and this one did nothing.
    pub ran: bool,
    pub deliveries_removed: i64,
    pub deliveries_marked: i64,
    pub excerpts_cleared: i64,
    pub decisions_removed: i64,
    pub history_removed: i64,
    /// Statements run (each at most `batch` rows).
    pub batches: u64,
}

impl PassReport {
    fn touched(&self) -> i64 {
        self.deliveries_removed
            + self.deliveries_marked
            + self.excerpts_cleared
            + self.decisions_removed
            + self.history_removed
    }
}

#[derive(Clone)]
pub struct Retention {
    pub pool: PgPool,
    pub settings: RetentionSettings,
    pub metrics: Metrics,
}

impl Retention {
    /// A pass every interval until `shutdown` (a batch under way finishes).
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(interval) = self.settings.interval else {
            tracing::info!("retention is off (RETENTION_INTERVAL=0)");
            return;
        };
        tracing::info!(
            ?interval,
            excerpts = ?self.settings.excerpts,
            deliveries = ?self.settings.deliveries,
            batch = self.settings.batch,
            "retention started"
        );
        // The first pass waits one interval: a fleet restarting does not
        // add its retention work to the start-up.
        let mut next = Instant::now() + interval;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
            }
            next = Instant::now() + interval;
            if let Err(e) = self.pass(Utc::now(), &shutdown).await {
                tracing::warn!(error = %e, "retention pass failed; trying again next interval");
            }
        }
    }

    /// One pass as of `now`, batch after batch until nothing old is left (or
    /// `stop`). Skipped when another runner holds the lock.
    pub async fn pass(
        &self,
        now: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> sqlx::Result<PassReport> {
        let mut conn = self.pool.acquire().await?;
        if !store::try_lock(&mut conn).await? {
            tracing::debug!("retention pass skipped: another runner holds the lock");
            return Ok(PassReport::default());
        }
        let result = self
            .pass_locked(&mut conn, self.settings.cutoffs(now), stop)
            .await;
        match store::unlock(&mut conn).await {
            Ok(_) => {}
            // A connection that cannot say unlock is closed, which releases it.
            Err(_) => drop(conn.detach()),
        }
        let report = result?;
        if report.touched() > 0 {
            tracing::info!(
                deliveries_removed = report.deliveries_removed,
                deliveries_marked = report.deliveries_marked,
                excerpts_cleared = report.excerpts_cleared,
                decisions_removed = report.decisions_removed,
                history_removed = report.history_removed,
                batches = report.batches,
                "retention pass"
            );
        }
        Ok(report)
    }

    async fn pass_locked(
        &self,
        conn: &mut sqlx::PgConnection,
        cutoffs: Cutoffs,
        stop: &CancellationToken,
    ) -> sqlx::Result<PassReport> {
        let batch = self.settings.batch;
        let mut report = PassReport {
            ran: true,
            ..PassReport::default()
        };
        let mut after = Uuid::nil();
        while !stop.is_cancelled() {
            let DeliveryBatch {
                last,
                found,
                removed,
                marked,
            } = store::settle_deliveries(
                conn,
                after,
                cutoffs.delivery_ids_below,
                cutoffs.deliveries,
                batch,
            )
            .await?;
            report.batches += 1;
            report.deliveries_removed += removed;
            report.deliveries_marked += marked;
            self.count("deliveries", "removed", removed);
            self.count("deliveries", "marked", marked);
            match last {
                Some(last) if found >= batch => after = last,
                _ => break,
            }
        }
        while !stop.is_cancelled() {
            let removed = store::settle_callbacks(
                conn,
                cutoffs.delivery_ids_below,
                cutoffs.deliveries,
                batch,
            )
            .await?;
            report.batches += 1;
            report.deliveries_removed += removed;
            self.count("deliveries", "removed", removed);
            if removed < batch {
                break;
            }
        }
        for walk in Walk::ALL {
            let cutoff = match walk {
                Walk::Excerpts => cutoffs.excerpts,
                Walk::Decisions | Walk::StatusHistory => cutoffs.deliveries,
            };
            while !stop.is_cancelled() {
                let (n, done) = store::walk_step(conn, walk, cutoff, batch).await?;
                report.batches += 1;
                let action = if walk == Walk::Excerpts {
                    report.excerpts_cleared += n;
                    "cleared"
                } else {
                    if walk == Walk::Decisions {
                        report.decisions_removed += n;
                    } else {
                        report.history_removed += n;
                    }
                    "removed"
                };
                self.count(walk.name(), action, n);
                if done {
                    break;
                }
            }
        }
        Ok(report)
    }

    fn count(&self, what: &str, action: &str, n: i64) {
        self.metrics
            .retention_rows(what, action, u64::try_from(n).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_floor_orders_ids_by_their_moment() {
        let t = DateTime::parse_from_rfc3339("2024-03-01T12:00:00.500Z")
            .unwrap()
            .with_timezone(&Utc);
        let floor = uuid_v7_floor(t);
        assert_eq!(floor.get_version_num(), 7);
        let ms = |m: i64| {
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                u64::try_from((t.timestamp_millis() + m) / 1000).unwrap(),
                u32::try_from(((t.timestamp_millis() + m) % 1000) * 1_000_000).unwrap(),
            );
            Uuid::new_v7(ts)
        };
        assert!(ms(-1) < floor, "an id a millisecond earlier sorts below");
        assert!(ms(0) >= floor, "an id of the same millisecond does not");
        assert!(ms(1) > floor);
    }

    #[test]
    fn cutoffs_count_back_from_now() {
        let s = RetentionSettings {
            interval: Some(Duration::from_secs(600)),
            excerpts: Duration::from_secs(30 * 86_400),
            deliveries: Duration::from_secs(90 * 86_400),
            batch: 1000,
        };
        let now = Utc::now();
        let c = s.cutoffs(now);
        assert_eq!(now - c.excerpts, chrono::Duration::days(30));
        assert_eq!(now - c.deliveries, chrono::Duration::days(90));
        assert_eq!(
            c.delivery_ids_below,
            uuid_v7_floor(now - chrono::Duration::days(89))
        );
    }
}
