//! Carrying B's status of a forwarded order back to A's sale. salesync ships
//! a small set of system statuses that both sides know, so each maps to
//! itself unless A overrides it; any other status of B is B's own (custom)
//! and means something only once A maps it. An unmapped custom status is not
//! synchronised, and the reason says so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::key::clip;
use crate::domain::FieldError;
use crate::domain::validation::MAX_STATUS_CHARS;

/// The statuses every salesync deployment knows, in an order's usual life.
#[derive(
    Serialize,
    Deserialize,
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SystemStatus {
    /// Received by B, not yet looked at.
    New,
    /// Being handled: checked, waiting on the customer or the principal.
    Pending,
    /// Accepted by B (or its principal): the contract will be delivered.
    Accepted,
    /// Delivered or in force; nothing more will happen to it.
    Completed,
    /// Withdrawn by the customer or the seller after it was placed.
    Cancelled,
    /// Refused by B or its principal (credit check, duplicate, …).
    Rejected,
}

impl SystemStatus {
    pub const ALL: [SystemStatus; 6] = [
        SystemStatus::New,
        SystemStatus::Pending,
        SystemStatus::Accepted,
        SystemStatus::Completed,
        SystemStatus::Cancelled,
        SystemStatus::Rejected,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SystemStatus::New => "new",
            SystemStatus::Pending => "pending",
            SystemStatus::Accepted => "accepted",
            SystemStatus::Completed => "completed",
            SystemStatus::Cancelled => "cancelled",
            SystemStatus::Rejected => "rejected",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// A's mapping of B's statuses (B's status → A's status): an entry for a
/// system status overrides its mapping to itself; B's custom statuses need
/// one to be synchronised at all.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusMap {
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
}

/// What B's status becomes on A's side.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum StatusMapping {
    /// A's sale takes this status.
    Mapped { status: String },
    /// A's sale keeps its status; `reason` is recorded (the status-poller
    /// logs that it skipped it, and why).
    Unmapped { reason: String },
}

/// A's status for B's status `b_status`.
#[must_use]
pub fn map_status(map: &StatusMap, b_status: &str) -> StatusMapping {
    map_status_with(&map.statuses, b_status)
}

/// [`map_status`] over the bare map (B's status → A's status), as an
/// integration stores it.
#[must_use]
pub fn map_status_with(statuses: &BTreeMap<String, String>, b_status: &str) -> StatusMapping {
    if let Some(status) = statuses.get(b_status) {
        return StatusMapping::Mapped {
            status: status.clone(),
        };
    }
    if let Some(system) = SystemStatus::parse(b_status) {
        return StatusMapping::Mapped {
            status: system.as_str().to_owned(),
        };
    }
    StatusMapping::Unmapped {
        reason: format!(
            "B's status '{}' is not a system status and is not mapped to one of yours: not synchronised",
            clip(b_status)
        ),
    }
}

/// A system status and what it becomes on A's side under a mapping.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct SystemStatusMapping {
    pub status: SystemStatus,
    /// A's status: the system status itself unless A overrides it.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub maps_to: String,
    /// `maps_to` comes from the integration's `status_map`.
    pub overridden: bool,
}

/// Every system status, in an order's usual life, with what it becomes
/// under `statuses` (B's status → A's status).
#[must_use]
pub fn system_status_mappings(statuses: &BTreeMap<String, String>) -> Vec<SystemStatusMapping> {
    SystemStatus::ALL
        .into_iter()
        .map(|status| match statuses.get(status.as_str()) {
            Some(ours) => SystemStatusMapping {
                status,
                maps_to: ours.clone(),
                overridden: true,
            },
            None => SystemStatusMapping {
                status,
                maps_to: status.as_str().to_owned(),
                overridden: false,
            },
        })
        .collect()
}

/// Of B's statuses, those that would not be synchronised (custom and not
/// mapped), in the order given.
#[must_use]
pub fn unmapped_statuses<'a>(map: &StatusMap, b_statuses: &'a [String]) -> Vec<&'a str> {
    b_statuses
        .iter()
        .map(String::as_str)
        .filter(|s| matches!(map_status(map, s), StatusMapping::Unmapped { .. }))
        .collect()
}

/// What is wrong with the mapping: both sides of each entry must be statuses
/// as sales carry them (`[a-z0-9_-]{1,64}`).
#[must_use]
pub fn check_status_map(map: &StatusMap) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (b, a) in &map.statuses {
        let field = format!("statuses.{}", clip(b));
        if !is_status(b) {
            errors.push(FieldError::new(
                &field,
                format!(
                    "B's status must be 1 to {MAX_STATUS_CHARS} characters of a-z, 0-9, '_' or '-'"
                ),
            ));
        }
        if !is_status(a) {
            errors.push(FieldError::new(
                field,
                format!(
                    "must be a status of 1 to {MAX_STATUS_CHARS} characters of a-z, 0-9, '_' or '-', got {:?}",
                    clip(a)
                ),
            ));
        }
    }
    errors
}

