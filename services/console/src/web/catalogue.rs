//! A reseller's pages for a provider's catalogue: what the provider grants
//! and what is imported (last synchronised at, Sync now), the flow and
//! question mappings side by side with each question's type, validations
//! and options, and the mapping check's mismatches with a link to each fix.
//! Every change is the API's handler, called as the signed-in tenant user.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use maud::{Markup, html};
use salesync_core::api::ApiError;
use salesync_core::api::json::JsonBody;
use salesync_core::catalogue::{AnswerSource, Change, Mismatch, Question, Severity};
use salesync_core::catalogue_store;
use serde::Deserialize;
use serde_json::Value;

use super::form::{Fields, Posted};
use super::page::{self, PageResult, Section, badge, csrf, time_or_dash};
use super::session::Session;
use super::setup::acting_on;
use crate::AppState;
use crate::catalogue_sync::SyncReport;
use crate::routes::imports::{self, ImportSelection, MappingInput};

#[derive(Deserialize, Default)]
pub struct PageQuery {
    notice: Option<String>,
}

/// "updated: fixed-3y (from 1, to 2)" from a change's JSON form.
pub fn describe(c: &Change) -> String {
    let Ok(Value::Object(mut o)) = serde_json::to_value(c) else {
        return format!("{c:?}");
    };
    let kind = o
        .remove("change")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let product = o
        .remove("product")
        .and_then(|v| v.as_str().map(str::to_string));
    let rest: Vec<String> = o
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            )
        })
        .collect();
    let mut s = kind.replace('_', " ");
    if let Some(p) = product {
        s.push_str(": ");
        s.push_str(&p);
    }
    if !rest.is_empty() {
        s.push_str(&format!(" ({})", rest.join(", ")));
    }
    s
}

fn kind_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A question as a person compares it: type, required, validations, options.
fn question_card(q: &Question) -> Markup {
    let validations = serde_json::to_value(&q.validations).unwrap_or(Value::Null);
    html! {
        div {
            strong { (q.label) } " " code { (q.key) }
            br;
            (badge("", &kind_name(&q.kind)))
            @if q.required { " " (badge("warn", "required")) } @else { " " (badge("", "optional")) }
            @if validations.as_object().is_some_and(|o| !o.is_empty()) {
                br; span.muted { "Validations: " code { (validations.to_string()) } }
            }
            @if !q.options.is_empty() {
                br; span.muted { "Options: " @for (i, o) in q.options.iter().enumerate() { @if i > 0 { ", " } code { (o.value) } } }
            }
            @if let Some(w) = &q.asked_when { br; span.muted { "Asked when: " code { (serde_json::to_string(w).unwrap_or_default()) } } }
        }
    }
}

fn report(r: &SyncReport) -> Markup {
    html! {
        div #sync-result .result role="status" {
            @if r.changes.is_empty() { p { strong { "Nothing changed at the provider." } } }
            @else {
                p { strong { (r.changes.len()) " change(s):" } }
                ul { @for c in &r.changes { li { (describe(c)) } } }
            }
            p.muted { "Checked " (page::time(r.checked_at)) "; last synchronised " (time_or_dash(r.last_synchronised_at)) "." }
            @if r.mismatches.is_empty() { p { (badge("ok", "mapping complete")) } }
            @else { p { (badge("bad", &format!("{} mismatches", r.mismatches.len()))) " " a href="check" { "see the mapping check" } } }
        }
    }
}

