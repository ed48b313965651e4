//! `Api`: a typed client for ingest's HTTP API as docs/contracts.md defines
//! it. Typed methods fail (with status and body) on any unexpected answer;
//! `raw` gives a test the status code and JSON when the code is the point.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use salesync_core::api::routes::is_data_plane_path;
use salesync_core::domain::ids::{DeliveryId, IntegrationId, SaleId, TenantId, TokenId};
use salesync_core::domain::sale::SaleInput;
use salesync_core::integration::{
    Conditions, ForwardingMode, Mapping, TargetCredentials, TargetKind,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Api {
    /// ingest: the sales routes.
    base: String,
    /// console: every other route.
    control: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// `POST /admin/tenants` answer.
#[derive(Deserialize, Debug, Clone)]
pub struct CreatedTenant {
    pub tenant_id: TenantId,
    pub name: String,
    pub token: String,
    pub token_id: TokenId,
}

/// `POST /admin/tenants/{id}/tokens` answer.
#[derive(Deserialize, Debug, Clone)]
pub struct CreatedToken {
    pub token_id: TokenId,
    pub token: String,
}

/// `IntegrationInput` of the contract, with the defaults it documents.
#[derive(Serialize, Debug, Clone)]
pub struct IntegrationInput {
    pub name: String,
    pub target_kind: TargetKind,
    pub target_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<TargetCredentials>,
    pub enabled: bool,
    pub mode: ForwardingMode,
    pub trigger_statuses: Vec<String>,
    pub conditions: Conditions,
    pub mapping: Mapping,
    pub send_opt_in: bool,
    pub poll_status: bool,
    pub status_url: Option<String>,
    pub status_map: BTreeMap<String, String>,
    pub final_statuses: Vec<String>,
}

impl IntegrationInput {
    /// A webhook integration (accounting connector) to `url`: automatic, every status.
    pub fn webhook(name: &str, url: &str) -> Self {
        Self {
            name: name.into(),
            target_kind: TargetKind::Webhook,
            target_url: url.into(),
            credentials: None,
            enabled: true,
            mode: ForwardingMode::Automatic,
            trigger_statuses: Vec::new(),
            conditions: Conditions::default(),
            mapping: Mapping::default(),
            send_opt_in: false,
            poll_status: false,
            status_url: None,
            status_map: BTreeMap::new(),
            final_statuses: Vec::new(),
        }
    }

    /// An integration to another tenant's salesync at `base_url`, authenticating
    /// with that tenant's (integration-only) token.
    pub fn salesync(name: &str, base_url: &str, token: &str) -> Self {
        Self {
            target_kind: TargetKind::Salesync,
            credentials: Some(TargetCredentials {
                bearer_token: Some(token.into()),
            }),
            ..Self::webhook(name, base_url)
        }
    }
}

/// `POST /v1/integrations` answer: the view plus the signing secret (shown once).
#[derive(Deserialize, Debug, Clone)]
pub struct CreatedIntegration {
    pub id: IntegrationId,
    pub signing_secret: String,
    #[serde(flatten)]
    pub view: serde_json::Map<String, Value>,
}

/// `POST /v1/sales` answer.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct SaleAccepted {
    pub id: SaleId,
    pub external_id: String,
    pub status: String,
    pub duplicate: bool,
}

/// One item of `POST /v1/sales/batch`.
#[derive(Deserialize, Debug, Clone)]
pub struct BatchItem {
    pub index: usize,
    pub external_id: String,
    pub outcome: String,
    pub id: Option<SaleId>,
    pub error: Option<Value>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct BatchResponse {
    pub results: Vec<BatchItem>,
}

/// `GET /v1/sales/{id}`.
#[derive(Deserialize, Debug, Clone)]
pub struct SaleView {
    pub id: SaleId,
    pub external_id: String,
    pub status: String,
    pub sale: Value,
    pub created_at: DateTime<Utc>,
    pub status_history: Vec<StatusEntry>,
    pub decisions: Vec<Decision>,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct StatusEntry {
    pub status: String,
    pub origin: String,
    pub integration_id: Option<IntegrationId>,
    pub target_status: Option<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Decision {
    pub integration_id: IntegrationId,
    pub trigger: String,
    pub status: String,
    pub forwarded: bool,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct DeliveryView {
    pub id: DeliveryId,
    pub integration_id: Option<IntegrationId>,
    pub purpose: String,
    pub state: String,
    pub attempts: i64,
    pub target_status: Option<String>,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct AttemptView {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub outcome: String,
}

/// `POST /v1/sales/{id}/status` answer.
#[derive(Deserialize, Debug, Clone)]
pub struct StatusChanged {
    pub id: SaleId,
    pub status: String,
    pub changed: bool,
}

/// One entry of `POST /v1/sales/lookup`.
#[derive(Deserialize, Debug, Clone)]
pub struct LookupEntry {
    pub external_id: String,
    pub id: SaleId,
    pub status: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Deserialize, Debug, Clone)]
struct LookupResponse {
    sales: Vec<LookupEntry>,
}

/// `PUT /v1/webhook` answer.
#[derive(Deserialize, Debug, Clone)]
pub struct WebhookSet {
    pub url: String,
    pub secret: String,
}

impl Api {
    /// A client of the whole API at `base_url` (one address, e.g. a
    /// gateway, or ingest alone for the sales routes), without a token.
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let base = base_url.trim_end_matches('/').to_string();
        Self {
            control: base.clone(),
            base,
            token: None,
            http,
        }
    }

    /// A client sending the sales routes to ingest at `ingest_url` and every
    /// other to console at `console_url`, as a gateway in front of both
    /// would (`is_data_plane_path`).
    pub fn split(ingest_url: &str, console_url: &str) -> Self {
        Self {
            control: console_url.trim_end_matches('/').to_string(),
            ..Self::new(ingest_url)
        }
    }

    /// Where `path` is served.
    fn url(&self, path: &str) -> String {
        let base = if is_data_plane_path(path.split('?').next().unwrap_or(path)) {
            &self.base
        } else {
            &self.control
        };
        format!("{base}{path}")
    }

    /// The same client sending `Authorization: Bearer <token>`.
    #[must_use]
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// ingest's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the status and the body (JSON, or the
    /// text as a JSON string when it is not JSON; `null` when empty).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    /// `raw`, then insists on one of `expected` and decodes the body.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        expected: &[StatusCode],
    ) -> anyhow::Result<T> {
        let (status, value) = self.raw(method.clone(), path, body).await?;
        if !expected.contains(&status) {
            anyhow::bail!("{method} {path}: expected {expected:?}, got {status}: {value}");
        }
        serde_json::from_value(value.clone())
            .map_err(|e| anyhow::anyhow!("{method} {path}: undecodable answer ({e}): {value}"))
    }

    /// Admin: creates a tenant and its first token (`admin_token` = `ADMIN_TOKEN`).
    pub async fn create_tenant(
        &self,
        admin_token: &str,
        name: &str,
    ) -> anyhow::Result<CreatedTenant> {
        self.with_token(admin_token)
            .call(
                Method::POST,
                "/admin/tenants",
                Some(&json!({"name": name})),
                &[StatusCode::CREATED],
            )
            .await
    }

    /// Admin: another token for a tenant, e.g. an integration-only one.
    pub async fn create_token(
        &self,
        admin_token: &str,
        tenant: TenantId,
        name: &str,
        integration_only: bool,
    ) -> anyhow::Result<CreatedToken> {
        self.with_token(admin_token)
            .call(
                Method::POST,
                &format!("/admin/tenants/{tenant}/tokens"),
                Some(&json!({"name": name, "integration_only": integration_only})),
                &[StatusCode::CREATED],
            )
            .await
    }

    pub async fn create_integration(
        &self,
        input: &IntegrationInput,
    ) -> anyhow::Result<CreatedIntegration> {
        self.call(
            Method::POST,
            "/v1/integrations",
            Some(&serde_json::to_value(input)?),
            &[StatusCode::CREATED],
        )
        .await
    }

    /// `POST /v1/sales`: 201 for new, 200 for a duplicate.
    pub async fn post_sale(&self, sale: &SaleInput) -> anyhow::Result<SaleAccepted> {
        self.call(
            Method::POST,
            "/v1/sales",
            Some(&serde_json::to_value(sale)?),
            &[StatusCode::CREATED, StatusCode::OK],
        )
        .await
    }

    /// `POST /v1/sales/batch` with 1..=1000 sales.
    pub async fn post_batch(&self, sales: &[SaleInput]) -> anyhow::Result<BatchResponse> {
        self.call(
            Method::POST,
            "/v1/sales/batch",
            Some(&json!({ "sales": sales })),
            &[StatusCode::OK],
        )
        .await
    }

    pub async fn get_sale(&self, id: SaleId) -> anyhow::Result<SaleView> {
        self.call(
            Method::GET,
            &format!("/v1/sales/{id}"),
            None,
            &[StatusCode::OK],
        )
        .await
    }

    /// `POST /v1/sales/{id}/status`.
    pub async fn set_status(
        &self,
        id: SaleId,
        status: &str,
        note: Option<&str>,
    ) -> anyhow::Result<StatusChanged> {
        let mut body = json!({ "status": status });
        if let Some(n) = note {
            body["note"] = json!(n);
        }
        self.call(
            Method::POST,
            &format!("/v1/sales/{id}/status"),
            Some(&body),
            &[StatusCode::OK],
        )
        .await
    }

    /// `POST /v1/sales/{id}/forward` (manual send).
    pub async fn forward(&self, id: SaleId, integration: IntegrationId) -> anyhow::Result<()> {
        let (status, body) = self
            .raw(
                Method::POST,
                &format!("/v1/sales/{id}/forward"),
                Some(&json!({ "integration_id": integration })),
            )
            .await?;
        if status != StatusCode::ACCEPTED {
            anyhow::bail!("POST /v1/sales/{id}/forward: expected 202, got {status}: {body}");
        }
        Ok(())
    }

    /// `POST /v1/sales/lookup` by external ids (≤ 500).
    pub async fn lookup(&self, external_ids: &[String]) -> anyhow::Result<Vec<LookupEntry>> {
        let r: LookupResponse = self
            .call(
                Method::POST,
                "/v1/sales/lookup",
                Some(&json!({ "external_ids": external_ids })),
                &[StatusCode::OK],
            )
            .await?;
        Ok(r.sales)
    }

    /// `PUT /v1/webhook`: the tenant's own status webhook.
    pub async fn set_webhook(&self, url: &str) -> anyhow::Result<WebhookSet> {
        self.call(
            Method::PUT,
            "/v1/webhook",
            Some(&json!({ "url": url })),
            &[StatusCode::OK],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_input_serializes_to_the_contract_shape() {
        let v = serde_json::to_value(IntegrationInput::salesync("to-b", "http://b", "sst_x"))
            .expect("serialize");
        assert_eq!(v["target_kind"], "salesync");
        assert_eq!(v["credentials"], json!({"bearer_token": "sst_x"}));
        assert_eq!(v["mode"], "automatic");
        assert_eq!(v["conditions"]["skus_any"], json!([]));
        let v =
            serde_json::to_value(IntegrationInput::webhook("acc", "http://t")).expect("serialize");
        assert_eq!(v["target_kind"], "webhook");
        assert!(v.get("credentials").is_none());
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "name",
            "target_kind",
            "target_url",
            "enabled",
            "mode",
            "trigger_statuses",
            "conditions",
            "mapping",
            "send_opt_in",
            "poll_status",
            "status_url",
            "status_map",
            "final_statuses",
        ] {
            assert!(keys.contains(&k), "missing {k}");
        }
    }

    #[test]
    fn sale_view_decodes_the_contract_example() {
        let v = json!({
            "id": "0190a1b2-0000-7000-8000-000000000001",
            "external_id": "pos-1",
            "status": "completed",
            "sale": {},
            "created_at": "2025-03-01T12:00:00Z",
            "status_history": [{"status": "completed", "origin": "source", "integration_id": null,
                                "target_status": null, "note": null, "created_at": "2025-03-01T12:00:00Z"}],
            "decisions": [{"integration_id": "0190a1b2-0000-7000-8000-000000000002", "trigger": "created",
                           "status": "completed", "forwarded": false, "reason": "no sku matched",
                           "created_at": "2025-03-01T12:00:00Z"}],
            "deliveries": [{"id": "0190a1b2-0000-7000-8000-000000000003",
                            "integration_id": "0190a1b2-0000-7000-8000-000000000002",
                            "purpose": "forward", "state": "delivered", "attempts": 3,
                            "target_status": null, "last_error": null, "dead_reason": null,
                            "delivered_at": "2025-03-01T12:00:01Z",
                            "attempt_log": [{"attempt": 1, "started_at": "2025-03-01T12:00:00Z",
                                             "duration_ms": 5, "status_code": 503, "error": null,
                                             "outcome": "retry"}]}]
        });
        let view: SaleView = serde_json::from_value(v).expect("decodes");
        assert_eq!(view.deliveries[0].attempts, 3);
        assert_eq!(view.deliveries[0].attempt_log[0].status_code, Some(503));
        assert!(!view.decisions[0].forwarded);
    }
}
