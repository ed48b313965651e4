//! The reseller's (A's) copy of what it imported from a provider (B): which
//! products, in which of B's versions, and what a sync does to them when B's
//! granted catalogue changed. Pure: the console reads B's listing and A's
//! copies, this decides, the console writes.
//!
//! A sync compares each imported copy with B's listing as granted now:
//! - B lists it, active: the copy takes B's current version (`updated`), and
//!   a copy the policy had deactivated comes back (`reactivated`);
//! - B lists it inactive, or no longer lists it (withdrawn, or not granted
//!   any more): the integration's removal policy applies — do nothing (the
//!   copy stays and says what B did), deactivate it (not forwarded), or
//!   delete it. Sales made earlier keep their history whatever the policy.
//!
//! Products B grants but A did not import are left alone: importing is A's
//! choice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::flow::Flow;
use super::listing::Catalogue;
use super::product::ProductVersion;

/// What happens to A's copy when B deactivates, withdraws or stops granting
/// a product.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemovalPolicy {
    /// Keep the copy as it is; it records what B did. The default: nothing
    /// changes on A's side unless A chose so.
    #[default]
    Nothing,
    /// Keep the copy, inactive: sales of it are no longer forwarded.
    Deactivate,
    /// Delete the copy.
    Delete,
}

impl RemovalPolicy {
    pub const ALL: [RemovalPolicy; 3] = [
        RemovalPolicy::Nothing,
        RemovalPolicy::Deactivate,
        RemovalPolicy::Delete,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalPolicy::Nothing => "nothing",
            RemovalPolicy::Deactivate => "deactivate",
            RemovalPolicy::Delete => "delete",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Where B stands on an imported product.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// B grants it and sells it.
    Granted,
    /// B grants it but deactivated it.
    Inactive,
    /// B withdrew it or stopped granting it.
    Removed,
}

impl SourceState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Granted => "granted",
            SourceState::Inactive => "inactive",
            SourceState::Removed => "removed",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Granted, Self::Inactive, Self::Removed]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A's copy of one of B's products.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ImportedProduct {
    /// B's product as copied, its version included.
    pub product: ProductVersion,
    /// False once deactivated under the removal policy: sales of it are not
    /// forwarded.
    pub active: bool,
    pub source_state: SourceState,
}

impl ImportedProduct {
    /// A fresh copy of B's product.
    #[must_use]
    pub fn of(product: ProductVersion) -> Self {
        let source_state = if product.active {
            SourceState::Granted
        } else {
            SourceState::Inactive
        };
        Self {
            product,
            active: true,
            source_state,
        }
    }

    /// Whether sales of this product go to B.
    #[must_use]
    pub fn forwardable(&self) -> bool {
        self.active && self.source_state == SourceState::Granted
    }
}

/// One thing a sync changed, for the report and the log.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum Change {
    /// A imported the product (in this version of B's).
    Imported { product: String, version: u32 },
    /// A stopped importing it: its copy is deleted.
    Unimported { product: String },
    /// The copy took B's new version.
    Updated { product: String, from: u32, to: u32 },
    /// B sells it again: the copy is active again.
    Reactivated { product: String },
    /// B deactivated, withdrew or stopped granting it; the copy is kept
    /// unchanged (policy `nothing`).
    Kept {
        product: String,
        source_state: SourceState,
    },
    /// … and the copy was deactivated (policy `deactivate`).
    Deactivated {
        product: String,
        source_state: SourceState,
    },
    /// … and the copy was deleted (policy `delete`).
    Deleted {
        product: String,
        source_state: SourceState,
    },
    /// B's flows changed (added, removed, renamed or selling other products).
    FlowsChanged,
}

