//! Dead-letter operations on dead deliveries — list, show, replay one,
//! replay all that match, discard with a reason — as one code path for the
//! tenant API (`routes::dead_letters`, always scoped to the caller's tenant)
//! and the operator's `console dlq` command (scoped by `--tenant`, or all).
//!
//! A replay is one transaction: the delivery goes back to `pending` with its
//! replay's target, the action is recorded with that target, and a fresh
//! forward command is written to the outbox — so either all of it happens
//! or none, and two replays of one dead letter serialise on its row lock
//! (the second finds it pending: 409). The caller wakes the relay. Where a
//! replay goes is `rules::replay_target`'s call. A bulk replay replays at most
//! `limit` per request and can be a dry run, which takes the same decisions
//! and writes nothing.
//! (Poison messages that never became a delivery live only in the
//! `salesync.dead` queue: see `dead_letter_queue`.)

pub mod query;
pub mod rules;

use chrono::{DateTime, Utc};
use salesync_core::domain::{DeliveryId, FieldError, TenantId, TokenId};
use salesync_core::outbox::{self, OutboxMessage};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::store;
use crate::store::dead_letters::{ActionEntry, DeadLetterRow, LockedDelivery, NewAction};
use query::{BulkReplay, Cursor, Filter, ListQuery};
use rules::{Refusal, TargetChoice};
use salesync_core::api::ApiError;
use salesync_core::api::attempts::AttemptEntry;

/// Deliveries replayed per transaction in a bulk replay: big enough to be
/// quick, small enough that locks are short and a failure repeats little.
pub const REPLAY_CHUNK: usize = 500;
/// Dead letters a bulk replay's answer shows (the first ones it replays).
pub const SAMPLE_SIZE: usize = 10;

/// Whose request it is, for the action log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Actor {
    /// A tenant API token.
    Token(TokenId),
    /// An operator at the `console dlq` command.
    Cli,
    /// A person on a console page: a tenant user (their token) or an
    /// operator (`None`).
    Console(Option<TokenId>),
}

impl Actor {
    fn token_id(self) -> Option<TokenId> {
        match self {
            Actor::Token(id) => Some(id),
            Actor::Cli => None,
            Actor::Console(token) => token,
        }
    }
    fn via(self) -> &'static str {
        match self {
            Actor::Token(_) => "api",
            Actor::Cli => "cli",
            Actor::Console(_) => "console",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// `what` is "dead letter" or "integration".
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Refused(String, Refusal),
    #[error("invalid input: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn refused(id: DeliveryId, r: Refusal) -> DlqError {
    let message = match &r {
        Refusal::NotDead(state) => format!("delivery {id} is {state}, not dead"),
        Refusal::AlreadyDiscarded => format!("dead letter {id} is already discarded"),
        Refusal::NotReplayable => {
            format!("dead letter {id} predates request recording; its request cannot be re-sent")
        }
        Refusal::IntegrationDeleted => format!(
            "dead letter {id}'s integration was deleted; there is no target to replay it to \
             (discard it, or forward the sale to another integration)"
        ),
        Refusal::IntegrationDisabled => format!(
            "dead letter {id}'s integration is disabled; enable it to replay, or discard it"
        ),
        Refusal::NoWebhook => format!(
            "dead letter {id} is a status webhook and the tenant has no webhook configured; \
             configure one to replay it"
        ),
        Refusal::NoSubscription => format!(
            "dead letter {id} is a catalogue callback whose subscription was deleted; \
             there is nobody to replay it to (discard it)"
        ),
    };
    DlqError::Refused(message, r)
}

impl From<DlqError> for ApiError {
    fn from(e: DlqError) -> Self {
        match e {
            DlqError::NotFound(what) => ApiError::NotFound(what),
            DlqError::Refused(message, r) => ApiError::Conflict {
                code: match r {
                    Refusal::NotDead(_) => "not_dead",
                    Refusal::AlreadyDiscarded => "already_discarded",
                    Refusal::NotReplayable => "not_replayable",
                    Refusal::IntegrationDeleted => "integration_deleted",
                    Refusal::IntegrationDisabled => "integration_disabled",
                    Refusal::NoWebhook => "webhook_not_configured",
                    Refusal::NoSubscription => "subscription_not_found",
                },
                message,
            },
            DlqError::Invalid(fields) => ApiError::Validation(fields),
            DlqError::Db(e) => e.into(),
        }
    }
}

/// One page of dead letters.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetterRow>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One dead letter with its attempt log, the actions taken on it, and the
/// request a replay would re-send.
#[derive(Serialize, Debug, utoipa::ToSchema)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub summary: DeadLetterRow,
    pub body: Option<serde_json::Value>,
    pub attempt_log: Vec<AttemptEntry>,
    pub actions: Vec<ActionEntry>,
}

