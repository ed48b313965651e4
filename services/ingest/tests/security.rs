//! Security properties as tests, on a real PostgreSQL database:
//! 1. API tokens are stored hashed — the raw token is nowhere in the database;
//! 2. target credentials and signing secrets are stored encrypted — no
//!    plaintext anywhere in the database;
//! 3. every route of both services (ingest's and console's `ROUTES`)
//!    refuses another tenant's ids (404; admin
//!    routes 401/403) and never answers with another tenant's data;
//! 4. key rotation: `console rotate-secrets` re-encrypts every secret with the
//!    new key, after which the old key can be dropped.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use chrono::Utc;
use common::seed::{self, Dead};
use common::{ADMIN_TOKEN, TestDb, call, state, tenant};
use salesync_core::api::routes::Access;
use salesync_core::crypto::SecretBox;
use salesync_core::domain::{
    DeliveryId, IntegrationId, OrganizationId, SaleId, TenantId, sample_sale,
};
use salesync_core::tokens;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Everything one tenant has, and every secret it was shown once.
struct Tenant {
    id: TenantId,
    name: String,
    token: String,
    integration_only_token: String,
    integration: IntegrationId,
    sale: SaleId,
    sale_external_id: String,
    /// Of its product and its flow.
    catalogue_key: String,
    organization: OrganizationId,
    /// The organization's Agent, and its (integration-only) token.
    agent: String,
    agent_token: String,
    /// The Agent's catalogue subscription's secret.
    subscription_secret: String,
    dead_letter: DeliveryId,
    credentials: String,
    signing_secrets: Vec<String>,
    webhook_secret: String,
}

fn id_of<T: std::str::FromStr>(v: &Value) -> T {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an id: {v}"))
}

