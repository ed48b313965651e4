//! Which acks to send once deliveries are settled, so that one `multiple` ack
//! covers a whole run of them instead of one frame (and one quorum-queue
//! settle command) per message.
//!
//! `basic.ack` with `multiple` acknowledges every outstanding delivery up to
//! its tag on that channel, so it is only safe for tags whose every
//! predecessor is settled too. Deliveries settle out of order in pipelined
//! consumers (a slow target holds one back while later ones finish); those
//! past a gap are acked one by one at once, so a slow message never holds
//! later ones against the prefetch window.
//!
//! A bundle's delivery is settled only once every message it carried is
//! ([`Unsettled`]): its parts are handled one by one, each at its own pace.

use std::collections::{BTreeSet, HashMap};

/// Delivery tags of one channel (they start at 1 and count up).
#[derive(Debug, Default)]
pub struct AckTracker {
    /// Every tag up to here is settled and acked.
    acked_upto: u64,
    /// Tags past a gap that were already acked one by one.
    acked_ahead: BTreeSet<u64>,
}

/// The acks to send for one set of newly settled tags.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckPlan {
    /// Ack this tag with `multiple`: every tag up to it is settled.
    pub multiple: Option<u64>,
    /// Ack each of these on its own (settled, but an earlier tag is not yet).
    pub single: Vec<u64>,
}

impl AckTracker {
    /// Records `settled` (tags not passed before) and says which acks to send.
    pub fn settle(&mut self, settled: &[u64]) -> AckPlan {
        let mut fresh: BTreeSet<u64> = settled
            .iter()
            .copied()
            .filter(|t| *t > self.acked_upto && !self.acked_ahead.contains(t))
            .collect();
        let mut plan = AckPlan::default();
        loop {
            let next = self.acked_upto + 1;
            if fresh.remove(&next) {
                plan.multiple = Some(next);
            } else if !self.acked_ahead.remove(&next) {
                break;
            }
            self.acked_upto = next;
        }
        plan.single = fresh.into_iter().collect();
        self.acked_ahead.extend(&plan.single);
        plan
    }
}

/// Deliveries some of whose messages are not committed yet, by tag, with
/// the dead letters of those that are (`L`): a bundle's dead parts go to the
/// dead-letter queue when the bundle is acked, not before — so a bundle
/// returned to the queue unacked (shutdown) dead-letters each part once,
/// when it comes back.
#[derive(Debug)]
pub struct Unsettled<D, L> {
    open: HashMap<u64, Waiting<D, L>>,
}

#[derive(Debug)]
struct Waiting<D, L> {
    delivery: D,
    left: usize,
    dead: Vec<L>,
}

/// The deliveries a commit completed, and their messages' dead letters.
#[derive(Debug, PartialEq)]
pub struct Settled<D, L> {
    pub deliveries: Vec<D>,
    pub dead: Vec<L>,
}

impl<D, L> Default for Unsettled<D, L> {
    fn default() -> Self {
        Self {
            open: HashMap::new(),
        }
    }
}

impl<D, L> Unsettled<D, L> {
    /// A delivery that carried `messages` messages (a bundle's parts, or 1).
    pub fn insert(&mut self, tag: u64, delivery: D, messages: usize) {
        let waiting = Waiting {
            delivery,
            left: messages.max(1),
            dead: Vec::new(),
        };
        self.open.insert(tag, waiting);
    }

