//! What a target receives, built once here so the forwarder only delivers
//! bytes (contract, "What goes to a target"). Pure: the sale, the integration's
//! vocabulary mapping and the delivery's ids in, URL and JSON body out.
//!
//! The mapping renames things (SKUs, locations, statuses, flow) and drops
//! consent data the tenant did not agree to share; it never touches an
//! amount, so the mapped sale still adds up. It is validated again anyway: a
//! mapping can still produce an invalid sale (a SKU mapped to "", one metadata
//! entry too many), and a target would then refuse it on every attempt.

use chrono::{DateTime, Utc};
use salesync_core::catalogue::{ProviderMapping, map_order};
use salesync_core::domain::ids::{SaleId, TenantId};
use salesync_core::domain::{OptIn, SaleInput, validate_sale};
use salesync_core::integration::{IntegrationConfig, TargetKind};
use serde_json::json;

/// One sale on its way to one integration.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub tenant_id: TenantId,
    pub sale_id: SaleId,
    /// The sale's status at the time of the event (may be newer than `sale.status`).
    pub status: &'a str,
    pub sale: &'a SaleInput,
}

/// The HTTP request the forwarder makes (method is always POST).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRequest {
    pub url: String,
    pub body: serde_json::Value,
}

/// Metadata keys a salesync target receives about the sale's origin.
pub const META_SOURCE_TENANT: &str = "source_tenant";
pub const META_SOURCE_EXTERNAL_ID: &str = "source_external_id";
/// Metadata key carrying `Mapping.target_flow`.
pub const META_FLOW: &str = "flow";

/// Builds the request for `integration`. `provider` is what A imported and
/// mapped of a salesync provider's catalogue, when it did: the sale then goes
/// as B's order (`catalogue::map_order`). `target_ref` is the delivery's id as
/// the target sees it (idempotency key); `now` stamps webhook bodies. `Err`
/// says why the mapped sale would be refused (a permanent problem).
pub fn target_request(
    source: Source<'_>,
    integration: &IntegrationConfig,
    provider: Option<&ProviderMapping>,
    target_ref: &str,
    now: DateTime<Utc>,
) -> Result<TargetRequest, String> {
    let mut sale = map_sale(source, integration);
    if integration.target_kind == TargetKind::Salesync
        && let Some(provider) = provider
    {
        let (flow, answers) = map_order(source.sale, provider)?;
        sale.flow = Some(flow);
        for (line, answers) in sale.lines.iter_mut().zip(answers) {
            line.answers = answers;
        }
    }
    if integration.target_kind == TargetKind::Salesync {
        // The target keys the sale by (its tenant, external_id): the delivery
        // id makes a retried request a duplicate there, not a second sale.
        sale.external_id = target_ref.to_string();
        sale.sale_number = Some(source.sale.external_id.clone());
        sale.metadata
            .insert(META_SOURCE_TENANT.into(), source.tenant_id.to_string());
        sale.metadata.insert(
            META_SOURCE_EXTERNAL_ID.into(),
            source.sale.external_id.clone(),
        );
    }
    if let Err(errors) = validate_sale(&sale) {
        let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(format!("mapped sale is invalid: {}", problems.join("; ")));
    }
    // Serialising plain data cannot fail; an empty body would be refused by
    // validation at the target rather than panicking here.
    let sale_json = serde_json::to_value(&sale).unwrap_or_default();
    Ok(match integration.target_kind {
        TargetKind::Salesync => TargetRequest {
            url: integration.target_kind.request_url(&integration.target_url),
            body: sale_json,
        },
        TargetKind::Webhook => TargetRequest {
            url: integration.target_kind.request_url(&integration.target_url),
            body: json!({
                "type": "sale.forwarded",
                "timestamp": now.to_rfc3339(),
                "data": {
                    "sale_id": source.sale_id,
                    "tenant_id": source.tenant_id,
                    "status": sale.status,
                    "sale": sale_json,
                },
            }),
        },
    })
}

