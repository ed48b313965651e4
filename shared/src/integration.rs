//! How a tenant configures one integration (a target its sales go to): the
//! forwarding rules condition-filter applies, the vocabulary mapping, and the
//! status mapping status-poller applies on the way back. Pure data plus the
//! small rules more than one service needs; loading lives with each service.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::{self, StatusMapping};
use crate::domain::ids::{IntegrationId, TenantId};

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Another tenant's salesync: the target URL is its base URL, sales go to
    /// `POST /v1/sales` with that tenant's token.
    Salesync,
    /// Any HTTPS endpoint (accounting/invoicing connector) taking a signed
    /// JSON sale event.
    Webhook,
}

impl TargetKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetKind::Salesync => "salesync",
            TargetKind::Webhook => "webhook",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "salesync" => Some(Self::Salesync),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }

    /// Where a forwarded sale is POSTed, given the integration's
    /// `target_url`: condition-filter plans first sends with it, and a
    /// dead-letter replay re-targets with it, so both agree.
    pub fn request_url(&self, target_url: &str) -> String {
        match self {
            TargetKind::Salesync => format!("{}/v1/sales", target_url.trim_end_matches('/')),
            TargetKind::Webhook => target_url.to_string(),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForwardingMode {
    /// Every sale whose status is in the trigger set (or any, if empty) and
    /// that meets the conditions is forwarded by itself.
    #[default]
    Automatic,
    /// Nothing goes by itself; a person sends one sale at a time, and it must
    /// still meet the conditions.
    Manual,
}

impl ForwardingMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ForwardingMode::Automatic => "automatic",
            ForwardingMode::Manual => "manual",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "automatic" => Some(Self::Automatic),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }
}

/// Conditions beyond status. Every list that is non-empty must match; empty
/// lists don't constrain.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// Forward only if at least one line has one of these SKUs.
    #[serde(default)]
    pub skus_any: Vec<String>,
    /// Forward only if at least one line is in one of these categories.
    #[serde(default)]
    pub categories_any: Vec<String>,
    /// Forward only if at least one line names one of these catalogue
    /// products (`lines[].product_ref`, e.g. a product imported from a
    /// provider).
    #[serde(default)]
    pub products_any: Vec<String>,
    /// Never forward a sale containing one of these SKUs.
    #[serde(default)]
    pub skus_none: Vec<String>,
    /// Forward only sales from these locations.
    #[serde(default)]
    pub locations: Vec<String>,
    /// Forward only sales whose gross total (minor units) is at least this.
    #[serde(default, deserialize_with = "crate::domain::whole::optional_whole")]
    pub min_gross: Option<i64>,
    /// Forward only sales in these currencies (ISO 4217 codes).
    #[serde(default)]
    #[schema(value_type = Vec<crate::domain::Currency>)]
    pub currencies: Vec<String>,
    /// Structured rules (`all` / `any` / `not` over product, category,
    /// flow, answers, location, amount and currency), checked after the
    /// lists above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<crate::rules::ForwardingRule>,
}

/// One side's vocabulary onto the other's.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Our SKU → the target's SKU (unmapped SKUs are sent as they are).
    #[serde(default)]
    pub skus: BTreeMap<String, String>,
    /// Our status → the status the target should record (unmapped: as is).
    #[serde(default)]
    pub statuses_out: BTreeMap<String, String>,
    /// Our location id → the target's location id.
    #[serde(default)]
    pub locations: BTreeMap<String, String>,
    /// The target's flow (sales script/checkout) the sale is placed through.
    #[serde(default)]
    pub target_flow: Option<String>,
}

/// An integration as the services use it (secrets decrypted separately).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct IntegrationConfig {
    pub id: IntegrationId,
    pub tenant_id: TenantId,
    pub name: String,
    pub target_kind: TargetKind,
    pub target_url: String,
    pub enabled: bool,
    pub mode: ForwardingMode,
    /// Statuses that trigger automatic forwarding; empty = any status.
    pub trigger_statuses: Vec<String>,
    pub conditions: Conditions,
    pub mapping: Mapping,
    pub send_opt_in: bool,
    pub poll_status: bool,
    pub status_url: Option<String>,
    /// Target status → our status. Unmapped target statuses are not synchronised.
    pub status_map: BTreeMap<String, String>,
    /// Target statuses after which polling stops.
    pub final_statuses: Vec<String>,
}

/// What a status reported by the target means on our side. Another
/// salesync (`Salesync`) shares the system statuses: each maps to itself
/// unless `status_map` overrides it, and B's custom statuses map only
/// through `status_map` ([`catalogue::map_status`]). Any other target's
/// statuses are its own words: only `status_map` maps them.
pub fn map_target_status(cfg: &IntegrationConfig, target_status: &str) -> StatusMapping {
    match cfg.target_kind {
        TargetKind::Salesync => catalogue::map_status_with(&cfg.status_map, target_status),
        TargetKind::Webhook => match cfg.status_map.get(target_status) {
            Some(status) => StatusMapping::Mapped {
                status: status.clone(),
            },
            None => StatusMapping::Unmapped {
                reason: unmapped_note(target_status),
            },
        },
    }
}

/// The history note for a target status outside the integration's status
/// map (and what ingest writes when a message carries no reason of its own).
pub fn unmapped_note(target_status: &str) -> String {
    format!("unmapped target status '{target_status}': not synchronised")
}

pub fn is_final_status(cfg: &IntegrationConfig, target_status: &str) -> bool {
    cfg.final_statuses.iter().any(|s| s == target_status)
}

/// Credentials salesync presents to a target, stored encrypted.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq)]
pub struct TargetCredentials {
    /// Sent as `Authorization: Bearer …` (for a salesync target: the other
    /// tenant's integration-only API token).
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for TargetCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TargetCredentials(***)")
    }
}