impl Change {
    /// The product the change is about (`None`: the flows).
    #[must_use]
    pub fn product(&self) -> Option<&String> {
        match self {
            Change::Imported { product, .. }
            | Change::Unimported { product }
            | Change::Updated { product, .. }
            | Change::Reactivated { product }
            | Change::Kept { product, .. }
            | Change::Deactivated { product, .. }
            | Change::Deleted { product, .. } => Some(product),
            Change::FlowsChanged => None,
        }
    }
}

/// What a sync does: the copies as they are to be (deleted ones left out),
/// and what changed. Empty `changes`: nothing to write, and "last
/// synchronised at" stays as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPlan {
    pub products: Vec<ImportedProduct>,
    pub deleted: Vec<String>,
    pub flows: Vec<Flow>,
    pub changes: Vec<Change>,
}

/// Compares A's copies (and B's flows as last synchronised) with B's
/// granted catalogue now.
#[must_use]
pub fn plan_sync(
    imported: &[ImportedProduct],
    synced_flows: Option<&[Flow]>,
    b: &Catalogue,
    policy: RemovalPolicy,
) -> SyncPlan {
    let listed: BTreeMap<&str, &ProductVersion> =
        b.products.iter().map(|p| (p.key.as_str(), p)).collect();
    let mut plan = SyncPlan {
        products: Vec::with_capacity(imported.len()),
        deleted: Vec::new(),
        flows: b.flows.clone(),
        changes: Vec::new(),
    };
    for copy in imported {
        let key = copy.product.key.clone();
        let now = listed.get(key.as_str()).copied();
        let state = match now {
            Some(p) if p.active => SourceState::Granted,
            Some(_) => SourceState::Inactive,
            None => SourceState::Removed,
        };
        let mut next = copy.clone();
        if let Some(p) = now
            && *p != copy.product
        {
            plan.changes.push(Change::Updated {
                product: key.clone(),
                from: copy.product.version,
                to: p.version,
            });
            next.product = p.clone();
        }
        if state == SourceState::Granted {
            if copy.source_state != SourceState::Granted || !copy.active {
                plan.changes.push(Change::Reactivated {
                    product: key.clone(),
                });
            }
            next.source_state = state;
            next.active = true;
            plan.products.push(next);
            continue;
        }
        // B no longer sells it: the policy decides, once per new state.
        if copy.source_state == state && (copy.active || policy != RemovalPolicy::Nothing) {
            // Already applied on an earlier sync (a deactivated copy stays so).
            next.source_state = state;
            plan.products.push(next);
            continue;
        }
        next.source_state = state;
        match policy {
            RemovalPolicy::Nothing => {
                plan.changes.push(Change::Kept {
                    product: key,
                    source_state: state,
                });
                plan.products.push(next);
            }
            RemovalPolicy::Deactivate => {
                next.active = false;
                plan.changes.push(Change::Deactivated {
                    product: key,
                    source_state: state,
                });
                plan.products.push(next);
            }
            RemovalPolicy::Delete => {
                plan.changes.push(Change::Deleted {
                    product: key.clone(),
                    source_state: state,
                });
                plan.deleted.push(key);
            }
        }
    }
    // The first sync learns B's flows; only a later one can see them change.
    if synced_flows.is_some_and(|before| !same_flows(before, &b.flows)) {
        plan.changes.push(Change::FlowsChanged);
    }
    plan
}