/// The target-independent part: the sale in the target's vocabulary.
pub fn map_sale(source: Source<'_>, integration: &IntegrationConfig) -> SaleInput {
    let m = &integration.mapping;
    let mut sale = source.sale.clone();
    for line in &mut sale.lines {
        if let Some(sku) = m.skus.get(&line.sku) {
            line.sku = sku.clone();
        }
    }
    if let Some(loc) = sale.location_id.as_ref().and_then(|l| m.locations.get(l)) {
        sale.location_id = Some(loc.clone());
    }
    sale.status = m
        .statuses_out
        .get(source.status)
        .cloned()
        .unwrap_or_else(|| source.status.to_string());
    if !integration.send_opt_in
        && let Some(customer) = &mut sale.customer
    {
        // Consent travels only where the tenant switched it on; "no" is the
        // only safe value to send otherwise.
        customer.opt_in = OptIn::default();
    }
    if let Some(flow) = &m.target_flow {
        sale.metadata.insert(META_FLOW.into(), flow.clone());
    }
    sale
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use salesync_core::domain::ids::IntegrationId;
    use salesync_core::domain::sample_sale;
    use salesync_core::integration::{Conditions, ForwardingMode, Mapping};
    use std::collections::BTreeMap;

    fn integration(kind: TargetKind, url: &str) -> IntegrationConfig {
        IntegrationConfig {
            id: IntegrationId::new(),
            tenant_id: TenantId::new(),
            name: "target".into(),
            target_kind: kind,
            target_url: url.into(),
            enabled: true,
            mode: ForwardingMode::Automatic,
            trigger_statuses: vec![],
            conditions: Conditions::default(),
            mapping: Mapping::default(),
            send_opt_in: false,
            poll_status: false,
            status_url: None,
            status_map: BTreeMap::new(),
            final_statuses: vec![],
        }
    }

    fn mapping() -> Mapping {
        Mapping {
            skus: BTreeMap::from([("COF-001".into(), "B-COFFEE".into())]),
            statuses_out: BTreeMap::from([("completed".into(), "processed".into())]),
            locations: BTreeMap::from([("store-amsterdam".into(), "AMS".into())]),
            target_flow: Some("webshop".into()),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    /// What a case observes on the mapped sale, compared with its expectation.
    fn observe(what: &str, s: &SaleInput) -> String {
        let customer = s.customer.as_ref();
        match what {
            "skus" => s
                .lines
                .iter()
                .map(|l| l.sku.as_str())
                .collect::<Vec<_>>()
                .join(","),
            "location" => format!("{:?}", s.location_id),
            "status" => s.status.clone(),
            "metadata" => format!("{:?}", s.metadata),
            "opt_in" => format!("{:?}", customer.map(|c| &c.opt_in)),
            "email" => format!("{:?}", customer.and_then(|c| c.email.as_deref())),
            "amounts" => format!(
                "{:?} {:?} {:?}",
                s.totals,
                s.payments,
                s.lines
                    .iter()
                    .map(|l| (l.quantity, l.net_amount, l.vat_amount))
                    .collect::<Vec<_>>()
            ),
            "valid" => format!("{:?}", validate_sale(s).is_ok()),
            other => format!("unknown observation {other}"),
        }
    }

    #[test]
    fn map_sale_table() {
        let sale = sample_sale("pos-1");
        let original_amounts = observe("amounts", &sale);
        let no = format!("{:?}", Some(&OptIn::default()));
        let yes = format!(
            "{:?}",
            Some(&OptIn {
                marketing_email: true,
                marketing_sms: false
            })
        );
        // (case, status, mapping, send_opt_in, observation, expected)
        let cases: Vec<(&str, &str, Mapping, bool, &str, String)> = vec![
            (
                "empty mapping keeps SKUs",
                "completed",
                Mapping::default(),
                false,
                "skus",
                "COF-001,BRD-002".into(),
            ),
            (
                "mapped SKU, unmapped as is",
                "completed",
                mapping(),
                false,
                "skus",
                "B-COFFEE,BRD-002".into(),
            ),
            (
                "empty mapping keeps location",
                "completed",
                Mapping::default(),
                false,
                "location",
                r#"Some("store-amsterdam")"#.into(),
            ),
            (
                "mapped location",
                "completed",
                mapping(),
                false,
                "location",
                r#"Some("AMS")"#.into(),
            ),
            (
                "mapped status",
                "completed",
                mapping(),
                false,
                "status",
                "processed".into(),
            ),
            (
                "unmapped status as is",
                "paid",
                mapping(),
                false,
                "status",
                "paid".into(),
            ),
            (
                "event status wins over the stored one",
                "paid",
                Mapping::default(),
                false,
                "status",
                "paid".into(),
            ),
            (
                "flow in metadata",
                "completed",
                mapping(),
                false,
                "metadata",
                r#"{"channel": "pos", "flow": "webshop"}"#.into(),
            ),
            (
                "no flow, metadata as is",
                "completed",
                Mapping::default(),
                false,
                "metadata",
                r#"{"channel": "pos"}"#.into(),
            ),
            (
                "opt-in withheld",
                "completed",
                Mapping::default(),
                false,
                "opt_in",
                no,
            ),
            (
                "opt-in sent when switched on",
                "completed",
                Mapping::default(),
                true,
                "opt_in",
                yes,
            ),
            (
                "rest of the customer still goes",
                "completed",
                Mapping::default(),
                false,
                "email",
                r#"Some("ada@example.com")"#.into(),
            ),
            (
                "amounts untouched",
                "completed",
                mapping(),
                false,
                "amounts",
                original_amounts,
            ),
            (
                "still valid",
                "completed",
                mapping(),
                false,
                "valid",
                "true".into(),
            ),
        ];
        for (case, status, m, opt_in, what, want) in cases {
            let mut i = integration(TargetKind::Webhook, "https://x.example");
            i.mapping = m;
            i.send_opt_in = opt_in;
            let source = Source {
                tenant_id: TenantId::new(),
                sale_id: SaleId::new(),
                status,
                sale: &sale,
            };
            assert_eq!(observe(what, &map_sale(source, &i)), want, "{case}");
        }

        // A sale without a customer has no consent to strip.
        let mut anonymous = sample_sale("pos-2");
        anonymous.customer = None;
        let source = Source {
            tenant_id: TenantId::new(),
            sale_id: SaleId::new(),
            status: "completed",
            sale: &anonymous,
        };
        let i = integration(TargetKind::Webhook, "https://x.example");
        assert_eq!(map_sale(source, &i).customer, None);
    }

    #[test]
    fn salesync_target_request() {
        let sale = sample_sale("pos-1");
        let tenant = TenantId::new();
        let source = Source {
            tenant_id: tenant,
            sale_id: SaleId::new(),
            status: "completed",
            sale: &sale,
        };
        for (url, want_url) in [
            ("https://b.example", "https://b.example/v1/sales"),
            ("https://b.example/", "https://b.example/v1/sales"),
            (
                "https://b.example/tenant-b//",
                "https://b.example/tenant-b/v1/sales",
            ),
        ] {
            let mut i = integration(TargetKind::Salesync, url);
            i.mapping = mapping();
            let req = target_request(source, &i, None, "delivery-1", now()).expect("valid");
            assert_eq!(req.url, want_url);
            let body: SaleInput = serde_json::from_value(req.body).expect("a SaleInput");
            assert_eq!(body.external_id, "delivery-1");
            assert_eq!(body.sale_number.as_deref(), Some("pos-1"));
            assert_eq!(body.status, "processed");
            assert_eq!(body.lines[0].sku, "B-COFFEE");
            let meta = |k: &str| body.metadata.get(k).cloned();
            assert_eq!(meta(META_SOURCE_TENANT), Some(tenant.to_string()));
            assert_eq!(meta(META_SOURCE_EXTERNAL_ID), Some("pos-1".into()));
            assert_eq!(meta(META_FLOW), Some("webshop".into()));
            assert_eq!(validate_sale(&body), Ok(()));
        }
    }

    #[test]
    fn webhook_target_request() {
        let sale = sample_sale("pos-1");
        let source = Source {
            tenant_id: TenantId::new(),
            sale_id: SaleId::new(),
            status: "completed",
            sale: &sale,
        };
        let mut i = integration(TargetKind::Webhook, "https://books.example/hook/");
        i.mapping = mapping();
        let req = target_request(source, &i, None, "delivery-1", now()).expect("valid");
        // A webhook URL is used exactly as configured.
        assert_eq!(req.url, "https://books.example/hook/");
        assert_eq!(req.body["type"], "sale.forwarded");
        assert_eq!(req.body["timestamp"], "2025-03-01T12:00:00+00:00");
        assert_eq!(req.body["data"]["sale_id"], source.sale_id.to_string());
        assert_eq!(req.body["data"]["tenant_id"], source.tenant_id.to_string());
        assert_eq!(req.body["data"]["status"], "processed");
        let mapped: SaleInput =
            serde_json::from_value(req.body["data"]["sale"].clone()).expect("a SaleInput");
        // The source's own id stays: a webhook target keys by delivery id (webhook-id).
        assert_eq!(mapped.external_id, "pos-1");
        assert_eq!(mapped.lines[0].sku, "B-COFFEE");
        assert!(!mapped.metadata.contains_key(META_SOURCE_TENANT));
    }

    #[test]
    fn invalid_mapping_is_refused_with_the_reason() {
        let sale = sample_sale("pos-1");
        let source = Source {
            tenant_id: TenantId::new(),
            sale_id: SaleId::new(),
            status: "completed",
            sale: &sale,
        };
        let cases: Vec<(&str, Mapping, &str)> = vec![
            (
                "SKU mapped to nothing",
                Mapping {
                    skus: BTreeMap::from([("BRD-002".into(), String::new())]),
                    ..Mapping::default()
                },
                "mapped sale is invalid: lines[1].sku: must not be empty",
            ),
            (
                "status outside the status alphabet",
                Mapping {
                    statuses_out: BTreeMap::from([("completed".into(), "Processed".into())]),
                    ..Mapping::default()
                },
                "mapped sale is invalid: status:",
            ),
        ];
        for (case, m, want) in cases {
            let mut i = integration(TargetKind::Salesync, "https://b.example");
            i.mapping = m;
            let err = target_request(source, &i, None, "d-1", now()).expect_err(case);
            assert!(err.starts_with(want), "{case}: {err}");
        }

        // Metadata already full: the salesync origin keys do not fit.
        let mut full = sample_sale("pos-1");
        for n in 0..49 {
            full.metadata.insert(format!("k{n}"), "v".into());
        }
        assert_eq!(validate_sale(&full), Ok(()));
        let source = Source {
            sale: &full,
            ..source
        };
        let i = integration(TargetKind::Salesync, "https://b.example");
        let err = target_request(source, &i, None, "d-1", now()).expect_err("too much metadata");
        assert!(err.contains("metadata"), "{err}");
        // The same sale is fine for a webhook, which adds no metadata.
        let i = integration(TargetKind::Webhook, "https://b.example");
        assert!(target_request(source, &i, None, "d-1", now()).is_ok());
    }
}
