//! "Test connection": what A is told about the provider it configured, in
//! plain words, one outcome per thing that can be wrong. Pure: the client's
//! answer in, the verdict out.

use serde::Serialize;

use super::client::CallError;
use crate::routes::integration::IntegrationAccess;

/// What is wrong, if anything; stable names to branch on.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// DNS, connection refused, timeout, or an address salesync does not call.
    Unreachable,
    TlsError,
    /// Reached, but the answer was an HTTP error or not a salesync's.
    HttpError,
    TokenRejected,
    /// A valid token that may do more than the integration: B should issue
    /// an Agent's token instead.
    NotIntegrationOnly,
    /// Integration-only but not an Agent's: it has no catalogue.
    NotAnAgent,
}

/// The verdict, as the API answers it.
#[derive(Serialize, Debug, Clone, PartialEq, utoipa::ToSchema)]
pub struct ConnectionTest {
    pub ok: bool,
    pub outcome: Outcome,
    /// One sentence for the person setting the integration up.
    pub message: String,
    /// B's account name (reached and the token accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// How many products B grants this token's organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_products: Option<usize>,
}

fn failed(outcome: Outcome, message: String) -> ConnectionTest {
    ConnectionTest {
        ok: false,
        outcome,
        message,
        account: None,
        granted_products: None,
    }
}

/// The verdict on the provider's answer to `GET /v1/integration`.
pub fn judge(answer: Result<IntegrationAccess, CallError>) -> ConnectionTest {
    let access = match answer {
        Ok(a) => a,
        Err(e) => {
            let outcome = match &e {
                CallError::Dns(_)
                | CallError::Refused(_)
                | CallError::Timeout
                | CallError::Blocked(_) => Outcome::Unreachable,
                CallError::Tls(_) => Outcome::TlsError,
                CallError::TokenRejected => Outcome::TokenRejected,
                CallError::Http { .. } | CallError::Forbidden(_) | CallError::Garbage(_) => {
                    Outcome::HttpError
                }
            };
            let message = match outcome {
                Outcome::Unreachable => format!("Cannot reach the provider: {e}."),
                Outcome::TlsError => format!("Reached the provider, but {e}."),
                Outcome::TokenRejected => {
                    "The provider does not accept this token: check it, or ask the provider for a new one.".to_string()
                }
                _ => format!("Reached the address, but {e}. Is it the provider's salesync address?"),
            };
            return failed(outcome, message);
        }
    };
    let account = access.account.name;
    let mut verdict = match (&access.token.organization, access.token.integration_only) {
        (_, false) => failed(
            Outcome::NotIntegrationOnly,
            format!(
                "The token is valid for '{account}' but not integration-only: it could do anything in that account. Ask the provider for an Agent's token."
            ),
        ),
        (None, true) => failed(
            Outcome::NotAnAgent,
            format!(
                "The token is valid and integration-only for '{account}', but not an Agent's: it sees no catalogue. Ask the provider for an Agent's token."
            ),
        ),
        (Some(org), true) => {
            let products = access.granted.as_ref().map_or(0, |g| g.products);
            ConnectionTest {
                ok: true,
                outcome: Outcome::Ok,
                message: format!(
                    "Connected to '{account}' as its partner '{}': {products} product{} granted.",
                    org.name,
                    if products == 1 { "" } else { "s" }
                ),
                account: None,
                granted_products: Some(products),
            }
        }
    };
    verdict.account = Some(account);
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::integration::{Account, GrantedCounts, OrganizationRef, TokenKind};
    use salesync_core::domain::{OrganizationId, TenantId};

    fn access(integration_only: bool, agent: bool) -> IntegrationAccess {
        IntegrationAccess {
            account: Account {
                tenant_id: TenantId::new(),
                name: "Energy B".into(),
            },
            token: TokenKind {
                integration_only,
                organization: agent.then(|| OrganizationRef {
                    id: OrganizationId::new(),
                    name: "Shop A".into(),
                }),
            },
            granted: agent.then_some(GrantedCounts {
                products: 3,
                flows: 1,
            }),
        }
    }

    #[test]
    fn connection_verdicts() {
        let cases: Vec<(Result<IntegrationAccess, CallError>, Outcome, &str)> = vec![
            (
                Err(CallError::Dns("no such host".into())),
                Outcome::Unreachable,
                "does not resolve",
            ),
            (
                Err(CallError::Refused("refused".into())),
                Outcome::Unreachable,
                "refused the connection",
            ),
            (
                Err(CallError::Timeout),
                Outcome::Unreachable,
                "did not answer within",
            ),
            (
                Err(CallError::Blocked("loopback".into())),
                Outcome::Unreachable,
                "does not call",
            ),
            (
                Err(CallError::Tls("bad certificate".into())),
                Outcome::TlsError,
                "TLS failed",
            ),
            (
                Err(CallError::Http {
                    status: 502,
                    excerpt: "bad gateway".into(),
                }),
                Outcome::HttpError,
                "HTTP 502",
            ),
            (
                Err(CallError::Garbage("expected value".into())),
                Outcome::HttpError,
                "not what a salesync",
            ),
            (
                Err(CallError::TokenRejected),
                Outcome::TokenRejected,
                "does not accept this token",
            ),
            (
                Ok(access(false, false)),
                Outcome::NotIntegrationOnly,
                "not integration-only",
            ),
            (
                Ok(access(true, false)),
                Outcome::NotAnAgent,
                "not an Agent's",
            ),
            (Ok(access(true, true)), Outcome::Ok, "3 products granted"),
        ];
        for (answer, outcome, says) in cases {
            let v = judge(answer);
            assert_eq!(v.outcome, outcome, "{v:?}");
            assert_eq!(v.ok, outcome == Outcome::Ok, "{v:?}");
            assert!(v.message.contains(says), "{v:?} should say '{says}'");
        }
        let ok = judge(Ok(access(true, true)));
        assert_eq!(ok.account.as_deref(), Some("Energy B"));
        assert_eq!(ok.granted_products, Some(3));
    }
}
