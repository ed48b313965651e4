//! Circuit breakers shared by the forwarder replicas through PostgreSQL
//! (table `target_breakers`, migration 0011). Each replica keeps deciding on
//! its own hot path with its in-memory [`Breaker`](crate::breaker::Breaker);
//! once a heartbeat this loop reconciles it with the shared row:
//!
//! - a replica whose breaker opened (or whose probes failed) writes the row
//!   `open until …`; the others adopt it and stop sending;
//! - when the cooldown is over, one replica claims the probes (a
//!   conditional `UPDATE`: only one wins), renews the claim while it
//!   probes, and deletes the row when its probes close the breaker; the
//!   others adopt that too. A claim lapses after `REPLICA_TTL` unrenewed,
//!   so a replica that dies mid-round is replaced;
//! - a replica claims only when one of its deliveries wanted to probe.
//!
//! The decision per target is the pure [`decide`]; the rest is I/O. Nothing
//! here runs per delivery. While the database is unreachable the local
//! breakers go on with their last view (a claim lapses locally before it
//! can lapse in the database, so two replicas never probe at once).

use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::targets::{LocalBreaker, Pending, Targets, now};

/// The shared row of one target, as this replica reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Row {
    /// Nothing may be sent for `remaining` (zero: the cooldown is over and
    /// the probes are up for claiming).
    Open { remaining: Duration },
    /// A replica holds the probe claim for `remaining` more.
    Probing { mine: bool, remaining: Duration },
}

/// What this replica knows of one target at a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub local: LocalBreaker,
    /// A transition on the hot path since the last heartbeat, not yet written.
    pub pending: Option<Pending>,
    pub holds_claim: bool,
    /// A delivery was deferred for want of a probe claim.
    pub wants_probe: bool,
    /// `None`: no row, the shared breaker is closed.
    pub row: Option<Row>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Nothing,
    /// Write the row `open` for `remaining` (ends any claim).
    PublishOpen {
        remaining: Duration,
    },
    /// Delete the row if this replica still holds the claim.
    PublishClosed,
    /// Try to take the probes.
    Claim,
    /// Extend this replica's claim.
    Renew,
    /// Another replica opened it, or probes: send nothing for `remaining`.
    AdoptOpen {
        remaining: Duration,
    },
    /// Another replica's probes closed it.
    AdoptClosed,
}

/// Reconciles one target's local breaker with the shared row.
pub fn decide(s: Seen) -> Action {
    match (s.pending, s.local) {
        (Some(Pending::Opened), LocalBreaker::Open { remaining }) => {
            return Action::PublishOpen { remaining };
        }
        (Some(Pending::Closed), LocalBreaker::Closed) => return Action::PublishClosed,
        _ => {}
    }
    let local_open = s.local != LocalBreaker::Closed;
    match s.row {
        None if local_open => Action::AdoptClosed,
        None => Action::Nothing,
        Some(Row::Open { remaining }) if !remaining.is_zero() => Action::AdoptOpen { remaining },
        // Cooldown over: the probes are free to claim.
        Some(Row::Open { .. }) if s.wants_probe => Action::Claim,
        Some(Row::Open { remaining }) if !matches!(s.local, LocalBreaker::Open { .. }) => {
            // Closed here, or half-open on a claim the row no longer shows.
            Action::AdoptOpen { remaining }
        }
        Some(Row::Open { .. }) => Action::Nothing,
        Some(Row::Probing { mine: true, .. }) if s.local == LocalBreaker::Closed => {
            // Closed by our probes, the delete not yet through.
            Action::PublishClosed
        }
        Some(Row::Probing { mine: true, .. })
            if s.holds_claim && (s.local == LocalBreaker::HalfOpen || s.wants_probe) =>
        {
            Action::Renew
        }
        // Our claim, lapsed here or idle: take it again only if needed.
        Some(Row::Probing { mine: true, .. }) if s.wants_probe => Action::Claim,
        Some(Row::Probing { mine: true, .. }) => Action::Nothing,
        Some(Row::Probing { remaining, .. }) if remaining.is_zero() && s.wants_probe => {
            // The owner stopped renewing (died, or lost the database).
            Action::Claim
        }
        Some(Row::Probing { remaining, .. }) => Action::AdoptOpen { remaining },
    }
}

/// The loop's settings.
#[derive(Debug, Clone, Copy)]
pub struct SyncConfig {
    pub replica: Uuid,
    pub heartbeat: Duration,
    /// How long a probe claim lasts unrenewed.
    pub claim_ttl: Duration,
}