pub async fn imports_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> PageResult {
    let (who, id, _) = acting_on(&state, &session, &id).await?;
    let Json(held) = imports::get_imports(State(state.clone()), who, Path(id.to_string())).await?;
    let offered =
        imports::provider_catalogue(State(state.clone()), who, Path(id.to_string())).await;
    let body = html! {
        h1 { "Products & sync" }
        p { a href={ "/ui/integrations/" (id) } { "← The integration" } }
        (page::notice(q.notice.as_deref()))
        dl.kv {
            dt { "Last synchronised" } dd #last-synchronised { (time_or_dash(held.last_synchronised_at)) }
            dt { "Provider last asked" } dd { (time_or_dash(held.checked_at)) }
            dt { "Change callbacks" } dd { @if held.subscribed { (badge("ok", "subscribed")) } @else { (badge("warn", "not subscribed")) span.muted { " periodic reconciliation only" } } }
        }
        form method="post" action={ "/ui/integrations/" (id) "/sync" } data-swap="sync-result" {
            (csrf(&session))
            div.actions { button.secondary type="submit" { "Sync now" } }
            div #sync-result {}
        }
        h2 { "What the provider grants you" }
        @match &offered {
            Err(e) => { p { "The provider's catalogue cannot be read now:" } (page::api_error(e)) }
            Ok(Json(cat)) => {
                p.muted { "From " strong { (cat.organization) } ". Tick what you sell; unticking stops importing (sales keep their history)." }
                form method="post" action={ "/ui/integrations/" (id) "/imports" } data-swap="main" {
                    (csrf(&session))
                    div.table-wrap { table #offered {
                        thead { tr { th { "Import" } th { "Product" } th { "Price" } th.num { "Version" } th { "Yours" } } }
                        tbody { @for o in &cat.products { tr {
                            td { input type="checkbox" name="product" value=(o.product.key) checked[o.imported_version.is_some()] aria-label={ "Import " (o.product.name) }; }
                            td { strong { (o.product.name) } " " code { (o.product.key) } br; span.muted { (o.product.questions.len()) " questions" } }
                            td { (serde_json::to_string(&o.product.price).unwrap_or_default()) }
                            td.num { (o.product.version) }
                            td { @match o.imported_version { Some(v) if v == o.product.version => (badge("ok", "imported")), Some(v) => (badge("warn", &format!("v{v}, sync pending"))), None => span.muted { "—" } } }
                        } } }
                    } }
                    div.actions { button type="submit" { "Import selected" } }
                }
                h3 { "Flows" }
                ul { @for f in &cat.flows { li { strong { (f.name) } " " code { (f.key) } ": " (f.products.join(", ")) } } }
            }
        }
        @if !held.last_changes.is_empty() {
            h2 { "Last changes" }
            ul { @for c in &held.last_changes { li { (describe(c)) } } }
        }
    };
    Ok(page::ok(
        &session,
        Section::Integrations,
        "Products & sync",
        body,
    ))
}

pub async fn save_imports(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let Posted { session, fields } = posted;
    let (who, id, _) = acting_on(&state, &session, &id).await?;
    let products = fields
        .all("product")
        .into_iter()
        .map(str::to_string)
        .collect();
    let done = imports::put_imports(
        State(state.clone()),
        who,
        Path(id.to_string()),
        JsonBody(ImportSelection { products }),
    )
    .await;
    let notice = match done {
        Ok(Json(r)) if r.mismatches.is_empty() => format!(
            "Imported. {} change(s); the mapping is complete.",
            r.changes.len()
        ),
        Ok(Json(r)) => format!(
            "Imported. {} change(s); the mapping check found {} mismatch(es) — fix them under Mappings.",
            r.changes.len(),
            r.mismatches.len()
        ),
        Err(e) => return Err(e.into()),
    };
    Ok(page::see_other(
        &format!("/ui/integrations/{id}/imports"),
        &notice,
    ))
}

