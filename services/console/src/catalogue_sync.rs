//! Keeping A's copy of a provider's catalogue in step (issue 17, A's side):
//! importing a selection, syncing (on demand, when B's signed callback says
//! something changed, and by the periodic reconciliation that repairs a lost
//! callback), and the mapping check that runs after each. One procedure for
//! all of them: ask B (no lock held while waiting), then, with the
//! integration locked, plan (`catalogue::plan_sync`), write, check.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use salesync_core::catalogue::{
    Catalogue, Change, ImportedProduct, Mismatch, check_mapping, plan_sync,
};
use salesync_core::catalogue_store;
use salesync_core::crypto::SecretBox;
use salesync_core::domain::{FieldError, IntegrationId, TenantId};
use salesync_core::egress::EgressClient;
use salesync_core::integration::TargetCredentials;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::provider::client::{CallError, Provider};
use crate::routes::integration::GrantedCatalogue;
use crate::store;
use crate::store::imports::ProviderLink;
use salesync_core::api::ApiError;

/// Everything a sync needs besides the integration.
#[derive(Clone, Copy)]
pub struct SyncContext<'a> {
    pub pool: &'a PgPool,
    pub secrets: &'a SecretBox,
    pub http: &'a EgressClient,
    /// This console's address as providers reach it, for B's callbacks
    /// (`None`: no subscription, the reconciliation alone keeps step).
    pub public_url: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("integration not found")]
    NotFound,
    /// The integration cannot import: not a salesync target, or no token.
    #[error("{0}")]
    NotAProvider(String),
    #[error("{0}")]
    Provider(#[from] CallError),
    #[error("the integration's token could not be decrypted")]
    Crypto,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::NotFound => ApiError::NotFound("integration"),
            SyncError::NotAProvider(m) => ApiError::Conflict {
                code: "not_a_provider",
                message: m,
            },
            SyncError::Provider(e) => ApiError::Conflict {
                code: "provider_unavailable",
                message: format!("the provider could not be read: {e}"),
            },
            SyncError::Crypto => ApiError::Internal,
            SyncError::Db(e) => e.into(),
            SyncError::Invalid(f) => ApiError::Validation(f),
        }
    }
}

/// What a sync (or an import) did, as the API answers it.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
pub struct SyncReport {
    /// What changed in A's copy; empty when B had nothing new.
    pub changes: Vec<Change>,
    /// When a sync last changed something.
    pub last_synchronised_at: Option<DateTime<Utc>>,
    pub checked_at: DateTime<Utc>,
    /// The mapping check that ran after it.
    pub mismatches: Vec<Mismatch>,
    /// How many of them the check before did not find.
    pub new_mismatches: usize,
}

/// The bearer token A was given for B.
pub fn agent_token(secrets: &SecretBox, link: &ProviderLink) -> Result<String, SyncError> {
    if link.target_kind != "salesync" {
        return Err(SyncError::NotAProvider(
            "only a salesync target has a catalogue to import".into(),
        ));
    }
    let enc = link.credentials_enc.as_deref().ok_or_else(|| {
        SyncError::NotAProvider("the integration has no token for the provider".into())
    })?;
    let creds: TargetCredentials = secrets.decrypt_json(enc).map_err(|_| SyncError::Crypto)?;
    creds.bearer_token.ok_or_else(|| {
        SyncError::NotAProvider("the integration has no token for the provider".into())
    })
}

/// Reads B's granted catalogue for the integration.
pub async fn read_provider(
    ctx: SyncContext<'_>,
    tenant: TenantId,
    id: IntegrationId,
) -> Result<(ProviderLink, GrantedCatalogue), SyncError> {
    let mut conn = ctx.pool.acquire().await?;
    let link = store::imports::link(&mut conn, tenant, id, false)
        .await?
        .ok_or(SyncError::NotFound)?;
    drop(conn);
    let token = agent_token(ctx.secrets, &link)?;
    let provider = Provider {
        http: ctx.http,
        base_url: &link.base_url,
        token: &token,
    };
    let listing = provider.catalogue().await?;
    Ok((link, listing))
}

