//! salesync-bench: holds salesync against the raw broker on the same machine
//! in one run (issue 4). Phases, each on fresh resources:
//!
//! 1. `raw_broker`: lapin alone, persistent messages through a durable quorum
//!    queue with pipelined confirms and one manual-ack consumer — as fast as
//!    it goes, then paced at each fixed rate (one hop's latency floor);
//! 2. `scenario` (fixed): the five release binaries (via the e2e harness),
//!    single-sale POSTs at a fixed open-loop rate to ingest → condition-filter
//!    → forwarder → `target::CountingTarget`;
//! 3. `scenario` (saturation): batch POSTs from several clients, as fast as
//!    the pipeline takes them;
//! 4. the same with more forwarder and condition-filter replicas;
//! 5. `mapped`: the fixed rates and saturation again with every sale a
//!    provider's order (flow, products, answers) through a salesync
//!    integration with imported products and a question mapping; its target
//!    speaks salesync's `POST /v1/sales` and counts, like the webhook one.
//!
//! `load` generates the traffic, `timeline` records every sale's send and
//! arrival, `stats` turns that into rates and percentiles, `usage`/`procfs`
//! read CPU and RSS per process, `stages` splits the latency by hop from the
//! services' own timestamps, `report` renders the markdown table.

pub mod config;
pub mod load;
pub mod meta;
pub mod procfs;
pub mod progress;
pub mod raw_broker;
pub mod report;
pub mod scenario;
pub mod stages;
pub mod stats;
pub mod target;
pub mod timeline;
pub mod usage;

use std::sync::Arc;

use salesync_e2e::{Replicas, ServiceKind};

use crate::config::{BenchArgs, Phase};
use crate::load::LoadPlan;
use crate::progress::Progress;
use crate::raw_broker::RawSettings;
use crate::report::{RawResult, Report};
use crate::scenario::{Load, Scenario};
use crate::timeline::Timeline;
use crate::usage::UsageProbe;

/// The salesync phases `args` asks for, in run order.
pub fn scenarios(args: &BenchArgs) -> Vec<(Phase, Scenario)> {
    let n = args.replicas;
    let fixed = args.rate.iter().map(|rate| {
        (
            Phase::Fixed,
            Scenario {
                label: format!("fixed {rate} sales/s, single-sale POSTs"),
                load: Load::Fixed { rate: *rate },
                replicas: Replicas::one_each(),
                mapped: false,
            },
        )
    });
    let mapped_fixed = args.rate.iter().map(|rate| {
        (
            Phase::Mapped,
            Scenario {
                label: format!("mapped orders, fixed {rate} sales/s, single-sale POSTs"),
                load: Load::Fixed { rate: *rate },
                replicas: Replicas::one_each(),
                mapped: true,
            },
        )
    });
    let one = Scenario {
        label: format!(
            "saturation, batch POSTs ({} clients × {})",
            args.clients, args.batch_size
        ),
        load: Load::Saturate,
        replicas: Replicas::one_each(),
        mapped: false,
    };
    let mapped = Scenario {
        label: format!("mapped orders, {}", one.label),
        mapped: true,
        ..one.clone()
    };
    let more = Scenario {
        label: format!("saturation, {n}× condition-filter + {n}× forwarder"),
        load: Load::Saturate,
        replicas: Replicas::one_each()
            .with(ServiceKind::ConditionFilter, n)
            .with(ServiceKind::Forwarder, n),
        mapped: false,
    };
    let rounds = args.rounds;
    let saturated = (1..=rounds).flat_map(move |round| {
        let tag = |sc: &Scenario| Scenario {
            label: if rounds > 1 {
                format!("{} (round {round} of {rounds})", sc.label)
            } else {
                sc.label.clone()
            },
            ..sc.clone()
        };
        [
            (Phase::Saturation, tag(&one)),
            (Phase::Mapped, tag(&mapped)),
            (Phase::Replicas, tag(&more)),
        ]
    });
    fixed
        .chain(mapped_fixed)
        .chain(saturated)
        .filter(|(phase, _)| args.runs(*phase))
        .collect()
}

fn settings_line(args: &BenchArgs) -> String {
    format!(
        "settings: {} s measured after {} s warm-up per phase{}; fixed load open-loop (at most {} requests open); \
         saturation: {} clients posting batches of {}, pausing at {} sales in flight; services at their \
         production defaults (RUST_LOG={}){}{}",
        args.duration.as_secs_f64(),
        args.warmup.as_secs_f64(),
        args.max_sales
            .map_or(String::new(), |n| format!(", at most {n} sales")),
        args.max_outstanding,
        args.clients,
        args.batch_size,
        args.max_in_flight,
        args.service_log,
        if args.analyze_after_warmup {
            "; ANALYZE run on the database when the warm-up ended"
        } else {
            ""
        },
        if args.service_env.is_empty() {
            String::new()
        } else {
            let extra: Vec<String> = args
                .service_env
                .iter()
                .map(|e| format!("{}:{}={}", e.kind, e.key, e.value))
                .collect();
            format!(", plus {}", extra.join(" "))
        }
    )
}

