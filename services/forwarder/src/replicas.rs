//! Pure arithmetic of the per-target concurrency limit shared by forwarder
//! replicas (the heartbeat that applies it lives in `membership`).
//!
//! Every replica sees the live replicas sorted by id; the one of rank `r`
//! among `n` is due `share(limit, r, n)` slots of every target, and the
//! shares of one view add up to exactly `limit`. Views differ for a moment
//! while a replica joins or leaves, so a share is not simply taken: a
//! replica publishes `held`, the most it may have in flight, and raises it
//! only while every replica's `held` together stays within the limit
//! ([`grant`]); it lowers it only once its requests above the new share have
//! finished. The sum of requests in flight is thus at most the sum of
//! `held`, at most the limit, whatever the views.

use uuid::Uuid;

/// Where this replica stands among the live ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub rank: usize,
    pub count: usize,
}

impl View {
    /// This replica's place among `live` (which may or may not list it).
    pub fn of(live: &[Uuid], me: Uuid) -> Self {
        let mut ids: Vec<Uuid> = live.iter().copied().filter(|id| *id != me).collect();
        ids.push(me);
        ids.sort();
        let rank = ids.iter().position(|id| *id == me).unwrap_or(0);
        Self {
            rank,
            count: ids.len(),
        }
    }
}

/// Slots of each target due to the replica of `rank` among `count`: the
/// limit split evenly, the remainder going to the lowest ranks. Zero when
/// there are more replicas than slots (that replica defers every delivery).
pub fn share(limit: usize, rank: usize, count: usize) -> usize {
    let count = count.max(1);
    limit / count + usize::from(rank < limit % count)
}

/// The slots a replica holding `current` may use from now on, when it is due
/// `due` and the other replicas hold `others_held` of `limit`: a smaller
/// share is taken at once, a larger one only as far as the others leave
/// room (the rest comes in a later heartbeat, once they have shrunk).
pub fn grant(due: usize, current: usize, others_held: usize, limit: usize) -> usize {
    if due <= current {
        due
    } else {
        current.max(due.min(limit.saturating_sub(others_held)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_limit_and_differ_by_one_at_most() {
        for limit in 1..=20 {
            for count in 1..=25 {
                let shares: Vec<usize> = (0..count).map(|r| share(limit, r, count)).collect();
                assert_eq!(shares.iter().sum::<usize>(), limit, "{limit}/{count}");
                let (lo, hi) = (shares.iter().min(), shares.iter().max());
                assert!(
                    hi.unwrap() - lo.unwrap() <= 1,
                    "{limit}/{count}: {shares:?}"
                );
            }
        }
        // (limit, rank, count, share)
        let cases = [
            (4, 0, 1, 4),
            (4, 0, 2, 2),
            (4, 1, 2, 2),
            (5, 0, 2, 3),
            (5, 1, 2, 2),
            (2, 2, 3, 0),
            (16, 2, 3, 5),
            (16, 0, 3, 6),
            (3, 0, 0, 3),
        ];
        for (limit, rank, count, want) in cases {
            assert_eq!(share(limit, rank, count), want, "{limit} {rank}/{count}");
        }
    }

    #[test]
    fn grants_shrink_at_once_and_grow_only_into_room_left() {
        // (name, due, current, others held, limit, granted)
        let cases = [
            ("alone from nothing", 4, 0, 0, 4, 4),
            ("joining, the other still holds all", 2, 0, 4, 4, 0),
            ("joining, the other shrank halfway", 2, 0, 3, 4, 1),
            ("joining, the other has shrunk", 2, 1, 2, 4, 2),
            ("shrinks at once", 2, 4, 0, 4, 2),
            ("to zero", 0, 3, 4, 4, 0),
            ("steady", 2, 2, 2, 4, 2),
            ("survivor of a kill, row not yet expired", 4, 2, 2, 4, 2),
            ("survivor once the row expired", 4, 2, 0, 4, 4),
            (
                "others over the limit never shrink us below current",
                3,
                2,
                5,
                4,
                2,
            ),
        ];
        for (name, due, current, others, limit, want) in cases {
            assert_eq!(grant(due, current, others, limit), want, "case {name}");
        }
    }

    #[test]
    fn the_sum_held_never_exceeds_the_limit_through_joins_and_leaves() {
        // Replicas join one by one, each step serialised (one heartbeat at a
        // time, as under the advisory lock); in-flight requests above a
        // shrunk share finish only a step later.
        let limit = 5;
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        // (cap, held) per replica; `None` before it joins.
        let mut state: Vec<Option<(usize, usize)>> = vec![None; ids.len()];
        for step in 0..40 {
            let who = step % ids.len();
            let joined = step / 2 + 1; // one more replica every other step
            if who >= joined.min(ids.len()) {
                continue;
            }
            let live: Vec<Uuid> = ids[..joined.min(ids.len())].to_vec();
            let view = View::of(&live, ids[who]);
            let (cap, held) = state[who].unwrap_or((0, 0));
            let others: usize = state
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != who)
                .filter_map(|(_, s)| s.map(|s| s.1))
                .sum();
            let new_cap = grant(share(limit, view.rank, view.count), cap, others, limit);
            // In flight above the new cap finishes by the next heartbeat.
            let new_held = new_cap.max(held.min(cap));
            state[who] = Some((new_cap, new_held));
            let total: usize = state.iter().filter_map(|s| s.map(|s| s.1)).sum();
            assert!(total <= limit, "step {step}: {state:?}");
        }
        let caps: Vec<usize> = state.iter().map(|s| s.unwrap().0).collect();
        assert_eq!(caps.iter().sum::<usize>(), limit, "converged: {caps:?}");
    }

    #[test]
    fn views_rank_by_id() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let c = Uuid::from_u128(3);
        assert_eq!(View::of(&[c, a], b), View { rank: 1, count: 3 });
        assert_eq!(View::of(&[a, b, c], b), View { rank: 1, count: 3 });
        assert_eq!(View::of(&[], b), View { rank: 0, count: 1 });
    }
}
