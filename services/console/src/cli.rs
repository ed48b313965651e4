//! The operator commands that do not serve: `admin create-tenant`, `dlq …`,
//! `rotate-secrets` and `topology-definitions`. Each calls the same functions
//! as the matching API route or service (one code path) and prints its answer
//! as JSON on stdout, so the output can be piped into `jq`. No telemetry: stdout is the answer only.

use salesync_core::db;
use serde::Serialize;
use sqlx::PgPool;

use crate::config::{AdminCommand, Cli, DlqCommand};
use crate::dead_letters::query::{self, BulkReplayParams, ListParams, ReplayParams};
use crate::dead_letters::{self, Actor};
use crate::key_rotation;
use crate::store;
use crate::tenancy::{self, NewTenant};

fn print(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn connect(cli: &Cli) -> anyhow::Result<PgPool> {
    db::connect_and_migrate(
        &cli.common.database_url,
        cli.common.database_max_connections,
    )
    .await
}

/// `console admin …`
pub async fn admin(cli: &Cli, cmd: AdminCommand) -> anyhow::Result<()> {
    let pool = connect(cli).await?;
    match cmd {
        AdminCommand::CreateTenant {
            name,
            token_name,
            integration_only,
        } => {
            let created = tenancy::create_tenant(
                &pool,
                NewTenant {
                    name,
                    token_name,
                    integration_only,
                },
            )
            .await?;
            // One line, as scripts (deploy/, tests) read it.
            println!("{}", serde_json::to_string(&created)?);
        }
        AdminCommand::CreateOperator { name, tenants } => {
            let created = store::operators::create(&pool, &name, &tenants).await?;
            println!("{}", serde_json::to_string(&created)?);
        }
        AdminCommand::RevokeOperator { name } => {
            if !store::operators::revoke(&pool, &name).await? {
                anyhow::bail!("no active operator named '{name}'");
            }
            println!("{}", serde_json::json!({ "revoked": name }));
        }
    }
    Ok(())
}

/// `console dlq …`
pub async fn dlq(cli: &Cli, cmd: DlqCommand) -> anyhow::Result<()> {
    let pool = connect(cli).await?;
    let invalid =
        |fields: Vec<salesync_core::domain::FieldError>| dead_letters::DlqError::Invalid(fields);
    match cmd {
        DlqCommand::List {
            scope,
            integration,
            from,
            to,
            limit,
            cursor,
            include_discarded,
            reason,
        } => {
            let q = query::list_query(&ListParams {
                integration_id: integration,
                from,
                to,
                limit,
                cursor,
                include_discarded: Some(include_discarded.to_string()),
                reason,
            })
            .map_err(invalid)?;
            print(&dead_letters::list(&pool, scope.tenant, &q).await?)
        }
        DlqCommand::Show { id, scope } => {
            print(&dead_letters::show(&pool, scope.tenant, id).await?)
        }
        DlqCommand::Replay {
            id: Some(id),
            scope,
            target,
            ..
        } => {
            let target = query::replay_options(&ReplayParams { target }).map_err(invalid)?;
            print(&dead_letters::replay(&pool, scope.tenant, id, target, Actor::Cli).await?)
        }
        DlqCommand::Replay {
            id: None,
            scope,
            integration,
            from,
            to,
            target,
            dry_run,
            limit,
        } => {
            let req = query::bulk_replay(&BulkReplayParams {
                integration_id: integration,
                from,
                to,
                target,
                dry_run: Some(dry_run),
                limit,
            })
            .map_err(invalid)?;
            print(&dead_letters::replay_matching(&pool, scope.tenant, &req, Actor::Cli).await?)
        }
        DlqCommand::Discard { id, reason, scope } => {
            print(&dead_letters::discard(&pool, scope.tenant, id, &reason, Actor::Cli).await?)
        }
    }
}

/// `console rotate-secrets`
pub async fn rotate_secrets(cli: &Cli) -> anyhow::Result<()> {
    let Some(encryption) = &cli.encryption else {
        anyhow::bail!(
            "SALESYNC_ENCRYPTION_KEYS is required: the new key first, then the old ones (new,old)"
        );
    };
    let pool = connect(cli).await?;
    let report = key_rotation::rotate_all(&pool, &encryption.encryption_keys).await?;
    print(&report)?;
    if !report.ok() {
        anyhow::bail!(
            "{} secret(s) could not be decrypted with any given key; keep the old key until they are fixed",
            report.failed.len()
        );
    }
    Ok(())
}

/// `console topology-definitions`: the definitions file on stdout.
pub fn topology_definitions(retry_delays: &str, vhost: &str) -> anyhow::Result<()> {
    let delays = salesync_core::config::parse_duration_list(retry_delays)
        .map_err(|e| anyhow::anyhow!("--retry-delays: {e}"))?;
    print!(
        "{}",
        salesync_core::amqp::definitions::definitions_file(vhost, &delays)
    );
    Ok(())
}