pub async fn sync_now(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let session = posted.session;
    let (who, id, _) = acting_on(&state, &session, &id).await?;
    let result = match imports::sync_now(State(state.clone()), who, Path(id.to_string())).await {
        Ok(Json(r)) => report(&r),
        Err(e) => html! { div #sync-result { (page::api_error(&e)) } },
    };
    Ok(page::ok(
        &session,
        Section::Integrations,
        "Sync",
        html! { h1 { "Sync now" } (result) p { a href={ "/ui/integrations/" (id) "/imports" } { "Back" } } },
    ))
}

/// Where a mismatch is fixed on the mappings page.
pub fn fix_anchor(m: &Mismatch) -> String {
    match (&m.question, &m.flow) {
        (Some(q), _) => format!("#q-{q}"),
        (None, Some(f)) => format!("#flow-{f}"),
        _ => "#flows".into(),
    }
}

fn mismatch_list(id: &str, mismatches: &[Mismatch]) -> Markup {
    html! {
        @if mismatches.is_empty() {
            p #mismatches { (badge("ok", "no mismatches")) " Orders will not be refused for their answers or flows." }
        } @else {
            ul #mismatches {
                @for m in mismatches {
                    li {
                        @if m.severity == Severity::Error { (badge("bad", "error")) } @else { (badge("warn", "warning")) }
                        " " strong { (kind_name(&m.kind).replace('_', " ")) }
                        @if let Some(p) = &m.product { " · product " code { (p) } }
                        @if let Some(q) = &m.question { " · question " code { (q) } }
                        @if let Some(f) = &m.flow { " · flow " code { (f) } }
                        br; (m.message)
                        @if !m.option_values.is_empty() { br; span.muted { "Values: " (m.option_values.join(", ")) } }
                        " " a href={ "/ui/integrations/" (id) "/mappings" (fix_anchor(m)) } { "Fix this" }
                    }
                }
            }
        }
    }
}

pub async fn check_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> PageResult {
    let (who, id, _) = acting_on(&state, &session, &id).await?;
    let Json(held) = imports::get_imports(State(state.clone()), who, Path(id.to_string())).await?;
    let m = &held.mapping;
    let body = html! {
        h1 { "Mapping check" }
        p { a href={ "/ui/integrations/" (id) } { "← The integration" } " · " a href={ "/ui/integrations/" (id) "/mappings" } { "Mappings" } }
        (page::notice(q.notice.as_deref()))
        p.muted { "Every place the provider would refuse an order, found before one is sent. Last checked " (time_or_dash(m.checked_at)) "." }
        form method="post" action={ "/ui/integrations/" (id) "/check" } data-swap="main" {
            (csrf(&session))
            button.secondary type="submit" { "Check again" }
        }
        (mismatch_list(&id.to_string(), &m.mismatches))
    };
    Ok(page::ok(
        &session,
        Section::Integrations,
        "Mapping check",
        body,
    ))
}

pub async fn run_check(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let session = posted.session;
    let (who, id, _) = acting_on(&state, &session, &id).await?;
    let Json(v) = imports::check_mappings(State(state.clone()), who, Path(id.to_string())).await?;
    Ok(page::see_other(
        &format!("/ui/integrations/{id}/check"),
        &format!("Checked: {} mismatch(es).", v.mismatches.len()),
    ))
}

/// B's questions across the imported products, one per key (the first).
fn provider_questions(held: &imports::ImportsView) -> Vec<(Question, Vec<String>)> {
    let mut by_key: BTreeMap<String, (Question, Vec<String>)> = BTreeMap::new();
    for p in &held.products {
        for q in &p.copy.product.questions {
            by_key
                .entry(q.key.clone())
                .or_insert_with(|| (q.clone(), vec![]))
                .1
                .push(p.copy.product.key.clone());
        }
    }
    by_key.into_values().collect()
}

pub async fn mappings_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> PageResult {
    let (who, id, tenant) = acting_on(&state, &session, &id).await?;
    let Json(held) = imports::get_imports(State(state.clone()), who, Path(id.to_string())).await?;
    let mut conn = state.pool.acquire().await?;
    let own = catalogue_store::own_questions(&mut conn, tenant).await?;
    let own_flows = catalogue_store::flows(&mut conn, tenant, None).await?;
    drop(conn);
    Ok(page::ok(
        &session,
        Section::Integrations,
        "Mappings",
        mappings_body(
            &session,
            &id.to_string(),
            &held,
            &own,
            &own_flows,
            q.notice.as_deref(),
            None,
        ),
    ))
}

