//! Who is calling. `Caller` authenticates a tenant API token (looked up by its
//! SHA-256; the token itself is never stored; active tokens are remembered
//! for `AUTH_CACHE_TTL`, see `token_cache`) and enforces the
//! integration-only policy from the route table, and charges the tenant's
//! rate limit (429 when over); `Admin` checks the operator's
//! `ADMIN_TOKEN` in constant time and makes admin routes look absent (404)
//! when no admin token is configured.

use std::time::Instant;

use axum::extract::FromRef;
use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::token_cache::CachedToken;
use super::{ApiError, AuthState, tokens_store};
use crate::domain::{OrganizationId, TenantId, TokenId};
use crate::tokens;

/// An authenticated tenant token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Caller {
    pub tenant_id: TenantId,
    pub token_id: TokenId,
    pub integration_only: bool,
    /// The partner organization of an Agent's token (always
    /// integration-only): orders it places are checked against what the
    /// organization is granted.
    pub organization_id: Option<OrganizationId>,
}

impl<S> FromRequestParts<S> for Caller
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AuthState::from_ref(state);
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let found = active_token(&state, tokens::hash(token)).await?;
        let caller = Caller {
            tenant_id: found.tenant_id,
            token_id: found.id,
            integration_only: found.integration_only,
            organization_id: found.organization_id,
        };
        tracing::Span::current().record("tenant_id", tracing::field::display(caller.tenant_id));
        // Every tenant request costs one token; a batch pays for its other sales itself.
        state.charge(caller.tenant_id, 1).await?;
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        if caller.integration_only && !(state.integration_policy)(&parts.method, route) {
            return Err(ApiError::Forbidden);
        }
        Ok(caller)
    }
}

/// The active token with this hash: from the cache while fresh, else from
/// the database (then cached). Unknown tokens are not cached.
async fn active_token(state: &AuthState, hash: Vec<u8>) -> Result<CachedToken, ApiError> {
    if let Some(t) = state.token_cache.get(&hash, Instant::now()) {
        return Ok(t);
    }
    let found = tokens_store::find_active(&state.pool, &hash)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if found.stale_last_used {
        // Bookkeeping only: never delay or fail the request for it.
        let pool = state.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = tokens_store::touch(&pool, found.id).await {
                tracing::debug!(error = %e, "could not record token use");
            }
        });
    }
    let t = CachedToken {
        id: found.id,
        tenant_id: found.tenant_id,
        integration_only: found.integration_only,
        organization_id: found.organization_id,
    };
    state.token_cache.put(hash, t, Instant::now());
    Ok(t)
}

/// The operator, authenticated by `ADMIN_TOKEN`.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AuthState::from_ref(state);
        let Some(expected) = state.admin_token.as_deref() else {
            return Err(ApiError::NotFound("route"));
        };
        match bearer(&parts.headers) {
            Some(given) if constant_time_eq(given, expected) => Ok(Admin),
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two secrets without an early exit, so response time does not
/// reveal how much of a guess was right. Hashing first makes the comparison
/// length-independent too.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (ha, hb) = (tokens::hash(a), tokens::hash(b));
    ha.len() == hb.len() && ha.iter().zip(&hb).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens() {
        let cases = [
            (Some("Bearer sst_abc"), Some("sst_abc")),
            (Some("bearer sst_abc"), Some("sst_abc")),
            (Some("BEARER  sst_abc "), Some("sst_abc")),
            (Some("Basic dXNlcjpwYXNz"), None),
            (Some("Bearer "), None),
            (Some("sst_abc"), None),
            (None, None),
        ];
        for (header, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(v) = header {
                h.insert(AUTHORIZATION, HeaderValue::from_static(v));
            }
            assert_eq!(bearer(&h), want, "{header:?}");
        }
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq("secret-admin-token", "secret-admin-token"));
        assert!(!constant_time_eq(
            "secret-admin-token",
            "secret-admin-tokeN"
        ));
        assert!(!constant_time_eq("secret", "secret-admin-token"));
        assert!(!constant_time_eq("", "x"));
    }
}
