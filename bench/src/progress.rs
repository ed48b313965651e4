//! What the user sees while the benchmark runs: a line per step, a bar per
//! loaded phase (elapsed of warm-up + measured time, with live counts), a
//! spinner while waiting. Hidden with `--quiet` (and by indicatif itself
//! when stderr is not a terminal, e.g. in the smoke test).

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::timeline::Timeline;

#[derive(Clone, Copy, Debug)]
pub struct Progress {
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self { quiet }
    }

    /// A step of the run, printed to stderr.
    pub fn step(&self, what: &str) {
        if !self.quiet {
            eprintln!("==> {what}");
        }
    }

    pub fn spinner(&self, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let s = ProgressBar::new_spinner();
        s.set_message(what.to_string());
        s.enable_steady_tick(Duration::from_millis(120));
        s
    }

    /// A bar over `total` seconds showing the live counts of `timeline`,
    /// updated until the returned token is cancelled.
    pub fn load_bar(
        &self,
        total: Duration,
        timeline: Arc<Timeline>,
    ) -> (ProgressBar, CancellationToken) {
        let stop = CancellationToken::new();
        if self.quiet {
            return (ProgressBar::hidden(), stop);
        }
        let bar = ProgressBar::new(total.as_secs().max(1));
        bar.set_style(
            ProgressStyle::with_template("    [{bar:30}] {pos}/{len}s {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let (b, s) = (bar.clone(), stop.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (0u64, Instant::now());
            loop {
                tokio::select! {
                    _ = s.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                let delivered = timeline.delivered_count();
                let dt = last.1.elapsed().as_secs_f64();
                let rate = if dt > 0.0 {
                    delivered.saturating_sub(last.0) as f64 / dt
                } else {
                    0.0
                };
                last = (delivered, Instant::now());
                b.set_position(started.elapsed().as_secs());
                b.set_message(format!(
                    "sent {} · delivered {delivered} ({rate:.0}/s) · in flight {}",
                    timeline.sent_count(),
                    timeline.in_flight()
                ));
            }
        });
        (bar, stop)
    }
}
