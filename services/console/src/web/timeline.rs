//! One sale's whole journey on one page: accepted, each status change,
//! each condition decision with its reason, each forward and its delivery
//! attempts (status, timing, response excerpt), the statuses carried back,
//! the dead-letter actions, and the trace id. Found by external id, sale id
//! or receipt number (`sale_number`), only among the viewer's tenants.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::page::{self, PageResult, Section, WebError, badge, excerpt, time};
use super::session::Session;
use crate::AppState;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SaleHead {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub external_id: String,
    pub sale_number: Option<String>,
    pub status: String,
    pub currency: String,
    pub gross: i64,
    pub occurred_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatusRow {
    pub status: String,
    pub origin: String,
    pub integration_name: Option<String>,
    pub target_status: Option<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DecisionRow {
    pub integration_name: Option<String>,
    pub trigger: String,
    pub status: String,
    pub forwarded: bool,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub integration_name: Option<String>,
    pub purpose: String,
    pub target_url: String,
    pub target_ref: String,
    pub state: String,
    pub dead_reason: Option<String>,
    pub target_status: Option<String>,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub outcome: String,
    pub response_excerpt: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActionRow {
    pub delivery_id: Uuid,
    pub action: String,
    pub reason: Option<String>,
    pub via: String,
    pub at: DateTime<Utc>,
}

/// Everything recorded about one sale.
#[derive(Debug, Clone)]
pub struct Journey {
    pub sale: SaleHead,
    pub statuses: Vec<StatusRow>,
    pub decisions: Vec<DecisionRow>,
    pub deliveries: Vec<DeliveryRow>,
    pub attempts: Vec<AttemptRow>,
    pub actions: Vec<ActionRow>,
}

/// One line of the timeline.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: DateTime<Utc>,
    /// `ok`, `bad`, `warn` or "" (the dot's colour).
    pub class: &'static str,
    pub title: String,
    pub detail: Option<String>,
    /// The delivery it belongs to, for the link to its dead letter.
    pub delivery: Option<Uuid>,
}

impl Journey {
    /// The trace the sale's journey was recorded in (from the first
    /// delivery that carried a W3C `traceparent`).
    pub fn trace_id(&self) -> Option<&str> {
        self.deliveries
            .iter()
            .filter_map(|d| d.traceparent.as_deref())
            .find_map(|tp| tp.split('-').nth(1).filter(|id| id.len() == 32))
    }

    /// The events in time order (ties keep the order of the journey).
    pub fn events(&self) -> Vec<Event> {
        let mut ev = vec![Event {
            at: self.sale.created_at,
            class: "ok",
            title: format!("Accepted ({})", self.sale.external_id),
            detail: None,
            delivery: None,
        }];
        for s in &self.statuses {
            let (title, class) = match (&s.origin[..], &s.integration_name) {
                ("integration", name) => (
                    format!(
                        "Status carried back from {}: {} → {}",
                        name.as_deref().unwrap_or("an integration"),
                        s.target_status.as_deref().unwrap_or("?"),
                        s.status
                    ),
                    "ok",
                ),
                _ => (format!("Status {}", s.status), ""),
            };
            ev.push(Event {
                at: s.created_at,
                class,
                title,
                detail: s.note.clone(),
                delivery: None,
            });
        }
        for d in &self.decisions {
            let to = d
                .integration_name
                .as_deref()
                .unwrap_or("a deleted integration");
            ev.push(Event {
                at: d.created_at,
                class: if d.forwarded { "ok" } else { "warn" },
                title: if d.forwarded {
                    format!(
                        "Condition check for {to}: forward (status {}, {})",
                        d.status, d.trigger
                    )
                } else {
                    format!(
                        "Condition check for {to}: not forwarded (status {}, {})",
                        d.status, d.trigger
                    )
                },
                detail: Some(d.reason.clone()),
                delivery: None,
            });
        }
        for d in &self.deliveries {
            let to = d
                .integration_name
                .as_deref()
                .unwrap_or(match d.purpose.as_str() {
                    "status_webhook" => "the tenant's webhook",
                    _ => "a deleted integration",
                });
            let what = if d.purpose == "forward" {
                "Forwarded"
            } else {
                "Status webhook"
            };
            ev.push(Event {
                at: d.created_at,
                class: "",
                title: format!("{what} to {to} — now {}", d.state),
                detail: Some(match &d.target_status {
                    Some(ts) => format!(
                        "{} (id {}); the receiver's status: {ts}",
                        d.target_url, d.target_ref
                    ),
                    None => format!("{} (id {})", d.target_url, d.target_ref),
                }),
                delivery: Some(d.id),
            });
            for a in self.attempts.iter().filter(|a| a.delivery_id == d.id) {
                let answer = match (a.status_code, &a.error) {
                    (Some(code), _) => format!("HTTP {code}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "no answer".into(),
                };
                ev.push(Event {
                    at: a.started_at,
                    class: match a.outcome.as_str() {
                        "delivered" => "ok",
                        "dead" => "bad",
                        _ => "warn",
                    },
                    title: format!(
                        "Attempt {} to {to}: {answer} in {} ms → {}",
                        a.attempt, a.duration_ms, a.outcome
                    ),
                    detail: a.response_excerpt.as_deref().map(|r| excerpt(r, 300)),
                    delivery: Some(d.id),
                });
            }
            if d.state == "dead" {
                // The last attempt's time is when it died.
                let at = self
                    .attempts
                    .iter()
                    .filter(|a| a.delivery_id == d.id)
                    .map(|a| a.started_at)
                    .max()
                    .unwrap_or(d.created_at);
                ev.push(Event {
                    at,
                    class: "bad",
                    title: format!("Dead letter: delivery to {to} gave up"),
                    detail: d.dead_reason.clone(),
                    delivery: Some(d.id),
                });
            }
        }
        for a in &self.actions {
            ev.push(Event {
                at: a.at,
                class: "",
                title: format!("Dead letter {} (via {})", a.action, a.via),
                detail: a.reason.clone(),
                delivery: Some(a.delivery_id),
            });
        }
        ev.sort_by_key(|e| e.at);
        ev
    }
}

/// Sales matching the search among `tenants` (`None`: all): by id, external
/// id or receipt number.
pub async fn search(
    pool: &PgPool,
    tenants: Option<&[Uuid]>,
    q: &str,
) -> sqlx::Result<Vec<SaleHead>> {
    let id = Uuid::parse_str(q).ok();
    sqlx::query_as(
        "SELECT s.id, s.tenant_id, t.name AS tenant_name, s.external_id, s.sale->>'sale_number' AS sale_number,
                s.status, s.currency, s.gross, s.occurred_at, s.created_at
         FROM sales s JOIN tenants t ON t.id = s.tenant_id
         WHERE ($1::uuid[] IS NULL OR s.tenant_id = ANY($1))
           AND (s.id = $2 OR s.external_id = $3 OR s.sale->>'sale_number' = $3)
         ORDER BY s.created_at DESC LIMIT 50",
    )
    .bind(tenants)
    .bind(id)
    .bind(q)
    .fetch_all(pool)
    .await
}

/// The sale's journey, if it is one of `tenants`' (`None`: all).
pub async fn load(
    pool: &PgPool,
    tenants: Option<&[Uuid]>,
    id: Uuid,
) -> sqlx::Result<Option<Journey>> {
    let sale: Option<SaleHead> = sqlx::query_as(
        "SELECT s.id, s.tenant_id, t.name AS tenant_name, s.external_id, s.sale->>'sale_number' AS sale_number,
                s.status, s.currency, s.gross, s.occurred_at, s.created_at
         FROM sales s JOIN tenants t ON t.id = s.tenant_id
         WHERE s.id = $1 AND ($2::uuid[] IS NULL OR s.tenant_id = ANY($2))",
    )
    .bind(id)
    .bind(tenants)
    .fetch_optional(pool)
    .await?;
    let Some(sale) = sale else { return Ok(None) };
    let statuses = sqlx::query_as(
        "SELECT h.status, h.origin, i.name AS integration_name, h.target_status, h.note, h.created_at
         FROM sale_status_history h LEFT JOIN integrations i ON i.id = h.integration_id
         WHERE h.sale_id = $1 ORDER BY h.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let decisions = sqlx::query_as(
        "SELECT i.name AS integration_name, x.trigger, x.status, x.forwarded, x.reason, x.created_at
         FROM sale_decisions x LEFT JOIN integrations i ON i.id = x.integration_id
         WHERE x.sale_id = $1 ORDER BY x.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let deliveries = sqlx::query_as(
        "SELECT d.id, i.name AS integration_name, d.purpose, d.target_url, d.target_ref, d.state,
                d.dead_reason, d.target_status, d.traceparent, d.created_at
         FROM deliveries d LEFT JOIN integrations i ON i.id = d.integration_id
         WHERE d.sale_id = $1 AND d.tenant_id = $2 ORDER BY d.created_at, d.id",
    )
    .bind(id)
    .bind(sale.tenant_id)
    .fetch_all(pool)
    .await?;
    let attempts = sqlx::query_as(
        "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error,
                a.outcome, a.response_excerpt
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.sale_id = $1 AND d.tenant_id = $2 ORDER BY a.id",
    )
    .bind(id)
    .bind(sale.tenant_id)
    .fetch_all(pool)
    .await?;
    let actions = sqlx::query_as(
        "SELECT a.delivery_id, a.action, a.reason, a.via, a.at
         FROM dead_letter_actions a JOIN deliveries d ON d.id = a.delivery_id
         WHERE d.sale_id = $1 AND a.tenant_id = $2 ORDER BY a.id",
    )
    .bind(id)
    .bind(sale.tenant_id)
    .fetch_all(pool)
    .await?;
    Ok(Some(Journey {
        sale,
        statuses,
        decisions,
        deliveries,
        attempts,
        actions,
    }))
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    q: Option<String>,
}

fn search_form(q: &str) -> Markup {
    html! {
        form.filters method="get" action="/ui/sales" role="search" {
            label { "External id, sale id or receipt number"
                input type="search" name="q" value=(q) required autofocus;
            }
            button type="submit" { "Find" }
        }
    }
}

pub async fn find(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<SearchQuery>,
) -> PageResult {
    let text = q.q.as_deref().map(str::trim).unwrap_or("");
    let tenants = session.viewer.tenant_filter();
    let found = if text.is_empty() {
        vec![]
    } else {
        search(&state.pool, tenants.as_deref(), text).await?
    };
    if found.len() == 1 {
        return Ok(Redirect::to(&format!("/ui/sales/{}", found[0].id)).into_response());
    }
    let body = html! {
        h1 { "Find a sale" }
        (search_form(text))
        @if !text.is_empty() {
            @if found.is_empty() { p { "No sale matches " code { (text) } "." } }
            @else {
                div.table-wrap { table {
                    thead { tr { th { "External id" } th { "Receipt" } th { "Tenant" } th { "Status" } th { "Accepted" } } }
                    tbody { @for s in &found { tr {
                        td { a href={ "/ui/sales/" (s.id) } { (s.external_id) } }
                        td { (s.sale_number.as_deref().unwrap_or("—")) }
                        td { (s.tenant_name) }
                        td { (s.status) }
                        td { (time(s.created_at)) }
                    } } }
                } }
            }
        }
    };
    Ok(page::ok(&session, Section::Sales, "Sales", body))
}

fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02} {currency}",
        minor.abs() / 100,
        minor.abs() % 100
    )
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    let id = Uuid::parse_str(&id).map_err(|_| WebError::NotFound)?;
    let tenants = session.viewer.tenant_filter();
    let j = load(&state.pool, tenants.as_deref(), id)
        .await?
        .ok_or(WebError::NotFound)?;
    let trace = j.trace_id().map(str::to_string);
    let events = j.events();
    let s = &j.sale;
    let body = html! {
        h1 { "Sale " (s.external_id) }
        p { a href="/ui/sales" { "Find another sale" } }
        dl.kv {
            dt { "Sale id" } dd { code { (s.id) } }
            dt { "Tenant" } dd { (s.tenant_name) }
            dt { "Receipt number" } dd { (s.sale_number.as_deref().unwrap_or("—")) }
            dt { "Status now" } dd { (badge("", &s.status)) }
            dt { "Total" } dd { (money(s.gross, &s.currency)) }
            dt { "Sold at" } dd { (time(s.occurred_at)) }
            dt { "Trace id" } dd {
                @match (&trace, &state.web.trace_url) {
                    (Some(t), Some(tpl)) => a href=(tpl.replace("{trace_id}", t)) { code { (t) } },
                    (Some(t), None) => code #trace-id { (t) },
                    (None, _) => span.muted { "not recorded (no delivery yet)" },
                }
            }
        }
        h2 { "Journey" }
        ol.timeline #timeline {
            @for e in &events {
                li class=(e.class) {
                    (time(e.at)) " — " strong { (e.title) }
                    @if let Some(d) = &e.detail { br; span.muted { (d) } }
                    @if e.class == "bad" && e.delivery.is_some() && e.title.starts_with("Dead letter") {
                        " " a href={ "/ui/dead-letters/" (e.delivery.unwrap_or_default()) } { "open the dead letter" }
                    }
                }
            }
        }
    };
    Ok(page::ok(
        &session,
        Section::Sales,
        &format!("Sale {}", s.external_id),
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn the_journey_reads_in_time_order_with_reasons_and_attempts() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: i64| t0 + TimeDelta::seconds(s);
        let delivery = Uuid::from_u128(7);
        let j = Journey {
            sale: SaleHead {
                id: Uuid::from_u128(1),
                tenant_id: Uuid::from_u128(2),
                tenant_name: "A".into(),
                external_id: "R-1".into(),
                sale_number: Some("0001".into()),
                status: "completed".into(),
                currency: "EUR".into(),
                gross: 1210,
                occurred_at: t0,
                created_at: t0,
            },
            statuses: vec![
                StatusRow {
                    status: "paid".into(),
                    origin: "source".into(),
                    integration_name: None,
                    target_status: None,
                    note: None,
                    created_at: at(0),
                },
                StatusRow {
                    status: "completed".into(),
                    origin: "integration".into(),
                    integration_name: Some("B".into()),
                    target_status: Some("processed".into()),
                    note: None,
                    created_at: at(9),
                },
            ],
            decisions: vec![
                DecisionRow {
                    integration_name: Some("B".into()),
                    trigger: "created".into(),
                    status: "paid".into(),
                    forwarded: true,
                    reason: "all conditions met".into(),
                    created_at: at(1),
                },
                DecisionRow {
                    integration_name: Some("Books".into()),
                    trigger: "created".into(),
                    status: "paid".into(),
                    forwarded: false,
                    reason: "location_id 'x' not in [y]".into(),
                    created_at: at(1),
                },
            ],
            deliveries: vec![DeliveryRow {
                id: delivery,
                integration_name: Some("B".into()),
                purpose: "forward".into(),
                target_url: "https://b.example/v1/sales".into(),
                target_ref: "ref".into(),
                state: "delivered".into(),
                dead_reason: None,
                target_status: None,
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
                created_at: at(2),
            }],
            attempts: vec![
                AttemptRow {
                    delivery_id: delivery,
                    attempt: 1,
                    started_at: at(3),
                    duration_ms: 40,
                    status_code: Some(503),
                    error: None,
                    outcome: "retry".into(),
                    response_excerpt: Some("busy".into()),
                },
                AttemptRow {
                    delivery_id: delivery,
                    attempt: 2,
                    started_at: at(5),
                    duration_ms: 12,
                    status_code: Some(201),
                    error: None,
                    outcome: "delivered".into(),
                    response_excerpt: None,
                },
            ],
            actions: vec![],
        };
        assert_eq!(j.trace_id(), Some("0af7651916cd43dd8448eb211c80319c"));
        let titles: Vec<String> = j.events().into_iter().map(|e| e.title).collect();
        assert_eq!(
            titles,
            [
                "Accepted (R-1)",
                "Status paid",
                "Condition check for B: forward (status paid, created)",
                "Condition check for Books: not forwarded (status paid, created)",
                "Forwarded to B — now delivered",
                "Attempt 1 to B: HTTP 503 in 40 ms → retry",
                "Attempt 2 to B: HTTP 201 in 12 ms → delivered",
                "Status carried back from B: processed → completed",
            ]
        );
        assert_eq!(
            j.events()[3].detail.as_deref(),
            Some("location_id 'x' not in [y]")
        );
        assert_eq!(money(-1205, "EUR"), "-12.05 EUR");
    }
}
