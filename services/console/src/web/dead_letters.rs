//! Dead letters on pages: browse with filters (integration, reason, time),
//! inspect one, replay one or a selection (a dry-run count first, then a
//! confirmation), discard with a reason. Every action goes through
//! `crate::dead_letters`, the code the API and the CLI use; results appear
//! in place (the forms swap their result region), and a replayed delivery's
//! state refreshes itself until it settles.

use axum::extract::{Path, Query, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use salesync_core::domain::{DeliveryId, IntegrationId, TenantId};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::form::Posted;
use super::page::{
    self, PageResult, Section, WebError, badge, csrf, excerpt, json_pretty, time, time_or_dash,
};
use super::session::{Session, Viewer};
use crate::AppState;
use crate::dead_letters::query::{self, Filter, ListQuery};
use crate::dead_letters::rules::TargetChoice;
use crate::dead_letters::{self as dlq, Actor, BulkReplayed, DlqError};

#[derive(Deserialize, Default, Debug)]
pub struct ListParams {
    tenant: Option<String>,
    integration: Option<String>,
    reason: Option<String>,
    /// `datetime-local` values, read as UTC.
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    discarded: Option<String>,
    notice: Option<String>,
}

fn blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A `datetime-local` (or RFC 3339) value as UTC.
fn parse_local(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
                .ok()
                .map(|n| n.and_utc())
        })
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|n| n.and_utc())
        })
}

fn actor(session: &Session) -> Actor {
    Actor::Console(session.tenant_token().map(|(_, token)| token))
}

impl From<DlqError> for WebError {
    fn from(e: DlqError) -> Self {
        WebError::from(salesync_core::api::ApiError::from(e))
    }
}

/// The tenants an operator may pick from (name order).
pub async fn visible_tenants(
    pool: &PgPool,
    viewer: &Viewer,
) -> sqlx::Result<Vec<(TenantId, String)>> {
    sqlx::query_as(
        "SELECT id, name FROM tenants WHERE ($1::uuid[] IS NULL OR id = ANY($1)) ORDER BY name",
    )
    .bind(viewer.tenant_filter())
    .fetch_all(pool)
    .await
}

/// The tenant of a delivery, when the viewer may see it.
async fn delivery_tenant(pool: &PgPool, viewer: &Viewer, id: Uuid) -> Result<TenantId, WebError> {
    let t: Option<TenantId> = sqlx::query_scalar("SELECT tenant_id FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    t.filter(|t| viewer.may_see(*t)).ok_or(WebError::NotFound)
}

struct Checked {
    tenant: Option<TenantId>,
    query: ListQuery,
    problems: Vec<salesync_core::domain::FieldError>,
}

fn check(viewer: &Viewer, p: &ListParams) -> Result<Checked, WebError> {
    let asked = blank(&p.tenant)
        .map(|t| t.parse::<TenantId>().map_err(|_| WebError::NotFound))
        .transpose()?;
    let tenant = viewer.one_tenant(asked)?;
    let mut problems = vec![];
    let mut time_of = |field: &str, v: Option<&str>| {
        v.and_then(|s| {
            let t = parse_local(s);
            if t.is_none() {
                problems.push(salesync_core::domain::FieldError::new(
                    field,
                    "not a date and time",
                ));
            }
            t.map(|t| t.to_rfc3339())
        })
    };
    let from = time_of("from", blank(&p.from));
    let to = time_of("to", blank(&p.to));
    let params = query::ListParams {
        integration_id: blank(&p.integration).map(str::to_string),
        from,
        to,
        limit: Some("50".into()),
        cursor: blank(&p.cursor).map(str::to_string),
        include_discarded: Some((p.discarded.as_deref() == Some("1")).to_string()),
        reason: blank(&p.reason).map(str::to_string),
    };
    let query = query::list_query(&params).unwrap_or_else(|fields| {
        problems.extend(fields);
        ListQuery {
            filter: Filter::default(),
            limit: 50,
            after: None,
        }
    });
    Ok(Checked {
        tenant,
        query,
        problems,
    })
}

/// This page's address with the same filters (and another cursor).
fn list_href(p: &ListParams, cursor: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("tenant", blank(&p.tenant)),
        ("integration", blank(&p.integration)),
        ("reason", blank(&p.reason)),
        ("from", blank(&p.from)),
        ("to", blank(&p.to)),
        ("discarded", blank(&p.discarded)),
        ("cursor", cursor),
    ] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    format!("/ui/dead-letters?{}", q.finish())
}

