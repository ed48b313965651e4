//! The loss of a broker node: `kill -9` of the RabbitMQ cluster member that
//! leads the work queues, mid-stream, then its restart. The quorum queues
//! elect new leaders on the surviving majority, the services whose
//! connection died reconnect to a surviving node (their `AMQP_URL` lists
//! all), and the killed node rejoins with its data. The recovery is timed in
//! steps, each from the kill:
//!
//! - new leaders elected: every work queue led by a surviving node
//! - deliveries flowing: a delivery created after the kill has been
//!   delivered — its sale went through `salesync.sale-events` and
//!   `salesync.forward` on the new leaders (skipped when nothing was left
//!   to deliver)
//! - services reconnected: as many client connections as before the kill,
//!   all on surviving nodes
//! - services ready: every process answers `/readyz` 200
//! - node rejoined: the killed node is back, every queue's replica online
//!
//! A step is polled (each `rabbitmqctl` call takes a second or more on a
//! loaded machine), so its time is an upper bound at that resolution.

use std::time::Duration;

use anyhow::Context;
use salesync_core::amqp::topology::{Q_DEAD, Q_FORWARD, Q_SALE_EVENTS, Q_STATUS};
use tokio::time::Instant;

use super::faults::{LaneCtx, ready_all};
use crate::db::TestDb;
use crate::rabbit_cluster::{self, RabbitCluster};
use crate::services::Services;

/// The work queues, the one whose leader is killed first.
const WORK_QUEUES: [&str; 3] = [Q_FORWARD, Q_SALE_EVENTS, Q_STATUS];

const POLL: Duration = Duration::from_millis(250);

/// Kills the leading node, waits for each recovery step, restarts it.
pub async fn inject(
    services: &Services,
    rabbit: &mut RabbitCluster,
    ctx: &LaneCtx<'_>,
) -> anyhow::Result<Vec<(String, Duration)>> {
    if rabbit.len() < 3 {
        anyhow::bail!(
            "a node can only be lost from a cluster of three or more (this one has {})",
            rabbit.len()
        );
    }
    let replicas = rabbit.queue_replicas().await?;
    let leader = rabbit_cluster::leader_of(&replicas, &WORK_QUEUES)
        .context("no work queue has a leader")?
        .to_string();
    let victim = rabbit
        .index_of(&leader)
        .with_context(|| format!("{leader} is not a node of this cluster"))?;
    let led: Vec<&str> = replicas
        .iter()
        .filter(|q| q.leader == leader)
        .map(|q| q.name.as_str())
        .collect();
    let connections = rabbit.connections_by_node().await.unwrap_or_default();
    let connected = connections.values().sum::<usize>();
    (ctx.say)(format!(
        "killing {leader}, leader of {}, holding {} of {connected} client connections",
        led.join(", "),
        connections.get(&leader).copied().unwrap_or(0),
    ));
    // The database's clock, as `created_at` is stamped by it.
    let kill_time: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(ctx.db.pool())
        .await?;

    rabbit.node_mut(victim).kill9().await?;
    let killed = Instant::now();
    let since_kill = |r: anyhow::Result<()>| r.map(|()| killed.elapsed());
    let (leaders, flowing, reconnected, ready) = tokio::join!(
        async { since_kill(new_leaders(rabbit, &leader, ctx).await) },
        deliveries_flow(ctx.db, kill_time, ctx),
        async { since_kill(reconnected(rabbit, connected, ctx).await) },
        async {
            // Give the services a moment to notice the cut before asking.
            tokio::time::sleep(Duration::from_millis(500)).await;
            since_kill(ready_all(services, ctx).await)
        },
    );
    // The node comes back whatever went wrong meanwhile: the campaign goes on.
    let restarted = rabbit.node_mut(victim).start_again().await;
    let mut steps = vec![
        ("new leaders elected".to_string(), leaders?),
        ("services reconnected".to_string(), reconnected?),
        ("services ready".to_string(), ready?),
    ];
    match flowing? {
        Some(d) => steps.insert(1, ("deliveries flowing".into(), d)),
        None => (ctx.say)("no delivery left to settle after the kill".into()),
    }
    restarted.with_context(|| format!("{leader} did not start again"))?;
    rejoined(rabbit, ctx).await?;
    steps.push(("node rejoined".into(), killed.elapsed()));
    Ok(steps)
}

