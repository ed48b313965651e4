//! The results as markdown: run facts, throughput and latency per phase,
//! the targets with the measured values, CPU and memory per
//! service. `splice` puts the table between the benchmark's markers in an
//! existing document so the hand-written analysis around it survives a
//! re-run with `--write`.

use std::fmt::Write as _;

use crate::meta::Meta;
use crate::scenario::{Load, ScenarioResult};
#[cfg(test)]
use crate::stages::StageLatency;
use crate::stats::{Latency, PhaseStats};
#[cfg(test)]
use crate::usage::RssTrend;
use crate::usage::ServiceUsage;

pub const BEGIN: &str = "<!-- salesync-bench:begin -->";
pub const END: &str = "<!-- salesync-bench:end -->";

/// The raw broker phase as run.
#[derive(Clone, Debug)]
pub struct RawResult {
    pub stats: PhaseStats,
    pub description: String,
    /// RabbitMQ and the benchmark process (publisher + consumer).
    pub usage: Vec<ServiceUsage>,
    /// Share of the machine's CPU busy while it ran, 0..=1.
    pub machine_busy: f64,
    /// The paced rate, msg/s; `None` for the as-fast-as-it-goes baseline.
    pub rate: Option<u32>,
}

impl RawResult {
    /// Its rows' label in the CPU and memory table.
    fn usage_label(&self) -> String {
        match self.rate {
            None => "raw broker (per 1,000 messages)".into(),
            Some(rate) => format!(
                "raw broker at {} msg/s (per 1,000 messages)",
                thousands(f64::from(rate))
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub meta: Meta,
    /// How the phases were loaded, one line.
    pub settings: String,
    pub raw: Option<RawResult>,
    /// The raw baseline paced at each fixed rate.
    pub raw_fixed: Vec<RawResult>,
    pub scenarios: Vec<ScenarioResult>,
}

impl Report {
    /// Phases where an accepted sale (or message) never arrived.
    pub fn losses(&self) -> Vec<(String, u64)> {
        self.raw
            .iter()
            .chain(&self.raw_fixed)
            .map(|r| (format!("raw broker: {}", r.description), r.stats.missing))
            .chain(
                self.scenarios
                    .iter()
                    .map(|s| (s.label.clone(), s.stats.missing)),
            )
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// 12345.6 → "12,346".
pub fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as milliseconds, 1 decimal below 100 ms.
pub fn ms(us: u64) -> String {
    let v = us as f64 / 1000.0;
    if v < 100.0 {
        format!("{v:.1}")
    } else {
        thousands(v)
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn latency_cells(l: Option<Latency>) -> String {
    match l {
        Some(l) => format!(
            "{} | {} | {} | {}",
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.max_us)
        ),
        None => "– | – | – | –".into(),
    }
}

fn ratio(part: f64, whole: Option<f64>) -> String {
    match whole {
        Some(w) if w > 0.0 => format!("{:.0} %", part / w * 100.0),
        _ => "–".into(),
    }
}

fn load_label(load: Load) -> String {
    match load {
        Load::Fixed { rate } => format!("{} sales/s offered", thousands(f64::from(rate))),
        Load::Saturate => "saturation".into(),
    }
}

fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// The whole block, markers included.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.meta;
    let load = |l: Option<f64>| l.map_or("unknown".into(), |v| format!("{v:.2}"));
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "### Run of {}\n", m.date);
    let _ = writeln!(
        s,
        "- machine: {} cores ({}); 1-min load average {} before the run, {} after",
        m.cores,
        m.cpu_model,
        load(m.load_before),
        load(m.load_after)
    );
    let _ = writeln!(s, "- commit: `{}`", m.commit);
    let _ = writeln!(s, "- command: `{}`", m.command);
    let _ = writeln!(s, "- {}\n", r.settings);

    let raw_rate = r.raw.as_ref().map(|x| x.stats.delivered_per_sec);
    let _ = writeln!(s, "#### Throughput and latency\n");
    let _ = writeln!(
        s,
        "| phase | offered /s | accepted /s | **delivered /s** | first → last third /s | vs raw | p50 ms | p90 ms | p99 ms | max ms | p99 from answer ms | sent | delivered | machine CPU busy |"
    );
    let _ = writeln!(
        s,
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    let trend = |st: &PhaseStats| {
        format!(
            "{} → {}",
            thousands(st.delivered_trend.0),
            thousands(st.delivered_trend.1)
        )
    };
    for raw in r.raw.iter().chain(&r.raw_fixed) {
        let st = &raw.stats;
        let _ = writeln!(
            s,
            "| raw broker: {} | {} | {} | **{}** | {} | {} | {} | – | {} | {} | {:.0} % |",
            raw.description,
            thousands(st.offered_per_sec),
            thousands(st.accepted_per_sec),
            thousands(st.delivered_per_sec),
            trend(st),
            ratio(st.delivered_per_sec, raw_rate),
            latency_cells(st.latency),
            thousands(st.sent as f64),
            thousands(st.delivered as f64),
            raw.machine_busy * 100.0,
        );
    }
    for sc in &r.scenarios {
        let st = &sc.stats;
        let _ = writeln!(
            s,
            "| salesync: {} | {} | {} | **{}** | {} | {} | {} | {} | {} | {} | {:.0} % |",
            sc.label,
            thousands(st.offered_per_sec),
            thousands(st.accepted_per_sec),
            thousands(st.delivered_per_sec),
            trend(st),
            ratio(st.delivered_per_sec, raw_rate),
            latency_cells(st.latency),
            st.latency_from_accept.map_or("–".into(), |l| ms(l.p99_us)),
            thousands(st.sent as f64),
            thousands(st.delivered as f64),
            sc.machine_busy * 100.0,
        );
    }
    let _ = writeln!(
        s,
        "\nRates are per second over the measured window (after warm-up). Latency is arrival at the \
         target − the moment the POST was sent (raw: publish → consume), for what was sent in the \
         window; \"p99 from answer\" counts from ingest's 2xx instead. At saturation latency is \
         mostly queueing behind the in-flight cap.\n"
    );
    let problems: Vec<String> = r
        .scenarios
        .iter()
        .filter(|sc| sc.errors > 0 || sc.stats.missing > 0 || sc.stats.duplicates > 0)
        .map(|sc| {
            format!(
                "- {}: {} refused/failed POSTs{}, {} accepted but not delivered, {} delivered twice",
                sc.label,
                sc.errors,
                sc.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (first: {e})")),
                sc.stats.missing,
                sc.stats.duplicates
            )
        })
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(s, "Irregularities:\n\n{}\n", problems.join("\n"));
    }

    render_targets(&mut s, r, raw_rate);
    render_stages(&mut s, r);
    render_usage(&mut s, r);
    let _ = writeln!(s, "{END}");
    s
}

fn render_targets(s: &mut String, r: &Report, raw_rate: Option<f64>) {
    let _ = writeln!(s, "#### Against the issue's targets\n");
    let _ = writeln!(s, "| target | measured | met |");
    let _ = writeln!(s, "|---|---|---|");
    let saturated: Vec<&ScenarioResult> = r
        .scenarios
        .iter()
        .filter(|x| x.load == Load::Saturate)
        .collect();
    if let (Some(raw), Some(best)) = (
        raw_rate,
        saturated
            .iter()
            .map(|x| x.stats.delivered_per_sec)
            .reduce(f64::max),
    ) {
        let _ = writeln!(
            s,
            "| delivered ≥ 50 % of the raw broker | {} of {} /s = {} | {} |",
            thousands(best),
            thousands(raw),
            ratio(best, Some(raw)),
            yes_no(best >= raw / 2.0)
        );
    }
    for sc in r
        .scenarios
        .iter()
        .filter(|x| matches!(x.load, Load::Fixed { .. }))
    {
        if let Some(l) = sc.stats.latency {
            let Load::Fixed { rate } = sc.load else {
                continue;
            };
            let floor = r
                .raw_fixed
                .iter()
                .find(|raw| raw.rate == Some(rate))
                .and_then(|raw| raw.stats.latency)
                .map_or(String::new(), |raw| {
                    format!(" (one raw broker hop at that rate: {} ms)", ms(raw.p99_us))
                });
            let _ = writeln!(
                s,
                "| p99 ingest→delivery ≤ 30 ms at {} | {} ms{floor} | {} |",
                load_label(sc.load),
                ms(l.p99_us),
                yes_no(l.p99_us <= 30_000)
            );
        }
    }
    let idle = r
        .scenarios
        .iter()
        .flat_map(|sc| sc.usage.iter())
        .filter(|u| u.replicas.is_some())
        .filter_map(|u| Some((u.idle_rss_kib?, u.name.clone())))
        .max();
    if let Some((kib, name)) = idle {
        let _ = writeln!(
            s,
            "| idle RSS ≤ 30 MiB per service | largest {} MiB ({name}) | {} |",
            mib(Some(kib)),
            yes_no(kib <= 30 * 1024)
        );
    }
    render_rss_growth(s, r);
    let rates = |replicated: bool| -> Vec<f64> {
        saturated
            .iter()
            .filter(|x| (x.max_replicas > 1) == replicated)
            .map(|x| x.stats.delivered_per_sec)
            .collect()
    };
    if let (Some(a), Some(b)) = (median(rates(false)), median(rates(true))) {
        let runs = rates(false).len();
        let _ = writeln!(
            s,
            "| more replicas do not lower throughput | {} → {} /s{} | {} |",
            thousands(a),
            thousands(b),
            if runs > 1 {
                format!(" (medians of {runs} alternating runs each)")
            } else {
                String::new()
            },
            // Within 5 %: run-to-run noise on a shared two-core box.
            yes_no(b >= a * 0.95)
        );
    }
    let _ = writeln!(s);
}

/// The middle value (mean of the two middle ones for an even count).
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Steady-run window the memory target asks for.
const STEADY_RUN_SECS: f64 = 600.0;
/// RSS growth over a window still counted as none: allocator noise.
const RSS_GROWTH_ALLOWED_KIB: i64 = 1024;

/// The memory target: RSS of every service flat over the longest window.
fn render_rss_growth(s: &mut String, r: &Report) {
    let Some(longest) = r
        .scenarios
        .iter()
        .max_by(|a, b| a.stats.window_secs.total_cmp(&b.stats.window_secs))
    else {
        return;
    };
    let worst = longest
        .usage
        .iter()
        .filter_map(|u| Some((u.rss_trend?.growth_kib(), u.name.as_str())))
        .max();
    let Some((growth, name)) = worst else { return };
    let window = longest.stats.window_secs;
    let measured = format!(
        "largest growth {:+.1} MiB ({name}) over the last two thirds of the {} window of {}",
        growth as f64 / 1024.0,
        duration_label(window),
        load_label(longest.load)
    );
    let verdict = if window + 1.0 < STEADY_RUN_SECS {
        "not measured (window shorter than 10 min)".to_string()
    } else {
        yes_no(growth <= RSS_GROWTH_ALLOWED_KIB).to_string()
    };
    let _ = writeln!(
        s,
        "| no RSS growth over a 10-minute steady run | {measured} | {verdict} |"
    );
}

/// 600.0 → "10 min", 30.0 → "30 s".
fn duration_label(secs: f64) -> String {
    if secs >= 120.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{secs:.0} s")
    }
}

fn render_stages(s: &mut String, r: &Report) {
    if r.scenarios.iter().all(|sc| sc.stages.is_empty()) {
        return;
    }
    let _ = writeln!(s, "#### Where the latency goes, hop by hop\n");
    let _ = writeln!(s, "| phase | hop | p50 ms | p90 ms | p99 ms |");
    let _ = writeln!(s, "|---|---|--:|--:|--:|");
    for sc in &r.scenarios {
        for st in &sc.stages {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.1} | {:.1} |",
                sc.label, st.stage, st.p50_ms, st.p90_ms, st.p99_ms
            );
        }
    }
    let _ = writeln!(
        s,
        "\nFrom the services' own timestamps, for the sales stored after the warm-up: when \
         ingest's transaction stored the sale, when condition-filter's transaction decided it \
         (both PostgreSQL `now()`, the transaction's start), when the forwarder began the first \
         HTTP attempt and how long that took.\n"
    );
}

fn render_usage(s: &mut String, r: &Report) {
    let _ = writeln!(s, "#### CPU and memory per process\n");
    let _ = writeln!(
        s,
        "| phase | process | replicas | CPU s | CPU s / 1,000 sales | idle RSS MiB | RSS after warm-up → ⅓ → ⅔ → end of window → after drain MiB | peak RSS MiB |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|--:|");
    let phases = r
        .raw
        .iter()
        .chain(&r.raw_fixed)
        .map(|raw| (raw.usage_label(), &raw.usage, raw.stats.sent))
        .chain(
            r.scenarios
                .iter()
                .map(|sc| (sc.label.clone(), &sc.usage, sc.stats.sent)),
        );
    for (label, usage, sent) in phases {
        for u in usage {
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {:.1} | {} | {} | {} | {} |",
                u.name,
                u.replicas.map_or("–".into(), |n| n.to_string()),
                u.cpu_secs,
                u.cpu_per_1k(sent).map_or("–".into(), |v| format!("{v:.3}")),
                mib(u.idle_rss_kib),
                u.rss_trend.map_or("–".into(), |t| {
                    let w: Vec<String> = t.window_kib.iter().map(|k| mib(Some(*k))).collect();
                    format!("{} → {}", w.join(" → "), mib(Some(t.after_kib)))
                }),
                mib(u.peak_rss_kib),
            );
        }
    }
    let _ = writeln!(
        s,
        "\nCPU is utime + stime of all replicas from the start of the load until every sale \
         arrived, per 1,000 sales sent; RSS is per process (largest replica): idle = VmRSS before \
         the load, then VmRSS when the warm-up ended, a third and two thirds into the measured \
         window, when the load stopped and once every sale had arrived; peak = VmHWM after it.\n"
    );
}

