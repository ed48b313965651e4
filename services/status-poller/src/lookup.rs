//! The status lookup protocols, as pure request builders and response parsers
//! (no HTTP here; `client` sends what this module builds).
//!
//! - `salesync` target: `POST {target_url}/v1/sales/lookup`
//!   `{"external_ids": [target_ref…]}` → `{"sales": [{"external_id", "status", …}]}`
//! - `webhook` target with a `status_url`: `POST status_url` `{"ids": [target_ref…]}`
//!   → `{"statuses": [{"id", "status"}]}`
//! - `webhook` target without a `status_url` has no way to be asked: never polled.
//!
//! Parsers ignore extra fields (targets may add to their answers) but refuse
//! anything that is not the agreed shape, so a garbage answer is an error the
//! poller counts, never a wrong status carried back.

use std::collections::BTreeMap;

use salesync_core::integration::{IntegrationConfig, TargetKind};
use serde::Deserialize;

/// Longest status we accept from a target: it is stored and sent on, and a
/// longer "status" is certainly not one.
pub const MAX_STATUS_LEN: usize = 200;

/// Which answer shape a request expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    SalesyncLookup,
    WebhookStatus,
}

/// One lookup request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupRequest {
    pub url: String,
    pub body: serde_json::Value,
    pub protocol: Protocol,
}

/// Where and how an integration's target is asked for status; `None` when it
/// cannot be asked (webhook without a status URL).
pub fn endpoint(cfg: &IntegrationConfig) -> Option<(Protocol, String)> {
    match cfg.target_kind {
        TargetKind::Salesync => Some((
            Protocol::SalesyncLookup,
            format!("{}/v1/sales/lookup", cfg.target_url.trim_end_matches('/')),
        )),
        TargetKind::Webhook => cfg
            .status_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| (Protocol::WebhookStatus, u.to_string())),
    }
}