/// Whether two listings of flows say the same, whatever their order.
fn same_flows(a: &[Flow], b: &[Flow]) -> bool {
    let sorted = |f: &[Flow]| {
        let mut v: Vec<Flow> = f.to_vec();
        v.sort_by(|x, y| x.key.cmp(&y.key));
        v
    };
    sorted(a) == sorted(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::listing::tests::catalogue;

    fn copy_of(c: &Catalogue, key: &str) -> ImportedProduct {
        ImportedProduct::of(c.product(key).expect("product").clone())
    }

    fn with_version(mut p: ProductVersion, version: u32) -> ProductVersion {
        p.version = version;
        p.name = format!("{} v{version}", p.name);
        p
    }

    #[test]
    fn import_sync_plans() {
        let b = catalogue();
        let key = b.products[0].key.clone();
        let copy = copy_of(&b, &key);
        let flows = b.flows.clone();

        // Nothing changed at B: nothing to do.
        let plan = plan_sync(
            std::slice::from_ref(&copy),
            Some(&flows),
            &b,
            RemovalPolicy::Delete,
        );
        assert_eq!(plan.changes, []);
        assert_eq!(plan.products, std::slice::from_ref(&copy));

        // A new version at B: the copy takes it.
        let mut b2 = b.clone();
        let v = copy.product.version;
        b2.products[0] = with_version(b.products[0].clone(), v + 1);
        let plan = plan_sync(
            std::slice::from_ref(&copy),
            Some(&flows),
            &b2,
            RemovalPolicy::Nothing,
        );
        assert_eq!(
            plan.changes,
            [Change::Updated {
                product: key.clone(),
                from: v,
                to: v + 1
            }]
        );
        assert_eq!(plan.products[0].product.version, v + 1);

        // B stops granting it: each policy does what it says.
        let mut gone = b.clone();
        gone.products.retain(|p| p.key != key);
        let cases = [
            (RemovalPolicy::Nothing, Some(true), "kept"),
            (RemovalPolicy::Deactivate, Some(false), "deactivated"),
            (RemovalPolicy::Delete, None, "deleted"),
        ];
        for (policy, active, change) in cases {
            let plan = plan_sync(std::slice::from_ref(&copy), Some(&flows), &gone, policy);
            let json = serde_json::to_value(&plan.changes).expect("json");
            assert_eq!(json[0]["change"], change, "{policy:?}");
            assert_eq!(json[0]["source_state"], "removed", "{policy:?}");
            assert_eq!(
                plan.products.first().map(|p| p.active),
                active,
                "{policy:?}"
            );
            assert_eq!(plan.deleted.is_empty(), active.is_some(), "{policy:?}");
            if let Some(p) = plan.products.first() {
                assert!(
                    !p.forwardable(),
                    "{policy:?}: a removed product is not sent"
                );
                // Applied once: the next sync has nothing more to say.
                let again = plan_sync(&plan.products, Some(&flows), &gone, policy);
                assert_eq!(again.changes, [], "{policy:?}");
            }
        }

        // B deactivates it: the policy applies with state inactive, and the
        // new version is taken all the same.
        let mut inactive = b.clone();
        inactive.products[0].active = false;
        let plan = plan_sync(
            std::slice::from_ref(&copy),
            Some(&flows),
            &inactive,
            RemovalPolicy::Deactivate,
        );
        assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
        assert_eq!(plan.products[0].source_state, SourceState::Inactive);
        assert!(!plan.products[0].active);

        // B sells it again: the deactivated copy comes back.
        let plan2 = plan_sync(&plan.products, Some(&flows), &b, RemovalPolicy::Deactivate);
        assert!(
            plan2.changes.contains(&Change::Reactivated {
                product: key.clone()
            }),
            "{:?}",
            plan2.changes
        );
        assert!(plan2.products[0].forwardable());

        // Flows changed: reported once.
        let mut reflowed = b.clone();
        reflowed.flows.reverse();
        let plan = plan_sync(
            std::slice::from_ref(&copy),
            Some(&flows),
            &reflowed,
            RemovalPolicy::Nothing,
        );
        assert_eq!(plan.changes, [], "order alone is no change");
        reflowed.flows.pop();
        let plan = plan_sync(
            std::slice::from_ref(&copy),
            Some(&flows),
            &reflowed,
            RemovalPolicy::Nothing,
        );
        assert_eq!(plan.changes, [Change::FlowsChanged]);
    }

    #[test]
    fn import_policy_names() {
        for p in RemovalPolicy::ALL {
            assert_eq!(RemovalPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(RemovalPolicy::parse("archive"), None);
    }
}