    /// Counts one committed message per entry of `parts` (its delivery's tag
    /// and its dead letter, if it is dead) and hands back the deliveries
    /// that have no message left, with all their dead letters.
    pub fn committed(
        &mut self,
        parts: impl IntoIterator<Item = (u64, Option<L>)>,
    ) -> Settled<D, L> {
        let mut settled = Settled {
            deliveries: Vec::new(),
            dead: Vec::new(),
        };
        for (tag, dead) in parts {
            let Some(waiting) = self.open.get_mut(&tag) else {
                continue;
            };
            waiting.dead.extend(dead);
            waiting.left -= 1;
            if waiting.left > 0 {
                continue;
            }
            if let Some(done) = self.open.remove(&tag) {
                settled.deliveries.push(done.delivery);
                settled.dead.extend(done.dead);
            }
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(multiple: Option<u64>, single: &[u64]) -> AckPlan {
        AckPlan {
            multiple,
            single: single.to_vec(),
        }
    }

    #[test]
    fn a_settled_batch_is_one_multiple_ack() {
        let mut t = AckTracker::default();
        assert_eq!(t.settle(&[1, 2, 3, 4]), plan(Some(4), &[]));
        assert_eq!(t.settle(&[6, 5]), plan(Some(6), &[]));
    }

    #[test]
    fn tags_past_a_gap_are_acked_singly_and_the_gap_closes_without_acking_them_twice() {
        let mut t = AckTracker::default();
        assert_eq!(t.settle(&[1, 2, 4, 6]), plan(Some(2), &[4, 6]));
        // 3 closes the first gap: only 3 itself is still outstanding.
        assert_eq!(t.settle(&[3]), plan(Some(3), &[]));
        // 5 closes the next; 4 and 6 were acked already.
        assert_eq!(t.settle(&[5, 7]), plan(Some(7), &[]));
        assert_eq!(t.settle(&[8]), plan(Some(8), &[]));
    }

    #[test]
    fn a_multiple_ack_never_covers_an_unsettled_tag() {
        // Property over shuffled settle orders: whenever `multiple` is m,
        // every tag ≤ m has been settled; every tag is acked exactly once.
        for seed in 0..200u64 {
            let n = 40u64;
            let mut order: Vec<u64> = (1..=n).collect();
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            for i in (1..order.len()).rev() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                order.swap(i, (x >> 33) as usize % (i + 1));
            }
            let mut t = AckTracker::default();
            let mut settled = BTreeSet::<u64>::new();
            let mut acked = BTreeSet::new();
            for chunk in order.chunks(1 + (seed as usize % 5)) {
                settled.extend(chunk.iter().copied());
                let p = t.settle(chunk);
                if let Some(m) = p.multiple {
                    assert!((1..=m).all(|k| settled.contains(&k)), "seed {seed}");
                    for k in 1..=m {
                        acked.insert(k);
                    }
                }
                for s in p.single {
                    assert!(acked.insert(s), "seed {seed}: {s} acked twice");
                }
            }
            assert_eq!(acked.len() as u64, n, "seed {seed}");
        }
    }

    #[test]
    fn repeated_or_old_tags_are_ignored() {
        let mut t = AckTracker::default();
        assert_eq!(t.settle(&[1, 1, 3]), plan(Some(1), &[3]));
        assert_eq!(t.settle(&[1, 3]), plan(None, &[]));
    }

    #[test]
    fn a_delivery_is_settled_when_its_last_message_is() {
        let mut u = Unsettled::default();
        u.insert(1, "bundle of 3", 3);
        u.insert(2, "single", 1);
        u.insert(3, "bundle of 2", 2);
        // Parts of different deliveries settle in any order and groups; a
        // dead part's letter waits for its bundle.
        let s = u.committed([(1, Some("1a dead")), (3, None), (2, Some("2 dead"))]);
        assert_eq!(s.deliveries, ["single"]);
        assert_eq!(s.dead, ["2 dead"]);
        let s = u.committed([(1, None)]);
        assert_eq!((s.deliveries.len(), s.dead.len()), (0, 0));
        let s = u.committed([(3, Some("3b dead")), (1, Some("1c dead"))]);
        assert_eq!(s.deliveries, ["bundle of 2", "bundle of 3"]);
        assert_eq!(s.dead, ["3b dead", "1a dead", "1c dead"]);
        // A tag not (or no longer) waiting is ignored, never settled twice.
        let s = u.committed([(1, Some("late")), (7, None)]);
        assert_eq!((s.deliveries.len(), s.dead.len()), (0, 0));
    }

    #[test]
    fn two_parts_of_one_bundle_in_one_group_settle_it_once() {
        let mut u: Unsettled<&str, &str> = Unsettled::default();
        u.insert(5, "bundle", 2);
        u.insert(6, "left waiting", 2);
        let s = u.committed([(5, None), (6, None), (5, None)]);
        assert_eq!(s.deliveries, ["bundle"]);
        // The other still waits for its second part.
        assert_eq!(u.committed([(6, None)]).deliveries, ["left waiting"]);
    }
}
