//! Who is looking at the console. A person signs in with a token — the
//! operator's `ADMIN_TOKEN`, an operator account's token, or a tenant
//! user's API token — and gets a session cookie (HttpOnly, SameSite=Strict,
//! Secure behind TLS). The cookie holds a random id whose SHA-256 alone is
//! stored; the session also carries the CSRF token its forms echo. A
//! session ends at logout, after `SESSION_TTL`, or as soon as the token or
//! operator behind it is revoked (checked on every request).

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use salesync_core::api::auth::constant_time_eq;
use salesync_core::api::tokens_store;
use salesync_core::domain::{TenantId, TokenId};
use salesync_core::tokens;
use sqlx::PgPool;
use uuid::Uuid;

use super::page::WebError;
use crate::AppState;

pub const COOKIE_NAME: &str = "salesync_session";
/// How long a session lasts without signing in again.
pub const SESSION_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(12);

/// The person behind a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Viewer {
    /// `tenants`: `None` sees every tenant.
    Operator {
        name: String,
        tenants: Option<Vec<TenantId>>,
    },
    Tenant {
        tenant_id: TenantId,
        token_id: TokenId,
        tenant_name: String,
    },
}

impl Viewer {
    pub fn is_operator(&self) -> bool {
        matches!(self, Viewer::Operator { .. })
    }

    pub fn label(&self) -> String {
        match self {
            Viewer::Operator {
                name,
                tenants: None,
            } => format!("operator {name}"),
            Viewer::Operator {
                name,
                tenants: Some(t),
            } => format!("operator {name} ({} tenants)", t.len()),
            Viewer::Tenant { tenant_name, .. } => tenant_name.clone(),
        }
    }

    /// The tenants this viewer may see: `None` for all.
    pub fn tenant_filter(&self) -> Option<Vec<Uuid>> {
        match self {
            Viewer::Operator { tenants, .. } => tenants
                .as_ref()
                .map(|t| t.iter().map(|t| *t.as_uuid()).collect()),
            Viewer::Tenant { tenant_id, .. } => Some(vec![*tenant_id.as_uuid()]),
        }
    }

    pub fn may_see(&self, tenant: TenantId) -> bool {
        self.tenant_filter()
            .is_none_or(|ids| ids.contains(tenant.as_uuid()))
    }

    /// The one tenant a tenant-scoped operation runs for: the tenant user's
    /// own; for an operator the one asked for (if theirs), else for a
    /// scoped operator their first tenant, else (unscoped) all (`None`).
    pub fn one_tenant(&self, asked: Option<TenantId>) -> Result<Option<TenantId>, WebError> {
        match (self, asked) {
            (Viewer::Tenant { tenant_id, .. }, None) => Ok(Some(*tenant_id)),
            (_, Some(t)) if self.may_see(t) => Ok(Some(t)),
            (_, Some(_)) => Err(WebError::NotFound),
            (Viewer::Operator { tenants: None, .. }, None) => Ok(None),
            (
                Viewer::Operator {
                    tenants: Some(t), ..
                },
                None,
            ) => t.first().copied().map(Some).ok_or(WebError::NotFound),
        }
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub viewer: Viewer,
    pub csrf: String,
    id_hash: Vec<u8>,
}

impl Session {
    /// The session of the request's cookie, or a redirect to the sign-in
    /// page (which comes back here afterwards).
    pub async fn from_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let found = match cookie(&parts.headers) {
            Some(id) => load(state, &tokens::hash(id))
                .await
                .map_err(|e| WebError::from(e).into_response())?,
            None => None,
        };
        found.ok_or_else(|| {
            let here = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/ui/");
            let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Redirect::to(&format!("/ui/login?next={next}")).into_response()
        })
    }