/// The sale contract's status format.
fn is_status(s: &str) -> bool {
    (1..=MAX_STATUS_CHARS).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::test_support::{Expected, assert_errors};

    fn map(pairs: &[(&str, &str)]) -> StatusMap {
        StatusMap {
            statuses: pairs
                .iter()
                .map(|(b, a)| ((*b).into(), (*a).into()))
                .collect(),
        }
    }

    fn mapped(status: &str) -> StatusMapping {
        StatusMapping::Mapped {
            status: status.into(),
        }
    }

    #[test]
    fn catalogue_status_map_map_status() {
        let m = map(&[
            ("processed", "completed"),
            ("rejected", "cancelled"),
            ("on_hold", "pending"),
        ]);
        // (B's status, A's status or None when unmapped)
        let cases = [
            // System statuses map to themselves…
            ("new", Some("new")),
            ("pending", Some("pending")),
            ("accepted", Some("accepted")),
            ("completed", Some("completed")),
            ("cancelled", Some("cancelled")),
            // …unless A overrides them.
            ("rejected", Some("cancelled")),
            // Custom statuses only when mapped.
            ("processed", Some("completed")),
            ("on_hold", Some("pending")),
            ("awaiting_principal", None),
            ("Processed", None),
            ("", None),
        ];
        for (b, expected) in cases {
            let got = map_status(&m, b);
            match expected {
                Some(a) => assert_eq!(got, mapped(a), "{b}"),
                None => assert!(
                    matches!(&got, StatusMapping::Unmapped { reason } if reason.contains(&format!("'{b}' is not a system status"))),
                    "{b}: {got:?}"
                ),
            }
        }
        assert_eq!(
            map_status(&StatusMap::default(), "rejected"),
            mapped("rejected")
        );
    }

    #[test]
    fn catalogue_status_map_system_statuses() {
        for status in SystemStatus::ALL {
            assert_eq!(SystemStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).expect("serialize"),
                serde_json::json!(status.as_str())
            );
            assert!(is_status(status.as_str()), "{status:?}");
        }
        // "processed" is B's own word: it must be mapped, not assumed.
        assert_eq!(SystemStatus::parse("processed"), None);
    }

    #[test]
    fn catalogue_status_map_system_status_mappings() {
        let m = map(&[("rejected", "cancelled"), ("processed", "completed")]);
        let got = system_status_mappings(&m.statuses);
        assert_eq!(got.len(), SystemStatus::ALL.len());
        for (g, status) in got.iter().zip(SystemStatus::ALL) {
            assert_eq!(g.status, status);
            // Every system status is mapped: to itself, or as A overrode it.
            assert_eq!(
                (g.maps_to.as_str(), g.overridden),
                if status == SystemStatus::Rejected {
                    ("cancelled", true)
                } else {
                    (status.as_str(), false)
                }
            );
            assert_eq!(
                map_status(&m, status.as_str()),
                mapped(&g.maps_to),
                "the view says what map_status does"
            );
        }
    }

    #[test]
    fn catalogue_status_map_unmapped_statuses() {
        let m = map(&[("processed", "completed")]);
        let b: Vec<String> = ["new", "processed", "awaiting_principal", "rejected", "x"]
            .map(String::from)
            .into();
        assert_eq!(unmapped_statuses(&m, &b), ["awaiting_principal", "x"]);
        assert!(unmapped_statuses(&m, &[]).is_empty());
    }

    #[test]
    fn catalogue_status_map_check() {
        // (mapping, expected)
        let cases: Vec<(StatusMap, Expected)> = vec![
            (map(&[("processed", "completed"), ("new", "open")]), vec![]),
            (
                map(&[("Processed", "completed")]),
                vec![("statuses.Processed", "B's status must be")],
            ),
            (
                map(&[("processed", "")]),
                vec![("statuses.processed", "got \"\"")],
            ),
            (
                map(&[("processed", "Done!")]),
                vec![("statuses.processed", "got \"Done!\"")],
            ),
            (
                map(&[("", "x y")]),
                vec![
                    ("statuses.", "B's status must be"),
                    ("statuses.", "got \"x y\""),
                ],
            ),
        ];
        for (m, expected) in cases {
            assert_errors(&format!("{m:?}"), &check_status_map(&m), &expected);
        }
    }

    #[test]
    fn catalogue_status_map_serde() {
        let json = serde_json::to_value(map_status(&StatusMap::default(), "processed"))
            .expect("serialize");
        assert_eq!(json["outcome"], "unmapped");
        let json = serde_json::to_value(mapped("completed")).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"outcome": "mapped", "status": "completed"})
        );
    }
}
