//! Reading a provider's catalogue from the database (migrations 0012–0014),
//! for the services that need it: console lists it (to its tenant, and to a
//! partner's Agent as what it is granted), ingest checks an Agent's order
//! against it. The rules are `catalogue`'s; this only loads. Every query is
//! scoped by the provider's `tenant_id`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::PgConnection;
use sqlx::types::Json;

use crate::catalogue::{
    Catalogue, Flow, FlowMapping, Grants, ImportedProduct, ProductVersion, ProviderMapping,
    Question, QuestionMapping,
};
use crate::domain::{IntegrationId, OrganizationId, TenantId};

/// The current version of every product not withdrawn, by key; with `only`,
/// just those of these keys.
pub async fn products(
    conn: &mut PgConnection,
    tenant: TenantId,
    only: Option<&[String]>,
) -> sqlx::Result<Vec<ProductVersion>> {
    let rows: Vec<(Json<ProductVersion>,)> = sqlx::query_as(
        "SELECT v.body
         FROM products p
         JOIN product_versions v
           ON v.tenant_id = p.tenant_id AND v.key = p.key AND v.version = p.current_version
         WHERE p.tenant_id = $1 AND p.deleted_at IS NULL
           AND ($2::text[] IS NULL OR p.key = ANY($2))
         ORDER BY p.key",
    )
    .bind(tenant)
    .bind(only)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(Json(p),)| p).collect())
}

/// The tenant's own questions, over its whole catalogue, each key once (the
/// first product defining it wins): what a reseller's answers are read by.
pub async fn own_questions(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> sqlx::Result<Vec<Question>> {
    let mut by_key: BTreeMap<String, Question> = BTreeMap::new();
    for q in products(conn, tenant, None)
        .await?
        .into_iter()
        .flat_map(|p| p.questions)
    {
        by_key.entry(q.key.clone()).or_insert(q);
    }
    Ok(by_key.into_values().collect())
}

/// What A knows of each provider it imported products from (migration
/// 0016), for those of `integrations` that have imported any: one query for
/// the copies and mappings, and one per tenant for its own questions.
pub async fn provider_mappings(
    conn: &mut PgConnection,
    integrations: &[IntegrationId],
) -> sqlx::Result<HashMap<IntegrationId, ProviderMapping>> {
    if integrations.is_empty() {
        return Ok(HashMap::new());
    }
    type Row = (
        IntegrationId,
        TenantId,
        Json<FlowMapping>,
        Json<QuestionMapping>,
        Json<Vec<Flow>>,
        Json<Vec<ImportedProduct>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT i.id, i.tenant_id, i.flow_mapping, i.question_mapping, i.provider_flows,
                jsonb_agg(jsonb_build_object('product', c.body, 'active', c.active,
                                             'source_state', c.source_state))
         FROM integrations i
         JOIN imported_products c ON c.integration_id = i.id
         WHERE i.id = ANY($1) AND i.deleted_at IS NULL
         GROUP BY i.id",
    )
    .bind(integrations)
    .fetch_all(&mut *conn)
    .await?;
    let mut questions: HashMap<TenantId, Vec<Question>> = HashMap::new();
    let mut out = HashMap::with_capacity(rows.len());
    for (id, tenant, Json(flows), Json(mapped), Json(provider_flows), Json(copies)) in rows {
        if let std::collections::hash_map::Entry::Vacant(e) = questions.entry(tenant) {
            e.insert(own_questions(conn, tenant).await?);
        }
        out.insert(
            id,
            ProviderMapping {
                flows,
                questions: mapped,
                provider_flows,
                copies: copies
                    .into_iter()
                    .map(|c| (c.product.key.clone(), c))
                    .collect(),
                a_questions: questions.get(&tenant).cloned().unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// Flows not withdrawn, by key; with `only`, just those of these keys.
pub async fn flows(
    conn: &mut PgConnection,
    tenant: TenantId,
    only: Option<&[String]>,
) -> sqlx::Result<Vec<Flow>> {
    let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT key, name, products FROM flows
         WHERE tenant_id = $1 AND deleted_at IS NULL
           AND ($2::text[] IS NULL OR key = ANY($2))
         ORDER BY key",
    )
    .bind(tenant)
    .bind(only)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, name, products)| Flow {
            key,
            name,
            products,
        })
        .collect())
}

/// What the provider's organization is granted now (revoked grants left
/// out). An organization of another tenant has no grants here.
pub async fn grants(
    conn: &mut PgConnection,
    tenant: TenantId,
    organization: OrganizationId,
) -> sqlx::Result<Grants> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT g.kind, g.key FROM grants g
         JOIN organizations o ON o.id = g.organization_id
         WHERE o.tenant_id = $1 AND g.organization_id = $2 AND g.revoked_at IS NULL",
    )
    .bind(tenant)
    .bind(organization)
    .fetch_all(conn)
    .await?;
    let mut grants = Grants::default();
    for (kind, key) in rows {
        match kind.as_str() {
            "product" => grants.products.insert(key),
            _ => grants.flows.insert(key),
        };
    }
    Ok(grants)
}

/// The part of the catalogue an organization holding `grants` may see:
/// the granted products (current versions) and the granted flows, each flow
/// listing only granted products. With `only_products`/`only_flows`, just
/// those of them (what an order names).
pub async fn granted(
    conn: &mut PgConnection,
    tenant: TenantId,
    grants: &Grants,
    only_products: Option<&[String]>,
    only_flows: Option<&[String]>,
) -> sqlx::Result<Catalogue> {
    let product_keys = granted_keys(&grants.products, only_products);
    let flow_keys = granted_keys(&grants.flows, only_flows);
    let products = if product_keys.is_empty() {
        Vec::new()
    } else {
        products(conn, tenant, Some(&product_keys)).await?
    };
    let mut flows = if flow_keys.is_empty() {
        Vec::new()
    } else {
        flows(conn, tenant, Some(&flow_keys)).await?
    };
    for flow in &mut flows {
        flow.products.retain(|p| grants.products.contains(p));
    }
    Ok(Catalogue { products, flows })
}

/// The keys of `granted`, or just those of `only` that are granted.
fn granted_keys(granted: &BTreeSet<String>, only: Option<&[String]>) -> Vec<String> {
    match only {
        Some(keys) => keys
            .iter()
            .filter(|k| granted.contains(*k))
            .cloned()
            .collect(),
        None => granted.iter().cloned().collect(),
    }
}
