//! Dead-letter operations on dead deliveries — list, show, replay one,
//! replay all that match, discard with a reason — as one code path for the
//! tenant API (`routes::dead_letters`, always scoped to the caller's tenant)
//! and the operator's `ingest dlq` command (scoped by `--tenant`, or all).
//!
//! A replay is one transaction: the delivery goes back to `pending`, the
//! action is recorded, and a fresh forward command is written to the outbox
//! — so either all of it happens or none. The caller wakes the relay.
//! (Poison messages that never became a delivery live only in the
//! `salesync.dead` queue: see `dead_letter_queue`.)

pub mod query;
pub mod rules;

use chrono::{DateTime, Utc};
use salesync_core::domain::{DeliveryId, FieldError, TenantId, TokenId};
use salesync_core::outbox::{self, OutboxMessage};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::error::ApiError;
use crate::store;
use crate::store::dead_letters::{ActionEntry, DeadLetterRow, LockedDelivery, NewAction};
use crate::store::sales::AttemptEntry;
use query::{Cursor, Filter, ListQuery};
use rules::Refusal;

/// Deliveries replayed per transaction in a bulk replay: big enough to be
/// quick, small enough that locks are short and a failure repeats little.
pub const REPLAY_CHUNK: usize = 500;

/// Whose request it is, for the action log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Actor {
    /// A tenant API token.
    Token(TokenId),
    /// An operator at the `ingest dlq` command.
    Cli,
}

impl Actor {
    fn token_id(self) -> Option<TokenId> {
        match self {
            Actor::Token(id) => Some(id),
            Actor::Cli => None,
        }
    }
    fn via(self) -> &'static str {
        match self {
            Actor::Token(_) => "api",
            Actor::Cli => "cli",
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
                },
                message,
            },
            DlqError::Invalid(fields) => ApiError::Validation(fields),
            DlqError::Db(e) => e.into(),
        }
    }
}

/// One page of dead letters.
#[derive(Serialize, Debug)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetterRow>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One dead letter with its attempt log, the actions taken on it, and the
/// request a replay would re-send.
#[derive(Serialize, Debug)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub summary: DeadLetterRow,
    pub body: Option<serde_json::Value>,
    pub attempt_log: Vec<AttemptEntry>,
    pub actions: Vec<ActionEntry>,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct Replayed {
    pub id: DeliveryId,
    pub state: &'static str,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct BulkReplayed {
    pub replayed: u64,
    /// Matched, but too old to have their request recorded.
    pub not_replayable: u64,
}

#[derive(Serialize, Debug, PartialEq)]
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

/// Resets the locked deliveries, records the replays and writes their
/// forward commands, all in the caller's transaction.
async fn replay_locked(
    conn: &mut PgConnection,
    deliveries: &[LockedDelivery],
    actor: Actor,
) -> Result<(), DlqError> {
    let mut messages: Vec<OutboxMessage> = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        // rules::may_replay passed, so the body exists; a row that still
        // cannot make a command is refused rather than half-replayed.
        messages
            .push(rules::replay_command(d).ok_or_else(|| refused(d.id, Refusal::NotReplayable))?);
    }
    let ids: Vec<DeliveryId> = deliveries.iter().map(|d| d.id).collect();
    store::dead_letters::reset_for_replay(conn, &ids).await?;
    let actions: Vec<NewAction> = deliveries
        .iter()
        .map(|d| NewAction {
            delivery_id: d.id,
            tenant_id: d.tenant_id,
            action: "replay",
            reason: None,
            actor_token_id: actor.token_id(),
            via: actor.via(),
        })
        .collect();
    store::dead_letters::record_actions(conn, &actions).await?;
    outbox::enqueue(conn, &messages).await?;
    Ok(())
}

/// Replays one dead letter: 404 if it is not the tenant's, 409 if it is not
/// dead (or cannot be re-sent).
pub async fn replay(
    pool: &PgPool,
    tenant: Option<TenantId>,
    id: DeliveryId,
    actor: Actor,
) -> Result<Replayed, DlqError> {
    let mut tx = pool.begin().await?;
    let d = store::dead_letters::lock(&mut tx, tenant, id)
        .await?
        .ok_or(DlqError::NotFound("dead letter"))?;
    rules::may_replay(&d).map_err(|r| refused(id, r))?;
    replay_locked(&mut tx, std::slice::from_ref(&d), actor).await?;
    tx.commit().await?;
    tracing::info!(delivery_id = %id, tenant_id = %d.tenant_id, "dead letter replayed");
    Ok(Replayed {
        id,
        state: "pending",
    })
}

/// Replays every dead, not discarded delivery the filter matches (one
/// transaction per `REPLAY_CHUNK`); a filter is required (`query::bulk_filter`).
pub async fn replay_matching(
    pool: &PgPool,
    tenant: Option<TenantId>,
    filter: &Filter,
    actor: Actor,
) -> Result<BulkReplayed, DlqError> {
    let ids = {
        let mut conn = pool.acquire().await?;
        check_integration(&mut conn, tenant, filter).await?;
        store::dead_letters::matching_ids(&mut conn, tenant, filter).await?
    };
    let mut done = BulkReplayed {
        replayed: 0,
        not_replayable: 0,
    };
    for chunk in ids.chunks(REPLAY_CHUNK) {
        let mut tx = pool.begin().await?;
        // Some may have been replayed or discarded since the snapshot.
        let locked = store::dead_letters::lock_still_dead(&mut tx, tenant, chunk).await?;
        let (ok, old): (Vec<LockedDelivery>, Vec<LockedDelivery>) = locked
            .into_iter()
            .partition(|d| rules::may_replay(d).is_ok());
        replay_locked(&mut tx, &ok, actor).await?;
        tx.commit().await?;
        done.replayed += ok.len() as u64;
        done.not_replayable += old.len() as u64;
    }
    tracing::info!(
        replayed = done.replayed,
        not_replayable = done.not_replayable,
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
