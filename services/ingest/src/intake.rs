//! Deciding the fate of each sale in a request, without I/O. A request (one
//! sale or a batch) is planned first: invalid items are set aside, and an
//! external id repeated inside the request is stored once — the first
//! occurrence wins, later ones become `duplicate` (same payload) or `conflict`.
//! After the database said which sales were new and which already existed,
//! `judge` and `resolve` turn that into one outcome per input item, in input
//! order.

use std::collections::HashMap;

use salesync_core::domain::SaleId;

use crate::error::{ApiError, ErrorBody};

/// Where one input item goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// Rejected before reaching the database.
    Invalid(ErrorBody),
    /// The first item with its external id: stored, as `unique[n]`.
    First(usize),
    /// A later item with an external id already seen in this request.
    Repeat { first: usize, same_payload: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub slots: Vec<Slot>,
    /// Input positions of the items to store, one per distinct external id.
    pub unique: Vec<usize>,
}

/// Plans a request. Each item is its external id and payload hash, or the
/// error that made it invalid.
pub fn plan(items: &[Result<(&str, [u8; 32]), ErrorBody>]) -> Plan {
    let mut seen: HashMap<&str, (usize, [u8; 32])> = HashMap::new();
    let mut slots = Vec::with_capacity(items.len());
    let mut unique = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let slot = match item {
            Err(e) => Slot::Invalid(e.clone()),
            Ok((external_id, hash)) => match seen.get(external_id) {
                Some((first, first_hash)) => Slot::Repeat {
                    first: *first,
                    same_payload: first_hash == hash,
                },
                None => {
                    let n = unique.len();
                    seen.insert(external_id, (n, *hash));
                    unique.push(i);
                    Slot::First(n)
                }
            },
        };
        slots.push(slot);
    }
    Plan { slots, unique }
}

/// What the database holds for one stored item after the insert.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Inserted by this request.
    Created { id: SaleId, status: String },
    /// Was there before (inserted by an earlier request).
    Existing {
        id: SaleId,
        status: String,
        payload_hash: Vec<u8>,
    },
}

/// The outcome of one input item.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created { id: SaleId, status: String },
    Duplicate { id: SaleId, status: String },
    Conflict,
    Invalid(ErrorBody),
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Created { .. } => "created",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Conflict => "conflict",
            Outcome::Invalid(_) => "invalid",
        }
    }

    pub fn id(&self) -> Option<SaleId> {
        match self {
            Outcome::Created { id, .. } | Outcome::Duplicate { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The per-item error, for batch results.
    pub fn error(&self, external_id: Option<&str>) -> Option<ErrorBody> {
        match self {
            Outcome::Invalid(e) => Some(e.clone()),
            Outcome::Conflict => Some(
                ApiError::SaleConflict {
                    external_id: external_id.unwrap_or_default().to_string(),
                }
                .body(),
            ),
            _ => None,
        }
    }
}

/// Created, a harmless resend (same payload), or a conflict (different payload
/// under an external id that is already taken).
pub fn judge(stored: &Stored, hash: &[u8; 32]) -> Outcome {
    match stored {
        Stored::Created { id, status } => Outcome::Created {
            id: *id,
            status: status.clone(),
        },
        Stored::Existing {
            id,
            status,
            payload_hash,
        } if payload_hash.as_slice() == hash.as_slice() => Outcome::Duplicate {
            id: *id,
            status: status.clone(),
        },
        Stored::Existing { .. } => Outcome::Conflict,
    }
}

/// One outcome per input item, given the outcome of each `plan.unique` item.
pub fn resolve(plan: &Plan, unique_outcomes: &[Outcome]) -> Vec<Outcome> {
    plan.slots
        .iter()
        .map(|slot| match slot {
            Slot::Invalid(e) => Outcome::Invalid(e.clone()),
            Slot::First(n) => unique_outcomes
                .get(*n)
                .cloned()
                .unwrap_or(Outcome::Conflict),
            Slot::Repeat {
                first,
                same_payload: true,
            } => match unique_outcomes.get(*first) {
                Some(Outcome::Created { id, status } | Outcome::Duplicate { id, status }) => {
                    Outcome::Duplicate {
                        id: *id,
                        status: status.clone(),
                    }
                }
                _ => Outcome::Conflict,
            },
            Slot::Repeat {
                same_payload: false,
                ..
            } => Outcome::Conflict,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(msg: &str) -> ErrorBody {
        ErrorBody {
            code: "validation_failed",
            message: msg.into(),
            fields: None,
        }
    }

    #[test]
    fn plan_sets_aside_invalid_items_and_repeats() {
        let (h1, h2) = ([1u8; 32], [2u8; 32]);
        let items = vec![
            Ok(("a", h1)),
            Err(err("bad")),
            Ok(("b", h1)),
            Ok(("a", h1)),
            Ok(("a", h2)),
            Ok(("c", h2)),
        ];
        let p = plan(&items);
        assert_eq!(p.unique, vec![0, 2, 5]);
        assert_eq!(
            p.slots,
            vec![
                Slot::First(0),
                Slot::Invalid(err("bad")),
                Slot::First(1),
                Slot::Repeat {
                    first: 0,
                    same_payload: true
                },
                Slot::Repeat {
                    first: 0,
                    same_payload: false
                },
                Slot::First(2),
            ]
        );
    }

    #[test]
    fn judge_cases() {
        let id = SaleId::new();
        let h = [7u8; 32];
        let cases = [
            (
                Stored::Created {
                    id,
                    status: "paid".into(),
                },
                Outcome::Created {
                    id,
                    status: "paid".into(),
                },
            ),
            (
                Stored::Existing {
                    id,
                    status: "paid".into(),
                    payload_hash: h.to_vec(),
                },
                Outcome::Duplicate {
                    id,
                    status: "paid".into(),
                },
            ),
            (
                Stored::Existing {
                    id,
                    status: "paid".into(),
                    payload_hash: vec![0; 32],
                },
                Outcome::Conflict,
            ),
        ];
        for (stored, want) in cases {
            assert_eq!(judge(&stored, &h), want, "{stored:?}");
        }
    }

    #[test]
    fn resolve_follows_the_first_occurrence() {
        let a = SaleId::new();
        let h = [1u8; 32];
        let p = plan(&[
            Ok(("a", h)),
            Ok(("b", h)),
            Ok(("a", h)),
            Ok(("b", h)),
            Ok(("a", [9; 32])),
            Err(err("x")),
        ]);
        let unique = vec![
            Outcome::Created {
                id: a,
                status: "s".into(),
            },
            Outcome::Conflict,
        ];
        let got = resolve(&p, &unique);
        let names: Vec<&str> = got.iter().map(Outcome::name).collect();
        assert_eq!(
            names,
            vec![
                "created",
                "conflict",
                "duplicate",
                "conflict",
                "conflict",
                "invalid"
            ]
        );
        assert_eq!(got[2].id(), Some(a));
        assert_eq!(got[3].id(), None);
        assert_eq!(
            got[1].error(Some("b")).map(|e| e.code),
            Some("sale_conflict")
        );
        assert_eq!(got[0].error(Some("a")), None);
    }
}
