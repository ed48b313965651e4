//! `IntegrationInput` (create) and its partial form (PATCH), and the one
//! validation both go through. Enumerations, conditions and mappings arrive as
//! loose JSON on purpose: a bad `target_kind` or an unknown key inside
//! `conditions` is then a 422 naming the field (`conditions.skus_anny`), not
//! a generic "malformed JSON". Pure: the routes do the I/O.

use std::collections::BTreeMap;

use salesync_core::catalogue::{RemovalPolicy, StatusMap, check_status_map};
use salesync_core::domain::{Currency, FieldError};
use salesync_core::integration::{
    Conditions, ForwardingMode, IntegrationConfig, Mapping, TargetCredentials, TargetKind,
};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use salesync_core::api::field_checks::{
    MAX_TARGET_STATUS_CHARS, StatusName, TargetStatusName, check_http_url, check_name,
    is_valid_status,
};
use salesync_core::api::json::not_null;

/// Longest accepted bearer token for a target.
const MAX_TOKEN_CHARS: usize = 4096;

/// A new integration: where the tenant's sales go and by which rules.
/// Loosely typed on purpose (strings, raw JSON) so that every problem is
/// reported at once; the schema says what is accepted.
#[derive(Deserialize, Debug, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationInput {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    #[schema(value_type = TargetKind)]
    pub target_kind: String,
    /// An absolute http(s) URL; for a `salesync` target, the other
    /// salesync's base URL.
    #[schema(format = "uri", max_length = 2048)]
    pub target_url: String,
    /// `null` or absent: none.
    #[serde(default)]
    #[schema(value_type = Option<Credentials>)]
    pub credentials: Option<Value>,
    /// Default true.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub enabled: Option<bool>,
    /// Default `automatic`.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = ForwardingMode)]
    pub mode: Option<String>,
    /// Statuses that forward a sale (empty or absent: any).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Vec<StatusName>)]
    pub trigger_statuses: Option<Vec<String>>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Conditions)]
    pub conditions: Option<Value>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Mapping)]
    pub mapping: Option<Value>,
    /// Send the customer's marketing opt-ins along (default false).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub send_opt_in: Option<bool>,
    /// Ask the target for each forwarded sale's status (default false).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub poll_status: Option<bool>,
    /// Where to ask; required when `poll_status` is true for a webhook target.
    #[serde(default)]
    #[schema(format = "uri", max_length = 2048)]
    pub status_url: Option<String>,
    /// The target's status → ours. For a `salesync` target both are sale
    /// statuses (`^[a-z0-9_-]{1,64}$`): B's custom statuses, each of which
    /// must be mapped to be synchronised, and overrides of the system
    /// statuses, which otherwise map to themselves (see the view's
    /// `system_statuses`).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = BTreeMap<TargetStatusName, StatusName>)]
    pub status_map: Option<BTreeMap<String, String>>,
    /// Target statuses after which a sale is no longer polled.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Vec<TargetStatusName>)]
    pub final_statuses: Option<Vec<String>>,
    /// For a `salesync` target: where the provider's partner routes
    /// (catalogue, connection test) answer, when not at `target_url`.
    #[serde(default)]
    #[schema(format = "uri", max_length = 2048)]
    pub provider_url: Option<String>,
    /// What happens to an imported product when the provider deactivates,
    /// withdraws or stops granting it (default `nothing`).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = RemovalPolicy)]
    pub removed_product_policy: Option<String>,
}

