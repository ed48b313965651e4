//! Deciding the fate of each sale in a request, without I/O. A request (a
//! batch, or a group of single-sale requests) is planned first: invalid items
//! are set aside, and an external id repeated inside the request is stored
//! once — the first occurrence is inserted. After the database said which
//! sales were new and which already existed, `judge` and `resolve` turn that
//! into one outcome per input item, in input order, exactly as if the items
//! had been sent one after the other: each is judged against the sale stored
//! under its external id at that point (the one an earlier item created, or
//! the one that was there before), `duplicate` for the same payload,
//! `conflict` for a different one.

use std::collections::HashMap;

use salesync_core::domain::SaleId;

use salesync_core::api::error::{ApiError, ErrorBody};

/// Where one input item goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// Rejected before reaching the database.
    Invalid(ErrorBody),
    /// The first item with its external id: stored, as `unique[n]`.
    First(usize),
    /// A later item with an external id already seen in this request, as
    /// `unique[first]`; `hash` is this item's own payload hash.
    Repeat { first: usize, hash: [u8; 32] },
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
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut slots = Vec::with_capacity(items.len());
    let mut unique = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let slot = match item {
            Err(e) => Slot::Invalid(e.clone()),
            Ok((external_id, hash)) => match seen.get(external_id) {
                Some(first) => Slot::Repeat {
                    first: *first,
                    hash: *hash,
                },
                None => {
                    let n = unique.len();
                    seen.insert(external_id, n);
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

/// The stored sale as a later item of the same request finds it: one the
/// first occurrence created is there now, with the first occurrence's payload.
fn after_first(stored: &Stored, first_hash: &[u8; 32]) -> Stored {
    match stored {
        Stored::Created { id, status } => Stored::Existing {
            id: *id,
            status: status.clone(),
            payload_hash: first_hash.to_vec(),
        },
        existing => existing.clone(),
    }
}

/// One outcome per input item, given what the database holds for each
/// `plan.unique` item after the insert and that item's payload hash.
pub fn resolve(plan: &Plan, unique: &[(Stored, [u8; 32])]) -> Vec<Outcome> {
    plan.slots
        .iter()
        .map(|slot| match slot {
            Slot::Invalid(e) => Outcome::Invalid(e.clone()),
            Slot::First(n) => unique
                .get(*n)
                .map_or(Outcome::Conflict, |(stored, hash)| judge(stored, hash)),
            Slot::Repeat { first, hash } => unique
                .get(*first)
                .map_or(Outcome::Conflict, |(stored, first_hash)| {
                    judge(&after_first(stored, first_hash), hash)
                }),
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
                Slot::Repeat { first: 0, hash: h1 },
                Slot::Repeat { first: 0, hash: h2 },
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
    fn resolve_judges_every_item_as_if_sequential() {
        let (a, b, c) = (SaleId::new(), SaleId::new(), SaleId::new());
        let (h1, h2, h3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let p = plan(&[
            Ok(("a", h1)), // creates a
            Ok(("b", h1)), // b was stored before with h2: conflict
            Ok(("a", h1)), // the a just created: duplicate
            Ok(("b", h2)), // what is stored under b: duplicate
            Ok(("a", h2)), // conflict with the a just created
            Err(err("x")),
            Ok(("c", h3)), // c was stored before with h3: duplicate
            Ok(("b", h3)), // conflict
        ]);
        let existing = |id, h: [u8; 32]| Stored::Existing {
            id,
            status: "s".into(),
            payload_hash: h.to_vec(),
        };
        let unique = vec![
            (
                Stored::Created {
                    id: a,
                    status: "s".into(),
                },
                h1,
            ),
            (existing(b, h2), h1),
            (existing(c, h3), h3),
        ];
        let got = resolve(&p, &unique);
        let names: Vec<&str> = got.iter().map(Outcome::name).collect();
        assert_eq!(
            names,
            vec![
                "created",
                "conflict",
                "duplicate",
                "duplicate",
                "conflict",
                "invalid",
                "duplicate",
                "conflict",
            ]
        );
        let ids: Vec<Option<SaleId>> = got.iter().map(Outcome::id).collect();
        assert_eq!(
            ids,
            vec![Some(a), None, Some(a), Some(b), None, None, Some(c), None]
        );
        assert_eq!(
            got[1].error(Some("b")).map(|e| e.code),
            Some("sale_conflict")
        );
        assert_eq!(got[0].error(Some("a")), None);
        // Nothing known about an item (cannot happen): conflict, never created.
        assert_eq!(resolve(&p, &[]).first(), Some(&Outcome::Conflict));
    }
}