#[derive(Serialize, Debug, PartialEq, utoipa::ToSchema)]
pub struct Replayed {
    pub id: DeliveryId,
    pub state: &'static str,
    /// Where the replay sends it.
    pub target_url: String,
}

/// A bulk replay's answer. A dry run answers the same, counting what a real
/// run would do at that moment, and changes nothing.
#[derive(Serialize, Debug, PartialEq, Default, utoipa::ToSchema)]
pub struct BulkReplayed {
    pub dry_run: bool,
    /// Replayed (would be, in a dry run).
    pub replayed: u64,
    /// Matched, but too old to have their request recorded.
    pub not_replayable: u64,
    /// Matched, but their integration is deleted or disabled (or, for status
    /// webhooks, the tenant has no webhook): left dead.
    pub target_unavailable: u64,
    /// Matched but not looked at: `limit` was reached. Ask again.
    pub remaining: u64,
    /// The first few replayed (would be), with where they go.
    pub sample: Vec<ReplaySample>,
}

/// One dead letter of a bulk replay: why it died and where it goes now.
#[derive(Serialize, Debug, PartialEq, Clone, utoipa::ToSchema)]
pub struct ReplaySample {
    pub id: DeliveryId,
    pub reason: Option<String>,
    pub target_url: String,
}

#[derive(Serialize, Debug, PartialEq, utoipa::ToSchema)]
pub struct Discarded {
    pub id: DeliveryId,
    pub discarded_at: DateTime<Utc>,
    pub reason: String,
}

/// 404 unless the filter's integration is the tenant's (an unknown one must
/// not look like "no dead letters").
async fn check_integration(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    filter: &Filter,
) -> Result<(), DlqError> {
    match filter.integration_id {
        Some(id) if !store::dead_letters::integration_known(conn, tenant, id).await? => {
            Err(DlqError::NotFound("integration"))
        }
        _ => Ok(()),
    }
}