/// The raw baseline, as fast as it goes (`rate` None) or paced.
async fn raw_phase(
    args: &BenchArgs,
    progress: &Progress,
    rate: Option<u32>,
) -> anyhow::Result<RawResult> {
    let timeline = Arc::new(Timeline::new());
    let plan = LoadPlan {
        warmup: args.warmup,
        duration: args.duration,
        max_sales: args.max_sales,
    };
    let settings = RawSettings {
        plan,
        rate,
        confirm_window: args.raw_confirm_window,
        prefetch: args.raw_prefetch,
        message_bytes: args.raw_message_bytes,
        max_in_flight: args.max_in_flight,
        drain_timeout: args.drain_timeout,
    };
    let probe = UsageProbe::start(None, None).await;
    let machine_before = procfs::machine_ticks();
    let (bar, stop) = progress.load_bar(plan.warmup + plan.duration, timeline.clone());
    let outcome = raw_broker::run(settings, timeline.clone()).await;
    stop.cancel();
    bar.finish_and_clear();
    let machine_after = procfs::machine_ticks();
    let usage = probe.finish(&Default::default()).await;
    let outcome = outcome?;
    let window = outcome.window.unwrap_or(stats::Window { start: 0, end: 0 });
    Ok(RawResult {
        usage,
        machine_busy: match (machine_before, machine_after) {
            (Some(a), Some(b)) => a.busy_share_until(&b),
            _ => 0.0,
        },
        stats: stats::summarize(&timeline.snapshot(), window),
        description: format!(
            "lapin, {} B persistent, quorum queue, confirms window {}, 1 consumer prefetch {}{}",
            args.raw_message_bytes,
            args.raw_confirm_window,
            args.raw_prefetch,
            rate.map_or(String::new(), |r| format!(
                ", paced at {} msg/s",
                report::thousands(f64::from(r))
            ))
        ),
        rate,
    })
}

/// Runs every phase `args` names and returns the report (not yet written).
pub async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let progress = Progress::new(args.quiet);
    let mut meta = meta::Meta::collect(procfs::load_average());
    let mut raw = None;
    if args.runs(Phase::Raw) {
        progress.step("raw broker baseline (lapin, quorum queue, pipelined confirms)");
        raw = Some(raw_phase(args, &progress, None).await?);
    }
    let mut raw_fixed = Vec::new();
    if args.runs(Phase::RawFixed) {
        for rate in &args.rate {
            progress.step(&format!("raw broker paced at {rate} msg/s (one hop)"));
            raw_fixed.push(raw_phase(args, &progress, Some(*rate)).await?);
        }
    }
    let mut results = Vec::new();
    for (_, scenario) in scenarios(args) {
        progress.step(&format!("salesync: {}", scenario.label));
        results.push(scenario::run(args, &scenario, &progress).await?);
    }
    meta.load_after = procfs::load_average();
    Ok(Report {
        meta,
        settings: settings_line(args),
        raw,
        raw_fixed,
        scenarios: results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn phases_select_scenarios() {
        for (phases, want) in [
            ("raw", vec![]),
            ("fixed", vec![Phase::Fixed, Phase::Fixed]),
            (
                "fixed,replicas",
                vec![Phase::Fixed, Phase::Fixed, Phase::Replicas],
            ),
            (
                "raw,fixed,saturation,replicas",
                vec![
                    Phase::Fixed,
                    Phase::Fixed,
                    Phase::Saturation,
                    Phase::Replicas,
                ],
            ),
        ] {
            let args = BenchArgs::parse_from([
                "b",
                "--phases",
                phases,
                "--replicas",
                "3",
                "--rate",
                "1000,500",
            ]);
            let got: Vec<Phase> = scenarios(&args).into_iter().map(|(p, _)| p).collect();
            assert_eq!(got, want, "{phases}");
        }
        let args = BenchArgs::parse_from(["b", "--replicas", "3"]);
        let all = scenarios(&args);
        let got: Vec<(Phase, bool)> = all.iter().map(|(p, sc)| (*p, sc.mapped)).collect();
        assert_eq!(
            got,
            [
                (Phase::Fixed, false),
                (Phase::Mapped, true),
                (Phase::Saturation, false),
                (Phase::Mapped, true),
                (Phase::Replicas, false)
            ]
        );
        let replicas = &all[4].1.replicas;
        assert_eq!(replicas.of(ServiceKind::Forwarder), 3);
        assert_eq!(replicas.of(ServiceKind::ConditionFilter), 3);
        assert_eq!(replicas.of(ServiceKind::Ingest), 1);
    }

    #[test]
    fn rounds_alternate_saturation_and_replicas() {
        let args = BenchArgs::parse_from(["b", "--phases", "saturation,replicas", "--rounds", "2"]);
        let got: Vec<(Phase, String)> = scenarios(&args)
            .into_iter()
            .map(|(p, sc)| (p, sc.label))
            .collect();
        let phases: Vec<Phase> = got.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            phases,
            [
                Phase::Saturation,
                Phase::Replicas,
                Phase::Saturation,
                Phase::Replicas
            ]
        );
        assert!(got[0].1.ends_with("(round 1 of 2)"), "{}", got[0].1);
        assert!(got[3].1.ends_with("(round 2 of 2)"), "{}", got[3].1);
        let one = BenchArgs::parse_from(["b", "--phases", "saturation"]);
        assert!(!scenarios(&one)[0].1.label.contains("round"));
    }
}