/// Syncs A's copy with B now; what changed, and the mapping check after.
pub async fn sync(
    ctx: SyncContext<'_>,
    tenant: TenantId,
    id: IntegrationId,
) -> Result<SyncReport, SyncError> {
    apply(ctx, tenant, id, None).await
}

/// Sets what A imports of B: keys not imported yet are copied from B's
/// listing now, imported keys left out are deleted from A's copy (sales made
/// keep their history). The rest is synced as by `sync`.
pub async fn import(
    ctx: SyncContext<'_>,
    tenant: TenantId,
    id: IntegrationId,
    keys: &[String],
) -> Result<SyncReport, SyncError> {
    apply(ctx, tenant, id, Some(keys)).await
}

async fn apply(
    ctx: SyncContext<'_>,
    tenant: TenantId,
    id: IntegrationId,
    selection: Option<&[String]>,
) -> Result<SyncReport, SyncError> {
    let started = Utc::now();
    let (_, listing) = read_provider(ctx, tenant, id).await?;
    let b = Catalogue {
        products: listing.products,
        flows: listing.flows,
    };
    if let Some(keys) = selection {
        let problems = not_granted(keys, &b);
        if !problems.is_empty() {
            return Err(SyncError::Invalid(problems));
        }
    }
    let subscribe = selection.is_some();
    let mut tx = ctx.pool.begin().await?;
    let link = store::imports::link(&mut tx, tenant, id, true)
        .await?
        .ok_or(SyncError::NotFound)?;
    let rows = store::imports::copies(&mut tx, id).await?;
    let mut current: Vec<ImportedProduct> = rows.into_iter().map(|r| r.copy).collect();
    let mut changes = Vec::new();
    if let Some(keys) = selection {
        let wanted: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let dropped: Vec<String> = current
            .iter()
            .map(|c| c.product.key.clone())
            .filter(|k| !wanted.contains(k.as_str()))
            .collect();
        store::imports::delete_copies(&mut tx, id, &dropped).await?;
        current.retain(|c| wanted.contains(c.product.key.as_str()));
        let have: BTreeSet<String> = current.iter().map(|c| c.product.key.clone()).collect();
        for key in wanted.iter().filter(|k| !have.contains(**k)) {
            if let Some(p) = b.product(key) {
                current.push(ImportedProduct::of(p.clone()));
                changes.push(Change::Imported {
                    product: (*key).to_string(),
                    version: p.version,
                });
            }
        }
        changes.extend(
            dropped
                .into_iter()
                .map(|product| Change::Unimported { product }),
        );
    }
    let synced_flows = link.checked_at.map(|_| link.provider_flows.as_slice());
    let plan = plan_sync(&current, synced_flows, &b, link.policy);
    let new_keys: BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Imported { product, .. } => Some(product.as_str()),
            _ => None,
        })
        .collect();
    // New copies are written whatever the plan says of them; changed ones too.
    let written: Vec<&ImportedProduct> = plan
        .products
        .iter()
        .filter(|p| {
            new_keys.contains(p.product.key.as_str())
                || plan
                    .changes
                    .iter()
                    .any(|c| c.product() == Some(&p.product.key))
        })
        .collect();
    store::imports::upsert_copies(&mut tx, tenant, id, &written).await?;
    store::imports::delete_copies(&mut tx, id, &plan.deleted).await?;
    changes.extend(plan.changes.iter().cloned());
    store::imports::record_sync(&mut tx, id, &plan.flows, &changes, started).await?;
    let (mismatches, new_mismatches) =
        run_check(&mut tx, &link, &plan.products, &plan.flows).await?;
    tx.commit().await?;
    if subscribe {
        subscribe_to_callbacks(ctx, tenant, id).await;
    }
    if !changes.is_empty() {
        tracing::info!(%tenant, integration_id = %id, changes = changes.len(), "catalogue synchronised");
    }
    let mut conn = ctx.pool.acquire().await?;
    let after = store::imports::link(&mut conn, tenant, id, false)
        .await?
        .ok_or(SyncError::NotFound)?;
    Ok(SyncReport {
        changes,
        last_synchronised_at: after.last_synced_at,
        checked_at: after.checked_at.unwrap_or(started),
        mismatches,
        new_mismatches,
    })
}