/// `PATCH /v1/integrations/{id}`: absent fields stay as they are; `null`
/// clears the two nullable ones (`credentials`, `status_url`).
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationPatch {
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "\\S")]
    #[serde(default, deserialize_with = "not_null")]
    pub name: Option<String>,
    #[schema(value_type = TargetKind)]
    #[serde(default, deserialize_with = "not_null")]
    pub target_kind: Option<String>,
    #[schema(value_type = String, format = "uri", max_length = 2048)]
    #[serde(default, deserialize_with = "not_null")]
    pub target_url: Option<String>,
    /// `null` clears them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Credentials>)]
    pub credentials: Option<Option<Value>>,
    #[schema(value_type = bool)]
    #[serde(default, deserialize_with = "not_null")]
    pub enabled: Option<bool>,
    #[schema(value_type = ForwardingMode)]
    #[serde(default, deserialize_with = "not_null")]
    pub mode: Option<String>,
    #[schema(value_type = Vec<StatusName>)]
    #[serde(default, deserialize_with = "not_null")]
    pub trigger_statuses: Option<Vec<String>>,
    #[schema(value_type = Conditions)]
    #[serde(default, deserialize_with = "not_null")]
    pub conditions: Option<Value>,
    #[schema(value_type = Mapping)]
    #[serde(default, deserialize_with = "not_null")]
    pub mapping: Option<Value>,
    #[schema(value_type = bool)]
    #[serde(default, deserialize_with = "not_null")]
    pub send_opt_in: Option<bool>,
    #[schema(value_type = bool)]
    #[serde(default, deserialize_with = "not_null")]
    pub poll_status: Option<bool>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = "uri", max_length = 2048)]
    pub status_url: Option<Option<String>>,
    #[schema(value_type = BTreeMap<TargetStatusName, StatusName>)]
    #[serde(default, deserialize_with = "not_null")]
    pub status_map: Option<BTreeMap<String, String>>,
    #[schema(value_type = Vec<TargetStatusName>)]
    #[serde(default, deserialize_with = "not_null")]
    pub final_statuses: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = "uri", max_length = 2048)]
    pub provider_url: Option<Option<String>>,
    #[schema(value_type = RemovalPolicy)]
    #[serde(default, deserialize_with = "not_null")]
    pub removed_product_policy: Option<String>,
}

/// Tells "field present (maybe null)" from "field absent" (`#[serde(default)]` → `None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The full desired state of an integration, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub name: String,
    pub target_kind: String,
    pub target_url: String,
    pub enabled: bool,
    pub mode: String,
    pub trigger_statuses: Vec<String>,
    pub conditions: Value,
    pub mapping: Value,
    pub send_opt_in: bool,
    pub poll_status: bool,
    pub status_url: Option<String>,
    pub status_map: BTreeMap<String, String>,
    pub final_statuses: Vec<String>,
    pub provider_url: Option<String>,
    pub removed_product_policy: String,
}

/// What to do with the stored credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum CredentialsChange {
    Keep,
    Clear,
    Set(Value),
}

/// A draft that passed validation, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid {
    pub name: String,
    pub target_kind: TargetKind,
    pub target_url: String,
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
    pub provider_url: Option<String>,
    pub removed_product_policy: RemovalPolicy,
}

/// What a PATCH falls back on for the provider settings, which
/// `IntegrationConfig` does not carry.
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    pub provider_url: Option<String>,
    pub removed_product_policy: RemovalPolicy,
}

impl IntegrationInput {
    /// The draft with the contract's defaults filled in.
    pub fn into_draft(self) -> (Draft, CredentialsChange) {
        let credentials = match self.credentials {
            None | Some(Value::Null) => CredentialsChange::Keep,
            Some(v) => CredentialsChange::Set(v),
        };
        let draft = Draft {
            name: self.name,
            target_kind: self.target_kind,
            target_url: self.target_url,
            enabled: self.enabled.unwrap_or(true),
            mode: self
                .mode
                .unwrap_or_else(|| ForwardingMode::default().as_str().into()),
            trigger_statuses: self.trigger_statuses.unwrap_or_default(),
            conditions: self
                .conditions
                .unwrap_or_else(|| Value::Object(Default::default())),
            mapping: self
                .mapping
                .unwrap_or_else(|| Value::Object(Default::default())),
            send_opt_in: self.send_opt_in.unwrap_or(false),
            poll_status: self.poll_status.unwrap_or(false),
            status_url: self.status_url,
            status_map: self.status_map.unwrap_or_default(),
            final_statuses: self.final_statuses.unwrap_or_default(),
            provider_url: self.provider_url,
            removed_product_policy: self
                .removed_product_policy
                .unwrap_or_else(|| RemovalPolicy::default().as_str().into()),
        };
        (draft, credentials)
    }
}

