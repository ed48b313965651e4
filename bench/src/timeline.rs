//! `Timeline`: when each message of a phase was sent, accepted and arrived,
//! indexed by its sequence number. The load generator writes the first two,
//! the counting target (or the raw consumer) the third; `stats` turns a
//! snapshot into throughput and latency. Times are nanoseconds since the
//! timeline's start, so every party compares readings of one clock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// "Not yet" in the time vectors (a real reading is stored plus one).
const UNSET: u64 = 0;

/// A copy of the recorded times; `None` where the event did not happen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    pub sent: Vec<Option<u64>>,
    pub accepted: Vec<Option<u64>>,
    pub arrived: Vec<Option<u64>>,
    /// Arrivals of a sequence number that had already arrived.
    pub duplicates: u64,
    /// Arrivals the target could not attribute to a sent message.
    pub unknown: u64,
}

#[derive(Default)]
struct Inner {
    sent: Vec<u64>,
    accepted: Vec<u64>,
    arrived: Vec<u64>,
    duplicates: u64,
    unknown: u64,
}

pub struct Timeline {
    epoch: Instant,
    inner: Mutex<Inner>,
    /// Mirrors of the counts, read without the lock by back-pressure loops.
    in_flight_sent: AtomicU64,
    delivered: AtomicU64,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

fn set(v: &mut Vec<u64>, i: usize, t: u64) {
    if v.len() <= i {
        v.resize(i + 1, UNSET);
    }
    v[i] = t + 1;
}

fn read(v: &[u64]) -> Vec<Option<u64>> {
    v.iter().map(|t| (*t != UNSET).then(|| t - 1)).collect()
}

impl Timeline {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
            in_flight_sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the timeline started.
    pub fn now(&self) -> u64 {
        self.at(Instant::now())
    }

    /// `instant` as nanoseconds since the start (0 if before it).
    pub fn at(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn instant(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a recording thread panicked mid-write of
        // plain integers; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Message `i` is about to be sent.
    pub fn sent(&self, i: usize, t: u64) {
        set(&mut self.lock().sent, i, t);
        self.in_flight_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Message `i` was accepted (the POST answered, the publish confirmed).
    pub fn accepted(&self, i: usize, t: u64) {
        set(&mut self.lock().accepted, i, t);
    }

    /// Message `i` was refused or its request failed: it will not arrive.
    pub fn withdrawn(&self, i: usize) {
        let mut inner = self.lock();
        if inner.sent.get(i).is_some_and(|t| *t != UNSET) {
            inner.sent[i] = UNSET;
            self.in_flight_sent.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Message `i` arrived at `t`; the first arrival counts, later ones are
    /// duplicates.
    pub fn arrived(&self, i: usize, t: u64) {
        let mut inner = self.lock();
        if inner.arrived.get(i).is_some_and(|t| *t != UNSET) {
            inner.duplicates += 1;
            return;
        }
        set(&mut inner.arrived, i, t);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Something arrived that names no message of this run.
    pub fn unknown(&self) {
        self.lock().unknown += 1;
    }

    /// Messages sent and not withdrawn.
    pub fn sent_count(&self) -> u64 {
        self.in_flight_sent.load(Ordering::Relaxed)
    }

    /// Distinct messages arrived.
    pub fn delivered_count(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Sent but not yet arrived.
    pub fn in_flight(&self) -> u64 {
        self.sent_count().saturating_sub(self.delivered_count())
    }

    pub fn snapshot(&self) -> Records {
        let inner = self.lock();
        Records {
            sent: read(&inner.sent),
            accepted: read(&inner.accepted),
            arrived: read(&inner.arrived),
            duplicates: inner.duplicates,
            unknown: inner.unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_events_and_counts() {
        let t = Timeline::new();
        t.sent(0, 10);
        t.sent(2, 12);
        t.sent(1, 11);
        t.accepted(0, 20);
        t.arrived(0, 30);
        t.arrived(0, 31);
        t.withdrawn(1);
        t.withdrawn(1);
        t.withdrawn(7);
        t.unknown();
        assert_eq!(t.sent_count(), 2);
        assert_eq!(t.delivered_count(), 1);
        assert_eq!(t.in_flight(), 1);
        let r = t.snapshot();
        assert_eq!(r.sent, vec![Some(10), None, Some(12)]);
        assert_eq!(r.accepted, vec![Some(20)]);
        assert_eq!(r.arrived, vec![Some(30)]);
        assert_eq!((r.duplicates, r.unknown), (1, 1));
    }

    #[test]
    fn time_zero_is_a_reading_not_unset() {
        let t = Timeline::new();
        t.sent(0, 0);
        assert_eq!(t.snapshot().sent, vec![Some(0)]);
    }
}
