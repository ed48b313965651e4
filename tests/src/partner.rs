//! A tenant-to-tenant integration set up the way its two users do it, through
//! the API only (issue 17): the provider B publishes a catalogue, grants it
//! to an organization for its partner A and gives that organization's Agent
//! an integration-only token; A adds the integration, tests the connection,
//! imports B's products and maps its flow and questions onto B's. The e2e
//! tests and the demo play it on one deployment or on two.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use salesync_core::domain::sale::SaleInput;
use salesync_core::domain::{IntegrationId, SaleId};
use serde_json::{Value, json};

use crate::api::{Api, SaleView};
use crate::sales::sale;
use crate::services::ServiceKind;
use crate::stack::{Stack, Tenant};
use crate::wait::wait_for;

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
    let forwarding = json!({
        "trigger_statuses": ["paid"],
        "conditions": {
            "products_any": [FIXED],
            // One-year contracts are not for B.
            "rules": {"not": {"answer": {"question": "looptijd", "test": {"equals": "1j"}}}},
        },
        "poll_status": true,
        "status_map": {"processed": "completed"},
        "final_statuses": ["processed"],
    });
    set_up_reseller_with(api, b, agent_token, mapping, &forwarding).await
}

/// `set_up_reseller` with the integration's forwarding settings
/// (`trigger_statuses`, `conditions`, status polling …) from `forwarding`.
pub async fn set_up_reseller_with(
    api: &Api,
    b: &ProviderAddress,
    agent_token: &str,
    mapping: &Value,
    forwarding: &Value,
) -> anyhow::Result<(IntegrationId, Value)> {
    expect(
        api,
        Method::PUT,
        "/v1/products/script",
        &a_script(),
        StatusCode::CREATED,
    )
    .await?;
    let mut input = json!({
        "name": "Energy B",
        "target_kind": "salesync",
        "target_url": b.ingest_url,
        "provider_url": b.console_url,
        "credentials": {"bearer_token": agent_token},
        "mode": "automatic",
        "removed_product_policy": "deactivate",
    });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), forwarding.as_object()) {
        input.extend(extra.clone());
    }
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

/// A's sale of `product` through `flow`, answered in A's words: one line.
pub fn a_sale(external_id: &str, status: &str, flow: &str, product: &str) -> SaleInput {
    let mut s = sale(external_id, status, product);
    s.lines.truncate(1);
    // One line left: the totals are that line's.
    let line = &s.lines[0];
    s.totals.net = line.net_amount;
    s.totals.gross = line.net_amount + line.vat_amount;
    s.totals.discount = line.discount;
    s.totals.vat.retain(|v| v.rate == line.vat_rate);
    s.payments.truncate(1);
    s.payments[0].amount = s.totals.gross;
    as_order(s, flow, &[product])
}

/// `sale` placed through A's `flow`: line `i` sells `products[i % len]`
/// and carries A's answers to its script.
pub fn as_order(mut sale: SaleInput, flow: &str, products: &[&str]) -> SaleInput {
    sale.flow = Some(flow.to_string());
    for (i, line) in sale.lines.iter_mut().enumerate() {
        line.product_ref = products
            .get(i % products.len().max(1))
            .map(|p| (*p).to_string());
        line.answers = BTreeMap::from([
            ("bank_account".to_string(), json!(IBAN)),
            (
                "looptijd".to_string(),
                json!(if i % 2 == 0 { "3j" } else { "1j" }),
            ),
        ]);
    }
    sale
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

/// The two tenants, wherever they live, once set up.
pub struct Scenario<'a> {
    pub a: &'a Tenant,
    pub b: &'a Tenant,
    pub integration: IntegrationId,
    /// B's organization for A.
    pub organization_id: String,
}