impl IntegrationPatch {
    /// The stored integration with this patch applied.
    pub fn apply(
        self,
        current: &IntegrationConfig,
        provider: &ProviderSettings,
    ) -> (Draft, CredentialsChange) {
        let credentials = match self.credentials {
            None => CredentialsChange::Keep,
            Some(None | Some(Value::Null)) => CredentialsChange::Clear,
            Some(Some(v)) => CredentialsChange::Set(v),
        };
        let c = current;
        let draft = Draft {
            name: self.name.unwrap_or_else(|| c.name.clone()),
            target_kind: self
                .target_kind
                .unwrap_or_else(|| c.target_kind.as_str().into()),
            target_url: self.target_url.unwrap_or_else(|| c.target_url.clone()),
            enabled: self.enabled.unwrap_or(c.enabled),
            mode: self.mode.unwrap_or_else(|| c.mode.as_str().into()),
            trigger_statuses: self
                .trigger_statuses
                .unwrap_or_else(|| c.trigger_statuses.clone()),
            conditions: self
                .conditions
                .unwrap_or_else(|| serde_json::to_value(&c.conditions).unwrap_or_default()),
            mapping: self
                .mapping
                .unwrap_or_else(|| serde_json::to_value(&c.mapping).unwrap_or_default()),
            send_opt_in: self.send_opt_in.unwrap_or(c.send_opt_in),
            poll_status: self.poll_status.unwrap_or(c.poll_status),
            status_url: self.status_url.unwrap_or_else(|| c.status_url.clone()),
            status_map: self.status_map.unwrap_or_else(|| c.status_map.clone()),
            final_statuses: self
                .final_statuses
                .unwrap_or_else(|| c.final_statuses.clone()),
            provider_url: self
                .provider_url
                .unwrap_or_else(|| provider.provider_url.clone()),
            removed_product_policy: self
                .removed_product_policy
                .unwrap_or_else(|| provider.removed_product_policy.as_str().into()),
        };
        (draft, credentials)
    }
}

