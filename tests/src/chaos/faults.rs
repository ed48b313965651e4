//! Injecting the schedule: the infrastructure lane (kill -9 and restart of
//! processes, broker stop/start and forced disconnects, database restart)
//! and the target lane (misbehaviour windows of the two flaky targets). Each
//! lane runs its rounds until the POS is done (at least one full round, so
//! every kind occurs), the deadline passes, or the campaign stops; every
//! injection is logged with how long the system took to be ready again.
//! The loss of a cluster node is in `node_kill`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::node_kill;
use super::routing::Route;
use super::schedule::{InfraFault, Plan};
use crate::db::TestDb;
use crate::pg::PrivatePostgres;
use crate::rabbit_cluster::RabbitCluster;
use crate::services::{ServiceKind, Services};
use crate::target::{Behaviour, TestTarget};

/// Timing of the lanes.
#[derive(Clone, Debug)]
pub struct LaneConfig {
    /// Which faults, in which rounds.
    pub plan: Plan,
    /// Pause between two faults of a lane.
    pub gap: Duration,
    /// How long a killed process stays dead.
    pub dead_for: Duration,
    /// How long the broker app stays stopped.
    pub broker_down: Duration,
    /// How long a target misbehaves.
    pub window: Duration,
    /// How long a hung request is held (past the forwarder's timeout).
    pub hang: Duration,
    /// How long the system may take to be ready after a fault.
    pub recover_within: Duration,
}

/// One fault as it happened.
#[derive(Clone, Debug)]
pub struct Injected {
    pub kind: String,
    /// Since the lanes started.
    pub at: Duration,
    /// From the fault to every affected process ready again (`None`: it
    /// was not within `recover_within`, or the fault is a target window).
    pub recovered_in: Option<Duration>,
    /// Steps of the recovery, each from the fault (e.g. "new leaders
    /// elected"), for faults that have more than one.
    pub milestones: Vec<(String, Duration)>,
}

/// The faults injected and what went wrong on the way.
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    pub injected: Vec<Injected>,
    /// Crashes, failures to recover, faults that could not be injected.
    pub findings: Vec<String>,
}

impl FaultLog {
    /// How many faults of each kind.
    pub fn by_kind(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for i in &self.injected {
            *m.entry(i.kind.clone()).or_default() += 1;
        }
        m
    }
}

/// What the lanes share: when to stop, where to log.
pub struct LaneCtx<'a> {
    pub cfg: &'a LaneConfig,
    /// The POS has posted everything: finish the current round, then stop.
    pub pos_done: &'a CancellationToken,
    /// Stop now (deadline or abort).
    pub stop: &'a CancellationToken,
    pub started: Instant,
    /// The campaign's database, to see deliveries flow.
    pub db: &'a TestDb,
    pub log: &'a Mutex<FaultLog>,
    pub say: &'a (dyn Fn(String) + Sync),
    pub status: &'a (dyn Fn(String) + Sync),
}

impl LaneCtx<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn finding(&self, text: String) {
        (self.say)(format!("FINDING: {text}"));
        self.lock().findings.push(text);
    }

    fn record(
        &self,
        kind: String,
        at: Duration,
        recovered_in: Option<Duration>,
        milestones: Vec<(String, Duration)>,
    ) {
        self.lock().injected.push(Injected {
            kind,
            at,
            recovered_in,
            milestones,
        });
    }

    /// Sleeps unless the campaign stops first (`false` then).
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// Whether another fault of round `round` may start.
    fn go_on(&self, round: usize) -> bool {
        !self.stop.is_cancelled() && (round == 0 || !self.pos_done.is_cancelled())
    }
}

/// Wall-clock time (UTC, like the service logs) for the event log.
fn clock() -> String {
    chrono::Utc::now().format("%H:%M:%S%.3f").to_string()
}

/// The infrastructure lane.
pub async fn infra_lane(
    services: &mut Services,
    rabbit: &mut RabbitCluster,
    pg: &mut PrivatePostgres,
    ctx: &LaneCtx<'_>,
) {
    for round in 0usize.. {
        let Some(plan) = ctx.cfg.plan.round(round) else {
            return;
        };
        for fault in plan.infra {
            if !ctx.go_on(round) || !ctx.pause(ctx.cfg.gap).await {
                return;
            }
            let at = ctx.started.elapsed();
            let wall = clock();
            (ctx.status)(format!("injecting: {}", fault.kind()));
            let recovered = inject(&fault, services, rabbit, pg, ctx).await;
            let (recovered_in, milestones) = match recovered {
                Ok(milestones) => (Some(ctx.started.elapsed() - at), milestones),
                Err(e) => {
                    ctx.finding(format!("{}: {e:#}", fault.kind()));
                    (None, Vec::new())
                }
            };
            ctx.record(fault.kind(), at, recovered_in, milestones);
            (ctx.say)(format!(
                "{wall} {:>6.1}s  {:<36} {}",
                at.as_secs_f64(),
                fault.kind(),
                recovered_in.map_or("did not recover".into(), |d| format!(
                    "ready again after {:.1}s",
                    d.as_secs_f64()
                ))
            ));
            check_exits(services, ctx);
            (ctx.status)(String::new());
        }
    }
}