/// One reconciliation of every known target; returns how many actions
/// wrote to the database.
pub async fn sync_once(pool: &PgPool, targets: &Targets, cfg: SyncConfig) -> sqlx::Result<usize> {
    // Before the read: a claim granted below lapses here no later than in
    // the database (`until` = the database's now() + ttl, after this).
    let started = now();
    let rows: Vec<(String, String, Option<Uuid>, f64)> = sqlx::query_as(
        "SELECT target_key, state, probe_owner, \
                greatest(0, extract(epoch FROM until - now()))::float8 \
         FROM target_breakers",
    )
    .fetch_all(pool)
    .await?;
    let mut shared = std::collections::HashMap::new();
    for (key, state, owner, remaining) in rows {
        let remaining = Duration::from_secs_f64(remaining.max(0.0));
        let row = if state == "probing" {
            Row::Probing {
                mine: owner == Some(cfg.replica),
                remaining,
            }
        } else {
            Row::Open { remaining }
        };
        // Targets this replica has not sent to yet learn their state too.
        targets.ensure(&key);
        shared.insert(key, row);
    }
    let views = targets.take_breaker_views(started);
    let mut writes = 0;
    for (i, (key, local)) in views.iter().enumerate() {
        let seen = Seen {
            row: shared.get(key).copied(),
            ..*local
        };
        let action = decide(seen);
        if !matches!(
            action,
            Action::Nothing | Action::AdoptOpen { .. } | Action::AdoptClosed
        ) {
            writes += 1;
        }
        if let Err(e) = apply(pool, targets, cfg, key, action, started).await {
            // What was taken and not written is written at the next heartbeat.
            for (key, local) in &views[i..] {
                if let Some(p) = local.pending {
                    targets.restore_pending(key, p);
                }
            }
            return Err(e);
        }
    }
    Ok(writes)
}

async fn apply(
    pool: &PgPool,
    targets: &Targets,
    cfg: SyncConfig,
    key: &str,
    action: Action,
    started: Instant,
) -> sqlx::Result<()> {
    let claim_until = started + cfg.claim_ttl;
    match action {
        Action::Nothing => {}
        Action::PublishOpen { remaining } => {
            sqlx::query(
                "INSERT INTO target_breakers (target_key, state, until, probe_owner) \
                 VALUES ($1, 'open', now() + make_interval(secs => $2), NULL) \
                 ON CONFLICT (target_key) DO UPDATE \
                 SET state = 'open', until = EXCLUDED.until, probe_owner = NULL, updated_at = now()",
            )
            .bind(key)
            .bind(remaining.as_secs_f64())
            .execute(pool)
            .await?;
            tracing::info!(
                target_host = key,
                ?remaining,
                "circuit breaker open for every replica"
            );
        }
        Action::PublishClosed => {
            let done = sqlx::query(
                "DELETE FROM target_breakers WHERE target_key = $1 AND probe_owner = $2",
            )
            .bind(key)
            .bind(cfg.replica)
            .execute(pool)
            .await?;
            if done.rows_affected() > 0 {
                tracing::info!(
                    target_host = key,
                    "circuit breaker closed for every replica"
                );
            }
        }
        Action::Claim | Action::Renew => {
            let won = claim(pool, key, cfg.replica, cfg.claim_ttl).await?;
            targets.with_breaker(key, |b| {
                if won {
                    b.grant_claim(claim_until);
                } else {
                    b.revoke_claim();
                }
            });
            if won && action == Action::Claim {
                tracing::info!(target_host = key, "claimed the circuit breaker's probes");
            }
        }
        Action::AdoptOpen { remaining } => {
            targets.with_breaker(key, |b| b.adopt_open(started + remaining));
        }
        Action::AdoptClosed => {
            targets.with_breaker(key, |b| b.adopt_closed());
            tracing::info!(
                target_host = key,
                "circuit breaker closed by another replica's probes"
            );
        }
    }
    Ok(())
}

/// Takes (or renews) the probes of `key` for `replica` for `ttl`: only when
/// the cooldown or the previous claim is over, or the claim is already
/// ours. Of replicas that try at once, one wins.
pub async fn claim(pool: &PgPool, key: &str, replica: Uuid, ttl: Duration) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE target_breakers \
         SET state = 'probing', probe_owner = $2, \
             until = now() + make_interval(secs => $3), updated_at = now() \
         WHERE target_key = $1 AND (until <= now() OR probe_owner = $2)",
    )
    .bind(key)
    .bind(replica)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Reconciles every heartbeat until `shutdown`.
