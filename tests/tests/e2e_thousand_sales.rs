//! 1,000 sales from a POS tenant A, through all four services, to two
//! targets: tenant B's salesync (only `completed` sales with a coffee or tea
//! SKU) and an accounting webhook (everything). Exactly the expected subset
//! must arrive at each, each sale once; the sales B does not get must say
//! why in A's `GET /v1/sales/{id}`; every webhook signature must verify.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use salesync_core::domain::ids::SaleId;
use salesync_core::domain::sale::SaleInput;
use salesync_core::integration::Conditions;
use salesync_e2e::sales::mixed;
use salesync_e2e::{
    Behaviour, IntegrationInput, ServiceKind, Stack, StackOptions, TestTarget, wait_until,
};

const SALES: usize = 1000;
const BATCHED: usize = 600;
const B_SKUS: [&str; 2] = ["COF-001", "TEA-002"];

fn goes_to_b(s: &SaleInput) -> bool {
    s.status == "completed" && s.lines.iter().any(|l| B_SKUS.contains(&l.sku.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_thousand_sales() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let a = stack.tenant("pos-a").await.expect("tenant A");
    let b = stack.tenant("tenant-b").await.expect("tenant B");
    let b_token = stack.integration_token(&b).await.expect("B token");

    let to_b = a
        .api
        .create_integration(&IntegrationInput {
            trigger_statuses: vec!["completed".into()],
            conditions: Conditions {
                skus_any: B_SKUS.iter().map(|s| s.to_string()).collect(),
                ..Conditions::default()
            },
            ..IntegrationInput::salesync("to-b", &stack.ingest_url(), &b_token)
        })
        .await
        .expect("integration to B");
    let accounting = TestTarget::start(Behaviour::Ok).await.expect("target");
    let acc = a
        .integrate(
            &accounting,
            &IntegrationInput::webhook("accounting", &accounting.url("/ledger")),
        )
        .await
        .expect("accounting integration");

    // 600 through the batch endpoint (3 × 200), 400 one by one, 16 at a time.
    let sales: Vec<SaleInput> = (0..SALES).map(|i| mixed("pos", i)).collect();
    let mut ids: BTreeMap<String, SaleId> = BTreeMap::new();
    for chunk in sales[..BATCHED].chunks(200) {
        let r = a.api.post_batch(chunk).await.expect("batch");
        for item in r.results {
            assert_eq!(item.outcome, "created", "{item:?}");
            ids.insert(item.external_id, item.id.expect("created item has an id"));
        }
    }
    let singles: Vec<_> = futures::stream::iter(&sales[BATCHED..])
        .map(|s| a.api.post_sale(s))
        .buffer_unordered(16)
        .try_collect()
        .await
        .expect("single posts");
    for r in singles {
        assert!(!r.duplicate);
        ids.insert(r.external_id, r.id);
    }
    assert_eq!(ids.len(), SALES);

    let expected_b: BTreeSet<String> = sales
        .iter()
        .filter(|s| goes_to_b(s))
        .map(|s| s.external_id.clone())
        .collect();
    assert!(!expected_b.is_empty() && expected_b.len() < SALES);

    let b_count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sales WHERE tenant_id = $1")
            .bind(b.id)
            .fetch_one(stack.db.pool())
            .await
            .unwrap_or(-1)
    };
    let arrived = wait_until(
        Duration::from_secs(240),
        Duration::from_millis(500),
        || async {
            accounting.accepted_keys().len() >= SALES && b_count().await >= expected_b.len() as i64
        },
    )
    .await;
    if let Err(e) = arrived {
        panic!(
            "not everything arrived: accounting {} of {SALES}, B {} of {} ({e})\nforwarder:\n{}",
            accounting.accepted_keys().len(),
            b_count().await,
            expected_b.len(),
            stack.services.log_tail(ServiceKind::Forwarder, 30)
        );
    }
    stack
        .wait_quiet(Duration::from_secs(60))
        .await
        .expect("drained");

    // Accounting: every sale, once, signed.
    let requests = accounting.requests();
    assert_eq!(accounting.distinct_keys().len(), SALES);
    assert_eq!(
        requests.len(),
        SALES,
        "a healthy run sends each delivery once"
    );
    assert_eq!(accounting.bad_signatures(), 0);
    assert_eq!(accounting.unsigned_or_unverified(), 0);
    let got: BTreeSet<String> = requests
        .iter()
        .map(|r| {
            assert_eq!(r.body["type"], "sale.forwarded", "{}", r.body);
            assert_eq!(r.body["data"]["tenant_id"], a.id.to_string());
            assert_eq!(r.webhook_id, r.idempotency_key);
            assert!(r.body["timestamp"].is_string(), "{}", r.body);
            assert_eq!(r.body["data"]["status"], r.body["data"]["sale"]["status"]);
            assert!(
                r.content_type
                    .as_deref()
                    .is_some_and(|c| c.starts_with("application/json")),
                "{:?}",
                r.content_type
            );
            r.body["data"]["sale"]["external_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let all: BTreeSet<String> = ids.keys().cloned().collect();
    assert_eq!(got, all, "accounting got a different set of sales");
    let sale_ids: BTreeSet<String> = requests
        .iter()
        .map(|r| {
            r.body["data"]["sale_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let want_ids: BTreeSet<String> = ids.values().map(|i| i.to_string()).collect();
    assert_eq!(sale_ids, want_ids);

    // B: exactly the completed coffee/tea sales, each once.
    type BSale = (String, Option<String>, Option<String>, Option<String>);
    let b_sales: Vec<BSale> = sqlx::query_as(
        "SELECT external_id, sale->>'sale_number', sale->'metadata'->>'source_external_id',
                sale->'metadata'->>'source_tenant'
         FROM sales WHERE tenant_id = $1",
    )
    .bind(b.id)
    .fetch_all(stack.db.pool())
    .await
    .expect("B's sales");
    assert_eq!(b_sales.len(), expected_b.len());
    let b_sources: BTreeSet<String> = b_sales
        .iter()
        .map(|(_, n, _, _)| n.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        b_sources, expected_b,
        "B's sale_number is the source's external id"
    );
    for (_, number, source_external_id, source_tenant) in &b_sales {
        assert_eq!(source_external_id, number, "metadata.source_external_id");
        assert!(source_tenant.is_some(), "metadata.source_tenant");
    }
    let b_refs: Vec<String> = b_sales.iter().map(|(e, ..)| e.clone()).collect();
    let delivered_refs: Vec<String> = sqlx::query_scalar(
        "SELECT target_ref FROM deliveries WHERE integration_id = $1 AND state = 'delivered'",
    )
    .bind(to_b.id)
    .fetch_all(stack.db.pool())
    .await
    .expect("deliveries to B");
    assert_eq!(
        b_refs.iter().collect::<BTreeSet<_>>(),
        delivered_refs.iter().collect::<BTreeSet<_>>(),
        "B's external ids are the deliveries' target_refs"
    );

    // Filtered-out sales: a decision not to forward, with a reason.
    let not_forwarded: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT sale_id) FROM sale_decisions
         WHERE integration_id = $1 AND NOT forwarded AND reason <> ''",
    )
    .bind(to_b.id)
    .fetch_one(stack.db.pool())
    .await
    .expect("decisions");
    assert_eq!(not_forwarded as usize, SALES - expected_b.len());
    for s in sales.iter().filter(|s| !goes_to_b(s)).step_by(37) {
        let view = a.api.get_sale(ids[&s.external_id]).await.expect("GET sale");
        let d = view
            .decisions
            .iter()
            .find(|d| d.integration_id == to_b.id)
            .unwrap_or_else(|| panic!("no decision for B on {}: {view:?}", s.external_id));
        assert!(!d.forwarded, "{d:?}");
        assert!(!d.reason.trim().is_empty(), "{d:?}");
        assert!(
            view.deliveries
                .iter()
                .all(|x| x.integration_id != Some(to_b.id)),
            "{view:?}"
        );
        let acc_decision = view.decisions.iter().find(|d| d.integration_id == acc.id);
        assert!(acc_decision.is_some_and(|d| d.forwarded), "{view:?}");
    }
    for s in sales.iter().filter(|s| goes_to_b(s)).step_by(23) {
        let view = a.api.get_sale(ids[&s.external_id]).await.expect("GET sale");
        let to_b_deliveries: Vec<_> = view
            .deliveries
            .iter()
            .filter(|x| x.integration_id == Some(to_b.id))
            .collect();
        assert_eq!(to_b_deliveries.len(), 1, "{view:?}");
        assert_eq!(to_b_deliveries[0].state, "delivered");
    }
}