/// Injects one fault and waits until the system is ready again; returns
/// the steps of the recovery for faults that have several.
async fn inject(
    fault: &InfraFault,
    services: &mut Services,
    rabbit: &mut RabbitCluster,
    pg: &mut PrivatePostgres,
    ctx: &LaneCtx<'_>,
) -> anyhow::Result<Vec<(String, Duration)>> {
    // Most faults recover in one step: every affected process ready.
    let one_step = |ready: anyhow::Result<()>| ready.map(|()| Vec::new());
    match fault {
        InfraFault::Kill { service, replica } => {
            services.kill_one(*service, *replica).await;
            tokio::time::sleep(ctx.cfg.dead_for).await;
            services.start_kind(*service)?;
            one_step(ready_kind(services, *service, ctx).await)
        }
        InfraFault::KillPair { service } => {
            services.kill_one(*service, 0).await;
            services.kill_one(*service, 1).await;
            tokio::time::sleep(ctx.cfg.dead_for).await;
            services.start_kind(*service)?;
            one_step(ready_kind(services, *service, ctx).await)
        }
        InfraFault::BrokerStopStart => {
            let node = rabbit.node_mut(0);
            node.stop_app().await?;
            tokio::time::sleep(ctx.cfg.broker_down).await;
            node.start_app().await?;
            one_step(ready_all(services, ctx).await)
        }
        InfraFault::BrokerCloseConnections => {
            // Each node closes the connections it holds.
            for node in rabbit.nodes() {
                node.ctl(&[
                    "-q",
                    "close_all_connections",
                    "salesync chaos: forced close",
                ])
                .await?;
            }
            // Give the services a moment to notice before asking.
            tokio::time::sleep(Duration::from_millis(500)).await;
            one_step(ready_all(services, ctx).await)
        }
        InfraFault::PostgresRestart => {
            pg.restart().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            one_step(ready_all(services, ctx).await)
        }
        InfraFault::BrokerNodeKill => node_kill::inject(services, rabbit, ctx).await,
    }
}

async fn ready_kind(
    services: &mut Services,
    kind: ServiceKind,
    ctx: &LaneCtx<'_>,
) -> anyhow::Result<()> {
    match tokio::time::timeout(ctx.cfg.recover_within, services.try_wait_ready_kind(kind)).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!(
            "{kind} not ready within {:?}:\n{}",
            ctx.cfg.recover_within,
            services.log_tail(kind, 15)
        ),
    }
}

/// Waits until every process of every service says ready.
pub async fn ready_all(services: &Services, ctx: &LaneCtx<'_>) -> anyhow::Result<()> {
    let deadline = Instant::now() + ctx.cfg.recover_within;
    loop {
        let mut not_ready = Vec::new();
        for kind in ServiceKind::ALL {
            if !services.is_ready(kind).await {
                not_ready.push(kind);
            }
        }
        if not_ready.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline || ctx.stop.is_cancelled() {
            let tails: Vec<String> = not_ready
                .iter()
                .map(|k| services.log_tail(*k, 15))
                .collect();
            anyhow::bail!(
                "not ready within {:?}: {}\n{}",
                ctx.cfg.recover_within,
                not_ready
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reports processes that ended on their own, and starts them again so the
/// campaign goes on (the run still fails: a service must not die of a fault).
fn check_exits(services: &mut Services, ctx: &LaneCtx<'_>) {
    let exits = services.unexpected_exits();
    if exits.is_empty() {
        return;
    }
    for (kind, index, status) in &exits {
        ctx.finding(format!(
            "{kind}#{index} exited on its own ({status}); log tail:\n{}",
            services.log_tail(*kind, 20)
        ));
    }
    if let Err(e) = services.restart_exited() {
        ctx.finding(format!("cannot restart exited processes: {e:#}"));
    }
}

/// The target lane: each window sets both flaky targets' behaviour, holds
/// it, and calms them again.
pub async fn target_lane(targets: &BTreeMap<Route, TestTarget>, ctx: &LaneCtx<'_>) {
    let (Some(a), Some(b)) = (targets.get(&Route::FlakyA), targets.get(&Route::FlakyB)) else {
        ctx.finding("the flaky targets are missing".into());
        return;
    };
    'rounds: for round in 0usize.. {
        let Some(plan) = ctx.cfg.plan.round(round) else {
            break;
        };
        for w in plan.windows {
            if !ctx.go_on(round) || !ctx.pause(ctx.cfg.gap).await {
                break 'rounds;
            }
            let at = ctx.started.elapsed();
            a.set_behaviour(w.a.behaviour(ctx.cfg.hang));
            b.set_behaviour(w.b.behaviour(ctx.cfg.hang));
            ctx.record(w.a.kind(), at, None, Vec::new());
            ctx.record(w.b.kind(), at, None, Vec::new());
            (ctx.say)(format!(
                "{} {:>6.1}s  flaky-a {} / flaky-b {} for {:.0}s",
                clock(),
                at.as_secs_f64(),
                w.a.kind(),
                w.b.kind(),
                ctx.cfg.window.as_secs_f64()
            ));
            let completed = ctx.pause(ctx.cfg.window).await;
            a.set_behaviour(Behaviour::Ok);
            b.set_behaviour(Behaviour::Ok);
            if !completed {
                break 'rounds;
            }
        }
    }
    a.set_behaviour(Behaviour::Ok);
    b.set_behaviour(Behaviour::Ok);
}