impl<'a> Scenario<'a> {
    /// B's setup, then A's (on `stack`); the first mapping leaves B's `term` unmapped
    /// and the check says so before any order could fail.
    pub async fn set_up(
        stack: &Stack,
        a: &'a Tenant,
        b: &'a Tenant,
        address: &ProviderAddress,
    ) -> Self {
        let provider = set_up_provider(&b.api).await.expect("B's setup");
        let partial = json!({
            "flows": {A_FLOW: B_FLOW},
            "questions": {"iban": {"from_question": {"question": "bank_account"}}},
        });
        let (integration, check) =
            set_up_reseller(&a.api, address, &provider.agent_token, &partial)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "A's setup: {e}\n{}",
                        stack.services.log_tail(ServiceKind::Console, 30)
                    )
                });
        let flagged: Vec<(&str, &str)> = check["mismatches"]
            .as_array()
            .expect("mismatches")
            .iter()
            .map(|m| {
                (
                    m["kind"].as_str().unwrap_or(""),
                    m["question"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            flagged,
            [("unmapped_required", "term"), ("unmapped_required", "term")],
            "one per imported product: {check}"
        );
        assert!(check["flagged_at"].is_string(), "{check}");
        let fixed = expect(
            &a.api,
            Method::PUT,
            &format!("/v1/integrations/{integration}/mappings"),
            &a_mapping(),
            StatusCode::OK,
        )
        .await
        .expect("fixed mapping");
        assert_eq!(fixed["mismatches"], json!([]), "{fixed}");
        assert_eq!(fixed["flagged_at"], Value::Null);
        Self {
            a,
            b,
            integration,
            organization_id: provider.organization_id,
        }
    }

    /// Sales, decisions, arrivals at B, the status back and the refusal.
    /// `a_stack` and `b_stack` are the deployments A and B live on (the
    /// same one, or two).
    /// With `callbacks`, A's console subscribed to B's change callbacks.
    pub async fn play(&self, a_stack: &Stack, b_stack: &Stack, callbacks: bool) {
        let stack = a_stack;
        let (a, b, integration) = (self.a, self.b, self.integration);
        let draft = a
            .api
            .post_sale(&a_sale("a-draft", "open", A_FLOW, FIXED))
            .await
            .expect("draft");
        let green = a
            .api
            .post_sale(&a_sale("a-green", "paid", A_FLOW, GREEN))
            .await
            .expect("green");
        let web = a
            .api
            .post_sale(&a_sale("a-web", "paid", "web", FIXED))
            .await
            .expect("web");
        let mut one_year = a_sale("a-1j", "paid", A_FLOW, FIXED);
        one_year.lines[0]
            .answers
            .insert("looptijd".into(), json!("1j"));
        let one_year = a.api.post_sale(&one_year).await.expect("a-1j");
        let first = a
            .api
            .post_sale(&a_sale("a-1", "paid", A_FLOW, FIXED))
            .await
            .expect("a-1");
        let second = a
            .api
            .post_sale(&a_sale("a-2", "paid", A_FLOW, FIXED))
            .await
            .expect("a-2");

        for (sale, says) in [
            (draft.id, "status 'open' does not trigger forwarding"),
            (green.id, "no line names a product in [fixed-3y]"),
            (web.id, "your flow 'web' is not mapped"),
            (one_year.id, "rules.not: answers.looptijd equals 1j holds"),
        ] {
            let reason = decision(a, sale, integration).await;
            assert!(
                reason.contains(says),
                "{sale}: '{reason}' should say '{says}'"
            );
        }

        // Exactly once at B, in B's flow and words.
        let b_ref = delivered(stack, a, first.id, integration).await;
        let second_ref = delivered(stack, a, second.id, integration).await;
        b_stack
            .wait_quiet(Duration::from_secs(60))
            .await
            .expect("B quiet");
        stack
            .wait_quiet(Duration::from_secs(60))
            .await
            .expect("quiet");
        let found = b
            .api
            .lookup(&[b_ref.clone(), second_ref])
            .await
            .expect("B lookup");
        assert_eq!(found.len(), 2, "{found:?}");
        let at_b_count = b_stack
            .db
            .scalar_with(
                "SELECT count(*) FROM sales WHERE tenant_id = $1::uuid",
                &b.id.to_string(),
            )
            .await
            .expect("count");
        assert_eq!(at_b_count, 2, "two sales at B, once each");
        let b_first = found
            .iter()
            .find(|f| f.external_id == b_ref)
            .expect("first at B");
        let at_b = b.api.get_sale(b_first.id).await.expect("B's copy");
        assert_eq!(at_b.sale["flow"], B_FLOW);
        assert_eq!(
            at_b.sale["lines"][0]["answers"],
            json!({"iban": IBAN, "term": "3y"})
        );
        assert_eq!(at_b.sale["lines"][0]["product_ref"], FIXED);
        // send_opt_in is off: A's customer consented to e-mail, B hears no.
        assert_eq!(
            at_b.sale["customer"]["opt_in"],
            json!({"marketing_email": false, "marketing_sms": false})
        );

        // B processes it; A sees its own word for that.
        b.api
            .set_status(b_first.id, "processed", Some("booked"))
            .await
            .expect("B sets processed");
        let back = wait_for(
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async {
                let v = a.api.get_sale(first.id).await.ok()?;
                (v.status == "completed").then_some(v)
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "status never came back ({e})\n{}",
                stack.services.log_tail(ServiceKind::StatusPoller, 30)
            )
        });
        let entry = back.status_history.last().expect("history");
        assert_eq!(entry.origin, "integration");
        assert_eq!(entry.target_status.as_deref(), Some("processed"));

        // B adds a required question to the product A sells.
        let mut changed = b_product("Fixed 3 years", 1200);
        changed["questions"]
            .as_array_mut()
            .expect("questions")
            .push(
                json!({"key": "meter", "label": "Meter number", "kind": "text", "required": true}),
            );
        expect(
            &b.api,
            Method::PUT,
            &format!("/v1/products/{FIXED}"),
            &changed,
            StatusCode::OK,
        )
        .await
        .expect("B changes the product");
        if callbacks {
            self.copy_follows_b(stack, b_stack).await;
        } else {
            self.stale_copy_is_refused(stack).await;
        }
        // Either way A's copy now knows the question: the next sale is held
        // back at A with the reason.
        let held = a
            .api
            .post_sale(&a_sale("a-4", "paid", A_FLOW, FIXED))
            .await
            .expect("a-4");
        let reason = decision(a, held.id, integration).await;
        assert!(reason.contains("answers.meter"), "{reason}");
    }

    /// Without callbacks (no `PUBLIC_URL` on A's console, reconciliation
    /// every 15 min) A's copy is stale: A forwards, B refuses in its own
    /// words, which reach A's sale; Sync now then takes the new version.
    async fn stale_copy_is_refused(&self, stack: &Stack) {
        let (a, integration) = (self.a, self.integration);
        let stale = a
            .api
            .post_sale(&a_sale("a-3", "paid", A_FLOW, FIXED))
            .await
            .expect("a-3");
        let dead = wait_for(
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async {
                let v = a.api.get_sale(stale.id).await.ok()?;
                v.deliveries
                    .into_iter()
                    .find(|d| d.integration_id == Some(integration) && d.state == "dead")
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "B's refusal never reached A ({e})\n{}",
                stack.services.log_tail(ServiceKind::Forwarder, 30)
            )
        });
        let reason = dead.dead_reason.unwrap_or_default();
        assert!(reason.contains("meter"), "B's words reach A: {reason}");
        let sync = expect(
            &a.api,
            Method::POST,
            &format!("/v1/integrations/{integration}/sync"),
            &Value::Null,
            StatusCode::OK,
        )
        .await
        .expect("sync now");
        assert!(sync["mismatches"].to_string().contains("meter"), "{sync}");
    }

    /// With callbacks (A's console has a `PUBLIC_URL` B can reach) A's copy
    /// follows B with no call from A: the new version arrives and the
    /// mapping check flags its question; B revokes a grant and the copy is
    /// deactivated (policy `deactivate`).
    async fn copy_follows_b(&self, a_stack: &Stack, b_stack: &Stack) {
        let (a, b, integration) = (self.a, self.b, self.integration);
        let copy = |imports: &Value, key: &str| -> Value {
            imports["products"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["product"]["key"] == key))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let imports = || async {
            a.api
                .raw(
                    Method::GET,
                    &format!("/v1/integrations/{integration}/imports"),
                    None,
                )
                .await
                .ok()
                .map(|(_, v)| v)
        };
        let synced = wait_for(
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async {
                let v = imports().await?;
                (copy(&v, FIXED)["product"]["version"] == 2).then_some(v)
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "A's copy never followed B ({e})\nA's console:\n{}\nB's console:\n{}\nB's forwarder:\n{}",
                a_stack.services.log_tail(ServiceKind::Console, 30),
                b_stack.services.log_tail(ServiceKind::Console, 15),
                b_stack.services.log_tail(ServiceKind::Forwarder, 15)
            )
        });
        assert!(synced["subscribed"] == true, "{synced}");
        assert!(synced["mapping"]["flagged_at"].is_string(), "{synced}");
        assert!(
            synced["mapping"]["mismatches"]
                .to_string()
                .contains("meter"),
            "{synced}"
        );
        let grants = json!({"products": [FIXED], "flows": [B_FLOW]});
        let org = self.organization_id.as_str();
        expect(
            &b.api,
            Method::PUT,
            &format!("/v1/organizations/{org}/grants"),
            &grants,
            StatusCode::OK,
        )
        .await
        .expect("B revokes the green product");
        wait_for(
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async {
                let v = imports().await?;
                let green = copy(&v, GREEN);
                (green["active"] == false && green["source_state"] == "removed").then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("the revoked copy was not deactivated ({e})"));
    }
}

/// The recorded decision of `sale` for `integration`, once there is one.
async fn decision(a: &Tenant, sale: SaleId, integration: IntegrationId) -> String {
    let view: SaleView = wait_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let v = a.api.get_sale(sale).await.ok()?;
            v.decisions
                .iter()
                .any(|d| d.integration_id == integration)
                .then_some(v)
        },
    )
    .await
    .expect("a decision");
    let d = view
        .decisions
        .iter()
        .find(|d| d.integration_id == integration)
        .expect("decision");
    assert!(!d.forwarded || d.reason == "forwarded", "{d:?}");
    if d.forwarded {
        String::new()
    } else {
        d.reason.clone()
    }
}

/// The delivery id (B's external id) once A's sale is delivered to B.
async fn delivered(stack: &Stack, a: &Tenant, sale: SaleId, integration: IntegrationId) -> String {
    wait_for(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let v = a.api.get_sale(sale).await.ok()?;
            v.deliveries
                .iter()
                .find(|d| d.integration_id == Some(integration) && d.state == "delivered")
                .map(|d| d.id.to_string())
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{sale} never delivered ({e})\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        )
    })
}
