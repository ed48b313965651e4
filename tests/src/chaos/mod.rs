//! The chaos campaign: the promise "a sale accepted is a sale delivered once,
//! whatever crashes", turned into a repeatable run. It starts a private
//! PostgreSQL cluster and RabbitMQ node (or 3-node cluster), the five
//! services on them, a POS
//! tenant whose integrations lead to a healthy, a slow and two flaky webhook
//! targets and to tenant B's own salesync — then posts a steady stream of
//! sales while it injects faults on a schedule, drains, and balances the
//! ledger.
//!
//! - `schedule`: which faults, in which order (pure)
//! - `routing`: which sale should reach which target (pure)
//! - `world`: starting everything the campaign runs on
//! - `pos`: the stream of sales, retried with the same payload until accepted
//! - `faults`: injecting the schedule, watching the system recover
//! - `node_kill`: losing the broker node that leads the work queues
//! - `collect`: reading back what the targets, database and DLQ hold
//! - `ledger`: balancing accepted against booked (pure)
//! - `report`: the summary and the verdict
//! - `ui`: progress bars and the event log
//!
//! `salesync-chaos` runs the full campaign, `tests/chaos_fast.rs` a small
//! one, `tests/chaos_cluster.rs` a small one on a 3-node cluster.

pub mod collect;
pub mod faults;
pub mod ledger;
pub mod node_kill;
pub mod pos;
pub mod report;
pub mod routing;
pub mod schedule;
pub mod ui;
pub mod world;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use report::Report;

use crate::db::TestDb;
use crate::services::ServiceKind;
use crate::wait::wait_until;
use faults::{FaultLog, LaneConfig, LaneCtx};
use pos::{PosConfig, PosLog};
use schedule::{InfraFault, Plan};
use ui::Ui;
use world::{World, WorldConfig};

/// Everything a campaign is run with.
#[derive(Clone, Debug)]
pub struct CampaignConfig {
    pub sales: usize,
    /// Sales per second the POS aims at.
    pub rate: f64,
    /// Sales per batch request (and per run of single requests).
    pub batch: usize,
    /// Concurrent POS clients.
    pub clients: usize,
    /// Processes per service.
    pub replicas: usize,
    /// RabbitMQ nodes: 1, or a cluster of 3 (or 5) whose leading node is
    /// killed instead of the app being stopped.
    pub broker_nodes: usize,
    /// Only these infrastructure faults, once, and no target windows
    /// (`None`: the full schedule, round after round).
    pub only: Option<Vec<InfraFault>>,
    /// The whole run stops injecting and posting at this point, then drains
    /// for what is left of it and reports.
    pub duration_limit: Duration,
    pub slow_delay: Duration,
    pub request_timeout: Duration,
    pub retry_delays: String,
    pub max_attempts: u32,
    /// How long a flaky target misbehaves per window.
    pub window: Duration,
    pub broker_down: Duration,
    pub dead_for: Duration,
    /// Pause between two faults of a lane.
    pub gap: Duration,
    pub recover_within: Duration,
    /// Draw progress bars (a terminal); otherwise log lines to stderr.
    pub show_progress: bool,
    /// Keep the service logs even when the ledger balances.
    pub keep_logs: bool,
}

impl CampaignConfig {
    /// The full campaign: `sales` at a few hundred per second, faults round
    /// after round while they are posted.
    pub fn full(sales: usize) -> Self {
        Self {
            sales,
            rate: 250.0,
            batch: 50,
            clients: 8,
            replicas: 1,
            broker_nodes: 1,
            only: None,
            duration_limit: Duration::from_secs(15 * 60),
            slow_delay: Duration::from_secs(2),
            request_timeout: Duration::from_secs(4),
            // ~90 s of retries: outlasts any window and restart here.
            retry_delays: "250ms,500ms,1s,2s,4s".into(),
            max_attempts: 25,
            window: Duration::from_secs(6),
            broker_down: Duration::from_secs(5),
            dead_for: Duration::from_secs(1),
            gap: Duration::from_secs(3),
            recover_within: Duration::from_secs(120),
            show_progress: true,
            keep_logs: false,
        }
    }