async fn integrations_of(
    pool: &PgPool,
    tenant: Option<TenantId>,
    viewer: &Viewer,
) -> sqlx::Result<Vec<(IntegrationId, String)>> {
    sqlx::query_as(
        "SELECT id, name FROM integrations
         WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR tenant_id = $1)
           AND ($2::uuid[] IS NULL OR tenant_id = ANY($2)) ORDER BY name",
    )
    .bind(tenant)
    .bind(viewer.tenant_filter())
    .fetch_all(pool)
    .await
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(p): Query<ListParams>,
) -> PageResult {
    let c = check(&session.viewer, &p)?;
    let page = if c.problems.is_empty() {
        Some(dlq::list(&state.pool, c.tenant, &c.query).await?)
    } else {
        None
    };
    let tenants = if session.viewer.is_operator() {
        visible_tenants(&state.pool, &session.viewer).await?
    } else {
        vec![]
    };
    let integrations = integrations_of(&state.pool, c.tenant, &session.viewer).await?;
    let selected_tenant = c.tenant.map(|t| t.to_string());
    let body = html! {
        h1 { "Dead letters" }
        (page::notice(p.notice.as_deref()))
        form.filters method="get" action="/ui/dead-letters" {
            @if session.viewer.is_operator() {
                label { "Tenant"
                    select name="tenant" {
                        @if matches!(session.viewer, Viewer::Operator { tenants: None, .. }) { option value="" { "All tenants" } }
                        @for (id, name) in &tenants {
                            option value=(id) selected[selected_tenant.as_deref() == Some(&id.to_string())] { (name) }
                        }
                    }
                }
            }
            label { "Integration"
                select name="integration" {
                    option value="" { "Any" }
                    @for (id, name) in &integrations {
                        option value=(id) selected[blank(&p.integration) == Some(&id.to_string())] { (name) }
                    }
                }
            }
            label { "Reason contains" input type="text" name="reason" value=(blank(&p.reason).unwrap_or("")); }
            label { "Died from (UTC)" input type="datetime-local" name="from" value=(blank(&p.from).unwrap_or("")); }
            label { "Died before (UTC)" input type="datetime-local" name="to" value=(blank(&p.to).unwrap_or("")); }
            label.inline { input type="checkbox" name="discarded" value="1" checked[p.discarded.as_deref() == Some("1")]; "Include discarded" }
            button type="submit" { "Filter" }
        }
        @if !c.problems.is_empty() { (page::field_errors("Some filters are not valid", &c.problems)) }
        @if let Some(page) = &page {
            @if page.dead_letters.is_empty() {
                p { "No dead letters match." }
            } @else {
                form method="post" action="/ui/dead-letters/replay" data-swap="replay-result" {
                    (csrf(&session))
                    div.table-wrap { table #dead-letters {
                        thead { tr {
                            th { label.inline { input type="checkbox" data-select-all="id" aria-label="Select all"; } }
                            th { "Sale" } th { "Target" } th { "Reason" } th.num { "Attempts" } th { "Died" }
                        } }
                        tbody { @for d in &page.dead_letters { tr {
                            td { input type="checkbox" name="id" value=(d.id) aria-label={ "Select " (d.id) } disabled[!d.replayable || d.discarded_at.is_some()]; }
                            td {
                                a href={ "/ui/dead-letters/" (d.id) } { (d.sale_external_id.as_deref().unwrap_or(&d.purpose)) }
                                @if d.discarded_at.is_some() { " " (badge("warn", "discarded")) }
                            }
                            td { (excerpt(&d.target_url, 60)) }
                            td { (excerpt(d.reason.as_deref().unwrap_or("—"), 160)) }
                            td.num { (d.attempts) }
                            td { (time(d.dead_at)) }
                        } } }
                    } }
                    div.actions {
                        button type="submit" name="step" value="count" { "Replay selected…" }
                        @if let Some(next) = &page.next_cursor { a href=(list_href(&p, Some(next))) { "Older dead letters →" } }
                    }
                    div #replay-result { }
                }
            }
        }
    };
    Ok(page::ok(
        &session,
        Section::DeadLetters,
        "Dead letters",
        body,
    ))
}

fn replay_result(session: &Session, ids: &[&str], r: &BulkReplayed, confirmed: bool) -> Markup {
    html! {
        div #replay-result .result role="status" {
            @if r.dry_run {
                p { strong { (r.replayed) " of " (ids.len()) " selected would be replayed." }
                    @if r.not_replayable > 0 { " " (r.not_replayable) " cannot be re-sent (request not recorded)." }
                    @if r.target_unavailable > 0 { " " (r.target_unavailable) " have no target to go to (integration deleted or disabled)." }
                }
                @if r.replayed > 0 {
                    form method="post" action="/ui/dead-letters/replay" data-swap="replay-result" {
                        (csrf(session))
                        @for id in ids { input type="hidden" name="id" value=(id); }
                        button type="submit" name="step" value="replay" { "Replay " (r.replayed) " now" }
                    }
                }
            } @else if confirmed {
                p.notice { strong { "Replayed " (r.replayed) "." } " They are on their way; each one's page shows its delivery." }
                ul { @for s in &r.sample { li { a href={ "/ui/dead-letters/" (s.id) } { (s.id) } " → " (s.target_url) } } }
            }
        }
    }
}

