//! A tenant's integration pages: add one (with Test connection), its
//! settings (forwarding mode, trigger statuses, conditions, status map),
//! pause and resume. Every change goes through the API's own handlers with
//! the signed-in tenant user as the caller, so a page accepts and refuses
//! exactly what the API does, with the same field names. Operators see an
//! integration's page read-only.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use salesync_core::api::ApiError;
use salesync_core::api::auth::Caller;
use salesync_core::api::json::JsonBody;
use salesync_core::domain::{IntegrationId, TenantId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::form::{Fields, Posted};
use super::health::{self, Window};
use super::page::{self, PageResult, Section, WebError, badge, csrf, time_or_dash};
use super::session::Session;
use crate::AppState;
use crate::provider::connection::ConnectionTest;
use crate::routes::imports::ConnectionInput;
use crate::routes::integrations::{self, IntegrationView};

/// The API caller a tenant user's page acts as; operators have none (their
/// pages are read-only: 404 on a change).
pub fn caller(session: &Session) -> Result<Caller, WebError> {
    let (tenant_id, token_id) = session.tenant_token().ok_or(WebError::NotFound)?;
    Ok(Caller {
        tenant_id,
        token_id,
        integration_only: false,
        organization_id: None,
    })
}

/// The integration's tenant, when the viewer may see it.
pub async fn integration_tenant(
    state: &AppState,
    session: &Session,
    id: &str,
) -> Result<(IntegrationId, TenantId), WebError> {
    let id: IntegrationId = id.parse().map_err(|_| WebError::NotFound)?;
    let tenant: Option<TenantId> = sqlx::query_scalar(
        "SELECT tenant_id FROM integrations WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let tenant = tenant
        .filter(|t| session.viewer.may_see(*t))
        .ok_or(WebError::NotFound)?;
    Ok((id, tenant))
}

/// A tenant user acting on one of its integrations: the API caller, the
/// integration and its tenant (404 for operators and others' integrations).
pub async fn acting_on(
    state: &AppState,
    session: &Session,
    id: &str,
) -> Result<(Caller, IntegrationId, TenantId), WebError> {
    let who = caller(session)?;
    let (id, tenant) = integration_tenant(state, session, id).await?;
    Ok((who, id, tenant))
}

/// Comma- or line-separated values, trimmed, blanks dropped.
pub fn list_of(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A JSON text field: blank is `default`; invalid JSON is a field error.
fn json_field(f: &Fields, name: &str, default: Value) -> Result<Value, ApiError> {
    match f.get(name) {
        None => Ok(default),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::invalid_field(name, format!("not valid JSON: {e}"))),
    }
}

/// The status map's rows (`status_from.N` → `status_to.N`).
fn status_map(f: &Fields) -> Map<String, Value> {
    f.with_prefix("status_from.")
        .filter(|(_, from)| !from.is_empty())
        .filter_map(|(n, from)| {
            let to = f.get(&format!("status_to.{n}"))?;
            Some((from.to_string(), Value::String(to.to_string())))
        })
        .collect()
}

fn outcome_markup(t: &ConnectionTest) -> Markup {
    html! {
        div #connection-result .result role="status" {
            @if t.ok { (badge("ok", "connected")) } @else { (badge("bad", "not connected")) }
            " " (t.message)
            @if let Some(a) = &t.account { br; "Account: " strong { (a) } }
            @if let Some(n) = t.granted_products { br; (n) " granted products" }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    kind: Option<String>,
}

fn new_form(session: &Session, f: &Fields, result: Option<Markup>) -> Markup {
    let kind = f.get("target_kind").unwrap_or("salesync");
    html! {
        h1 { "Add integration" }
        p.muted { "Another tenant's salesync (a provider whose products you sell) or an accounting/webhook endpoint." }
        form.stack method="post" action="/ui/integrations/new" data-swap="main" {
            (csrf(session))
            label { "Name" input type="text" name="name" required maxlength="200" value=(f.get("name").unwrap_or("")); }
            label { "Kind"
                select name="target_kind" {
                    option value="salesync" selected[kind == "salesync"] { "Another salesync (provider)" }
                    option value="webhook" selected[kind == "webhook"] { "Signed webhook" }
                }
            }
            label { "Base URL of the provider (or the webhook URL)"
                input type="url" name="target_url" required value=(f.get("target_url").unwrap_or("")) placeholder="https://provider.example";
            }
            label { "Partner routes URL, if the provider gave you a second address (optional)"
                input type="url" name="provider_url" value=(f.get("provider_url").unwrap_or(""));
            }
            label { "Token the provider gave you (an Agent's, integration-only)"
                input type="password" name="token" autocomplete="off" value=(f.get("token").unwrap_or(""));
            }
            div.actions {
                button.secondary type="submit" name="step" value="test" { "Test connection" }
                button type="submit" name="step" value="create" { "Create integration" }
            }
            @if let Some(r) = result { (r) } @else { div #connection-result {} }
        }
    }
}

pub async fn new(session: Session, Query(q): Query<NewQuery>) -> PageResult {
    caller(&session)?;
    let mut fields = Fields::default();
    if let Some(k) = q.kind {
        fields = Fields::parse(format!("target_kind={k}").as_bytes());
    }
    Ok(page::ok(
        &session,
        Section::Integrations,
        "Add integration",
        new_form(&session, &fields, None),
    ))
}

pub async fn create(State(state): State<AppState>, posted: Posted) -> PageResult {
    let Posted { session, fields: f } = posted;
    let who = caller(&session)?;
    let url = f.get("target_url").unwrap_or("").to_string();
    let provider_url = f.get("provider_url").map(str::to_string);
    let token = f.get("token").map(str::to_string);
    if f.get("step") == Some("test") {
        // The partner routes answer where the provider said, else at its base URL.
        let url = provider_url.clone().unwrap_or(url);
        let answer = crate::routes::imports::test_new_connection(
            State(state.clone()),
            who,
            JsonBody(ConnectionInput {
                url,
                token: token.unwrap_or_default(),
            }),
        )
        .await;
        let result = match answer {
            Ok(Json(t)) => outcome_markup(&t),
            Err(e) => html! { div #connection-result { (page::api_error(&e)) } },
        };
        return Ok(page::ok(
            &session,
            Section::Integrations,
            "Add integration",
            new_form(&session, &f, Some(result)),
        ));
    }
    let input = json!({
        "name": f.get("name").unwrap_or(""),
        "target_kind": f.get("target_kind").unwrap_or("salesync"),
        "target_url": url,
        "provider_url": provider_url,
        "credentials": token.map(|t| json!({"bearer_token": t})),
    });
    let created = match serde_json::from_value(input) {
        Ok(input) => integrations::create(State(state.clone()), who, JsonBody(input)).await,
        Err(e) => Err(ApiError::invalid_field("input", e.to_string())),
    };
    match created {
        Ok((_, Json(c))) => {
            let body = html! {
                h1 { "Integration " (c.view.name) " created" }
                div.notice role="status" {
                    p { "Its signing secret is shown this once; the receiver verifies " code { "webhook-signature" } " with it:" }
                    p { code #signing-secret { (c.signing_secret) } }
                }
                p { a.button href={ "/ui/integrations/" (c.view.id) } { "Continue to the integration" } }
            };
            Ok(page::render(
                StatusCode::CREATED,
                Some(&session),
                Section::Integrations,
                "Integration created",
                body,
            ))
        }
        Err(e) => {
            let mut body = new_form(&session, &f, None);
            body = html! { (page::api_error(&e)) (body) };
            Ok(page::render(
                e.status(),
                Some(&session),
                Section::Integrations,
                "Add integration",
                body,
            ))
        }
    }
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    notice: Option<String>,
}

fn settings_form(session: &Session, v: &IntegrationView, editable: bool) -> Markup {
    let conditions = serde_json::to_string_pretty(&v.conditions).unwrap_or_default();
    let mut statuses: Vec<(String, String)> = v
        .status_map
        .iter()
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect();
    statuses.extend((0..3).map(|_| (String::new(), String::new())));
    html! {
        form.stack #settings method="post" action={ "/ui/integrations/" (v.id) "/settings" } data-swap="main" {
            (csrf(session))
            fieldset disabled[!editable] {
                legend { "Forwarding" }
                label.inline { input type="checkbox" name="enabled" value="1" checked[v.enabled]; "Enabled" }
                label { "Mode"
                    select name="mode" {
                        option value="automatic" selected[v.mode.as_str() == "automatic"] { "Automatic: forward when a trigger status is reached" }
                        option value="manual" selected[v.mode.as_str() == "manual"] { "Manual: a person forwards each sale" }
                    }
                }
                label { "Trigger statuses (comma-separated; empty = every status)"
                    input type="text" name="trigger_statuses" value=(v.trigger_statuses.join(", "));
                }
                label { "Conditions (JSON, as in the API: locations, amounts, products_any, rules …)"
                    textarea name="conditions" spellcheck="false" { (conditions) }
                }
                label.inline { input type="checkbox" name="poll_status" value="1" checked[v.poll_status]; "Carry the receiver's status back (poll)" }
            }
            fieldset disabled[!editable] #status-map {
                legend { "Statuses: the receiver's status → yours" }
                div.side-by-side {
                    strong { "Receiver's status" } strong { "Your status" }
                    @for (i, (a, b)) in statuses.iter().enumerate() {
                        input type="text" name={ "status_from." (i) } value=(a) aria-label={ "Receiver's status " (i + 1) };
                        input type="text" name={ "status_to." (i) } value=(b) aria-label={ "Your status " (i + 1) };
                    }
                }
                @if !v.system_statuses.is_empty() {
                    p.muted { "Mapped automatically (salesync's own statuses): "
                        @for s in &v.system_statuses { code { (serde_json::to_value(s.status).ok().and_then(|x| x.as_str().map(str::to_string)).unwrap_or_default()) " → " (s.maps_to) } " " }
                    }
                }
            }
            @if editable { div.actions { button type="submit" { "Save settings" } } }
        }
    }
}

pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> PageResult {
    let (id, tenant) = integration_tenant(&state, &session, &id).await?;
    let v = integrations::view(&state, tenant, id).await?;
    let health = health::load(
        &state.pool,
        Some(&[*tenant.as_uuid()]),
        Some(id),
        Window::Hour,
    )
    .await?;
    Ok(page::ok(
        &session,
        Section::Integrations,
        &v.name,
        detail_body(&session, &v, health.first(), q.notice.as_deref(), None),
    ))
}

fn detail_body(
    session: &Session,
    v: &IntegrationView,
    h: Option<&health::IntegrationHealth>,
    notice: Option<&str>,
    error: Option<&ApiError>,
) -> Markup {
    let editable = session.tenant_token().is_some();
    let salesync = v.target_kind.as_str() == "salesync";
    html! {
        h1 { (v.name) }
        (page::notice(notice))
        @if let Some(e) = error { (page::api_error(e)) }
        dl.kv {
            dt { "Kind" } dd { (v.target_kind.as_str()) }
            dt { "Target" } dd { (v.target_url) }
            dt { "State" } dd {
                @if let Some(p) = &v.pause { (badge("bad", "paused")) " by " (p.paused_by) " — " (p.reason) }
                @else if let Some(s) = h.and_then(|h| h.sick()) { (badge("bad", &s)) }
                @else { (badge("ok", "running")) }
            }
            @if let Some(h) = h {
                dt { "Last hour" } dd {
                    (h.succeeded) " of " (h.attempts) " attempts delivered, " (h.retries) " retries, " (h.dead_letters) " dead letters"
                }
                dt { "Last delivered" } dd { (time_or_dash(h.last_success)) }
            }
            @if salesync { dt { "Last synchronised" } dd { (time_or_dash(v.last_synced_at)) } }
        }
        @if salesync {
            nav.actions aria-label="Integration setup" {
                a.button.secondary href={ "/ui/integrations/" (v.id) "/imports" } { "Products & sync" }
                a.button.secondary href={ "/ui/integrations/" (v.id) "/mappings" } { "Mappings" }
                a.button.secondary href={ "/ui/integrations/" (v.id) "/check" } { "Mapping check" }
            }
        }
        @if editable {
            div.side-by-side {
                @if salesync {
                    form.card method="post" action={ "/ui/integrations/" (v.id) "/test-connection" } data-swap="connection-result" {
                        (csrf(session))
                        h3 { "Connection" }
                        button.secondary type="submit" { "Test connection" }
                        div #connection-result {}
                    }
                }
                @if v.pause.is_some() {
                    form.card method="post" action={ "/ui/integrations/" (v.id) "/resume" } data-swap="main" {
                        (csrf(session))
                        h3 { "Paused" }
                        p.muted { "Deliveries are held, nothing is dropped. Resuming sends them." }
                        button type="submit" { "Resume" }
                    }
                } @else {
                    form.card method="post" action={ "/ui/integrations/" (v.id) "/pause" } data-swap="main" {
                        (csrf(session))
                        h3 { "Pause" }
                        label { "Reason" input type="text" name="reason" required maxlength="500"; }
                        button.danger type="submit" { "Pause deliveries" }
                    }
                }
            }
        }
        h2 { "Settings" }
        (settings_form(session, v, editable))
    }
}

/// Re-renders the detail page with an API refusal on it.
async fn refused(
    state: &AppState,
    session: &Session,
    id: IntegrationId,
    tenant: TenantId,
    e: ApiError,
) -> PageResult {
    let v = integrations::view(state, tenant, id).await?;
    let status = e.status();
    Ok(page::render(
        status,
        Some(session),
        Section::Integrations,
        &v.name,
        detail_body(session, &v, None, None, Some(&e)),
    ))
}

pub async fn save_settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let Posted { session, fields: f } = posted;
    let (who, id, tenant) = acting_on(&state, &session, &id).await?;
    let patch = json_field(&f, "conditions", json!({})).and_then(|conditions| {
        serde_json::from_value(json!({
            "enabled": f.checked("enabled"),
            "mode": f.get("mode").unwrap_or("automatic"),
            "trigger_statuses": list_of(f.get("trigger_statuses")),
            "conditions": conditions,
            "poll_status": f.checked("poll_status"),
            "status_map": status_map(&f),
        }))
        .map_err(|e| ApiError::invalid_field("settings", e.to_string()))
    });
    let saved = match patch {
        Ok(p) => integrations::patch(State(state.clone()), who, Path(id.to_string()), JsonBody(p))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match saved {
        Ok(()) => Ok(page::see_other(
            &format!("/ui/integrations/{id}"),
            "Settings saved.",
        )),
        Err(e) => refused(&state, &session, id, tenant, e).await,
    }
}

pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let Posted { session, fields: f } = posted;
    let (who, id, tenant) = acting_on(&state, &session, &id).await?;
    let input = crate::pause::PauseInput {
        reason: f.get("reason").unwrap_or("").to_string(),
    };
    match integrations::pause(
        State(state.clone()),
        who,
        Path(id.to_string()),
        JsonBody(input),
    )
    .await
    {
        Ok(_) => Ok(page::see_other(
            &format!("/ui/integrations/{id}"),
            "Paused: deliveries are held until you resume.",
        )),
        Err(e) => refused(&state, &session, id, tenant, e).await,
    }
}

pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let session = posted.session;
    let (who, id, tenant) = acting_on(&state, &session, &id).await?;
    match integrations::resume(State(state.clone()), who, Path(id.to_string())).await {
        Ok(_) => Ok(page::see_other(
            &format!("/ui/integrations/{id}"),
            "Resumed: held deliveries are on their way.",
        )),
        Err(e) => refused(&state, &session, id, tenant, e).await,
    }
}

pub async fn test_connection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let session = posted.session;
    let (who, id, _) = acting_on(&state, &session, &id).await?;
    let result = match crate::routes::imports::test_connection(
        State(state.clone()),
        who,
        Path(id.to_string()),
    )
    .await
    {
        Ok(Json(t)) => outcome_markup(&t),
        Err(e) => html! { div #connection-result { (page::api_error(&e)) } },
    };
    Ok(page::ok(
        &session,
        Section::Integrations,
        "Test connection",
        html! { h1 { "Test connection" } (result) p { a href={ "/ui/integrations/" (id) } { "Back to the integration" } } },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_status_rows() {
        assert_eq!(
            list_of(Some("paid, completed,\n ,shipped")),
            ["paid", "completed", "shipped"]
        );
        assert!(list_of(None).is_empty());
        let f = Fields::parse(b"status_from.0=processed&status_to.0=completed&status_from.1=&status_to.1=x&status_from.2=cancelled&status_to.2=cancelled");
        let m = status_map(&f);
        assert_eq!(
            Value::Object(m),
            json!({"processed": "completed", "cancelled": "cancelled"})
        );
        let f = Fields::parse(b"conditions=%7Bnot+json");
        assert_eq!(
            json_field(&f, "conditions", json!({}))
                .unwrap_err()
                .body()
                .fields
                .unwrap()[0]
                .field,
            "conditions"
        );
        let f = Fields::parse(b"conditions=");
        assert_eq!(json_field(&f, "conditions", json!({})).unwrap(), json!({}));
    }
}