/// `existing` with the block between the markers replaced by `block`
/// (markers included in `block`), or `block` appended when there are none.
pub fn splice(existing: &str, block: &str) -> String {
    if let (Some(b), Some(e)) = (existing.find(BEGIN), existing.find(END))
        && b < e
    {
        let after = e + END.len();
        let rest = existing[after..]
            .strip_prefix('\n')
            .unwrap_or(&existing[after..]);
        return format!("{}{block}{rest}", &existing[..b]);
    }
    if existing.trim().is_empty() {
        return format!("# Benchmarks\n\n{block}");
    }
    format!("{}\n\n{block}", existing.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        for (v, want) in [
            (0.0, "0"),
            (999.4, "999"),
            (1000.0, "1,000"),
            (16_600.5, "16,601"),
            (1_234_567.0, "1,234,567"),
            (-3.0, "0"),
        ] {
            assert_eq!(thousands(v), want, "{v}");
        }
        for (us, want) in [
            (860, "0.9"),
            (4_200, "4.2"),
            (99_949, "99.9"),
            (2_345_000, "2,345"),
        ] {
            assert_eq!(ms(us), want, "{us}");
        }
    }

    #[test]
    fn splices_between_markers() {
        let block = format!("{BEGIN}\nNEW\n{END}\n");
        for (existing, want) in [
            (
                format!("# B\n\nintro\n\n{BEGIN}\nOLD\n{END}\n\n## Analysis\n"),
                format!("# B\n\nintro\n\n{BEGIN}\nNEW\n{END}\n\n## Analysis\n"),
            ),
            (String::new(), format!("# Benchmarks\n\n{block}")),
            (
                "# B\n\nno markers\n".to_string(),
                format!("# B\n\nno markers\n\n{block}"),
            ),
            (
                format!("{END} before {BEGIN}"),
                format!("{END} before {BEGIN}\n\n{block}"),
            ),
        ] {
            assert_eq!(splice(&existing, &block), want, "{existing:?}");
        }
    }

    fn stats(rate: f64, p99_us: u64) -> PhaseStats {
        let l = Latency {
            count: 10,
            p50_us: 1_000,
            p90_us: 2_000,
            p99_us,
            max_us: p99_us * 2,
        };
        PhaseStats {
            sent: 1000,
            delivered: 1000,
            missing: 0,
            duplicates: 0,
            unknown: 0,
            window_secs: 30.0,
            offered_per_sec: rate,
            accepted_per_sec: rate,
            delivered_per_sec: rate,
            delivered_trend: (rate, rate),
            latency: Some(l),
            latency_from_accept: Some(l),
        }
    }

    fn scenario(label: &str, load: Load, rate: f64, p99_us: u64) -> ScenarioResult {
        ScenarioResult {
            label: label.into(),
            load,
            max_replicas: if label.contains("replicas") { 2 } else { 1 },
            stats: stats(rate, p99_us),
            usage: vec![ServiceUsage {
                name: "ingest".into(),
                replicas: Some(1),
                cpu_secs: 2.0,
                idle_rss_kib: Some(20 * 1024),
                peak_rss_kib: Some(40 * 1024),
                rss_trend: Some(RssTrend {
                    window_kib: [28 * 1024, 30 * 1024, 30 * 1024, 31 * 1024],
                    after_kib: 25 * 1024,
                }),
            }],
            stages: vec![StageLatency {
                stage: "HTTP request to the target",
                p50_ms: 1.0,
                p90_ms: 2.5,
                p99_ms: 7.3,
            }],
            machine_busy: 0.5,
            errors: 0,
            first_error: None,
            requests: 10,
        }
    }

    #[test]
    fn renders_tables_and_target_verdicts() {
        let report = Report {
            meta: Meta {
                date: "2026-11-24 03:00 UTC".into(),
                cores: 2,
                cpu_model: "cpu".into(),
                commit: "abc123".into(),
                command: "cargo run --release -p salesync-bench --".into(),
                load_before: Some(0.3),
                load_after: None,
            },
            settings: "settings line".into(),
            raw: Some(RawResult {
                stats: stats(10_000.0, 4_000),
                description: "quorum".into(),
                usage: Vec::new(),
                machine_busy: 1.0,
                rate: None,
            }),
            raw_fixed: vec![RawResult {
                stats: stats(1_000.0, 3_000),
                description: "quorum, paced at 1,000 msg/s".into(),
                usage: Vec::new(),
                machine_busy: 0.2,
                rate: Some(1000),
            }],
            scenarios: vec![
                scenario("fixed", Load::Fixed { rate: 1000 }, 1000.0, 12_000),
                scenario("saturation", Load::Saturate, 6_000.0, 900_000),
                scenario("replicas", Load::Saturate, 5_000.0, 900_000),
            ],
        };
        let out = render(&report);
        assert!(out.starts_with(BEGIN) && out.trim_end().ends_with(END));
        for want in [
            "| salesync: saturation | 6,000 | 6,000 | **6,000** | 6,000 → 6,000 | 60 % |",
            "| delivered ≥ 50 % of the raw broker | 6,000 of 10,000 /s = 60 % | yes |",
            "| p99 ingest→delivery ≤ 30 ms at 1,000 sales/s offered | 12.0 ms (one raw broker hop at that rate: 3.0 ms) | yes |",
            "| raw broker: quorum, paced at 1,000 msg/s | 1,000 | 1,000 | **1,000** | 1,000 → 1,000 | 10 % |",
            "| idle RSS ≤ 30 MiB per service | largest 20.0 MiB (ingest) | yes |",
            "| more replicas do not lower throughput | 6,000 → 5,000 /s | **no** |",
            "| fixed | ingest | 1 | 2.0 | 2.000 | 20.0 | 28.0 → 30.0 → 30.0 → 31.0 → 25.0 | 40.0 |",
            "| no RSS growth over a 10-minute steady run | largest growth +1.0 MiB (ingest) over the",
            "not measured (window shorter than 10 min) |",
            "1-min load average 0.30 before the run, unknown after",
            "| fixed | HTTP request to the target | 1.0 | 2.5 | 7.3 |",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
        assert!(report.losses().is_empty());
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn a_ten_minute_window_judges_rss_growth() {
        let mut sc = scenario("steady", Load::Fixed { rate: 1000 }, 1000.0, 12_000);
        sc.stats.window_secs = 600.0;
        let verdict = |sc: &ScenarioResult| {
            let mut out = String::new();
            render_rss_growth(
                &mut out,
                &Report {
                    meta: Meta {
                        date: String::new(),
                        cores: 2,
                        cpu_model: String::new(),
                        commit: String::new(),
                        command: String::new(),
                        load_before: None,
                        load_after: None,
                    },
                    settings: String::new(),
                    raw: None,
                    raw_fixed: Vec::new(),
                    scenarios: vec![sc.clone()],
                },
            );
            out
        };
        // +1 MiB over 10 minutes: allocator noise, counted as flat.
        assert!(verdict(&sc).contains("the 10 min window of 1,000 sales/s offered | yes |"));
        sc.usage[0].rss_trend = Some(RssTrend {
            window_kib: [20 * 1024, 30 * 1024, 35 * 1024, 40 * 1024],
            after_kib: 39 * 1024,
        });
        assert!(verdict(&sc).contains("largest growth +10.0 MiB (ingest)"));
        assert!(verdict(&sc).ends_with("| **no** |\n"));
    }
}
