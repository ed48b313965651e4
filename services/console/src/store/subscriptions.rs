//! SQL of partners' catalogue subscriptions (migration 0015) and of the
//! callback deliveries filed for them. Every query is scoped by the
//! provider's `tenant_id`.

use chrono::{DateTime, Utc};
use salesync_core::domain::{AgentId, DeliveryId, OrganizationId, TenantId, TokenId};
use sqlx::PgConnection;
use uuid::Uuid;

/// A subscription as stored (its secret encrypted).
#[derive(sqlx::FromRow, Debug, Clone)]
pub struct SubscriptionRow {
    pub id: Uuid,
    pub url: String,
    pub secret_enc: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The Agent whose token this is (`None`: not an Agent's, or not the
/// tenant's).
pub async fn agent_of_token(
    conn: &mut PgConnection,
    tenant: TenantId,
    token: TokenId,
) -> sqlx::Result<Option<AgentId>> {
    let found: Option<Option<AgentId>> =
        sqlx::query_scalar("SELECT agent_id FROM api_tokens WHERE id = $1 AND tenant_id = $2")
            .bind(token)
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(found.flatten())
}

/// Subscribes the agent to `url`: a new subscription with `secret_enc`, or
/// the agent's existing one with its URL replaced and its secret kept.
/// `true` when it is new.
pub async fn upsert(
    conn: &mut PgConnection,
    tenant: TenantId,
    organization: OrganizationId,
    agent: AgentId,
    url: &str,
    secret_enc: &[u8],
) -> sqlx::Result<(SubscriptionRow, bool)> {
    #[derive(sqlx::FromRow)]
    struct Upserted {
        #[sqlx(flatten)]
        row: SubscriptionRow,
        inserted: bool,
    }
    // xmax = 0: the row was inserted, not updated.
    let u: Upserted = sqlx::query_as(
        "INSERT INTO catalogue_subscriptions (id, tenant_id, organization_id, agent_id, url, secret_enc)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (agent_id) DO UPDATE SET url = EXCLUDED.url, updated_at = now()
         RETURNING id, url, secret_enc, created_at, updated_at, (xmax = 0) AS inserted",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(organization)
    .bind(agent)
    .bind(url)
    .bind(secret_enc)
    .fetch_one(conn)
    .await?;
    Ok((u.row, u.inserted))
}

pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    agent: AgentId,
) -> sqlx::Result<Option<SubscriptionRow>> {
    sqlx::query_as(
        "SELECT id, url, secret_enc, created_at, updated_at FROM catalogue_subscriptions
         WHERE tenant_id = $1 AND agent_id = $2",
    )
    .bind(tenant)
    .bind(agent)
    .fetch_optional(conn)
    .await
}

/// `false`: the agent had no subscription.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    agent: AgentId,
) -> sqlx::Result<bool> {
    let done =
        sqlx::query("DELETE FROM catalogue_subscriptions WHERE tenant_id = $1 AND agent_id = $2")
            .bind(tenant)
            .bind(agent)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// A subscription a change is sent to.
#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
pub struct Subscriber {
    pub id: Uuid,
    pub organization_id: OrganizationId,
    pub url: String,
}

/// Only subscriptions whose Agent still has an active token hear anything.
const LIVE: &str = "EXISTS (SELECT 1 FROM api_tokens t
                            WHERE t.agent_id = s.agent_id AND t.revoked_at IS NULL)";

/// The subscriptions of the organizations granted product (or flow) `key`.
pub async fn granted_subscribers(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: &str,
    key: &str,
) -> sqlx::Result<Vec<Subscriber>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT s.id, s.organization_id, s.url FROM catalogue_subscriptions s
         WHERE s.tenant_id = $1 AND {LIVE}
           AND EXISTS (SELECT 1 FROM grants g
                       WHERE g.organization_id = s.organization_id AND g.kind = $2
                         AND g.key = $3 AND g.revoked_at IS NULL)
         ORDER BY s.organization_id, s.id"
    )))
    .bind(tenant)
    .bind(kind)
    .bind(key)
    .fetch_all(conn)
    .await
}

/// The subscriptions of one organization.
pub async fn organization_subscribers(
    conn: &mut PgConnection,
    tenant: TenantId,
    organization: OrganizationId,
) -> sqlx::Result<Vec<Subscriber>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT s.id, s.organization_id, s.url FROM catalogue_subscriptions s
         WHERE s.tenant_id = $1 AND s.organization_id = $2 AND {LIVE}
         ORDER BY s.id"
    )))
    .bind(tenant)
    .bind(organization)
    .fetch_all(conn)
    .await
}

/// A callback delivery to file.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub subscription_id: Uuid,
    pub dedupe_key: String,
    pub target_url: String,
    /// The body as it will be sent (kept for replays).
    pub body: serde_json::Value,
}

/// Inserts callback deliveries (about no sale: `sale_id` NULL).
pub async fn insert_callbacks(conn: &mut PgConnection, rows: &[NewCallback]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, sale_id, integration_id, subscription_id, purpose,
                                 dedupe_key, target_url, target_ref, body)
         SELECT u.id, u.tenant_id, NULL, NULL, u.subscription_id, 'catalogue_callback',
                u.dedupe_key, u.target_url, u.id::text, u.body
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[])
              AS u(id, tenant_id, subscription_id, dedupe_key, target_url, body)",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tenant_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.subscription_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.dedupe_key.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.target_url.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.body.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(|_| ())
}