fn mappings_body(
    session: &Session,
    id: &str,
    held: &imports::ImportsView,
    own: &[Question],
    own_flows: &[salesync_core::catalogue::Flow],
    notice: Option<&str>,
    error: Option<&ApiError>,
) -> Markup {
    let m = &held.mapping;
    let flagged: BTreeMap<&str, usize> = m
        .mismatches
        .iter()
        .filter_map(|x| x.question.as_deref())
        .fold(BTreeMap::new(), |mut acc, q| {
            *acc.entry(q).or_default() += 1;
            acc
        });
    html! {
        h1 { "Mappings" }
        p { a href={ "/ui/integrations/" (id) } { "← The integration" } " · " a href={ "/ui/integrations/" (id) "/check" } { "Mapping check" } }
        (page::notice(notice))
        @if let Some(e) = error { (page::api_error(e)) }
        form method="post" action={ "/ui/integrations/" (id) "/mappings" } data-swap="main" {
            (csrf(session))
            h2 #flows { "Flows: yours → the provider's" }
            @if own_flows.is_empty() { p.muted { "You have no flows of your own yet." } }
            div.side-by-side {
                @for f in own_flows {
                    div #{ "flow-" (f.key) } { strong { (f.name) } " " code { (f.key) } }
                    label { span.sr-only { "Provider flow for " (f.key) }
                        select name={ "flow." (f.key) } {
                            option value="" { "— not forwarded —" }
                            @for b in &held.provider_flows {
                                option value=(b.key) selected[m.flows.get(&f.key) == Some(&b.key)] { (b.name) " (" (b.key) ")" }
                            }
                        }
                    }
                }
            }
            h2 { "Questions: the provider's ← your answers" }
            @for (bq, products) in provider_questions(held) {
                @let current = m.questions.get(&bq.key);
                @let mapped_from = match current { Some(AnswerSource::FromQuestion { question, .. }) => Some(question.as_str()), _ => None };
                @let constant = match current { Some(AnswerSource::Constant(v)) => Some(v.as_str().map_or_else(|| v.to_string(), str::to_string)), _ => None };
                @let opts = match current { Some(AnswerSource::FromQuestion { options, .. }) => options.clone(), _ => BTreeMap::new() };
                section.card #{ "q-" (bq.key) } {
                    @if let Some(n) = flagged.get(bq.key.as_str()) { p { (badge("bad", &format!("{n} mismatch(es)"))) } }
                    div.side-by-side {
                        div { h3 { "Provider" } (question_card(&bq)) br; span.muted { "In: " (products.join(", ")) } }
                        div {
                            h3 { "Your answer" }
                            label { "Comes from"
                                select name={ "q." (bq.key) ".source" } {
                                    option value="" { "— nothing —" }
                                    @for a in own {
                                        option value={ "question:" (a.key) } selected[mapped_from == Some(a.key.as_str())] { (a.label) " (" (a.key) ", " (kind_name(&a.kind)) ")" }
                                    }
                                    option value="constant" selected[constant.is_some()] { "A fixed value" }
                                }
                            }
                            label { "Fixed value (when “A fixed value”)"
                                input type="text" name={ "q." (bq.key) ".constant" } value=(constant.clone().unwrap_or_default());
                            }
                            @if let Some(a) = mapped_from.and_then(|k| own.iter().find(|q| q.key == k)) {
                                (question_card(a))
                                @if !a.options.is_empty() && !bq.options.is_empty() {
                                    fieldset { legend { "Your options → the provider's" }
                                        @for o in &a.options {
                                            label { (o.label) " (" code { (o.value) } ")"
                                                select name={ "q." (bq.key) ".opt." (o.value) } {
                                                    option value="" { "same value" }
                                                    @for b in &bq.options { option value=(b.value) selected[opts.get(&o.value) == Some(&b.value)] { (b.label) " (" (b.value) ")" } }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div.actions { button type="submit" { "Save and check" } }
        }
    }
}

/// The mapping a mappings form describes.
pub fn mapping_input(f: &Fields) -> MappingInput {
    let flows = f
        .with_prefix("flow.")
        .filter(|(_, b)| !b.is_empty())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut questions = BTreeMap::new();
    for (key, source) in f
        .with_prefix("q.")
        .filter_map(|(rest, v)| Some((rest.strip_suffix(".source")?, v)))
    {
        let answer = if let Some(a) = source.strip_prefix("question:") {
            let prefix = format!("q.{key}.opt.");
            let options = f
                .with_prefix(&prefix)
                .filter(|(_, b)| !b.is_empty())
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            AnswerSource::FromQuestion {
                question: a.to_string(),
                options,
            }
        } else if source == "constant" {
            let text = f.get(&format!("q.{key}.constant")).unwrap_or("");
            // JSON when it reads as such (numbers, booleans), else the text.
            AnswerSource::Constant(
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
            )
        } else {
            continue;
        };
        questions.insert(key.to_string(), answer);
    }
    MappingInput { flows, questions }
}

pub async fn save_mappings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let Posted { session, fields } = posted;
    let (who, id, tenant) = acting_on(&state, &session, &id).await?;
    match imports::put_mappings(
        State(state.clone()),
        who,
        Path(id.to_string()),
        JsonBody(mapping_input(&fields)),
    )
    .await
    {
        Ok(Json(v)) if v.mismatches.is_empty() => Ok(page::see_other(
            &format!("/ui/integrations/{id}/check"),
            "Saved. The mapping is complete.",
        )),
        Ok(Json(v)) => Ok(page::see_other(
            &format!("/ui/integrations/{id}/check"),
            &format!("Saved. {} mismatch(es) remain.", v.mismatches.len()),
        )),
        Err(e) => {
            let Json(held) =
                imports::get_imports(State(state.clone()), who, Path(id.to_string())).await?;
            let mut conn = state.pool.acquire().await?;
            let own = catalogue_store::own_questions(&mut conn, tenant).await?;
            let own_flows = catalogue_store::flows(&mut conn, tenant, None).await?;
            drop(conn);
            let body = mappings_body(
                &session,
                &id.to_string(),
                &held,
                &own,
                &own_flows,
                None,
                Some(&e),
            );
            Ok(page::render(
                e.status(),
                Some(&session),
                Section::Integrations,
                "Mappings",
                body,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mappings_form_becomes_the_api_input() {
        let f = Fields::parse(
            b"flow.energy=b-energy&flow.other=&q.iban.source=question%3Abank_account&q.iban.constant=&\
q.term.source=question%3Alooptijd&q.term.opt.3j=3y&q.term.opt.5j=&q.channel.source=constant&q.channel.constant=door&\
q.count.source=constant&q.count.constant=3&q.unused.source=",
        );
        let m = mapping_input(&f);
        assert_eq!(
            m.flows,
            BTreeMap::from([("energy".to_string(), "b-energy".to_string())])
        );
        assert_eq!(
            serde_json::to_value(&m.questions).unwrap(),
            serde_json::json!({
                "channel": {"constant": "door"},
                "count": {"constant": 3},
                "iban": {"from_question": {"question": "bank_account"}},
                "term": {"from_question": {"question": "looptijd", "options": {"3j": "3y"}}},
            })
        );
    }

    #[test]
    fn changes_read_as_words() {
        assert_eq!(
            describe(&Change::Updated {
                product: "fixed-3y".into(),
                from: 1,
                to: 2
            }),
            "updated: fixed-3y (from 1, to 2)"
        );
        assert_eq!(describe(&Change::FlowsChanged), "flows changed");
    }
}
