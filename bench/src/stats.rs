//! Pure arithmetic over a phase's `Records`: sustained throughput in the
//! measured window and latency percentiles (HdrHistogram, microseconds).
//!
//! Throughput counts arrivals whose arrival time falls in the window (what
//! the pipeline delivered while it was loaded); latency is taken for the
//! messages *sent* in the window, however late they arrived, so a slow tail
//! is never cut off by the end of the window.

use hdrhistogram::Histogram;

use crate::timeline::Records;

/// The measured part of a phase, in timeline nanoseconds, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

impl Window {
    pub fn contains(&self, t: u64) -> bool {
        t >= self.start && t < self.end
    }

    pub fn secs(&self) -> f64 {
        self.end.saturating_sub(self.start) as f64 / 1e9
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PhaseStats {
    /// Messages sent and not withdrawn, whole phase.
    pub sent: u64,
    /// Of those, how many arrived (distinct).
    pub delivered: u64,
    /// Sent but never arrived.
    pub missing: u64,
    pub duplicates: u64,
    pub unknown: u64,
    pub window_secs: f64,
    /// Sent per second within the window (the offered load achieved).
    pub offered_per_sec: f64,
    /// Accepted (POST answered) per second within the window.
    pub accepted_per_sec: f64,
    /// Arrived per second within the window: the sustained throughput.
    pub delivered_per_sec: f64,
    /// Arrived per second in the first and in the last third of the window
    /// (a pipeline that slows as its tables grow shows here).
    pub delivered_trend: (f64, f64),
    /// Arrival − send, for messages sent in the window.
    pub latency: Option<Latency>,
    /// Arrival − acceptance (the POST's answer), same messages.
    pub latency_from_accept: Option<Latency>,
}

/// Histogram bounds: 1 µs to one hour, 3 significant digits.
fn histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()
}

fn summarize_histogram(h: &Histogram<u64>) -> Option<Latency> {
    (!h.is_empty()).then(|| Latency {
        count: h.len(),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    })
}

/// Latency percentiles of a set of durations in nanoseconds.
pub fn latency_of(durations_ns: impl IntoIterator<Item = u64>) -> Option<Latency> {
    let mut h = histogram()?;
    for d in durations_ns {
        // Sub-microsecond values count as 1 µs (the histogram's floor).
        h.saturating_record((d / 1_000).max(1));
    }
    summarize_histogram(&h)
}

fn at(v: &[Option<u64>], i: usize) -> Option<u64> {
    v.get(i).copied().flatten()
}

pub fn summarize(r: &Records, w: Window) -> PhaseStats {
    let secs = w.secs();
    let per_sec = |n: usize| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let sent_idx: Vec<usize> = (0..r.sent.len()).filter(|i| r.sent[*i].is_some()).collect();
    let delivered = sent_idx
        .iter()
        .filter(|i| at(&r.arrived, **i).is_some())
        .count();
    let in_window: Vec<usize> = sent_idx
        .iter()
        .copied()
        .filter(|i| at(&r.sent, *i).is_some_and(|t| w.contains(t)))
        .collect();
    let latency = latency_of(in_window.iter().filter_map(|i| {
        let (s, a) = (at(&r.sent, *i)?, at(&r.arrived, *i)?);
        Some(a.saturating_sub(s))
    }));
    let latency_from_accept = latency_of(in_window.iter().filter_map(|i| {
        let (s, a) = (at(&r.accepted, *i)?, at(&r.arrived, *i)?);
        Some(a.saturating_sub(s))
    }));
    let accepted_in_window = r
        .accepted
        .iter()
        .flatten()
        .filter(|t| w.contains(**t))
        .count();
    let arrived_in = |part: Window| {
        r.arrived
            .iter()
            .flatten()
            .filter(|t| part.contains(**t))
            .count()
    };
    let arrived_in_window = arrived_in(w);
    let third = w.end.saturating_sub(w.start) / 3;
    let rate_in = |part: Window| {
        if part.secs() > 0.0 {
            arrived_in(part) as f64 / part.secs()
        } else {
            0.0
        }
    };
    let delivered_trend = (
        rate_in(Window {
            start: w.start,
            end: w.start + third,
        }),
        rate_in(Window {
            start: w.end - third,
            end: w.end,
        }),
    );
    PhaseStats {
        sent: sent_idx.len() as u64,
        delivered: delivered as u64,
        missing: (sent_idx.len() - delivered) as u64,
        duplicates: r.duplicates,
        unknown: r.unknown,
        window_secs: secs,
        offered_per_sec: per_sec(in_window.len()),
        accepted_per_sec: per_sec(accepted_in_window),
        delivered_per_sec: per_sec(arrived_in_window),
        delivered_trend,
        latency,
        latency_from_accept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    #[test]
    fn window_arithmetic() {
        let w = Window {
            start: S,
            end: 3 * S,
        };
        assert_eq!(w.secs(), 2.0);
        for (t, inside) in [(S - 1, false), (S, true), (3 * S - 1, true), (3 * S, false)] {
            assert_eq!(w.contains(t), inside, "{t}");
        }
    }

    #[test]
    fn percentiles_of_known_sets() {
        // (durations in ms, p50, p99, max) in µs
        for (ms, p50, p99, max) in [
            (vec![5u64], 5_000, 5_000, 5_000),
            ((1..=100).collect(), 50_000, 99_000, 100_000),
            (
                vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 1000],
                1_000,
                1_000_000,
                1_000_000,
            ),
        ] {
            let l = latency_of(ms.iter().map(|m| m * MS)).expect("non-empty");
            // HdrHistogram keeps 3 significant digits.
            let close = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
            assert!(close(l.p50_us, p50), "p50 {} vs {p50}", l.p50_us);
            assert!(close(l.p99_us, p99), "p99 {} vs {p99}", l.p99_us);
            assert!(close(l.max_us, max), "max {} vs {max}", l.max_us);
            assert_eq!(l.count, ms.len() as u64);
        }
        assert_eq!(latency_of(Vec::new()), None);
        assert_eq!(latency_of([10]).map(|l| l.max_us), Some(1), "floor 1 µs");
    }

    fn records(rows: &[(Option<u64>, Option<u64>, Option<u64>)]) -> Records {
        Records {
            sent: rows.iter().map(|r| r.0).collect(),
            accepted: rows.iter().map(|r| r.1).collect(),
            arrived: rows.iter().map(|r| r.2).collect(),
            duplicates: 2,
            unknown: 1,
        }
    }

    #[test]
    fn summarizes_a_phase() {
        let w = Window {
            start: S,
            end: 2 * S,
        };
        let r = records(&[
            // warm-up: sent before the window, arrives inside it
            (Some(S - 10 * MS), Some(S - 9 * MS), Some(S + MS)),
            // in the window
            (Some(S + 100 * MS), Some(S + 101 * MS), Some(S + 110 * MS)),
            (Some(S + 200 * MS), Some(S + 201 * MS), Some(S + 230 * MS)),
            // sent in the window, arrives after it: latency yes, throughput no
            (Some(2 * S - MS), Some(2 * S), Some(2 * S + 50 * MS)),
            // withdrawn (refused): ignored everywhere
            (None, None, None),
            // sent, never arrived
            (Some(S + 300 * MS), Some(S + 301 * MS), None),
        ]);
        let s = summarize(&r, w);
        assert_eq!((s.sent, s.delivered, s.missing), (5, 4, 1));
        assert_eq!((s.duplicates, s.unknown), (2, 1));
        assert_eq!(s.offered_per_sec, 4.0);
        assert_eq!(s.accepted_per_sec, 3.0);
        assert_eq!(s.delivered_per_sec, 3.0);
        // Thirds of 1 s: arrivals at +1, +110 and +230 ms fall in the first,
        // none in the last.
        assert_eq!(s.delivered_trend, (3.0 / 0.333_333_333, 0.0));
        let l = s.latency.expect("latency");
        assert_eq!(l.count, 3);
        assert!(l.max_us.abs_diff(51_000) <= 51, "{l:?}");
        let a = s.latency_from_accept.expect("latency from accept");
        assert!(a.max_us.abs_diff(50_000) <= 50, "{a:?}");
    }

    #[test]
    fn empty_phase_has_no_latency_and_zero_rates() {
        let s = summarize(&Records::default(), Window { start: 0, end: 0 });
        assert_eq!(s.sent, 0);
        assert_eq!(s.delivered_per_sec, 0.0);
        assert_eq!(s.latency, None);
    }
}
