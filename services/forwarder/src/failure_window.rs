//! The closed breaker's memory of one target: how many calls were answered,
//! and how many of them failed — all of them, and the retries among them —
//! over the last `length` (a time-based sliding window). Pure: every method
//! takes the current instant.
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
    all: Counts,
    retries: Counts,
}

/// Answers and failures among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub calls: u32,
    pub failures: u32,
}

impl Counts {
    fn add(&mut self, failed: bool) {
        self.calls = self.calls.saturating_add(1);
        self.failures = self.failures.saturating_add(u32::from(failed));
    }

    fn plus(self, other: Counts) -> Counts {
        Counts {
            calls: self.calls.saturating_add(other.calls),
            failures: self.failures.saturating_add(other.failures),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailureWindow {
    length: Duration,
    buckets: VecDeque<Bucket>,
}

/// What the window holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Every answer.
    pub all: Counts,
    /// Answers to retries (a delivery's second attempt or later).
    pub retries: Counts,
}

impl FailureWindow {
    pub fn new(length: Duration) -> Self {
        Self {
            length,
            buckets: VecDeque::with_capacity(BUCKETS as usize + 1),
        }
    }

    /// Adds one answered call; `retry`: not the delivery's first attempt.
    pub fn record(&mut self, now: Instant, failed: bool, retry: bool) {
        self.expire(now);
        let bucket_len = self.length / BUCKETS;
        let fresh = match self.buckets.back() {
            Some(b) => now.saturating_duration_since(b.start) >= bucket_len,
            None => true,
        };
        if fresh {
            self.buckets.push_back(Bucket {
                start: now,
                all: Counts::default(),
                retries: Counts::default(),
            });
        }
        if let Some(b) = self.buckets.back_mut() {
            b.all.add(failed);
            if retry {
                b.retries.add(failed);
            }
        }
    }

    /// The calls of the last `length`.
    pub fn tally(&mut self, now: Instant) -> Tally {
        self.expire(now);
        self.buckets.iter().fold(Tally::default(), |t, b| Tally {
            all: t.all.plus(b.all),
            retries: t.retries.plus(b.retries),
        })
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

    fn counts(calls: u32, failures: u32) -> Counts {
        Counts { calls, failures }
    }

    #[test]
    fn counts_the_last_length_only() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = FailureWindow::new(Duration::from_secs(10));
        assert_eq!(w.tally(t0), Tally::default());
        // (at ms, failed, retry) calls, then the tally expected at the last
        // one: all (calls, failures), retries (calls, failures).
        type Row = (u64, bool, bool, (u32, u32), (u32, u32));
        let steps: &[Row] = &[
            (0, true, false, (1, 1), (0, 0)),
            (500, false, true, (2, 1), (1, 0)),
            // A new bucket each second at most.
            (1_000, true, true, (3, 2), (2, 1)),
            (9_999, true, false, (4, 3), (2, 1)),
            // 10 s after the first bucket opened, it leaves with both its calls.
            (10_000, false, false, (3, 2), (1, 1)),
            (10_999, false, true, (4, 2), (2, 1)),
            (11_000, false, false, (4, 1), (1, 0)),
        ];
        for (i, &(at, failed, retry, all, retries)) in steps.iter().enumerate() {
            let now = t0 + ms(at);
            w.record(now, failed, retry);
            assert_eq!(
                w.tally(now),
                Tally {
                    all: counts(all.0, all.1),
                    retries: counts(retries.0, retries.1),
                },
                "step {i} at {at} ms"
            );
        }
        // Quiet for a whole window: empty again.
        assert_eq!(w.tally(t0 + ms(30_000)), Tally::default());
    }

    #[test]
    fn memory_is_bounded_whatever_the_rate() {
        let t0 = Instant::now();
        let mut w = FailureWindow::new(Duration::from_secs(1));
        for i in 0..100_000u64 {
            w.record(
                t0 + Duration::from_micros(i * 37),
                i.is_multiple_of(2),
                i.is_multiple_of(3),
            );
        }
        assert!(
            w.buckets.len() <= BUCKETS as usize + 1,
            "{}",
            w.buckets.len()
        );
        w.clear();
        assert_eq!(w.tally(t0), Tally::default());
    }
}