/// Checks every field, collecting every problem.
pub fn validate(d: Draft) -> Result<Valid, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, problem: String| errors.push(FieldError::new(field, problem));

    if let Err(p) = check_name(&d.name) {
        err("name", p);
    }
    let target_kind = TargetKind::parse(&d.target_kind);
    if target_kind.is_none() {
        err(
            "target_kind",
            format!("must be 'salesync' or 'webhook', not '{}'", d.target_kind),
        );
    }
    if let Err(p) = check_http_url(&d.target_url) {
        err("target_url", p);
    }
    let mode = ForwardingMode::parse(&d.mode);
    if mode.is_none() {
        err(
            "mode",
            format!("must be 'automatic' or 'manual', not '{}'", d.mode),
        );
    }
    for (i, s) in d.trigger_statuses.iter().enumerate() {
        if !is_valid_status(s) {
            err(
                &format!("trigger_statuses[{i}]"),
                "must match ^[a-z0-9_-]{1,64}$".into(),
            );
        }
    }
    let conditions = typed::<Conditions>("conditions", d.conditions, &mut err);
    if let Some(c) = &conditions {
        for (i, code) in c.currencies.iter().enumerate() {
            if let Err(p) = Currency::parse(code) {
                err(&format!("conditions.currencies[{i}]"), p);
            }
        }
        if let Some(rule) = &c.rules {
            for e in salesync_core::rules::check_rules(rule, "conditions.rules") {
                err(&e.field, e.problem);
            }
        }
    }
    let mapping = typed::<Mapping>("mapping", d.mapping, &mut err);
    if let Some(url) = &d.provider_url
        && let Err(p) = check_http_url(url)
    {
        err("provider_url", p);
    }
    let removed_product_policy = RemovalPolicy::parse(&d.removed_product_policy);
    if removed_product_policy.is_none() {
        err(
            "removed_product_policy",
            format!(
                "must be 'nothing', 'deactivate' or 'delete', not '{}'",
                d.removed_product_policy
            ),
        );
    }
    if let Some(url) = &d.status_url
        && let Err(p) = check_http_url(url)
    {
        err("status_url", p);
    }
    if d.poll_status && target_kind == Some(TargetKind::Webhook) && d.status_url.is_none() {
        err(
            "status_url",
            "required when poll_status is true for a webhook target".into(),
        );
    }
    if target_kind == Some(TargetKind::Salesync) {
        // B's statuses are sale statuses too: both sides in that format. A
        // system status may be named, to override its mapping to itself.
        let map = StatusMap {
            statuses: d.status_map.clone(),
        };
        for e in check_status_map(&map) {
            let b = e.field.strip_prefix("statuses.").unwrap_or_default();
            err(&format!("status_map.{b}"), e.problem);
        }
    } else {
        for (target, ours) in &d.status_map {
            if target.is_empty() || target.chars().count() > MAX_TARGET_STATUS_CHARS {
                err(
                    &format!("status_map.{target}"),
                    format!("target status must be 1..={MAX_TARGET_STATUS_CHARS} characters"),
                );
            }
            if !is_valid_status(ours) {
                err(
                    &format!("status_map.{target}"),
                    format!("'{ours}' must match ^[a-z0-9_-]{{1,64}}$"),
                );
            }
        }
    }
    for (i, s) in d.final_statuses.iter().enumerate() {
        if s.is_empty() || s.chars().count() > MAX_TARGET_STATUS_CHARS {
            err(
                &format!("final_statuses[{i}]"),
                format!("must be 1..={MAX_TARGET_STATUS_CHARS} characters"),
            );
        }
    }

    match (
        target_kind,
        mode,
        conditions,
        mapping,
        removed_product_policy,
    ) {
        (Some(target_kind), Some(mode), Some(conditions), Some(mapping), Some(policy))
            if errors.is_empty() =>
        {
            Ok(Valid {
                name: d.name.trim().to_string(),
                target_kind,
                target_url: d.target_url,
                enabled: d.enabled,
                mode,
                trigger_statuses: d.trigger_statuses,
                conditions,
                mapping,
                send_opt_in: d.send_opt_in,
                poll_status: d.poll_status,
                status_url: d.status_url,
                status_map: d.status_map,
                final_statuses: d.final_statuses,
                provider_url: d.provider_url,
                removed_product_policy: policy,
            })
        }
        _ => Err(errors),
    }
}

/// Credentials salesync presents to the target. Stored encrypted; never
/// shown again.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Sent as `Authorization: Bearer …`.
    #[schema(min_length = 1, max_length = 4096)]
    bearer_token: Option<String>,
}

/// Target credentials from their JSON; `None` means "no credentials".
pub fn validate_credentials(v: Value) -> Result<Option<TargetCredentials>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, problem: String| errors.push(FieldError::new(field, problem));
    let Some(input) = typed::<Credentials>("credentials", v, &mut err) else {
        return Err(errors);
    };
    match input.bearer_token {
        None => Ok(None),
        Some(t) if t.is_empty() || t.chars().count() > MAX_TOKEN_CHARS => {
            Err(vec![FieldError::new(
                "credentials.bearer_token",
                format!("must be 1..={MAX_TOKEN_CHARS} characters"),
            )])
        }
        Some(t) => Ok(Some(TargetCredentials {
            bearer_token: Some(t),
        })),
    }
}

