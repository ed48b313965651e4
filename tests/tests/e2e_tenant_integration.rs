//! The whole tenant-to-tenant scenario of issue 17 on one deployment,
//! through the five service binaries: B sets up its catalogue, grants and
//! Agent; A adds the integration, tests it, imports and maps. A's sales that
//! should not go say why; those that should arrive at B exactly once with
//! B's flow and answers; B's custom status comes back mapped; and an order a
//! stale copy let through is refused by B in words that reach A's sale.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use salesync_core::domain::{IntegrationId, SaleId};
use salesync_e2e::api::SaleView;
use salesync_e2e::partner::{
    A_FLOW, B_FLOW, FIXED, GREEN, ProviderAddress, a_mapping, a_sale, expect, set_up_provider,
    set_up_reseller,
};
use salesync_e2e::{ServiceKind, Stack, StackOptions, Tenant, wait_for};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_tenant_integration() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let b = stack.tenant("Energy B").await.expect("tenant B");
    let a = stack.tenant("Shop A").await.expect("tenant A");
    let address = ProviderAddress {
        ingest_url: stack.ingest_url(),
        console_url: stack.console_url(),
    };
    let scenario = Scenario::set_up(&stack, &a, &b, &address).await;
    scenario.play(&stack).await;
}

/// The two tenants, wherever they live, once set up.
pub struct Scenario<'a> {
    pub a: &'a Tenant,
    pub b: &'a Tenant,
    pub integration: IntegrationId,
}

impl<'a> Scenario<'a> {
    /// B's setup, then A's; the first mapping leaves B's `term` unmapped
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
        Self { a, b, integration }
    }

    /// Sales, decisions, arrivals at B, the status back and the refusal.
    pub async fn play(&self, stack: &Stack) {
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
        let at_b_count = stack
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
            json!({"iban": salesync_e2e::partner::IBAN, "term": "3y"})
        );
        assert_eq!(at_b.sale["lines"][0]["product_ref"], FIXED);

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

        // B adds a required question; A's copy is not synced yet (no
        // callback on this deployment, reconciliation every 15 min), so A
        // forwards, and B refuses in its own words.
        let mut changed = salesync_e2e::partner::b_product("Fixed 3 years", 1200);
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

        // Sync now: the copy takes the new version and the check flags it,
        // so the next sale is held back at A with the reason.
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
        let held = a
            .api
            .post_sale(&a_sale("a-4", "paid", A_FLOW, FIXED))
            .await
            .expect("a-4");
        let reason = decision(a, held.id, integration).await;
        assert!(reason.contains("answers.meter"), "{reason}");
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