/// A problem for each selected key B does not grant.
fn not_granted(keys: &[String], b: &Catalogue) -> Vec<FieldError> {
    keys.iter()
        .enumerate()
        .filter(|(_, k)| b.product(k).is_none())
        .map(|(i, k)| {
            FieldError::new(
                format!("products[{i}]"),
                format!(
                    "'{}' is not a product the provider grants you",
                    k.chars().take(64).collect::<String>()
                ),
            )
        })
        .collect()
}

/// Asks B to call this console when the catalogue changes, and keeps B's
/// secret. Best effort: without it, the reconciliation keeps step.
async fn subscribe_to_callbacks(ctx: SyncContext<'_>, tenant: TenantId, id: IntegrationId) {
    let Some(public) = ctx.public_url else {
        return;
    };
    let url = format!(
        "{}/v1/callbacks/catalogue/{id}",
        public.trim_end_matches('/')
    );
    let result = async {
        let mut conn = ctx.pool.acquire().await?;
        let link = store::imports::link(&mut conn, tenant, id, false)
            .await?
            .ok_or(SyncError::NotFound)?;
        let token = agent_token(ctx.secrets, &link)?;
        let provider = Provider {
            http: ctx.http,
            base_url: &link.base_url,
            token: &token,
        };
        let subscribed = provider.subscribe(&url).await?;
        let enc = ctx.secrets.encrypt_json(&subscribed.secret);
        store::imports::set_callback_secret(&mut conn, id, &enc).await?;
        Ok::<_, SyncError>(())
    }
    .await;
    match result {
        Ok(()) => {
            tracing::info!(integration_id = %id, "subscribed to the provider's catalogue callbacks")
        }
        Err(e) => {
            tracing::warn!(integration_id = %id, error = %e, "could not subscribe to the provider's callbacks; the reconciliation keeps step")
        }
    }
}

/// Runs the mapping check for the integration's copies and records it;
/// the mismatches, and how many are new since the last check.
pub async fn run_check(
    conn: &mut PgConnection,
    link: &ProviderLink,
    copies: &[ImportedProduct],
    flows: &[salesync_core::catalogue::Flow],
) -> sqlx::Result<(Vec<Mismatch>, usize)> {
    let a = catalogue_store::own_questions(conn, link.tenant_id).await?;
    let products: Vec<_> = copies
        .iter()
        .filter(|c| c.forwardable())
        .map(|c| c.product.clone())
        .collect();
    let found = check_mapping(
        &products,
        flows,
        &a,
        &link.question_mapping,
        &link.flow_mapping,
    );
    let before: BTreeSet<&Mismatch> = link.mismatches.iter().collect();
    let new = found.iter().filter(|m| !before.contains(m)).count();
    store::imports::record_check(conn, link.id, &found, new > 0).await?;
    Ok((found, new))
}

/// The reconciliation: every `poll`, syncs the integrations due (a callback
/// asked, or B not asked for `interval`). Repairs a lost callback within
/// `interval`.
pub async fn run(
    pool: PgPool,
    secrets: std::sync::Arc<SecretBox>,
    http: EgressClient,
    public_url: Option<String>,
    interval: Duration,
    poll: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let ctx = SyncContext {
            pool: &pool,
            secrets: &secrets,
            http: &http,
            public_url: public_url.as_deref(),
        };
        if let Err(e) = pass(ctx, interval, poll).await {
            tracing::warn!(error = %e, "catalogue reconciliation pass failed; next pass retries");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// One pass: claims what is due and syncs it.
pub async fn pass(ctx: SyncContext<'_>, interval: Duration, pace: Duration) -> sqlx::Result<usize> {
    let mut conn = ctx.pool.acquire().await?;
    let due = store::imports::claim_due(&mut conn, interval.as_secs_f64(), pace.as_secs_f64(), 20)
        .await?;
    drop(conn);
    for (tenant, id) in &due {
        if let Err(e) = sync(ctx, *tenant, *id).await {
            tracing::warn!(%tenant, integration_id = %id, error = %e, "catalogue sync failed; retried on a later pass");
        }
    }
    Ok(due.len())
}
