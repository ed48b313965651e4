//! Resource readings from Linux's /proc: CPU time of a process (all its
//! threads, `utime + stime` of /proc/<pid>/stat), its resident memory now
//! (`VmRSS`) and at its peak (`VmHWM`), the whole machine's busy time
//! (/proc/stat) and processes by name (to find RabbitMQ and PostgreSQL).
//! The parsers are pure and tested; the readers return `None` when a
//! process is gone or /proc is not there.

use std::collections::BTreeMap;

/// /proc reports CPU times in USER_HZ ticks, which the Linux ABI fixes at
/// 100 per second on every architecture we run on (`getconf CLK_TCK`).
pub const TICKS_PER_SEC: f64 = 100.0;

/// `utime + stime` (ticks) from the text of /proc/<pid>/stat.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself; the fields after the last ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line (`VmRSS`, `VmHWM`, …) of /proc/<pid>/status, in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Busy and total ticks of all CPUs from the text of /proc/stat.
pub fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some(MachineTicks {
        busy: total.saturating_sub(idle),
        total,
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MachineTicks {
    pub busy: u64,
    pub total: u64,
}

impl MachineTicks {
    /// Share of the machine's CPU busy between `self` and `later`, 0..=1.
    pub fn busy_share_until(&self, later: &MachineTicks) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.busy.saturating_sub(self.busy) as f64 / total as f64
    }
}

/// CPU ticks of a process, `None` when it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&stat)
}

/// Resident set size now, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Peak resident set size since the process started, KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, key)
}

pub fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Pids of every process whose command name (/proc/<pid>/comm) is one of `names`.
pub fn pids_named(names: &[&str]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| names.contains(&c.trim()))
        })
        .collect()
}

/// CPU ticks per pid of a group of processes at one moment.
pub fn cpu_ticks_of(pids: &[u32]) -> BTreeMap<u32, u64> {
    pids.iter()
        .filter_map(|p| Some((*p, cpu_ticks(*p)?)))
        .collect()
}

/// Ticks a group of processes used between two readings: per pid, later −
/// earlier (a pid new since the first reading counts from zero; one that
/// exited in between is lost, which only under-counts short-lived processes).
pub fn ticks_between(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_stat_lines() {
        for (line, want) in [
            (
                "1234 (forwarder) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 9 0 5000 1000 200",
                Some(281),
            ),
            // A command name with spaces and a parenthesis.
            (
                "77 (tokio (rt) x) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1",
                Some(10),
            ),
            ("77 (short) R 1 2", None),
            ("garbage", None),
            ("1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b", None),
        ] {
            assert_eq!(parse_stat_cpu_ticks(line), want, "{line}");
        }
    }

    #[test]
    fn memory_lines_from_status() {
        let status =
            "Name:\tingest\nVmPeak:\t  900000 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   20480 kB\n";
        for (key, want) in [
            ("VmHWM", Some(23456)),
            ("VmRSS", Some(20480)),
            ("VmSwap", None),
            ("Name", None),
        ] {
            assert_eq!(parse_status_kib(status, key), want, "{key}");
        }
    }

    #[test]
    fn machine_busy_share() {
        let a =
            parse_machine_ticks("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").expect("parses");
        assert_eq!(
            a,
            MachineTicks {
                busy: 150,
                total: 1000
            }
        );
        let b = parse_machine_ticks("cpu  250 0 100 850 50 0 0 0 0 0\n").expect("parses");
        assert_eq!(a.busy_share_until(&b), 0.8);
        assert_eq!(a.busy_share_until(&a), 0.0);
        assert_eq!(parse_machine_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn group_ticks_between_readings() {
        let before = BTreeMap::from([(1, 100), (2, 50), (3, 10)]);
        // 1 moved on, 2 exited, 4 is new.
        let after = BTreeMap::from([(1, 130), (4, 7)]);
        assert_eq!(ticks_between(&before, &after), 37);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(peak_rss_kib(me).is_some_and(|k| k > 0));
        assert!(machine_ticks().is_some());
    }
}
