//! CPU and memory per service over one phase: idle RSS when the probe
//! starts (services up, no load yet), CPU time between start and finish,
//! peak RSS at the finish. Also, for where-the-time-goes context, the CPU
//! of the PostgreSQL backends serving the phase's database (found through
//! `pg_stat_activity`), of the whole PostgreSQL server (its WAL writer and
//! checkpointer work for us too, but on a shared machine it includes anyone
//! else's queries), of RabbitMQ (one process, likewise shared) and of the
//! benchmark process itself (load generator + counting target).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use salesync_e2e::{ServiceKind, Services, TestDb};

use crate::procfs;

/// One row of the resource table.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceUsage {
    pub name: String,
    /// Processes of a salesync service; `None` for the context rows.
    pub replicas: Option<usize>,
    pub cpu_secs: f64,
    /// Largest VmRSS of one process before the load, KiB.
    pub idle_rss_kib: Option<u64>,
    /// Largest VmHWM of one process after the phase, KiB.
    pub peak_rss_kib: Option<u64>,
    /// Largest VmRSS of one process through the measured window (services only).
    pub rss_trend: Option<RssTrend>,
}

/// Resident memory of a service through the measured window, KiB (the
/// largest replica at each reading): does it settle or keep growing?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RssTrend {
    /// When the warm-up ended, a third and two thirds into the window, and
    /// when the load stopped.
    pub window_kib: [u64; 4],
    /// After every sale arrived (the load is gone).
    pub after_kib: u64,
}

impl RssTrend {
    /// Growth over the last two thirds of the window, KiB (negative: it
    /// shrank). The first third is the service settling into the load: pools
    /// fill, buffers reach the sizes the load needs; growth after that is
    /// what a leak looks like.
    pub fn growth_kib(&self) -> i64 {
        self.window_kib[3] as i64 - self.window_kib[1] as i64
    }
}

impl ServiceUsage {
    /// CPU seconds per 1,000 sales.
    pub fn cpu_per_1k(&self, sales: u64) -> Option<f64> {
        cpu_per_1k(self.cpu_secs, sales)
    }
}

pub fn cpu_per_1k(cpu_secs: f64, sales: u64) -> Option<f64> {
    (sales > 0).then(|| cpu_secs * 1000.0 / sales as f64)
}

/// How a group finds its processes again at the finish.
enum Members {
    /// The same pids as at the start.
    Fixed(Vec<u32>),
    /// Every process with one of these command names.
    Named(&'static [&'static str]),
    /// The PostgreSQL backends connected to the database.
    Backends,
}

struct Group {
    name: String,
    replicas: Option<usize>,
    members: Members,
    before: BTreeMap<u32, u64>,
    idle_rss_kib: Option<u64>,
}

/// Readings taken at the start of a phase, finished at its end.
pub struct UsageProbe<'a> {
    groups: Vec<Group>,
    db: Option<&'a TestDb>,
}