/// A page of dead letters, newest first.
pub async fn list(
    pool: &PgPool,
    tenant: Option<TenantId>,
    q: &ListQuery,
) -> Result<DeadLetterPage, DlqError> {
    let mut conn = pool.acquire().await?;
    check_integration(&mut conn, tenant, &q.filter).await?;
    let mut rows = store::dead_letters::list(&mut conn, tenant, q).await?;
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| {
            Cursor {
                dead_at: r.dead_at,
                id: r.id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(DeadLetterPage {
        dead_letters: rows,
        next_cursor,
    })
}

/// One dead letter in full.
pub async fn show(
    pool: &PgPool,
    tenant: Option<TenantId>,
    id: DeliveryId,
) -> Result<DeadLetterDetail, DlqError> {
    let mut conn = pool.acquire().await?;
    let (summary, body) = store::dead_letters::get(&mut conn, tenant, id)
        .await?
        .ok_or(DlqError::NotFound("dead letter"))?;
    let attempt_log = store::dead_letters::attempts(&mut conn, summary.tenant_id, id).await?;
    let actions = store::dead_letters::actions(&mut conn, summary.tenant_id, id).await?;
    Ok(DeadLetterDetail {
        summary,
        body,
        attempt_log,
        actions,
    })
}

/// A locked dead letter and where its replay goes.
struct Planned<'a> {
    delivery: &'a LockedDelivery,
    url: String,
}

/// Resets the locked deliveries to their targets, records the replays (with
/// the target) and writes their forward commands, all in the caller's
/// transaction.
async fn replay_locked(
    conn: &mut PgConnection,
    planned: &[Planned<'_>],
    actor: Actor,
) -> Result<(), DlqError> {
    let mut messages: Vec<OutboxMessage> = Vec::with_capacity(planned.len());
    for p in planned {
        // rules::replay_target passed, so the body exists; a row that still
        // cannot make a command is refused rather than half-replayed.
        messages.push(
            rules::replay_command(p.delivery, &p.url)
                .ok_or_else(|| refused(p.delivery.id, Refusal::NotReplayable))?,
        );
    }
    let targets: Vec<(DeliveryId, String)> = planned
        .iter()
        .map(|p| (p.delivery.id, p.url.clone()))
        .collect();
    store::dead_letters::reset_for_replay(conn, &targets).await?;
    let actions: Vec<NewAction> = planned
        .iter()
        .map(|p| NewAction {
            delivery_id: p.delivery.id,
            tenant_id: p.delivery.tenant_id,
            action: "replay",
            reason: None,
            actor_token_id: actor.token_id(),
            via: actor.via(),
            target_url: Some(p.url.clone()),
        })
        .collect();
    store::dead_letters::record_actions(conn, &actions).await?;
    outbox::enqueue(conn, &messages).await?;
    Ok(())
}

/// Replays one dead letter to `target`: 404 if it is not the tenant's, 409
/// if it is not dead, cannot be re-sent, or has no target to go to.
pub async fn replay(
    pool: &PgPool,
    tenant: Option<TenantId>,
    id: DeliveryId,
    target: TargetChoice,
    actor: Actor,
) -> Result<Replayed, DlqError> {
    let mut tx = pool.begin().await?;
    let d = store::dead_letters::lock(&mut tx, tenant, id)
        .await?
        .ok_or(DlqError::NotFound("dead letter"))?;
    let url = rules::replay_target(&d, target).map_err(|r| refused(id, r))?;
    let planned = Planned {
        delivery: &d,
        url: url.clone(),
    };
    replay_locked(&mut tx, std::slice::from_ref(&planned), actor).await?;
    tx.commit().await?;
    tracing::info!(delivery_id = %id, tenant_id = %d.tenant_id, target = %url, "dead letter replayed");
    Ok(Replayed {
        id,
        state: "pending",
        target_url: url,
    })
}

/// Replays the dead, not discarded deliveries the filter matches, oldest
/// first, until `limit` are replayed (one transaction per chunk of at most
/// `REPLAY_CHUNK`); what is left is counted in `remaining`. A dry run takes
/// the same locks and decisions and rolls back, writing nothing. A filter is
/// required (`query::bulk_filter`).
pub async fn replay_matching(
    pool: &PgPool,
    tenant: Option<TenantId>,
    req: &BulkReplay,
    actor: Actor,
) -> Result<BulkReplayed, DlqError> {
    let ids = {
        let mut conn = pool.acquire().await?;
        check_integration(&mut conn, tenant, &req.filter).await?;
        store::dead_letters::matching_ids(&mut conn, tenant, &req.filter).await?
    };
    replay_ids(pool, tenant, &ids, req, actor).await
}

/// Replays the chosen dead letters (a selection on a console page) as a
/// bulk replay does: the same decisions, the same dry run, the same limit;
/// ids that are not the tenant's, not dead or discarded are skipped.
pub async fn replay_selected(
    pool: &PgPool,
    tenant: Option<TenantId>,
    ids: &[DeliveryId],
    target: TargetChoice,
    dry_run: bool,
    actor: Actor,
) -> Result<BulkReplayed, DlqError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let req = BulkReplay {
        filter: Filter::default(),
        target,
        dry_run,
        limit: query::MAX_BULK_REPLAY,
    };
    replay_ids(pool, tenant, &ids, &req, actor).await
}

/// The body of both bulk replays: `ids` in chunks, each locked, decided and
/// replayed (or rolled back in a dry run) in one transaction.
async fn replay_ids(
    pool: &PgPool,
    tenant: Option<TenantId>,
    ids: &[DeliveryId],
    req: &BulkReplay,
    actor: Actor,
) -> Result<BulkReplayed, DlqError> {
    let limit = u64::from(req.limit);
    let mut done = BulkReplayed {
        dry_run: req.dry_run,
        ..BulkReplayed::default()
    };
    let mut looked_at = 0;
    while looked_at < ids.len() && done.replayed < limit {
        // Never more in a chunk than may still be replayed, so the limit
        // holds exactly and everything after the cut counts as remaining.
        let room = usize::try_from(limit - done.replayed).unwrap_or(usize::MAX);
        let chunk = &ids[looked_at..ids.len().min(looked_at + room.min(REPLAY_CHUNK))];
        looked_at += chunk.len();
        let mut tx = pool.begin().await?;
        // Some may have been replayed or discarded since the snapshot.
        let locked = store::dead_letters::lock_still_dead(&mut tx, tenant, chunk).await?;
        let mut planned = Vec::with_capacity(locked.len());
        for d in &locked {
            match rules::replay_target(d, req.target) {
                Ok(url) => planned.push(Planned { delivery: d, url }),
                Err(r) if r.is_target_unavailable() => done.target_unavailable += 1,
                Err(_) => done.not_replayable += 1,
            }
        }
        for p in planned
            .iter()
            .take(SAMPLE_SIZE.saturating_sub(done.sample.len()))
        {
            done.sample.push(ReplaySample {
                id: p.delivery.id,
                reason: p.delivery.dead_reason.clone(),
                target_url: p.url.clone(),
            });
        }
        done.replayed += planned.len() as u64;
        if req.dry_run {
            tx.rollback().await?;
        } else {
            replay_locked(&mut tx, &planned, actor).await?;
            tx.commit().await?;
        }
    }
    done.remaining = (ids.len() - looked_at) as u64;
    tracing::info!(
        dry_run = done.dry_run,
        replayed = done.replayed,
        not_replayable = done.not_replayable,
        target_unavailable = done.target_unavailable,
        remaining = done.remaining,
        "dead letters replayed in bulk"
    );
    Ok(done)
}

/// Discards a dead letter with a (required) reason: it stays dead, is
/// recorded as discarded and is left out of the default list.
pub async fn discard(
    pool: &PgPool,
    tenant: Option<TenantId>,
    id: DeliveryId,
    reason: &str,
    actor: Actor,
) -> Result<Discarded, DlqError> {
    let reason = query::discard_reason(reason).map_err(DlqError::Invalid)?;
    let mut tx = pool.begin().await?;
    let d = store::dead_letters::lock(&mut tx, tenant, id)
        .await?
        .ok_or(DlqError::NotFound("dead letter"))?;
    rules::may_discard(&d).map_err(|r| refused(id, r))?;
    let discarded_at = store::dead_letters::mark_discarded(&mut tx, id)
        .await?
        // Locked and checked above, so the update matched; be safe anyway.
        .ok_or_else(|| refused(id, Refusal::AlreadyDiscarded))?;
    store::dead_letters::record_actions(
        &mut tx,
        &[NewAction {
            delivery_id: id,
            tenant_id: d.tenant_id,
            action: "discard",
            reason: Some(reason.clone()),
            actor_token_id: actor.token_id(),
            via: actor.via(),
            target_url: None,
        }],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(delivery_id = %id, tenant_id = %d.tenant_id, "dead letter discarded");
    Ok(Discarded {
        id,
        discarded_at,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn errors_map_to_the_api_contract() {
        let id = DeliveryId::new();
        // (error, status, code)
        let cases = [
            (
                DlqError::NotFound("dead letter"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                refused(id, Refusal::NotDead("delivered".into())),
                StatusCode::CONFLICT,
                "not_dead",
            ),
            (
                refused(id, Refusal::AlreadyDiscarded),
                StatusCode::CONFLICT,
                "already_discarded",
            ),
            (
                refused(id, Refusal::NotReplayable),
                StatusCode::CONFLICT,
                "not_replayable",
            ),
            (
                refused(id, Refusal::IntegrationDeleted),
                StatusCode::CONFLICT,
                "integration_deleted",
            ),
            (
                refused(id, Refusal::IntegrationDisabled),
                StatusCode::CONFLICT,
                "integration_disabled",
            ),
            (
                refused(id, Refusal::NoWebhook),
                StatusCode::CONFLICT,
                "webhook_not_configured",
            ),
            (
                DlqError::Invalid(vec![FieldError::new("reason", "x")]),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status(), api.code()), (status, code));
        }
        let msg = refused(id, Refusal::NotDead("pending".into())).to_string();
        assert!(
            msg.contains("pending") && msg.contains(&id.to_string()),
            "{msg}"
        );
    }

    #[test]
    fn actors_are_recorded_by_channel() {
        let t = TokenId::new();
        assert_eq!(
            (Actor::Token(t).token_id(), Actor::Token(t).via()),
            (Some(t), "api")
        );
        assert_eq!((Actor::Cli.token_id(), Actor::Cli.via()), (None, "cli"));
    }
}