pub async fn run(
    pool: PgPool,
    targets: std::sync::Arc<Targets>,
    cfg: SyncConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sync_once(&pool, &targets, cfg).await {
            tracing::warn!(error = %e, "circuit breaker sync failed; keeping the last view");
        }
        targets.report_breaker_states();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const Z: Duration = Duration::ZERO;

    fn seen(local: LocalBreaker, row: Option<Row>) -> Seen {
        Seen {
            local,
            pending: None,
            holds_claim: false,
            wants_probe: false,
            row,
        }
    }

    #[test]
    fn decides_each_case() {
        use Action::*;
        use LocalBreaker::{Closed, HalfOpen, Open};
        let open = |r| Some(Row::Open { remaining: r });
        let probing = |mine, r| Some(Row::Probing { mine, remaining: r });
        let cases: Vec<(&str, Seen, Action)> = vec![
            ("all closed", seen(Closed, None), Nothing),
            (
                "opened here: written",
                Seen {
                    pending: Some(Pending::Opened),
                    ..seen(Open { remaining: S }, None)
                },
                PublishOpen { remaining: S },
            ),
            (
                "our probes failed: written over our claim",
                Seen {
                    pending: Some(Pending::Opened),
                    ..seen(Open { remaining: S }, probing(true, S))
                },
                PublishOpen { remaining: S },
            ),
            (
                "our probes closed it: deleted",
                Seen {
                    pending: Some(Pending::Closed),
                    ..seen(Closed, probing(true, S))
                },
                PublishClosed,
            ),
            (
                "a pending open already adopted away is not written",
                Seen {
                    pending: Some(Pending::Opened),
                    ..seen(Closed, None)
                },
                Nothing,
            ),
            (
                "opened elsewhere: adopted",
                seen(Closed, open(S)),
                AdoptOpen { remaining: S },
            ),
            (
                "open here too: the shared end is taken",
                seen(Open { remaining: 2 * S }, open(S)),
                AdoptOpen { remaining: S },
            ),
            (
                "closed elsewhere: adopted",
                seen(Open { remaining: Z }, None),
                AdoptClosed,
            ),
            (
                "half-open but closed elsewhere",
                seen(HalfOpen, None),
                AdoptClosed,
            ),
            (
                "cooldown over, a delivery waits: claim",
                Seen {
                    wants_probe: true,
                    ..seen(Open { remaining: Z }, open(Z))
                },
                Claim,
            ),
            (
                "cooldown over, no traffic here: no claim",
                seen(Open { remaining: Z }, open(Z)),
                Nothing,
            ),
            (
                "cooldown over, closed here: adopt, no claim",
                seen(Closed, open(Z)),
                AdoptOpen { remaining: Z },
            ),
            (
                "another probes: wait for its claim",
                Seen {
                    wants_probe: true,
                    ..seen(Open { remaining: Z }, probing(false, S))
                },
                AdoptOpen { remaining: S },
            ),
            (
                "another's claim lapsed, we want to probe: claim",
                Seen {
                    wants_probe: true,
                    ..seen(Open { remaining: Z }, probing(false, Z))
                },
                Claim,
            ),
            (
                "another's claim lapsed, no traffic: adopt",
                seen(Closed, probing(false, Z)),
                AdoptOpen { remaining: Z },
            ),
            (
                "half-open here but another holds the claim",
                Seen {
                    holds_claim: true,
                    ..seen(HalfOpen, probing(false, S))
                },
                AdoptOpen { remaining: S },
            ),
            (
                "reopened elsewhere while we probe",
                Seen {
                    holds_claim: true,
                    ..seen(HalfOpen, open(S))
                },
                AdoptOpen { remaining: S },
            ),
            (
                "we probe: renew",
                Seen {
                    holds_claim: true,
                    ..seen(HalfOpen, probing(true, S))
                },
                Renew,
            ),
            (
                "claimed, no delivery since: let it lapse",
                Seen {
                    holds_claim: true,
                    ..seen(Open { remaining: Z }, probing(true, S))
                },
                Nothing,
            ),
            (
                "our claim lapsed here, a delivery waits: claim again",
                Seen {
                    wants_probe: true,
                    ..seen(Open { remaining: Z }, probing(true, Z))
                },
                Claim,
            ),
            (
                "closed by our probes, the delete lost: delete again",
                seen(Closed, probing(true, S)),
                PublishClosed,
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(decide(s), want, "case {name}");
        }
    }
}