/// Polls `check` (`Err`: why not yet) until it passes; fails with the last
/// reason after `recover_within` or when the campaign stops.
async fn poll_until<F, Fut>(what: &str, ctx: &LaneCtx<'_>, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + ctx.cfg.recover_within;
    loop {
        let why = match check().await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= deadline || ctx.stop.is_cancelled() {
            anyhow::bail!("{what} not within {:?}: {why}", ctx.cfg.recover_within);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Until every work queue is led by a node other than `lost`.
async fn new_leaders(rabbit: &RabbitCluster, lost: &str, ctx: &LaneCtx<'_>) -> anyhow::Result<()> {
    poll_until("new leaders", ctx, || async {
        let q = rabbit
            .queue_replicas()
            .await
            .map_err(|e| format!("{e:#}"))?;
        let stuck: Vec<&str> = WORK_QUEUES
            .into_iter()
            .filter(|w| {
                !q.iter()
                    .any(|r| r.name == *w && !r.leader.is_empty() && r.leader != lost)
            })
            .collect();
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(format!("still without a new leader: {}", stuck.join(", ")))
        }
    })
    .await
}

/// Until the surviving nodes hold `before` client connections again (the
/// lost node's clients reconnected elsewhere).
async fn reconnected(
    rabbit: &RabbitCluster,
    before: usize,
    ctx: &LaneCtx<'_>,
) -> anyhow::Result<()> {
    poll_until("services reconnected", ctx, || async {
        let by_node = rabbit
            .connections_by_node()
            .await
            .map_err(|e| format!("{e:#}"))?;
        let now = by_node.values().sum::<usize>();
        if now >= before {
            Ok(())
        } else {
            Err(format!("{now} of {before} client connections back"))
        }
    })
    .await
}

/// Until a delivery created after `kill_time` is delivered: the time since
/// the kill, or `None` when nothing is left to deliver (the POS is done and
/// nothing is open) or the campaign stops.
async fn deliveries_flow(
    db: &TestDb,
    kill_time: chrono::DateTime<chrono::Utc>,
    ctx: &LaneCtx<'_>,
) -> anyhow::Result<Option<Duration>> {
    let killed = Instant::now();
    let deadline = killed + ctx.cfg.recover_within;
    loop {
        if delivered_since(db, kill_time).await.is_ok_and(|n| n > 0) {
            return Ok(Some(killed.elapsed()));
        }
        if ctx.stop.is_cancelled()
            || (ctx.pos_done.is_cancelled() && open(db).await.is_ok_and(|n| n == 0))
        {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "no delivery settled within {:?} of the kill",
                ctx.cfg.recover_within
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Until every node runs and every salesync queue has its replica online on each.
async fn rejoined(rabbit: &RabbitCluster, ctx: &LaneCtx<'_>) -> anyhow::Result<()> {
    let nodes: Vec<&str> = rabbit.nodes().iter().map(|n| n.node()).collect();
    let queues = [Q_FORWARD, Q_SALE_EVENTS, Q_STATUS, Q_DEAD];
    poll_until("rejoined", ctx, || async {
        let q = rabbit
            .queue_replicas()
            .await
            .map_err(|e| format!("{e:#}"))?;
        let gaps = rabbit_cluster::replication_gaps(&q, &queues, &nodes);
        if gaps.is_empty() {
            Ok(())
        } else {
            Err(gaps.join("; "))
        }
    })
    .await
}

async fn delivered_since(db: &TestDb, since: chrono::DateTime<chrono::Utc>) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND created_at > $1",
    )
    .bind(since)
    .fetch_one(db.pool())
    .await?)
}

/// Sales not yet forwarded plus deliveries not yet settled.
async fn open(db: &TestDb) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM outbox)
              + (SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retrying'))",
    )
    .fetch_one(db.pool())
    .await?)
}