    /// The token a tenant user signed in with (for the API handlers the
    /// pages call); `None` for operators.
    pub fn tenant_token(&self) -> Option<(TenantId, TokenId)> {
        match &self.viewer {
            Viewer::Tenant {
                tenant_id,
                token_id,
                ..
            } => Some((*tenant_id, *token_id)),
            Viewer::Operator { .. } => None,
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Session::from_parts(parts, state).await
    }
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    kind: String,
    operator_id: Option<Uuid>,
    operator_name: Option<String>,
    operator_tenants: Option<Vec<Uuid>>,
    tenant_id: Option<TenantId>,
    token_id: Option<TokenId>,
    tenant_name: Option<String>,
    csrf_token: String,
}

async fn load(state: &AppState, id_hash: &[u8]) -> sqlx::Result<Option<Session>> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.kind, s.operator_id, o.name AS operator_name, o.tenant_ids AS operator_tenants,
                s.tenant_id, s.token_id, t.name AS tenant_name, s.csrf_token
         FROM console_sessions s
         LEFT JOIN operators o ON o.id = s.operator_id
         LEFT JOIN tenants t ON t.id = s.tenant_id
         LEFT JOIN api_tokens k ON k.id = s.token_id
         WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()
           AND (s.operator_id IS NULL OR o.revoked_at IS NULL)
           AND (s.token_id IS NULL OR (k.revoked_at IS NULL AND NOT k.integration_only))",
    )
    .bind(id_hash)
    .fetch_optional(&state.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let viewer = match (r.kind.as_str(), r.tenant_id, r.token_id) {
        ("tenant", Some(tenant_id), Some(token_id)) => Viewer::Tenant {
            tenant_id,
            token_id,
            tenant_name: r.tenant_name.unwrap_or_default(),
        },
        ("operator", _, _) => match r.operator_id {
            Some(_) => Viewer::Operator {
                name: r.operator_name.unwrap_or_default(),
                tenants: r
                    .operator_tenants
                    .map(|ids| ids.into_iter().map(TenantId::from_uuid).collect()),
            },
            // The admin token's session lasts only while an admin token is set.
            None if state.auth.admin_token.is_some() => Viewer::Operator {
                name: "admin".into(),
                tenants: None,
            },
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(Session {
        viewer,
        csrf: r.csrf_token,
        id_hash: id_hash.to_vec(),
    }))
}

/// Who a token signs in as, if anyone. Integration-only tokens (a
/// partner's Agent) are not people and cannot sign in.
enum SignIn {
    Admin,
    Operator(Uuid),
    Tenant(TenantId, TokenId),
}

async fn who(state: &AppState, token: &str) -> sqlx::Result<Option<SignIn>> {
    if let Some(admin) = state.auth.admin_token.as_deref()
        && constant_time_eq(token, admin)
    {
        return Ok(Some(SignIn::Admin));
    }
    let hash = tokens::hash(token);
    let operator: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM operators WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(&hash)
            .fetch_optional(&state.pool)
            .await?;
    if let Some(id) = operator {
        return Ok(Some(SignIn::Operator(id)));
    }
    Ok(tokens_store::find_active(&state.pool, &hash)
        .await?
        .filter(|t| !t.integration_only)
        .map(|t| SignIn::Tenant(t.tenant_id, t.id)))
}

/// Starts a session for `token`: the `Set-Cookie` header, or `None` when
/// the token signs in as nobody.
pub async fn sign_in(
    state: &AppState,
    token: &str,
    secure: bool,
) -> sqlx::Result<Option<HeaderValue>> {
    let Some(who) = who(state, token).await? else {
        return Ok(None);
    };
    let (kind, operator, tenant, token_id) = match who {
        SignIn::Admin => ("operator", None, None, None),
        SignIn::Operator(id) => ("operator", Some(id), None, None),
        SignIn::Tenant(t, k) => ("tenant", None, Some(t), Some(k)),
    };
    let id = tokens::generate();
    let csrf = tokens::generate().token;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, kind, operator_id, tenant_id, token_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id.hash)
    .bind(kind)
    .bind(operator)
    .bind(tenant)
    .bind(token_id)
    .bind(&csrf)
    .bind(Utc::now() + SESSION_TTL)
    .execute(&state.pool)
    .await?;
    Ok(Some(set_cookie(
        &id.token,
        SESSION_TTL.num_seconds(),
        secure,
    )))
}

/// Ends the session: its row is marked ended, the cookie cleared.
pub async fn sign_out(pool: &PgPool, session: &Session, secure: bool) -> sqlx::Result<HeaderValue> {
    sqlx::query("UPDATE console_sessions SET ended_at = now() WHERE id_hash = $1")
        .bind(&session.id_hash)
        .execute(pool)
        .await?;
    Ok(set_cookie("", 0, secure))
}

/// Removes sessions that ended or expired more than a day ago.
pub async fn prune(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM console_sessions
         WHERE coalesce(ended_at, expires_at) < now() - interval '1 day'",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

fn set_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie value is alphanumeric")
}

/// The response header that sets (or clears) the cookie.
pub fn with_cookie(cookie: HeaderValue, response: impl IntoResponse) -> Response {
    ([(SET_COOKIE, cookie)], response).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(n: u128) -> TenantId {
        TenantId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn scopes() {
        let all = Viewer::Operator {
            name: "a".into(),
            tenants: None,
        };
        let some = Viewer::Operator {
            name: "b".into(),
            tenants: Some(vec![tenant(1), tenant(2)]),
        };
        let own = Viewer::Tenant {
            tenant_id: tenant(3),
            token_id: TokenId::from_uuid(Uuid::from_u128(9)),
            tenant_name: "C".into(),
        };
        assert!(all.may_see(tenant(7)));
        assert!(some.may_see(tenant(2)) && !some.may_see(tenant(3)));
        assert!(own.may_see(tenant(3)) && !own.may_see(tenant(1)));
        assert_eq!(all.one_tenant(None).unwrap(), None);
        assert_eq!(some.one_tenant(None).unwrap(), Some(tenant(1)));
        assert_eq!(some.one_tenant(Some(tenant(2))).unwrap(), Some(tenant(2)));
        assert!(some.one_tenant(Some(tenant(3))).is_err());
        assert_eq!(own.one_tenant(None).unwrap(), Some(tenant(3)));
        assert!(own.one_tenant(Some(tenant(1))).is_err());
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; salesync_session=abc"),
        );
        assert_eq!(cookie(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("salesync_session="));
        assert_eq!(cookie(&h), None);
        let c = set_cookie("x", 10, true);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
    }
}
