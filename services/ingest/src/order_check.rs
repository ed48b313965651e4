//! Orders from a partner's Agent (issue 17, tenant B's side): each sale an
//! Agent's token sends is checked against B's own catalogue as the Agent's
//! organization is granted it (`catalogue::check_order`), before anything
//! is stored. A refusal is a 422 naming each field in B's words; the sender
//! treats it as permanent. An accepted order records the version of each
//! product it was checked against.

use std::collections::{BTreeMap, BTreeSet};

use salesync_core::api::ApiError;
use salesync_core::catalogue::{Catalogue, Grants, Order, check_order, versions_used};
use salesync_core::catalogue_store;
use salesync_core::domain::{FieldError, OrganizationId, SaleInput, TenantId};
use sqlx::PgPool;

/// What the organization is granted, and of the catalogue, the granted part
/// that `sales` name: one load for a whole batch.
pub struct Granted {
    grants: Grants,
    catalogue: Catalogue,
}

impl Granted {
    pub async fn load(
        pool: &PgPool,
        tenant: TenantId,
        organization: OrganizationId,
        sales: &[&SaleInput],
    ) -> Result<Self, ApiError> {
        let mut conn = pool.acquire().await?;
        let grants = catalogue_store::grants(&mut conn, tenant, organization).await?;
        let mut products = BTreeSet::new();
        let mut flows = BTreeSet::new();
        for sale in sales {
            products.extend(sale.lines.iter().filter_map(|l| l.product_ref.clone()));
            flows.extend(sale.flow.clone());
        }
        let products: Vec<String> = products.into_iter().collect();
        let flows: Vec<String> = flows.into_iter().collect();
        let catalogue =
            catalogue_store::granted(&mut conn, tenant, &grants, Some(&products), Some(&flows))
                .await?;
        Ok(Self { grants, catalogue })
    }

    /// The version of each product the sale names, or every reason B
    /// refuses it.
    pub fn check(&self, sale: &SaleInput) -> Result<BTreeMap<String, u32>, Vec<FieldError>> {
        let order = Order::of_sale(sale);
        let problems = check_order(&self.grants, &self.catalogue, &order);
        if problems.is_empty() {
            Ok(versions_used(&self.catalogue, &order))
        } else {
            Err(problems)
        }
    }
}
