//! Pure decisions behind the per-target limits (the state and the waiting
//! live in `targets`): what counts as one target, whether a delivery should
//! wait for one of its target's busy slots or go back to a delay queue, and
//! the running estimate of the target's latency that decision uses.

use std::time::Duration;

pub use salesync_core::egress::target_key;

/// What to do when every slot of a target is taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlotDecision {
    /// Wait for a slot.
    Wait,
    /// Waiting would hold this delivery's place in the prefetch window for
    /// about `estimate` — longer than allowed: put it back to a delay queue.
    Defer { estimate: Duration },
}

/// Decides for a delivery that finds all `concurrency` slots busy and
/// `waiting` deliveries already in line. Its wait is about one round of the
/// target's `latency` per `concurrency` deliveries ahead of it, itself
/// included. Without a latency yet (a new target) it waits.
pub fn slot_decision(
    waiting: usize,
    concurrency: usize,
    latency: Option<Duration>,
    max_wait: Duration,
) -> SlotDecision {
    let Some(latency) = latency else {
        return SlotDecision::Wait;
    };
    let rounds = (waiting + 1).div_ceil(concurrency.max(1));
    let estimate = latency.saturating_mul(u32::try_from(rounds).unwrap_or(u32::MAX));
    if estimate <= max_wait {
        SlotDecision::Wait
    } else {
        SlotDecision::Defer { estimate }
    }
}

/// Folds one request's duration into the target's latency estimate
/// (exponentially weighted, 1/4 per sample: follows a change within a few
/// requests, shrugs off a single outlier).
pub fn updated_latency(previous: Option<Duration>, sample: Duration) -> Duration {
    match previous {
        None => sample,
        Some(p) => p.mul_f64(0.75) + sample.mul_f64(0.25),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_targets_by_origin() {
        let cases = [
            ("http://127.0.0.1:8080/ok", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/other?x=1", "http://127.0.0.1:8080"),
            (
                "https://books.example.com/hook",
                "https://books.example.com:443",
            ),
            (
                "https://books.example.com:443/a",
                "https://books.example.com:443",
            ),
            ("http://books.example.com/a", "http://books.example.com:80"),
            ("HTTP://Books.Example.com/a", "http://books.example.com:80"),
            (
                "https://user:pw@books.example.com/",
                "https://books.example.com:443",
            ),
            ("not a url", "not a url"),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(target_key(url), want, "url {url:?}");
        }
    }

    #[test]
    fn waits_for_a_slot_only_when_it_is_soon() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        // (name, waiting, concurrency, latency, max wait, expected)
        type Case = (
            &'static str,
            usize,
            usize,
            Option<Duration>,
            Duration,
            SlotDecision,
        );
        let cases: Vec<Case> = vec![
            (
                "unknown latency waits",
                100,
                16,
                None,
                s(1),
                SlotDecision::Wait,
            ),
            (
                "fast target, first in line",
                0,
                16,
                Some(ms(20)),
                s(1),
                SlotDecision::Wait,
            ),
            (
                "fast target, long line",
                47,
                16,
                Some(ms(20)),
                s(1),
                SlotDecision::Wait,
            ),
            (
                "slow target, first in line",
                0,
                16,
                Some(s(2)),
                s(1),
                SlotDecision::Defer { estimate: s(2) },
            ),
            (
                "slow target, second round",
                16,
                16,
                Some(s(2)),
                s(1),
                SlotDecision::Defer { estimate: s(4) },
            ),
            (
                "one round fits exactly",
                15,
                16,
                Some(s(1)),
                s(1),
                SlotDecision::Wait,
            ),
            (
                "two rounds do not",
                16,
                16,
                Some(s(1)),
                s(1),
                SlotDecision::Defer { estimate: s(2) },
            ),
            (
                "concurrency one",
                2,
                1,
                Some(ms(400)),
                s(1),
                SlotDecision::Defer { estimate: ms(1200) },
            ),
            (
                "zero max wait, zero latency",
                3,
                1,
                Some(ms(0)),
                ms(0),
                SlotDecision::Wait,
            ),
            (
                "zero concurrency is treated as one",
                0,
                0,
                Some(ms(10)),
                s(1),
                SlotDecision::Wait,
            ),
        ];
        for (name, waiting, concurrency, latency, max_wait, want) in cases {
            assert_eq!(
                slot_decision(waiting, concurrency, latency, max_wait),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn latency_follows_samples() {
        let ms = Duration::from_millis;
        assert_eq!(updated_latency(None, ms(200)), ms(200));
        assert_eq!(updated_latency(Some(ms(200)), ms(600)), ms(300));
        let mut l = Some(ms(2000));
        for _ in 0..20 {
            l = Some(updated_latency(l, ms(10)));
        }
        assert!(l.is_some_and(|l| l < ms(20)), "{l:?}");
    }
}