    /// The test suite's variant: a few hundred sales spread over one round
    /// of every fault, short windows — about two minutes in a debug build.
    pub fn fast() -> Self {
        Self {
            sales: 320,
            rate: 8.0,
            batch: 20,
            clients: 4,
            duration_limit: Duration::from_secs(210),
            slow_delay: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            retry_delays: "250ms,500ms,1s,2s".into(),
            max_attempts: 25,
            window: Duration::from_secs(3),
            broker_down: Duration::from_secs(2),
            dead_for: Duration::from_millis(500),
            gap: Duration::from_secs(1),
            show_progress: false,
            ..Self::full(320)
        }
    }

    /// The test suite's cluster variant: a 3-node broker, a minute of
    /// sales, one `kill -9` of the forwarder and then of the node leading
    /// the work queues while sales are still posted.
    pub fn cluster_fast() -> Self {
        Self {
            sales: 240,
            rate: 4.0,
            broker_nodes: 3,
            only: Some(vec![
                InfraFault::Kill {
                    service: ServiceKind::Forwarder,
                    replica: 0,
                },
                InfraFault::BrokerNodeKill,
            ]),
            duration_limit: Duration::from_secs(300),
            ..Self::fast()
        }
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            replicas: self.replicas,
            broker_nodes: self.broker_nodes,
            slow_delay: self.slow_delay,
            request_timeout: self.request_timeout,
            retry_delays: self.retry_delays.clone(),
            max_attempts: self.max_attempts,
        }
    }

    fn lanes(&self) -> LaneConfig {
        let plan = match &self.only {
            Some(faults) => Plan::Once(faults.clone()),
            None => Plan::Rounds {
                replicas: self.replicas,
                broker_nodes: self.broker_nodes,
            },
        };
        LaneConfig {
            plan,
            gap: self.gap,
            dead_for: self.dead_for,
            broker_down: self.broker_down,
            window: self.window,
            hang: self.request_timeout + Duration::from_secs(2),
            recover_within: self.recover_within,
        }
    }

    fn pos(&self) -> PosConfig {
        PosConfig {
            prefix: "chaos".into(),
            sales: self.sales,
            rate: self.rate,
            batch: self.batch,
            clients: self.clients,
        }
    }

    fn describe(&self) -> String {
        let broker = if self.broker_nodes > 1 {
            format!(", a {}-node RabbitMQ cluster", self.broker_nodes)
        } else {
            String::new()
        };
        let faults = match &self.only {
            Some(f) => format!(
                ", faults: {}",
                f.iter()
                    .map(InfraFault::kind)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        format!(
            "{} sales at {}/s, {} process(es) per service{broker}, slow target {:?}/request, windows of {:?}{faults}",
            self.sales, self.rate, self.replicas, self.slow_delay, self.window
        )
    }
}

/// Runs one campaign. `Err` only when it could not be set up or read back;
/// a failed ledger is a `Report` whose `problems()` say why.
pub async fn run(cfg: &CampaignConfig) -> anyhow::Result<Report> {
    let started = Instant::now();
    let deadline = started + cfg.duration_limit;
    let ui = Ui::new(cfg.sales as u64, cfg.show_progress);
    let say = |line: String| ui.say(&line);
    say(format!("campaign: {}", cfg.describe()));
    let mut world = World::start(&cfg.world(), &say).await?;

    let pos_log = Mutex::new(PosLog::default());
    let fault_log = Mutex::new(FaultLog::default());
    let stop = CancellationToken::new();
    let pos_done = CancellationToken::new();
    let lanes_done = CancellationToken::new();
    {
        let World {
            stack,
            targets,
            rabbit,
            pg,
            pos_apis,
            ..
        } = &mut world;
        let services = &mut stack.services;
        let db = &stack.db;
        let lane_cfg = cfg.lanes();
        let status = |msg: String| ui.status(msg);
        let ctx = LaneCtx {
            cfg: &lane_cfg,
            pos_done: &pos_done,
            stop: &stop,
            started: Instant::now(),
            db,
            log: &fault_log,
            say: &say,
            status: &status,
        };
        let pos_cfg = cfg.pos();
        let on_accepted = |n: usize| ui.accepted(n);
        let work = async {
            tokio::join!(
                async {
                    pos::run(&pos_cfg, pos_apis, &pos_log, &stop, &on_accepted).await;
                    say("the POS is done posting".into());
                    pos_done.cancel();
                },
                faults::infra_lane(services, rabbit, pg, &ctx),
                faults::target_lane(targets, &ctx),
            );
            lanes_done.cancel();
        };
        let watchdog = async {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    say("duration limit reached: stopping the POS and the faults".into());
                    stop.cancel();
                }
                _ = lanes_done.cancelled() => {}
            }
        };
        tokio::join!(work, watchdog, monitor(db, &ui, &lanes_done));
    }

    world.calm_targets();
    ui.status("draining: waiting until nothing is in flight".into());
    let drain_started = Instant::now();
    let drain_for = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(30));
    let drained = CancellationToken::new();
    let (quiet, ()) = tokio::join!(
        async {
            let r = world.stack.wait_quiet(drain_for).await;
            drained.cancel();
            r
        },
        monitor(&world.stack.db, &ui, &drained)
    );
    let drain = match quiet {
        Ok(()) => Some(drain_started.elapsed()),
        Err(e) => {
            say(format!("did not drain: {e:#}"));
            None
        }
    };
    if let Some(d) = drain {
        say(format!("drained in {:.1}s", d.as_secs_f64()));
    }

    let mut faults = fault_log.into_inner().unwrap_or_else(|e| e.into_inner());
    // One wait for all (a bounded 30 s), then who is ready.
    let services = &world.stack.services;
    let _ = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(300),
        || async {
            for kind in ServiceKind::ALL {
                if !services.is_ready(kind).await {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let mut ready_at_end = BTreeMap::new();
    for kind in ServiceKind::ALL {
        let up = services.is_ready(kind).await;
        if !up {
            faults.findings.push(format!(
                "{kind} not ready at the end:\n{}",
                services.log_tail(kind, 20)
            ));
        }
        ready_at_end.insert(kind.to_string(), up);
    }
    for (kind, index, status) in world.stack.services.unexpected_exits() {
        faults
            .findings
            .push(format!("{kind}#{index} exited on its own ({status})"));
    }

    ui.status("balancing the ledger".into());
    let pos = pos_log.into_inner().unwrap_or_else(|e| e.into_inner());
    let collected = collect::collect(&world, &pos, &cfg.pos().prefix, cfg.sales).await?;
    let ledger = ledger::reconcile(&collected.inputs);
    ui.finish();

    let mut report = Report {
        setup: cfg.describe(),
        sales: cfg.sales,
        accepted: pos.accepted.len(),
        unconfirmed: cfg
            .sales
            .saturating_sub(pos.accepted.len() + pos.refused.len()),
        refused: pos.refused.clone(),
        pos_retries: pos.retries.clone(),
        batch_requests: pos.batch_requests,
        single_requests: pos.single_requests,
        ledger,
        faults,
        drain,
        total: started.elapsed(),
        ready_at_end,
        bad_signatures: collected.bad_signatures,
        logs: None,
        in_flight: collected.in_flight,
        queues: collected.queues,
    };
    if cfg.keep_logs || !report.balanced() {
        world.stack.services.keep_logs();
        report.logs = Some(world.stack.services.logs_dir().to_path_buf());
    }
    Ok(report)
}

/// Shows where the pipeline stands every two seconds until `done`.
async fn monitor(db: &TestDb, ui: &Ui, done: &CancellationToken) {
    loop {
        let counts: Result<(i64, i64, i64, i64), _> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox),
                    count(*) FILTER (WHERE state = 'delivered'),
                    count(*) FILTER (WHERE state IN ('pending', 'retrying')),
                    count(*) FILTER (WHERE state = 'dead')
             FROM deliveries",
        )
        .fetch_one(db.pool())
        .await;
        match counts {
            Ok((outbox, delivered, open, dead)) => ui.counts(format!(
                "| outbox {outbox}, delivered {delivered}, in flight {open}, dead {dead}"
            )),
            Err(_) => ui.counts("| database unreachable".into()),
        }
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