/// A replay of the selected dead letters: `step=count` is the dry run,
/// `step=replay` the replay itself.
pub async fn replay_selected(State(state): State<AppState>, posted: Posted) -> PageResult {
    let Posted { session, fields } = posted;
    let raw = fields.all("id");
    let ids: Vec<DeliveryId> = raw.iter().filter_map(|s| s.parse().ok()).collect();
    if ids.is_empty() {
        let body = html! { div #replay-result .errors role="alert" { "Select at least one dead letter to replay." } };
        return Ok(page::render(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            Some(&session),
            Section::DeadLetters,
            "Replay",
            body,
        ));
    }
    let dry_run = fields.get("step") != Some("replay");
    let mut total = BulkReplayed {
        dry_run,
        ..BulkReplayed::default()
    };
    // Each of the viewer's tenants in turn: ids of other tenants are never locked.
    let tenants: Vec<Option<TenantId>> = match &session.viewer {
        Viewer::Operator {
            tenants: Some(t), ..
        } => t.iter().copied().map(Some).collect(),
        Viewer::Operator { tenants: None, .. } => vec![None],
        Viewer::Tenant { tenant_id, .. } => vec![Some(*tenant_id)],
    };
    for t in tenants {
        let r = dlq::replay_selected(
            &state.pool,
            t,
            &ids,
            TargetChoice::default(),
            dry_run,
            actor(&session),
        )
        .await?;
        total.replayed += r.replayed;
        total.not_replayable += r.not_replayable;
        total.target_unavailable += r.target_unavailable;
        total.sample.extend(r.sample);
    }
    if !dry_run && total.replayed > 0 {
        state.wake.notify_one();
    }
    let body = html! { h1 { "Replay" } (replay_result(&session, &raw, &total, !dry_run)) p { a href="/ui/dead-letters" { "Back to the dead letters" } } };
    Ok(page::ok(&session, Section::DeadLetters, "Replay", body))
}

#[derive(sqlx::FromRow)]
struct DeliveryState {
    state: String,
    sale_id: Option<Uuid>,
    purpose: String,
    target_url: String,
    delivered_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

async fn delivery_state(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<DeliveryState>> {
    sqlx::query_as("SELECT state, sale_id, purpose, target_url, delivered_at, last_error FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The delivery's state now; re-reads itself while the delivery is on its way.
fn state_box(d: &DeliveryState) -> Markup {
    let moving = matches!(d.state.as_str(), "pending" | "retrying");
    let kind = match d.state.as_str() {
        "delivered" => "ok",
        "dead" => "bad",
        _ => "warn",
    };
    html! {
        div #delivery-state .result role="status" aria-live="polite" data-refresh=[moving.then_some("1500")] {
            "Delivery state: " (badge(kind, &d.state))
            @if let Some(at) = d.delivered_at { " at " (time(at)) }
            @if moving { span.muted { " (updating…)" } }
            @if let (false, Some(e)) = (d.state == "delivered", &d.last_error) { br; span.muted { "Last error: " (e) } }
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> PageResult {
    let id = Uuid::parse_str(&id).map_err(|_| WebError::NotFound)?;
    let tenant = delivery_tenant(&state.pool, &session.viewer, id).await?;
    let d = delivery_state(&state.pool, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let detail = if d.state == "dead" {
        Some(dlq::show(&state.pool, Some(tenant), DeliveryId::from_uuid(id)).await?)
    } else {
        None
    };
    let mut conn = state.pool.acquire().await?;
    let attempts =
        crate::store::dead_letters::attempts(&mut conn, tenant, DeliveryId::from_uuid(id)).await?;
    let actions =
        crate::store::dead_letters::actions(&mut conn, tenant, DeliveryId::from_uuid(id)).await?;
    drop(conn);
    let body = html! {
        h1 { "Dead letter " code { (id) } }
        (page::notice(p.notice.as_deref()))
        p {
            @if let Some(sale) = d.sale_id { a href={ "/ui/sales/" (sale) } { "The sale's timeline" } " · " }
            a href="/ui/dead-letters" { "All dead letters" }
        }
        (state_box(&d))
        dl.kv {
            dt { "Purpose" } dd { (d.purpose) }
            dt { "Target" } dd { (d.target_url) }
            @if let Some(x) = &detail {
                dt { "Reason" } dd { (x.summary.reason.as_deref().unwrap_or("—")) }
                dt { "Died" } dd { (time(x.summary.dead_at)) }
                dt { "Discarded" } dd { (time_or_dash(x.summary.discarded_at)) @if let Some(r) = &x.summary.discard_reason { " — " (r) } }
            }
        }
        @if let Some(x) = &detail {
            @if x.summary.discarded_at.is_none() {
                div.side-by-side {
                    form.card method="post" action={ "/ui/dead-letters/" (id) "/replay" } data-swap="main" {
                        (csrf(&session))
                        h3 { "Replay" }
                        p.muted { "Re-sends the recorded request (same idempotency key) to where the integration points now." }
                        button type="submit" disabled[!x.summary.replayable] { "Replay this dead letter" }
                    }
                    form.card method="post" action={ "/ui/dead-letters/" (id) "/discard" } data-swap="main" {
                        (csrf(&session))
                        h3 { "Discard" }
                        label { "Reason" input type="text" name="reason" required maxlength="1000"; }
                        button.danger type="submit" { "Discard" }
                    }
                }
            }
            h2 { "Request a replay re-sends" }
            @match &x.body { Some(b) => (json_pretty(b)), None => p.muted { "Not recorded." } }
        }
        h2 { "Attempts" }
        div.table-wrap { table #attempts {
            thead { tr { th.num { "#" } th { "Started" } th.num { "Took" } th { "Answer" } th { "Outcome" } } }
            tbody { @for a in &attempts { tr {
                td.num { (a.attempt) }
                td { (time(a.started_at)) }
                td.num { (a.duration_ms) " ms" }
                td { @if let Some(c) = a.status_code { "HTTP " (c) } @if let Some(e) = &a.error { " " (excerpt(e, 200)) } }
                td { (a.outcome) }
            } } }
        } }
        @if !actions.is_empty() {
            h2 { "Actions" }
            ul { @for a in &actions { li { (time(a.at)) " — " (a.action) " via " (a.via) @if let Some(r) = &a.reason { ": " (r) } } } }
        }
    };
    Ok(page::ok(
        &session,
        Section::DeadLetters,
        "Dead letter",
        body,
    ))
}

pub async fn replay_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let session = posted.session;
    let id = Uuid::parse_str(&id).map_err(|_| WebError::NotFound)?;
    let tenant = delivery_tenant(&state.pool, &session.viewer, id).await?;
    let replayed = dlq::replay(
        &state.pool,
        Some(tenant),
        DeliveryId::from_uuid(id),
        TargetChoice::default(),
        actor(&session),
    )
    .await;
    match replayed {
        Ok(r) => {
            state.wake.notify_one();
            Ok(page::see_other(
                &format!("/ui/dead-letters/{id}"),
                &format!("Replayed to {}.", r.target_url),
            ))
        }
        Err(DlqError::Refused(message, _)) => {
            Ok(page::see_other(&format!("/ui/dead-letters/{id}"), &message))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn discard(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let Posted { session, fields } = posted;
    let id = Uuid::parse_str(&id).map_err(|_| WebError::NotFound)?;
    let tenant = delivery_tenant(&state.pool, &session.viewer, id).await?;
    let reason = fields.get("reason").unwrap_or("");
    match dlq::discard(
        &state.pool,
        Some(tenant),
        DeliveryId::from_uuid(id),
        reason,
        actor(&session),
    )
    .await
    {
        Ok(_) => Ok(page::see_other(
            &format!("/ui/dead-letters/{id}"),
            "Discarded.",
        )),
        Err(DlqError::Invalid(fields)) => {
            let body = html! { h1 { "Discard" } (page::field_errors("The discard was refused", &fields)) p { a href={ "/ui/dead-letters/" (id) } { "Back" } } };
            Ok(page::render(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                Some(&session),
                Section::DeadLetters,
                "Discard",
                body,
            ))
        }
        Err(DlqError::Refused(message, _)) => {
            Ok(page::see_other(&format!("/ui/dead-letters/{id}"), &message))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_read_as_utc() {
        assert_eq!(
            parse_local("2026-12-07T10:30").unwrap().to_rfc3339(),
            "2026-12-07T10:30:00+00:00"
        );
        assert_eq!(
            parse_local("2026-12-07T10:30:15").unwrap().to_rfc3339(),
            "2026-12-07T10:30:15+00:00"
        );
        assert_eq!(
            parse_local("2026-12-07T10:30:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-12-07T09:30:00+00:00"
        );
        assert!(parse_local("yesterday").is_none());
    }

    #[test]
    fn filters_survive_paging() {
        let p = ListParams {
            reason: Some("HTTP 400".into()),
            integration: Some(" ".into()),
            ..Default::default()
        };
        assert_eq!(
            list_href(&p, Some("1_x")),
            "/ui/dead-letters?reason=HTTP+400&cursor=1_x"
        );
    }
}