/// Pids of the server processes serving connections to `db` (empty if the
/// view cannot be read: the row is then all zeros, not an error).
async fn backends(db: &TestDb) -> Vec<u32> {
    sqlx::query_scalar::<_, i32>("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(db.name())
        .fetch_all(db.pool())
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect()
}

const RABBITMQ: &[&str] = &["beam.smp"];
const POSTGRES: &[&str] = &["postgres"];

impl<'a> UsageProbe<'a> {
    /// Takes the starting readings for every service of `services` and the
    /// context groups (the database's backends only with a `db`).
    pub async fn start(services: Option<&Services>, db: Option<&'a TestDb>) -> Self {
        let mut groups = Vec::new();
        for kind in ServiceKind::ALL {
            let Some(services) = services else { break };
            let pids = services.pids(kind);
            if pids.is_empty() {
                continue;
            }
            groups.push(Group {
                name: kind.binary().to_string(),
                replicas: Some(pids.len()),
                idle_rss_kib: max_rss(&pids),
                before: procfs::cpu_ticks_of(&pids),
                members: Members::Fixed(pids),
            });
        }
        let mut context = vec![
            ("postgresql backends of this database", Members::Backends),
            ("postgresql (whole server)", Members::Named(POSTGRES)),
            ("rabbitmq (whole broker)", Members::Named(RABBITMQ)),
            (
                "salesync-bench (load + target)",
                Members::Fixed(vec![std::process::id()]),
            ),
        ];
        if db.is_none() {
            context.retain(|(_, m)| !matches!(m, Members::Backends | Members::Named(POSTGRES)));
        }
        for (name, members) in context {
            let pids = members.pids(db).await;
            groups.push(Group {
                name: name.to_string(),
                replicas: None,
                before: procfs::cpu_ticks_of(&pids),
                members,
                idle_rss_kib: None,
            });
        }
        Self { groups, db }
    }

    /// Final readings: CPU used since `start`, peak RSS of the services and
    /// their RSS through the window (from `rss`, by service name).
    pub async fn finish(self, rss: &BTreeMap<String, [u64; 4]>) -> Vec<ServiceUsage> {
        let mut rows = Vec::with_capacity(self.groups.len());
        for g in self.groups {
            let pids = g.members.pids(self.db).await;
            rows.push({
                let after = procfs::cpu_ticks_of(&pids);
                let ticks = procfs::ticks_between(&g.before, &after);
                let peak = g
                    .replicas
                    .and_then(|_| pids.iter().filter_map(|p| procfs::peak_rss_kib(*p)).max());
                let name = g.name;
                ServiceUsage {
                    rss_trend: rss
                        .get(&name)
                        .zip(g.replicas.and_then(|_| max_rss(&pids)))
                        .map(|(&window_kib, after)| RssTrend {
                            window_kib,
                            after_kib: after,
                        }),
                    name,
                    replicas: g.replicas,
                    cpu_secs: ticks as f64 / procfs::TICKS_PER_SEC,
                    idle_rss_kib: g.idle_rss_kib,
                    peak_rss_kib: peak,
                }
            });
        }
        rows
    }
}

fn max_rss(pids: &[u32]) -> Option<u64> {
    pids.iter().filter_map(|p| procfs::rss_kib(*p)).max()
}

/// Reads each service's RSS every second while the load runs.
pub struct RssWatch {
    stop: CancellationToken,
    task: JoinHandle<BTreeMap<String, Vec<(Duration, u64)>>>,
    warmup: Duration,
    duration: Duration,
}

impl RssWatch {
    pub fn start(services: &Services, warmup: Duration, duration: Duration) -> Self {
        let groups: Vec<(String, Vec<u32>)> = ServiceKind::ALL
            .into_iter()
            .map(|k| (k.binary().to_string(), services.pids(k)))
            .filter(|(_, pids)| !pids.is_empty())
            .collect();
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut seen: BTreeMap<String, Vec<(Duration, u64)>> = BTreeMap::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = cancelled.cancelled() => break,
                    _ = tick.tick() => {}
                }
                for (name, pids) in &groups {
                    if let Some(kib) = max_rss(pids) {
                        seen.entry(name.clone())
                            .or_default()
                            .push((started.elapsed(), kib));
                    }
                }
            }
            seen
        });
        Self {
            stop,
            task,
            warmup,
            duration,
        }
    }

    /// Stops reading; per service name, the readings at the end of the
    /// warm-up, a third and two thirds into the window, and the last one.
    pub async fn stop(self) -> BTreeMap<String, [u64; 4]> {
        self.stop.cancel();
        let seen = self.task.await.unwrap_or_default();
        let marks = [
            self.warmup,
            self.warmup + self.duration / 3,
            self.warmup + self.duration * 2 / 3,
        ];
        seen.into_iter()
            .filter_map(|(name, readings)| Some((name, window_readings(&readings, marks)?)))
            .collect()
    }
}

/// The first reading at or after each mark (else the last one), then the
/// last reading.
fn window_readings(readings: &[(Duration, u64)], marks: [Duration; 3]) -> Option<[u64; 4]> {
    let last = readings.last()?.1;
    let at = |mark: Duration| {
        readings
            .iter()
            .find(|(t, _)| *t >= mark)
            .map_or(last, |(_, kib)| *kib)
    };
    Some([at(marks[0]), at(marks[1]), at(marks[2]), last])
}

impl Members {
    async fn pids(&self, db: Option<&TestDb>) -> Vec<u32> {
        match (self, db) {
            (Members::Fixed(p), _) => p.clone(),
            (Members::Named(names), _) => procfs::pids_named(names),
            (Members::Backends, Some(db)) => backends(db).await,
            (Members::Backends, None) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_readings_pick_the_marks() {
        let secs = |s: u64| Duration::from_secs(s);
        let readings: Vec<(Duration, u64)> = (0..=20).map(|s| (secs(s), 100 + s)).collect();
        assert_eq!(
            window_readings(&readings, [secs(5), secs(10), secs(15)]),
            Some([105, 110, 115, 120])
        );
        // A window cut short: marks past the last reading take the last one.
        assert_eq!(
            window_readings(&readings[..8], [secs(5), secs(10), secs(15)]),
            Some([105, 107, 107, 107])
        );
        assert_eq!(window_readings(&[], [secs(1), secs(2), secs(3)]), None);
    }

    #[test]
    fn cpu_per_thousand_sales() {
        for (secs, sales, want) in [
            (2.0, 1000, Some(2.0)),
            (3.0, 30_000, Some(0.1)),
            (1.0, 0, None),
            (0.0, 500, Some(0.0)),
        ] {
            assert_eq!(cpu_per_1k(secs, sales), want, "{secs} s / {sales}");
        }
    }
}
