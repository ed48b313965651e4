//! A tenant-to-tenant integration set up the way its two users do it, through
//! the API only (issue 17): the provider B publishes a catalogue, grants it
//! to an organization for its partner A and gives that organization's Agent
//! an integration-only token; A adds the integration, tests the connection,
//! imports B's products and maps its flow and questions onto B's. The e2e
//! tests and the demo play it on one deployment or on two.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use salesync_core::domain::IntegrationId;
use salesync_core::domain::sale::SaleInput;
use serde_json::{Value, json};

use crate::api::Api;
use crate::sales::sale;

/// B's product every scenario sells, and the one it grants but A leaves out
/// of its forwarding condition.
pub const FIXED: &str = "fixed-3y";
pub const GREEN: &str = "green-1y";
/// B's flow, and A's flow mapped onto it.
pub const B_FLOW: &str = "door";
pub const A_FLOW: &str = "energy";
/// A valid IBAN (mod-97).
pub const IBAN: &str = "NL91ABNA0417164300";

/// B's product: a rate, a required IBAN and a required term of two options.
pub fn b_product(name: &str, rate: i64) -> Value {
    json!({
        "name": name,
        "price": {"amount": rate, "currency": "EUR", "vat_rate": "21"},
        "category": "energy",
        "questions": [
            {"key": "iban", "label": "IBAN", "kind": "iban", "required": true},
            {"key": "term", "label": "Term", "kind": "single_choice", "required": true,
             "options": [{"value": "1y", "label": "1 year"}, {"value": "3y", "label": "3 years"}]},
        ],
    })
}

/// A's own sales script: its questions, in its own words and options.
pub fn a_script() -> Value {
    json!({
        "name": "A's energy script",
        "price": {"amount": 0, "currency": "EUR", "vat_rate": "21"},
        "questions": [
            {"key": "bank_account", "label": "Bank account", "kind": "iban", "required": true},
            {"key": "looptijd", "label": "Looptijd", "kind": "single_choice", "required": true,
             "options": [{"value": "1j", "label": "1 jaar"}, {"value": "3j", "label": "3 jaar"}]},
        ],
    })
}

/// What B's setup hands to A: the Agent's token (shown once).
#[derive(Debug, Clone)]
pub struct ProviderSetup {
    pub organization_id: String,
    pub agent_token: String,
}

/// `api` (B's token): two products, one flow selling both, an organization
/// for A granted both, and its Agent with an integration-only token.
pub async fn set_up_provider(api: &Api) -> anyhow::Result<ProviderSetup> {
    expect(
        api,
        Method::PUT,
        &format!("/v1/products/{FIXED}"),
        &b_product("Fixed 3 years", 1200),
        StatusCode::CREATED,
    )
    .await?;
    expect(
        api,
        Method::PUT,
        &format!("/v1/products/{GREEN}"),
        &b_product("Green 1 year", 900),
        StatusCode::CREATED,
    )
    .await?;
    let flow = json!({"name": "Door to door", "products": [FIXED, GREEN]});
    expect(
        api,
        Method::PUT,
        &format!("/v1/flows/{B_FLOW}"),
        &flow,
        StatusCode::CREATED,
    )
    .await?;
    let org = expect(
        api,
        Method::POST,
        "/v1/organizations",
        &json!({"name": "Shop A"}),
        StatusCode::CREATED,
    )
    .await?;
    let org = org["id"].as_str().context("organization id")?.to_string();
    let grants = json!({"products": [FIXED, GREEN], "flows": [B_FLOW]});
    expect(
        api,
        Method::PUT,
        &format!("/v1/organizations/{org}/grants"),
        &grants,
        StatusCode::OK,
    )
    .await?;
    let agent = expect(
        api,
        Method::POST,
        &format!("/v1/organizations/{org}/agents"),
        &json!({"name": "shop-a"}),
        StatusCode::CREATED,
    )
    .await?;
    Ok(ProviderSetup {
        organization_id: org,
        agent_token: agent["token"].as_str().context("agent token")?.to_string(),
    })
}