/// The request asking `cfg`'s target about these target refs.
pub fn build_request(cfg: &IntegrationConfig, target_refs: &[String]) -> Option<LookupRequest> {
    let (protocol, url) = endpoint(cfg)?;
    let body = match protocol {
        Protocol::SalesyncLookup => serde_json::json!({ "external_ids": target_refs }),
        Protocol::WebhookStatus => serde_json::json!({ "ids": target_refs }),
    };
    Some(LookupRequest {
        url,
        body,
        protocol,
    })
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LookupError {
    #[error("answer is not the agreed JSON shape: {0}")]
    Shape(String),
    #[error("answer entry {index}: {problem}")]
    Entry { index: usize, problem: String },
}

#[derive(Deserialize)]
struct SalesyncAnswer {
    sales: Vec<SalesyncEntry>,
}

#[derive(Deserialize)]
struct SalesyncEntry {
    external_id: String,
    status: String,
}

#[derive(Deserialize)]
struct WebhookAnswer {
    statuses: Vec<WebhookEntry>,
}

#[derive(Deserialize)]
struct WebhookEntry {
    id: String,
    status: String,
}

/// Target ref → status the target reports. A ref the target doesn't know is
/// simply absent. If a ref appears twice the first entry wins (a target
/// listing one sale twice is sloppy, not a reason to drop the whole answer).
pub fn parse_response(
    protocol: Protocol,
    body: &[u8],
) -> Result<BTreeMap<String, String>, LookupError> {
    let shape = |e: serde_json::Error| LookupError::Shape(e.to_string());
    let pairs: Vec<(String, String)> = match protocol {
        Protocol::SalesyncLookup => serde_json::from_slice::<SalesyncAnswer>(body)
            .map_err(shape)?
            .sales
            .into_iter()
            .map(|e| (e.external_id, e.status))
            .collect(),
        Protocol::WebhookStatus => serde_json::from_slice::<WebhookAnswer>(body)
            .map_err(shape)?
            .statuses
            .into_iter()
            .map(|e| (e.id, e.status))
            .collect(),
    };
    let mut out = BTreeMap::new();
    for (index, (id, status)) in pairs.into_iter().enumerate() {
        let problem = if id.is_empty() {
            Some("empty id".to_string())
        } else if status.trim().is_empty() {
            Some("empty status".to_string())
        } else if status.len() > MAX_STATUS_LEN {
            Some(format!("status longer than {MAX_STATUS_LEN} bytes"))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(LookupError::Entry { index, problem });
        }
        out.entry(id).or_insert(status);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::domain::ids::{IntegrationId, TenantId};
    use salesync_core::integration::ForwardingMode;

    fn cfg(kind: TargetKind, target_url: &str, status_url: Option<&str>) -> IntegrationConfig {
        IntegrationConfig {
            id: IntegrationId::new(),
            tenant_id: TenantId::new(),
            name: "t".into(),
            target_kind: kind,
            target_url: target_url.into(),
            enabled: true,
            mode: ForwardingMode::Automatic,
            trigger_statuses: vec![],
            conditions: Default::default(),
            mapping: Default::default(),
            send_opt_in: false,
            poll_status: true,
            status_url: status_url.map(Into::into),
            status_map: Default::default(),
            final_statuses: vec![],
        }
    }

    #[test]
    fn requests_per_target_kind() {
        let refs = vec!["a".to_string(), "b".to_string()];
        let cases: &[(IntegrationConfig, Option<LookupRequest>)] = &[
            (
                cfg(TargetKind::Salesync, "https://other.example/", None),
                Some(LookupRequest {
                    url: "https://other.example/v1/sales/lookup".into(),
                    body: serde_json::json!({"external_ids": ["a", "b"]}),
                    protocol: Protocol::SalesyncLookup,
                }),
            ),
            (
                // A status_url on a salesync target is irrelevant: it has a lookup API.
                cfg(
                    TargetKind::Salesync,
                    "http://h:8080",
                    Some("http://elsewhere"),
                ),
                Some(LookupRequest {
                    url: "http://h:8080/v1/sales/lookup".into(),
                    body: serde_json::json!({"external_ids": ["a", "b"]}),
                    protocol: Protocol::SalesyncLookup,
                }),
            ),
            (
                cfg(
                    TargetKind::Webhook,
                    "https://acc.example/hook",
                    Some("https://acc.example/status"),
                ),
                Some(LookupRequest {
                    url: "https://acc.example/status".into(),
                    body: serde_json::json!({"ids": ["a", "b"]}),
                    protocol: Protocol::WebhookStatus,
                }),
            ),
            (
                cfg(TargetKind::Webhook, "https://acc.example/hook", None),
                None,
            ),
            (
                cfg(TargetKind::Webhook, "https://acc.example/hook", Some("  ")),
                None,
            ),
        ];
        for (i, (c, want)) in cases.iter().enumerate() {
            assert_eq!(&build_request(c, &refs), want, "case {i}");
        }
    }

    /// The parsed answer, or `Err(())` when the body must be refused.
    type Expected = Result<BTreeMap<String, String>, ()>;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_salesync_answers() {
        let ok = |body: &str| parse_response(Protocol::SalesyncLookup, body.as_bytes());
        let cases: &[(&str, Expected)] = &[
            (r#"{"sales": []}"#, Ok(map(&[]))),
            (
                r#"{"sales": [{"external_id": "a", "id": "x", "status": "processed", "updated_at": "2024-01-01T00:00:00Z"}], "extra": 1}"#,
                Ok(map(&[("a", "processed")])),
            ),
            (
                r#"{"sales": [{"external_id": "a", "status": "one"}, {"external_id": "a", "status": "two"}]}"#,
                Ok(map(&[("a", "one")])),
            ),
            ("not json", Err(())),
            ("", Err(())),
            ("null", Err(())),
            (r#"{"statuses": []}"#, Err(())),
            (r#"{"sales": {}}"#, Err(())),
            (r#"{"sales": [{"external_id": "a"}]}"#, Err(())),
            (r#"{"sales": [{"external_id": "a", "status": 3}]}"#, Err(())),
            (
                r#"{"sales": [{"external_id": "a", "status": ""}]}"#,
                Err(()),
            ),
            (
                r#"{"sales": [{"external_id": "", "status": "x"}]}"#,
                Err(()),
            ),
        ];
        for (body, want) in cases {
            let got = ok(body);
            match want {
                Ok(w) => assert_eq!(got.as_ref(), Ok(w), "{body}"),
                Err(()) => assert!(got.is_err(), "{body} should be refused, got {got:?}"),
            }
        }
    }

    #[test]
    fn parses_webhook_answers() {
        let long = "x".repeat(MAX_STATUS_LEN + 1);
        let too_long = format!(r#"{{"statuses": [{{"id": "a", "status": "{long}"}}]}}"#);
        let cases: Vec<(&str, Expected)> = vec![
            (
                r#"{"statuses": [{"id": "a", "status": "booked", "note": "x"}, {"id": "b", "status": "open"}]}"#,
                Ok(map(&[("a", "booked"), ("b", "open")])),
            ),
            (r#"{"statuses": []}"#, Ok(map(&[]))),
            (r#"{"sales": []}"#, Err(())),
            (r#"[{"id": "a", "status": "x"}]"#, Err(())),
            (r#"{"statuses": [{"id": 1, "status": "x"}]}"#, Err(())),
            (&too_long, Err(())),
        ];
        for (body, want) in cases {
            let got = parse_response(Protocol::WebhookStatus, body.as_bytes());
            match want {
                Ok(w) => assert_eq!(got, Ok(w), "{body}"),
                Err(()) => assert!(got.is_err(), "{body} should be refused, got {got:?}"),
            }
        }
    }

    #[test]
    fn entry_errors_say_which_entry() {
        let got = parse_response(
            Protocol::WebhookStatus,
            br#"{"statuses": [{"id": "a", "status": "ok"}, {"id": "b", "status": " "}]}"#,
        );
        assert_eq!(
            got,
            Err(LookupError::Entry {
                index: 1,
                problem: "empty status".into()
            })
        );
    }
}
