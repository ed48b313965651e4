//! The closed breaker's memory of one target: how many calls were answered,
//! and how many of them failed, over the last `length` (a time-based sliding
//! window). Pure: every method takes the current instant.
//!
//! Time-based rather than a count of calls, because a count means different
//! things at different rates: at 1,000 calls/s a 100-call window is 0.1 s —
//! one burst of first attempts, before any retry could answer — and at one
//! call a minute it is stale. The calls are kept in [`BUCKETS`] buckets (a
//! bucket opens with the first call after the last one closed), so memory is
//! bounded whatever the rate; a bucket leaves the window `length` after it
//! opened, so the window's edge is as sharp as a bucket (`length / 10`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many buckets one window holds at most.
pub const BUCKETS: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    start: Instant,
    calls: u32,
    failures: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailureWindow {
    length: Duration,
    buckets: VecDeque<Bucket>,
}

/// What the window holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub calls: u32,
    pub failures: u32,
    /// How far back the window's oldest call goes (zero when empty).
    pub span: Duration,
}

impl FailureWindow {
    pub fn new(length: Duration) -> Self {
        Self {
            length,
            buckets: VecDeque::with_capacity(BUCKETS as usize + 1),
        }
    }

    /// Adds one answered call.
    pub fn record(&mut self, now: Instant, failed: bool) {
        self.expire(now);
        let bucket_len = self.length / BUCKETS;
        let fresh = match self.buckets.back() {
            Some(b) => now.saturating_duration_since(b.start) >= bucket_len,
            None => true,
        };
        if fresh {
            self.buckets.push_back(Bucket {
                start: now,
                calls: 0,
                failures: 0,
            });
        }
        if let Some(b) = self.buckets.back_mut() {
            b.calls = b.calls.saturating_add(1);
            b.failures = b.failures.saturating_add(u32::from(failed));
        }
    }

    /// The calls of the last `length`.
    pub fn tally(&mut self, now: Instant) -> Tally {
        self.expire(now);
        let (calls, failures) = self.buckets.iter().fold((0u32, 0u32), |(c, f), b| {
            (c.saturating_add(b.calls), f.saturating_add(b.failures))
        });
        let span = self
            .buckets
            .front()
            .map_or(Duration::ZERO, |b| now.saturating_duration_since(b.start));
        Tally {
            calls,
            failures,
            span,
        }
    }

    /// Forgets everything (the breaker changed state: a new start).
    pub fn clear(&mut self) {
        self.buckets.clear();
    }

    fn expire(&mut self, now: Instant) {
        while self
            .buckets
            .front()
            .is_some_and(|b| now.saturating_duration_since(b.start) >= self.length)
        {
            self.buckets.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_length_only() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = FailureWindow::new(Duration::from_secs(10));
        assert_eq!(
            w.tally(t0),
            Tally {
                calls: 0,
                failures: 0,
                span: Duration::ZERO
            }
        );
        // (at ms, failed) calls, then the tally expected at the last one.
        let steps: &[(u64, bool, u32, u32, u64)] = &[
            (0, true, 1, 1, 0),
            (500, false, 2, 1, 500),
            // A new bucket each second at most.
            (1_000, true, 3, 2, 1_000),
            (9_999, true, 4, 3, 9_999),
            // 10 s after the first bucket opened, it leaves with both its calls.
            (10_000, false, 3, 2, 9_000),
            (10_999, false, 4, 2, 9_999),
            (11_000, false, 4, 1, 1_001),
        ];
        for (i, &(at, failed, calls, failures, span)) in steps.iter().enumerate() {
            let now = t0 + ms(at);
            w.record(now, failed);
            assert_eq!(
                w.tally(now),
                Tally {
                    calls,
                    failures,
                    span: ms(span)
                },
                "step {i} at {at} ms"
            );
        }
        // Quiet for a whole window: empty again, and the span starts over.
        let later = t0 + ms(30_000);
        assert_eq!(w.tally(later).calls, 0);
        w.record(later, true);
        assert_eq!(w.tally(later + ms(200)).span, ms(200));
    }

    #[test]
    fn memory_is_bounded_whatever_the_rate() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(Duration::from_secs(1));
        for i in 0..100_000u64 {
            w.record(t0 + Duration::from_micros(i * 37), i % 2 == 0);
        }
        assert!(
            w.buckets.len() <= BUCKETS as usize + 1,
            "{}",
            w.buckets.len()
        );
        w.clear();
        assert_eq!(w.tally(t0).calls, 0);
    }
}
