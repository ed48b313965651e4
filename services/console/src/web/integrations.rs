//! The integrations table: every integration the viewer may see with how
//! it is doing (`health`), sortable, sick ones standing out.

use axum::extract::{Query, State};
use maud::html;
use serde::Deserialize;

use super::health::{self, SortBy, Window};
use super::page::{self, PageResult, Section, badge, time_or_dash};
use super::session::Session;
use crate::AppState;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    sort: Option<String>,
    desc: Option<String>,
    window: Option<String>,
    notice: Option<String>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.0} ms"))
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let window = Window::parse(q.window.as_deref());
    let by = SortBy::parse(q.sort.as_deref());
    let desc = q.desc.as_deref() == Some("1");
    let tenants = session.viewer.tenant_filter();
    let mut rows = health::load(&state.pool, tenants.as_deref(), None, window).await?;
    health::sort(&mut rows, by, desc);
    let operator = session.viewer.is_operator();
    // A header link sorts by its column; again reverses.
    let sort_link = |key: SortBy, label: &str| {
        let next_desc = if by == key && !desc { "1" } else { "0" };
        let arrow = match (by == key, desc) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            _ => "",
        };
        html! {
            a href={ "/ui/integrations?sort=" (key.as_str()) "&desc=" (next_desc) "&window=" (window.as_str()) }
              aria-sort=[(by == key).then_some(if desc { "descending" } else { "ascending" })] {
                (label) (arrow)
            }
        }
    };
    let body = html! {
        h1 { "Integrations" }
        (page::notice(q.notice.as_deref()))
        div.actions {
            @if !operator { a.button href="/ui/integrations/new" { "Add integration" } }
            span { "Window: " }
            @for w in [Window::Hour, Window::Day] {
                @if w == window { strong { "last " (w.as_str()) } }
                @else { a href={ "/ui/integrations?sort=" (by.as_str()) "&window=" (w.as_str()) } { "last " (w.as_str()) } }
            }
        }
        p.muted { "Success rate counts delivery attempts; latency is from acceptance to delivery. Sick integrations are highlighted." }
        @if rows.is_empty() {
            p { "No integrations yet." }
        } @else {
            div.table-wrap {
                table #integrations {
                    thead { tr {
                        th { (sort_link(SortBy::Health, "Integration")) }
                        @if operator { th { (sort_link(SortBy::Tenant, "Tenant")) } }
                        th { "State" }
                        th.num { (sort_link(SortBy::SuccessRate, "Success")) }
                        th.num { "p50" }
                        th.num { (sort_link(SortBy::P99, "p99")) }
                        th.num { "Retries" }
                        th.num { (sort_link(SortBy::DeadLetters, "Dead letters")) }
                        th { (sort_link(SortBy::LastSuccess, "Last delivered")) }
                    } }
                    tbody {
                        @for r in &rows {
                            @let sick = r.sick();
                            tr class=[sick.is_some().then_some("sick")] data-integration=(r.id) {
                                td {
                                    a href={ "/ui/integrations/" (r.id) } { (r.name) }
                                    br; span.muted { (r.target_kind) }
                                }
                                @if operator { td { (r.tenant_name) } }
                                td {
                                    @if let Some(s) = &sick { (badge("bad", s)) }
                                    @else if !r.enabled { (badge("warn", "disabled")) }
                                    @else { (badge("ok", "healthy")) }
                                }
                                td.num {
                                    @match r.success_rate() {
                                        Some(rate) => { (format!("{:.1} %", rate * 100.0)) br; span.muted { (r.succeeded) "/" (r.attempts) } },
                                        None => span.muted { "no attempts" },
                                    }
                                }
                                td.num { (ms(r.p50_ms)) }
                                td.num { (ms(r.p99_ms)) }
                                td.num { (r.retries) }
                                td.num { (r.dead_letters) }
                                td { (time_or_dash(r.last_success)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page::ok(
        &session,
        Section::Integrations,
        "Integrations",
        body,
    ))
}