/// Where A reaches B: B's ingest takes the orders and answers status
/// lookups, B's console the partner routes.
#[derive(Debug, Clone)]
pub struct ProviderAddress {
    pub ingest_url: String,
    pub console_url: String,
}

/// The mapping A ends with: its flow onto B's, its questions onto B's (with
/// its option values renamed), and B's custom status "processed" onto
/// "completed".
pub fn a_mapping() -> Value {
    json!({
        "flows": {A_FLOW: B_FLOW},
        "questions": {
            "iban": {"from_question": {"question": "bank_account"}},
            "term": {"from_question": {"question": "looptijd", "options": {"1j": "1y", "3j": "3y"}}},
        },
    })
}

/// `api` (A's token): A's own script, the integration (automatic for
/// `paid` sales of B's fixed product, status polled), the connection tested,
/// both products imported and `mapping` saved. Returns the integration id
/// and the mapping check's answer to `mapping`.
pub async fn set_up_reseller(
    api: &Api,
    b: &ProviderAddress,
    agent_token: &str,
    mapping: &Value,
) -> anyhow::Result<(IntegrationId, Value)> {
    expect(
        api,
        Method::PUT,
        "/v1/products/script",
        &a_script(),
        StatusCode::CREATED,
    )
    .await?;
    let input = json!({
        "name": "Energy B",
        "target_kind": "salesync",
        "target_url": b.ingest_url,
        "provider_url": b.console_url,
        "credentials": {"bearer_token": agent_token},
        "mode": "automatic",
        "trigger_statuses": ["paid"],
        "conditions": {"products_any": [FIXED]},
        "poll_status": true,
        "status_map": {"processed": "completed"},
        "final_statuses": ["processed"],
        "removed_product_policy": "deactivate",
    });
    let created = expect(
        api,
        Method::POST,
        "/v1/integrations",
        &input,
        StatusCode::CREATED,
    )
    .await?;
    let id: IntegrationId =
        serde_json::from_value(created["id"].clone()).context("integration id")?;
    let test = expect(
        api,
        Method::POST,
        &format!("/v1/integrations/{id}/test-connection"),
        &Value::Null,
        StatusCode::OK,
    )
    .await?;
    if test["ok"] != true {
        bail!("test connection failed: {test}");
    }
    let imports = json!({"products": [FIXED, GREEN]});
    expect(
        api,
        Method::PUT,
        &format!("/v1/integrations/{id}/imports"),
        &imports,
        StatusCode::OK,
    )
    .await?;
    let check = expect(
        api,
        Method::PUT,
        &format!("/v1/integrations/{id}/mappings"),
        mapping,
        StatusCode::OK,
    )
    .await?;
    Ok((id, check))
}

/// A's sale of `product` through `flow`, answered in A's words.
pub fn a_sale(external_id: &str, status: &str, flow: &str, product: &str) -> SaleInput {
    let mut s = sale(external_id, status, product);
    s.flow = Some(flow.to_string());
    s.lines.truncate(1);
    s.lines[0].product_ref = Some(product.to_string());
    s.lines[0].answers = BTreeMap::from([
        ("bank_account".to_string(), json!(IBAN)),
        ("looptijd".to_string(), json!("3j")),
    ]);
    // One line left: the totals are that line's.
    let line = &s.lines[0];
    s.totals.net = line.net_amount;
    s.totals.gross = line.net_amount + line.vat_amount;
    s.totals.discount = line.discount;
    s.totals.vat.retain(|v| v.rate == line.vat_rate);
    s.payments.truncate(1);
    s.payments[0].amount = s.totals.gross;
    s
}

/// `raw`, insisting on `status`; the body.
pub async fn expect(
    api: &Api,
    method: Method,
    path: &str,
    body: &Value,
    status: StatusCode,
) -> anyhow::Result<Value> {
    let body = (!body.is_null()).then_some(body);
    let (got, value) = api.raw(method.clone(), path, body).await?;
    if got != status {
        bail!("{method} {path}: expected {status}, got {got}: {value}");
    }
    Ok(value)
}