/// Makes a tenant with a second (integration-only) token, an integration
/// with credentials and a rotated signing secret, a status webhook, a sale
/// and a dead letter.
async fn provision(app: &Router, pool: &PgPool, name: &str) -> Tenant {
    let (tenant_id, token) = tenant(app, name, false).await;
    let t = Some(token.as_str());
    let r = call(
        app,
        "POST",
        &format!("/admin/tenants/{tenant_id}/tokens"),
        Some(ADMIN_TOKEN),
        Some(&json!({"name": "pos", "integration_only": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let integration_only_token = r.body["token"].as_str().expect("token").to_string();

    let credentials = format!("cred-{name}-{}", uuid::Uuid::new_v4().simple());
    let r = call(
        app,
        "POST",
        "/v1/integrations",
        t,
        Some(&json!({
            "name": format!("{name} books"),
            "target_kind": "webhook",
            "target_url": format!("https://{}.books.example/in", name.to_lowercase()),
            "credentials": {"bearer_token": credentials},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let integration: IntegrationId = id_of(&r.body["id"]);
    let first = r.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let r = call(
        app,
        "POST",
        &format!("/v1/integrations/{integration}/rotate-secret"),
        t,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second = r.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_string();

    let r = call(
        app,
        "PUT",
        "/v1/webhook",
        t,
        Some(&json!({"url": format!("https://{}.example/status", name.to_lowercase())})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let webhook_secret = r.body["secret"].as_str().expect("secret").to_string();

    // A product and a flow under a key only this tenant uses, and a
    // product name that must never reach another tenant.
    let catalogue_key = format!("{}-line", name.to_lowercase());
    let product = json!({
        "name": format!("{name} secret tariff"),
        "price": {"amount": 1999, "currency": "EUR", "vat_rate": "21"},
    });
    let r = call(
        app,
        "PUT",
        &format!("/v1/products/{catalogue_key}"),
        t,
        Some(&product),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let flow = json!({"name": format!("{name} secret script"), "products": [catalogue_key]});
    let r = call(
        app,
        "PUT",
        &format!("/v1/flows/{catalogue_key}"),
        t,
        Some(&flow),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let r = call(
        app,
        "POST",
        "/v1/organizations",
        t,
        Some(&json!({"name": format!("{name} secret partner")})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let organization: OrganizationId = id_of(&r.body["id"]);
    let grants = json!({"products": [catalogue_key], "flows": [catalogue_key]});
    let r = call(
        app,
        "PUT",
        &format!("/v1/organizations/{organization}/grants"),
        t,
        Some(&grants),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        app,
        "POST",
        &format!("/v1/organizations/{organization}/agents"),
        t,
        Some(&json!({"name": format!("{name} secret agent")})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let agent = r.body["agent"]["id"].as_str().expect("agent").to_string();
    let agent_token = r.body["token"].as_str().expect("token").to_string();
    let r = call(
        app,
        "PUT",
        "/v1/integration/subscription",
        Some(&agent_token),
        Some(&json!({"url": format!("https://{}.partner.example/cb", name.to_lowercase())})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let subscription_secret = r.body["secret"].as_str().expect("secret").to_string();

    let sale_external_id = format!("{name}-sale-1");
    let sale = serde_json::to_value(sample_sale(&sale_external_id)).expect("sale");
    let r = call(app, "POST", "/v1/sales", t, Some(&sale)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sale: SaleId = id_of(&r.body["id"]);
    let id: TenantId = id_of(&json!(tenant_id));
    let dead_letter = seed::dead_delivery(pool, Dead::new(id, sale, Some(integration))).await;
    Tenant {
        id,
        name: name.to_string(),
        token,
        integration_only_token,
        integration,
        sale,
        sale_external_id,
        catalogue_key,
        organization,
        agent,
        agent_token,
        subscription_secret,
        dead_letter,
        credentials,
        signing_secrets: vec![second, first],
        webhook_secret,
    }
}

/// Every value of every text, JSON, array and bytea column of every table,
/// as bytes (bytea raw; the rest as PostgreSQL's text form).
async fn dump(pool: &PgPool) -> Vec<(String, Vec<u8>)> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text
         FROM information_schema.columns
         WHERE table_schema = 'public'
           AND data_type IN ('text', 'character varying', 'character', 'bytea', 'json',
                             'jsonb', 'ARRAY', 'USER-DEFINED')
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .expect("columns");
    let mut out = Vec::new();
    for (table, column, kind) in columns {
        let place = format!("{table}.{column}");
        // Names come from the catalogue, quoted; no caller input is involved.
        let values: Vec<Vec<u8>> = if kind == "bytea" {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT \"{column}\" FROM \"{table}\" WHERE \"{column}\" IS NOT NULL"
            )))
            .fetch_all(pool)
            .await
            .expect("bytea column")
        } else {
            let texts: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT \"{column}\"::text FROM \"{table}\" WHERE \"{column}\" IS NOT NULL"
            )))
            .fetch_all(pool)
            .await
            .expect("text column");
            texts.into_iter().map(String::into_bytes).collect()
        };
        out.extend(values.into_iter().map(|v| (place.clone(), v)));
    }
    out
}

fn find<'a>(dump: &'a [(String, Vec<u8>)], needle: &str) -> Option<&'a str> {
    let n = needle.as_bytes();
    dump.iter()
        .find(|(_, v)| v.windows(n.len()).any(|w| w == n))
        .map(|(place, _)| place.as_str())
}

/// The secret and its random part (without `sst_` / `whsec_`), which is
/// what a careless encoding would leave readable.
fn forms(secret: &str) -> Vec<String> {
    let body = secret
        .strip_prefix("sst_")
        .or_else(|| secret.strip_prefix("whsec_"))
        .unwrap_or(secret);
    vec![secret.to_string(), body.to_string()]
}

#[tokio::test]
async fn tokens_are_hashed_and_secrets_encrypted_at_rest() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let a = provision(&app, &db.pool, "A").await;
    let b = provision(&app, &db.pool, "B").await;
    // Touch the dead-letter tables too.
    let r = call(
        &app,
        "POST",
        &format!("/v1/dead-letters/{}/discard", a.dead_letter),
        Some(&a.token),
        Some(&json!({"reason": "test"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = call(
        &app,
        "POST",
        &format!("/v1/dead-letters/{}/replay", b.dead_letter),
        Some(&b.token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);

    let dump = dump(&db.pool).await;
    // The dump really covers the data: stored values are found...
    assert!(find(&dump, &a.sale_external_id).is_some());
    assert!(find(&dump, "A books").is_some());
    let places: std::collections::BTreeSet<&str> = dump.iter().map(|(p, _)| p.as_str()).collect();
    for p in [
        "api_tokens.token_hash",
        "integrations.credentials_enc",
        "integrations.signing_secrets_enc",
        "tenants.webhook_secret_enc",
        "catalogue_subscriptions.secret_enc",
        "outbox.body",
        "deliveries.body",
        "dead_letter_actions.reason",
    ] {
        assert!(places.contains(p), "{p} not in the dump");
    }
    // ...and tokens are there as their SHA-256 only.
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(&db.pool)
        .await
        .expect("hashes");
    for t in [
        &a.token,
        &a.integration_only_token,
        &a.agent_token,
        &b.token,
    ] {
        assert!(
            hashes.contains(&tokens::hash(t)),
            "token not stored as its hash"
        );
    }

    // (1) No raw token, (2) no plaintext credential or signing secret, anywhere.
    for t in [&a, &b] {
        let secrets = [
            &t.token,
            &t.integration_only_token,
            &t.agent_token,
            &t.credentials,
            &t.webhook_secret,
            &t.subscription_secret,
        ]
        .into_iter()
        .chain(&t.signing_secrets);
        for secret in secrets {
            for form in forms(secret) {
                assert_eq!(find(&dump, &form), None, "'{form}' stored in clear");
            }
        }
    }
}

/// How a probe must be answered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The victim's id is unknown to the attacker: 404.
    NotFound,
    /// Not the operator: 401 or 403.
    Refused,
    /// The route only touches the caller's own data: anything but a 5xx,
    /// and none of the victim's data in the answer.
    OwnDataOnly,
}

struct Probe {
    method: Method,
    path: String,
    body: Option<Value>,
    expect: Expect,
}

/// An endpoint of either service: the sweep covers both route tables.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Data(ingest::routes::Endpoint),
    Control(console::routes::Endpoint),
}

struct Route {
    method: Method,
    path: &'static str,
    endpoint: Endpoint,
    access: Access,
}

/// Every route of both services.
fn routes() -> Vec<Route> {
    let data = ingest::routes::ROUTES.iter().map(|r| Route {
        method: r.method.clone(),
        path: r.path,
        endpoint: Endpoint::Data(r.endpoint),
        access: r.access,
    });
    let control = console::routes::ROUTES.iter().map(|r| Route {
        method: r.method.clone(),
        path: r.path,
        endpoint: Endpoint::Control(r.endpoint),
        access: r.access,
    });
    data.chain(control).collect()
}

/// The probes for one route, attacking `victim` with `attacker`'s own ids
/// where a route needs some. The match has no wildcard: a new endpoint does
/// not compile until it is given its probes.
fn probes(route: &Route, victim: &Tenant, attacker: &Tenant) -> Vec<Probe> {
    use Endpoint::{Control, Data};
    use Expect::*;
    use console::routes::Endpoint as C;
    use ingest::routes::Endpoint as D;
    let path = route
        .path
        .replace("{tenant_id}", &victim.id.to_string())
        // Refused before any lookup: any id will do.
        .replace("{token_id}", &victim.id.to_string())
        .replace(
            "{id}",
            &match route.endpoint {
                Control(C::GetIntegration)
                | Control(C::PatchIntegration)
                | Control(C::DeleteIntegration)
                | Control(C::RotateIntegrationSecret)
                | Control(C::PauseIntegration)
                | Control(C::ResumeIntegration)
                | Control(C::AdminPauseIntegration)
                | Control(C::AdminResumeIntegration)
                | Control(C::TestIntegrationConnection)
                | Control(C::GetProviderCatalogue)
                | Control(C::PutImports)
                | Control(C::GetImports)
                | Control(C::SyncImports)
                | Control(C::PutMappings)
                | Control(C::CheckMappings)
                | Control(C::ReceiveCatalogueCallback) => victim.integration.to_string(),
                Control(C::GetOrganization)
                | Control(C::PutOrganizationGrants)
                | Control(C::CreateAgent)
                | Control(C::ListAgents) => victim.organization.to_string(),
                Control(C::RotateAgentToken) | Control(C::RevokeAgentToken) => victim.agent.clone(),
                _ => victim.sale.to_string(),
            },
        )
        .replace("{delivery_id}", &victim.dead_letter.to_string())
        .replace("{key}", &victim.catalogue_key)
        .replace("{version}", "1");
    assert!(!path.contains('{'), "unfilled parameter in {path}");
    let probe = |path: String, body: Option<Value>, expect| Probe {
        method: route.method.clone(),
        path,
        body,
        expect,
    };
    let sale = |external_id: &str| serde_json::to_value(sample_sale(external_id)).expect("sale");
    match route.endpoint {
        Data(D::OpenApi) | Control(C::OpenApi) => vec![probe(path, None, OwnDataOnly)],
        Control(C::AdminCreateTenant) => {
            vec![probe(path, Some(json!({"name": "Sweeper"})), Refused)]
        }
        Control(C::AdminCreateToken) => {
            vec![probe(path, Some(json!({"name": "sweeper"})), Refused)]
        }
        Control(C::AdminRevokeToken) => vec![probe(path, None, Refused)],
        Control(C::AdminPeekDeadLetterQueue)
        | Control(C::AdminPurgeDeadLetterQueue)
        | Control(C::AdminResumeIntegration) => {
            vec![probe(path, None, Refused)]
        }
        Control(C::AdminPauseIntegration) => {
            vec![probe(path, Some(json!({"reason": "mine now"})), Refused)]
        }
        Control(C::AdminEraseCustomer) => vec![probe(
            path,
            Some(json!({"external_ids": [victim.sale_external_id]})),
            Refused,
        )],
        // The victim's customer and sale named by the attacker: nothing of
        // the victim's is erased (its sale is part of `victim_state`).
        Control(C::EraseCustomer) => vec![probe(
            path,
            Some(json!({
                "email": sample_sale("x").customer.and_then(|c| c.email),
                "external_ids": [victim.sale_external_id],
            })),
            OwnDataOnly,
        )],
        Control(C::ListErasures) => vec![probe(path, None, OwnDataOnly)],
        Data(D::CreateSale) => vec![probe(path, Some(sale("sweep-1")), OwnDataOnly)],
        Data(D::CreateSaleBatch) => vec![probe(
            path,
            Some(json!({"sales": [sale("sweep-2")]})),
            OwnDataOnly,
        )],
        Data(D::LookupSales) => vec![probe(
            path,
            Some(json!({"external_ids": [victim.sale_external_id]})),
            OwnDataOnly,
        )],
        Data(D::GetSale) => vec![probe(path, None, NotFound)],
        Data(D::ChangeSaleStatus) => {
            vec![probe(path, Some(json!({"status": "refunded"})), NotFound)]
        }
        Data(D::ForwardSale) => vec![
            // The victim's sale through the attacker's integration…
            probe(
                path,
                Some(json!({"integration_id": attacker.integration})),
                NotFound,
            ),
            // …and the attacker's sale through the victim's integration.
            probe(
                format!("/v1/sales/{}/forward", attacker.sale),
                Some(json!({"integration_id": victim.integration})),
                NotFound,
            ),
        ],
        Control(C::CreateIntegration) => vec![probe(
            path,
            Some(
                json!({"name": "Mine", "target_kind": "webhook", "target_url": "https://mine.example/in"}),
            ),
            OwnDataOnly,
        )],
        Control(C::ListIntegrations) => vec![probe(path, None, OwnDataOnly)],
        Control(C::GetIntegration)
        | Control(C::DeleteIntegration)
        | Control(C::RotateIntegrationSecret)
        | Control(C::ResumeIntegration) => {
            vec![probe(path, None, NotFound)]
        }
        Control(C::PauseIntegration) => {
            vec![probe(path, Some(json!({"reason": "mine now"})), NotFound)]
        }
        Control(C::PatchIntegration) => vec![probe(
            path,
            Some(json!({"name": "hijacked", "target_url": "https://evil.example/in"})),
            NotFound,
        )],
        Control(C::PutWebhook) => vec![probe(
            path,
            Some(json!({"url": "https://attacker.example/status"})),
            OwnDataOnly,
        )],
        Control(C::ListDeadLetters) => vec![
            probe(path.clone(), None, OwnDataOnly),
            probe(
                format!("{path}?integration_id={}", victim.integration),
                None,
                NotFound,
            ),
        ],
        Control(C::GetDeadLetter) | Control(C::ReplayDeadLetter) => {
            vec![probe(path, None, NotFound)]
        }
        Control(C::DiscardDeadLetter) => {
            vec![probe(path, Some(json!({"reason": "sweep"})), NotFound)]
        }
        Control(C::ReplayDeadLetters) => vec![
            probe(
                path.clone(),
                Some(json!({"integration_id": victim.integration})),
                NotFound,
            ),
            probe(path, Some(json!({"to": Utc::now()})), OwnDataOnly),
        ],
        // The victim's product and flow keys are free in the attacker's
        // catalogue: a write makes the attacker's own, nothing of the
        // victim's is read, changed or withdrawn.
        Control(C::PutProduct) => vec![probe(
            path,
            Some(json!({
                "name": "hijacked",
                "price": {"amount": 1, "currency": "EUR", "vat_rate": "0"},
            })),
            OwnDataOnly,
        )],
        Control(C::PutFlow) => vec![probe(
            path,
            Some(json!({"name": "hijacked", "products": [victim.catalogue_key]})),
            OwnDataOnly,
        )],
        // By then the attacker may have a product and a flow of that key of
        // its own (the writes above): only those are read or withdrawn.
        Control(C::ListProducts)
        | Control(C::ListFlows)
        | Control(C::GetProductVersion)
        | Control(C::DeleteProduct)
        | Control(C::DeleteFlow) => vec![probe(path, None, OwnDataOnly)],
        Control(C::CreateOrganization) => vec![probe(
            path,
            Some(json!({"name": format!("{} secret partner", victim.name)})),
            OwnDataOnly,
        )],
        Control(C::ListOrganizations) => vec![probe(path, None, OwnDataOnly)],
        Control(C::GetOrganization) => vec![probe(path, None, NotFound)],
        // The victim's organization, granted the attacker's own keys.
        Control(C::PutOrganizationGrants) => vec![probe(
            path,
            Some(json!({"products": [attacker.catalogue_key], "flows": []})),
            NotFound,
        )],
        Control(C::CreateAgent) => vec![probe(path, Some(json!({"name": "mole"})), NotFound)],
        Control(C::ListAgents) | Control(C::RotateAgentToken) | Control(C::RevokeAgentToken) => {
            vec![probe(path, None, NotFound)]
        }
        // The attacker's own test, to an address that refuses at once.
        Control(C::TestProviderConnection) => vec![probe(
            path,
            Some(json!({"url": "http://127.0.0.1:9", "token": "x"})),
            OwnDataOnly,
        )],
        Control(C::TestIntegrationConnection)
        | Control(C::GetProviderCatalogue)
        | Control(C::GetImports)
        | Control(C::SyncImports)
        | Control(C::CheckMappings) => vec![probe(path, None, NotFound)],
        Control(C::PutImports) => {
            vec![probe(path, Some(json!({"products": []})), NotFound)]
        }
        Control(C::PutMappings) => vec![probe(
            path,
            Some(json!({"flows": {}, "questions": {}})),
            NotFound,
        )],
        // No token, no signature: the victim's integration has no
        // subscription, and nothing is requested of it.
        Control(C::ReceiveCatalogueCallback) => vec![probe(path, Some(json!({})), NotFound)],
        // Who the attacker's own token is; an Agent's own granted catalogue.
        Control(C::GetIntegrationAccess) | Control(C::GetGrantedCatalogue) => {
            vec![probe(path, None, OwnDataOnly)]
        }
        // An Agent's own subscription: set, read and deleted, never the
        // victim's (which takes no id to name).
        Control(C::PutCatalogueSubscription) => vec![probe(
            path,
            Some(json!({"url": "https://attacker.example/callbacks"})),
            OwnDataOnly,
        )],
        Control(C::GetCatalogueSubscription) | Control(C::DeleteCatalogueSubscription) => {
            vec![probe(path, None, OwnDataOnly)]
        }
    }
}

/// What must never appear in an answer to the attacker.
fn victim_markers(v: &Tenant) -> Vec<String> {
    let mut m = vec![
        v.id.to_string(),
        v.sale.to_string(),
        v.integration.to_string(),
        v.dead_letter.to_string(),
        "A books".to_string(),
        format!("{} secret tariff", v.name),
        format!("{} secret script", v.name),
        v.organization.to_string(),
        v.agent.clone(),
        format!("{} secret agent", v.name),
        v.agent_token.clone(),
        "a.books.example".to_string(),
        "a.example/status".to_string(),
        v.token.clone(),
        v.credentials.clone(),
        v.webhook_secret.clone(),
        v.subscription_secret.clone(),
        "a.partner.example".to_string(),
    ];
    m.extend(v.signing_secrets.iter().cloned());
    m
}

/// What the victim's data looks like in the database, to prove the sweep
/// changed none of it.
async fn victim_state(pool: &PgPool, v: &Tenant) -> Value {
    let row: (String, Value) = sqlx::query_as(
        "SELECT
           (SELECT status FROM sales WHERE id = $1),
           json_build_object(
             'integration', (SELECT row_to_json(i) FROM integrations i WHERE id = $2),
             'tenant', (SELECT row_to_json(t) FROM tenants t WHERE id = $3),
             'dead_letter', (SELECT row_to_json(d) FROM deliveries d WHERE id = $4),
             'actions', (SELECT count(*) FROM dead_letter_actions WHERE tenant_id = $3),
             'sale', (SELECT sale FROM sales WHERE id = $1),
             'history', (SELECT count(*) FROM sale_status_history WHERE sale_id = $1),
             'tokens', (SELECT count(*) FROM api_tokens WHERE tenant_id = $3),
             'products', (SELECT json_agg(p ORDER BY key) FROM products p WHERE tenant_id = $3),
             'versions', (SELECT json_agg(v ORDER BY key, version) FROM product_versions v WHERE tenant_id = $3),
             'flows', (SELECT json_agg(f ORDER BY key) FROM flows f WHERE tenant_id = $3),
             'organizations', (SELECT json_agg(o ORDER BY name) FROM organizations o WHERE tenant_id = $3),
             'agents', (SELECT json_agg(a ORDER BY name) FROM agents a WHERE tenant_id = $3),
             'agent_tokens', (SELECT json_agg(t ORDER BY id) FROM api_tokens t
                              WHERE tenant_id = $3 AND agent_id IS NOT NULL),
             'grants', (SELECT json_agg(g ORDER BY kind, key) FROM grants g
                        JOIN organizations o ON o.id = g.organization_id WHERE o.tenant_id = $3),
             'subscriptions', (SELECT json_agg(s ORDER BY id) FROM catalogue_subscriptions s
                               WHERE tenant_id = $3),
             'callbacks', (SELECT count(*) FROM deliveries
                           WHERE tenant_id = $3 AND purpose = 'catalogue_callback'))",
    )
    .bind(v.sale)
    .bind(v.integration)
    .bind(v.id)
    .bind(v.dead_letter)
    .fetch_one(pool)
    .await
    .expect("victim state");
    json!({"status": row.0, "rows": row.1})
}

#[tokio::test]
async fn every_route_refuses_another_tenants_ids() {
    let db = TestDb::new().await;
    let app = common::app(state(&db.pool));
    let victim = provision(&app, &db.pool, "A").await;
    let attacker = provision(&app, &db.pool, "B").await;
    let before = victim_state(&db.pool, &victim).await;
    let markers = victim_markers(&victim);

    let mut probed = 0;
    let routes = routes();
    for route in &routes {
        for p in probes(route, &victim, &attacker) {
            for token in [
                &attacker.token,
                &attacker.integration_only_token,
                &attacker.agent_token,
            ] {
                let r = call(
                    &app,
                    p.method.as_str(),
                    &p.path,
                    Some(token),
                    p.body.as_ref(),
                )
                .await;
                let what = format!(
                    "{} {} ({:?}) → {}: {}",
                    p.method, p.path, p.expect, r.status, r.text
                );
                let integration_only = token != &attacker.token;
                let forbidden = integration_only
                    && !matches!(route.access, Access::TenantOrIntegration | Access::Public);
                match p.expect {
                    _ if forbidden => assert!(
                        matches!(r.status.as_u16(), 401 | 403),
                        "integration-only token: {what}"
                    ),
                    Expect::NotFound => assert_eq!(r.status, StatusCode::NOT_FOUND, "{what}"),
                    Expect::Refused => {
                        assert!(matches!(r.status.as_u16(), 401 | 403), "{what}")
                    }
                    Expect::OwnDataOnly => assert!(r.status.as_u16() < 500, "{what}"),
                }
                if p.expect != Expect::OwnDataOnly {
                    assert!(!r.status.is_success(), "{what}");
                }
                for m in &markers {
                    assert!(!r.text.contains(m.as_str()), "leaked '{m}': {what}");
                }
                probed += 1;
            }
        }
    }
    assert!(probed >= 3 * routes.len(), "every route probed ({probed})");

    // Nothing of the victim's changed…
    assert_eq!(victim_state(&db.pool, &victim).await, before);
    // …and the ids were real: the victim reaches each of them.
    let t = Some(victim.token.as_str());
    for path in [
        format!("/v1/sales/{}", victim.sale),
        format!("/v1/integrations/{}", victim.integration),
        format!("/v1/dead-letters/{}", victim.dead_letter),
        format!("/v1/dead-letters?integration_id={}", victim.integration),
    ] {
        let r = call(&app, "GET", &path, t, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    assert!(
        !call(&app, "GET", "/v1/dead-letters", t, None).await.body["dead_letters"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
}

/// Runs the `ingest` binary on the test database with these encryption keys.
fn ingest_cli(db: &TestDb, keys: Option<&str>, args: &[&str]) -> (bool, Value, String) {
    let mut cmd = std::process::Command::new(common::console_bin());
    cmd.arg("--database-url").arg(&db.url).args(args);
    match keys {
        Some(k) => cmd.env("SALESYNC_ENCRYPTION_KEYS", k),
        None => cmd.env_remove("SALESYNC_ENCRYPTION_KEYS"),
    };
    let out = cmd.output().expect("run console");
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every encrypted value in the database, with where it is.
async fn ciphertexts(pool: &PgPool) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let rows: Vec<(uuid::Uuid, Option<Vec<u8>>, Vec<u8>)> = sqlx::query_as(
        "SELECT id, credentials_enc, signing_secrets_enc FROM integrations ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("integrations");
    for (id, c, s) in rows {
        if let Some(c) = c {
            out.push((format!("credentials {id}"), c));
        }
        out.push((format!("signing {id}"), s));
    }
    let rows: Vec<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT id, webhook_secret_enc FROM tenants WHERE webhook_secret_enc IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("tenants");
    out.extend(rows.into_iter().map(|(id, w)| (format!("webhook {id}"), w)));
    let rows: Vec<(uuid::Uuid, Vec<u8>)> =
        sqlx::query_as("SELECT id, secret_enc FROM catalogue_subscriptions ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("subscriptions");
    out.extend(
        rows.into_iter()
            .map(|(id, s)| (format!("subscription {id}"), s)),
    );
    let rows: Vec<(uuid::Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT id, callback_secret_enc FROM integrations
         WHERE callback_secret_enc IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("callback secrets");
    out.extend(
        rows.into_iter()
            .map(|(id, s)| (format!("callback {id}"), s)),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_secrets_moves_every_secret_to_the_new_key() {
    let db = TestDb::new().await;
    let old_spec = SecretBox::generate_spec("old");
    let new_spec = SecretBox::generate_spec("new");
    let mut st = state(&db.pool);
    st.secrets = Arc::new(SecretBox::from_spec(&old_spec).expect("old key"));
    let old_app = common::app(st);
    let a = provision(&old_app, &db.pool, "A").await;
    let b = provision(&old_app, &db.pool, "B").await;
    // An integration without credentials: only its signing secret is stored.
    let r = call(
        &old_app,
        "POST",
        "/v1/integrations",
        Some(&a.token),
        Some(&json!({"name": "Plain", "target_kind": "webhook", "target_url": "https://p.example/in"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A provider's callback secret, as a subscription stores it.
    let old_box = SecretBox::from_spec(&old_spec).expect("old key");
    sqlx::query(
        "UPDATE integrations SET callback_secret_enc = $1
         WHERE id = (SELECT id FROM integrations ORDER BY id LIMIT 1)",
    )
    .bind(old_box.encrypt_json(&"whsec_provider"))
    .execute(&db.pool)
    .await
    .expect("callback secret");
    let before = ciphertexts(&db.pool).await;
    assert_eq!(
        before.len(),
        2 + 2 + 1 + 2 + 2 + 1,
        "2 credentials, 3 signing, 2 webhooks, 2 subscriptions, 1 callback"
    );

    let db = Arc::new(db);
    let run = |keys: Option<String>, args: &'static [&'static str]| {
        let db = db.clone();
        async move {
            tokio::task::spawn_blocking(move || ingest_cli(&db, keys.as_deref(), args))
                .await
                .expect("cli task")
        }
    };

    // Without keys, or with none that fits: refused, nothing changed.
    let (ok, _, err) = run(None, &["rotate-secrets"]).await;
    assert!(!ok && err.contains("SALESYNC_ENCRYPTION_KEYS"), "{err}");
    let stranger = SecretBox::generate_spec("stranger");
    let (ok, report, err) = run(Some(stranger), &["rotate-secrets"]).await;
    assert!(!ok && err.contains("could not be decrypted"), "{err}");
    assert_eq!(
        report["failed"].as_array().map(Vec::len),
        Some(before.len())
    );
    assert_eq!(ciphertexts(&db.pool).await, before);

    // Step 2 of the procedure: new key first, old key still there.
    let (ok, report, err) = run(Some(format!("{new_spec},{old_spec}")), &["rotate-secrets"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        report,
        json!({"credentials": 2, "signing_secrets": 3, "webhook_secrets": 2,
               "subscription_secrets": 2, "callback_secrets": 1, "failed": []})
    );

    // Step 3: the new key alone reads everything; the old key reads nothing.
    let new = SecretBox::from_spec(&new_spec).expect("new key");
    let old = SecretBox::from_spec(&old_spec).expect("old key");
    let after = ciphertexts(&db.pool).await;
    assert_eq!(after.len(), before.len());
    for (place, ct) in &after {
        assert!(ct.starts_with(b"\x03new"), "{place} not under the new key");
        assert!(new.decrypt(ct).is_ok(), "{place}");
        assert!(old.decrypt(ct).is_err(), "{place}");
    }
    for t in [&a, &b] {
        let (creds, signing): (Vec<u8>, Vec<u8>) = sqlx::query_as(
            "SELECT credentials_enc, signing_secrets_enc FROM integrations WHERE id = $1",
        )
        .bind(t.integration)
        .fetch_one(&db.pool)
        .await
        .expect("integration");
        let creds: Value = new.decrypt_json(&creds).expect("credentials");
        assert_eq!(creds, json!({"bearer_token": t.credentials}));
        let signing: Vec<String> = new.decrypt_json(&signing).expect("signing secrets");
        assert_eq!(signing, t.signing_secrets);
        let webhook: Vec<u8> =
            sqlx::query_scalar("SELECT webhook_secret_enc FROM tenants WHERE id = $1")
                .bind(t.id)
                .fetch_one(&db.pool)
                .await
                .expect("tenant");
        let webhook: String = new.decrypt_json(&webhook).expect("webhook secret");
        assert_eq!(webhook, t.webhook_secret);
        let subscription: Vec<u8> = sqlx::query_scalar(
            "SELECT secret_enc FROM catalogue_subscriptions WHERE tenant_id = $1",
        )
        .bind(t.id)
        .fetch_one(&db.pool)
        .await
        .expect("subscription");
        let subscription: String = new
            .decrypt_json(&subscription)
            .expect("subscription secret");
        assert_eq!(subscription, t.subscription_secret);
    }

    // A service that knows only the new key keeps working: rotating a
    // signing secret keeps the previous one, which it must decrypt to do so.
    let mut st = state(&db.pool);
    st.secrets = Arc::new(new.clone());
    let new_app = common::app(st);
    let r = call(
        &new_app,
        "POST",
        &format!("/v1/integrations/{}/rotate-secret", a.integration),
        Some(&a.token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let newest = r.body["signing_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let signing: Vec<u8> =
        sqlx::query_scalar("SELECT signing_secrets_enc FROM integrations WHERE id = $1")
            .bind(a.integration)
            .fetch_one(&db.pool)
            .await
            .expect("integration");
    let signing: Vec<String> = new.decrypt_json(&signing).expect("signing secrets");
    assert_eq!(signing, [newest, a.signing_secrets[0].clone()]);

    // Running it again is harmless.
    let (ok, report, err) = run(Some(new_spec.clone()), &["rotate-secrets"]).await;
    assert!(ok, "{err}");
    assert_eq!(report["failed"], json!([]));
}
