//! Smoke run of the benchmark in the test suite: every phase, tiny (a few
//! hundred sales, about 2 s each, on whatever binaries the harness picks —
//! debug ones in a debug test build). Asserts only that it completes and
//! that every accepted sale (and raw message) arrived; timings are never
//! asserted.

use clap::Parser;
use salesync_bench::config::BenchArgs;
use salesync_bench::report;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_smoke_run_delivers_everything_it_sent() {
    let args = BenchArgs::parse_from([
        "salesync-bench",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--rate",
        "100",
        "--clients",
        "2",
        "--batch-size",
        "50",
        "--max-sales",
        "300",
        "--drain-timeout",
        "90s",
        "--quiet",
    ]);
    assert_eq!(args.validate(), Ok(()));
    let result = salesync_bench::run(&args).await.expect("benchmark run");

    let raw = result.raw.as_ref().expect("raw phase ran");
    assert_eq!(result.raw_fixed.len(), 1, "one paced raw phase per rate");
    for raw in std::iter::once(raw).chain(&result.raw_fixed) {
        assert!(raw.stats.sent > 0, "{}: sent nothing", raw.description);
        assert_eq!(
            raw.stats.delivered, raw.stats.sent,
            "{}: lost messages",
            raw.description
        );
    }

    assert_eq!(
        result.scenarios.len(),
        5,
        "fixed, mapped fixed, saturation, mapped saturation, replicas"
    );
    assert_eq!(
        result
            .scenarios
            .iter()
            .filter(|sc| sc.label.starts_with("mapped orders"))
            .count(),
        2
    );
    for sc in &result.scenarios {
        assert!(sc.stats.sent > 0, "{}: sent nothing", sc.label);
        assert_eq!(
            sc.errors, 0,
            "{}: refused requests ({:?})",
            sc.label, sc.first_error
        );
        assert_eq!(
            sc.stats.delivered, sc.stats.sent,
            "{}: delivered count differs from sent count",
            sc.label
        );
        assert!(
            sc.usage.iter().any(|u| u.name == "forwarder"),
            "{}: no forwarder usage row",
            sc.label
        );
    }
    assert!(result.losses().is_empty(), "{:?}", result.losses());
    let table = report::render(&result);
    assert!(table.starts_with(report::BEGIN), "{table}");
}