/// Deserializes `value` as `T`, reporting a mismatch under `prefix.<path>`.
fn typed<T: serde::de::DeserializeOwned>(
    prefix: &str,
    value: Value,
    err: &mut impl FnMut(&str, String),
) -> Option<T> {
    if !value.is_object() {
        err(prefix, "must be a JSON object".into());
        return None;
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(t) => Some(t),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                prefix.to_string()
            } else {
                format!("{prefix}.{path}")
            };
            err(&field, e.into_inner().to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesync_core::domain::{IntegrationId, TenantId};
    use serde_json::json;

    fn input(v: Value) -> IntegrationInput {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({"name": "Books", "target_kind": "webhook", "target_url": "https://books.example/in"})
    }

    fn fields(v: Value) -> Vec<String> {
        let (draft, _) = input(v).into_draft();
        match validate(draft) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|f| f.field).collect(),
        }
    }

    #[test]
    fn defaults_follow_the_contract() {
        let (draft, creds) = input(base()).into_draft();
        assert_eq!(creds, CredentialsChange::Keep);
        let v = validate(draft).unwrap();
        assert!(v.enabled);
        assert_eq!(v.mode, ForwardingMode::Automatic);
        assert_eq!(v.conditions, Conditions::default());
        assert_eq!(v.mapping, Mapping::default());
        assert!(!v.send_opt_in && !v.poll_status);
    }

    #[test]
    fn each_bad_field_is_named() {
        let with = |k: &str, val: Value| {
            let mut b = base();
            b[k] = val;
            b
        };
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (base(), vec![]),
            (with("name", json!(" ")), vec!["name"]),
            (with("target_kind", json!("ftp")), vec!["target_kind"]),
            (with("target_url", json!("ftp://x")), vec!["target_url"]),
            (with("target_url", json!("nope")), vec!["target_url"]),
            (with("mode", json!("sometimes")), vec!["mode"]),
            (
                with("trigger_statuses", json!(["paid", "Bad"])),
                vec!["trigger_statuses[1]"],
            ),
            (
                with("conditions", json!({"skus_anny": ["A"]})),
                vec!["conditions.skus_anny"],
            ),
            (
                with("conditions", json!({"min_gross": "lots"})),
                vec!["conditions.min_gross"],
            ),
            (
                with(
                    "conditions",
                    json!({"rules": {"all": [{"amount": {"range": {}}},
                                             {"answer": {"question": "Term", "test": {"in": ["3y"]}}}]}}),
                ),
                vec![
                    "conditions.rules.all[0].amount.range",
                    "conditions.rules.all[1].answer.question",
                ],
            ),
            (
                with("conditions", json!({"currencies": ["EUR", "eur"]})),
                vec!["conditions.currencies[1]"],
            ),
            (
                with("mapping", json!({"skus": {"A": 1}})),
                vec!["mapping.skus.A"],
            ),
            (with("mapping", json!([])), vec!["mapping"]),
            (with("status_url", json!("x")), vec!["status_url"]),
            (with("poll_status", json!(true)), vec!["status_url"]),
            (
                with("status_map", json!({"done": "Paid!"})),
                vec!["status_map.done"],
            ),
            (
                with("final_statuses", json!([""])),
                vec!["final_statuses[0]"],
            ),
        ];
        for (body, want) in cases {
            assert_eq!(fields(body.clone()), want, "{body}");
        }
    }

    #[test]
    fn a_salesync_targets_status_map_uses_sale_statuses() {
        let salesync = |map: Value| {
            let mut b = base();
            b["target_kind"] = json!("salesync");
            b["status_map"] = map;
            fields(b)
        };
        // Custom statuses, and system statuses overridden.
        assert!(
            salesync(json!({"processed": "completed", "rejected": "cancelled", "new": "open"}))
                .is_empty()
        );
        // B's statuses are sale statuses: a webhook could say "Done!", B can't.
        assert_eq!(
            salesync(json!({"Done!": "completed"})),
            vec!["status_map.Done!"]
        );
        assert_eq!(
            salesync(json!({"processed": "Completed"})),
            vec!["status_map.processed"]
        );
        assert_eq!(
            salesync(json!({"": "x y"})),
            vec!["status_map.", "status_map."]
        );
        let long = "a".repeat(65);
        assert_eq!(
            salesync(json!({ long.clone(): "completed" })),
            vec![format!("status_map.{}…", &long[..64])]
        );
        // A webhook's statuses are its own words.
        let mut b = base();
        b["status_map"] = json!({"Done!": "completed"});
        assert!(fields(b).is_empty());
    }

    #[test]
    fn polling_a_salesync_target_needs_no_status_url() {
        let mut b = base();
        b["target_kind"] = json!("salesync");
        b["poll_status"] = json!(true);
        assert!(fields(b).is_empty());
    }

    #[test]
    fn credentials() {
        let cases = [
            (json!({"bearer_token": "abc"}), Ok(true)),
            (json!({}), Ok(false)),
            (json!({"bearer_token": ""}), Err("credentials.bearer_token")),
            (json!({"token": "x"}), Err("credentials.token")),
            (json!("abc"), Err("credentials")),
            (json!([]), Err("credentials")),
        ];
        for (v, want) in cases {
            let got = validate_credentials(v.clone());
            match (got, want) {
                (Ok(c), Ok(has)) => assert_eq!(c.is_some(), has, "{v}"),
                (Err(e), Err(field)) => assert_eq!(e[0].field, field, "{v}"),
                (got, want) => panic!("{v}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn config() -> IntegrationConfig {
        IntegrationConfig {
            id: IntegrationId::new(),
            tenant_id: TenantId::new(),
            name: "Books".into(),
            target_kind: TargetKind::Webhook,
            target_url: "https://books.example/in".into(),
            enabled: true,
            mode: ForwardingMode::Manual,
            trigger_statuses: vec!["paid".into()],
            conditions: Conditions {
                min_gross: Some(100),
                ..Default::default()
            },
            mapping: Mapping::default(),
            send_opt_in: false,
            poll_status: true,
            status_url: Some("https://books.example/status".into()),
            status_map: BTreeMap::from([("done".into(), "paid".into())]),
            final_statuses: vec!["done".into()],
        }
    }

    #[test]
    fn patch_changes_only_what_it_names() {
        let c = config();
        let patch: IntegrationPatch =
            serde_json::from_value(json!({"enabled": false, "name": "Ledger"})).unwrap();
        let (draft, creds) = patch.apply(&c, &ProviderSettings::default());
        assert_eq!(creds, CredentialsChange::Keep);
        let v = validate(draft).unwrap();
        assert_eq!(v.name, "Ledger");
        assert!(!v.enabled);
        assert_eq!(v.mode, ForwardingMode::Manual);
        assert_eq!(v.conditions, c.conditions);
        assert_eq!(v.status_url, c.status_url);
    }

    #[test]
    fn patch_null_clears_and_revalidates() {
        let c = config();
        let patch: IntegrationPatch =
            serde_json::from_value(json!({"credentials": null, "status_url": null})).unwrap();
        let (draft, creds) = patch.apply(&c, &ProviderSettings::default());
        assert_eq!(creds, CredentialsChange::Clear);
        // poll_status is still on for a webhook target, so the status URL is needed.
        let e = validate(draft).unwrap_err();
        assert_eq!(e[0].field, "status_url");

        let patch: IntegrationPatch =
            serde_json::from_value(json!({"credentials": {"bearer_token": "t"}})).unwrap();
        assert!(matches!(
            patch.apply(&c, &ProviderSettings::default()).1,
            CredentialsChange::Set(_)
        ));
        assert!(serde_json::from_value::<IntegrationPatch>(json!({"nme": "x"})).is_err());
    }
}
