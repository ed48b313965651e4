//! Finding the one message a handler's transaction cannot take, so it does
//! not hold its batch (and the queue behind it) for ever.
//!
//! A handler decides a batch in one transaction; when the store refuses it
//! (a constraint, a trigger, data it will not hold) nothing of the batch took
//! effect, and retrying the same batch fails the same way. [`classify`]
//! tells such a refusal apart from a sick database (connection lost, pool
//! exhausted, timeouts, shutdown, deadlocks …): only a refusal starts
//! isolation, anything else is retried as before, whole, and never
//! dead-lettered. [`Isolation`] then bisects: the refused piece is split in
//! halves and each tried on its own, so the rest of the batch goes on; a
//! single message refused [`MAX_REFUSALS`] times on its own (a transient
//! failure between the tries counts nothing) is dead-lettered with the
//! store's reason. A batch of n with one poison message costs about
//! 2·log2(n) + [`MAX_REFUSALS`] handler calls.

use std::collections::VecDeque;
use std::ops::Range;

/// How often one message alone must be refused (with a healthy database in
/// between) before it is dead-lettered: more than once, so a refusal that a
/// concurrent writer caused (a unique key another replica took a moment
/// before) gets its retry.
pub const MAX_REFUSALS: u32 = 3;

/// The reason prefix of a message the store refused (a metric label too).
pub const REFUSED: &str = "refused by the database";

/// What a handler's `Err` says about the messages it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The database (or the broker) is unwell, or the cause is unknown:
    /// retry the same messages later, never dead-letter them.
    Transient,
    /// The database answered and refused what the messages asked of it:
    /// one of them may be poison. The text is the dead-letter reason.
    Refused(String),
}

/// Classifies a handler error by the PostgreSQL error in its chain: only an
/// answer whose SQLSTATE says "this data" ([`refusal_code`]) is a refusal.
/// Connection errors, pool timeouts and every error that is not the
/// database's answer are transient.
pub fn classify(err: &anyhow::Error) -> Failure {
    let db = err.chain().find_map(|cause| match cause.downcast_ref() {
        Some(sqlx::Error::Database(db)) => Some(db),
        _ => None,
    });
    match db {
        Some(db) => match db.code() {
            Some(code) if refusal_code(&code) => {
                Failure::Refused(format!("{REFUSED}: {} (SQLSTATE {code})", db.message()))
            }
            _ => Failure::Transient,
        },
        None => Failure::Transient,
    }
}

/// SQLSTATE classes that refuse the statement's data, not the session:
/// cardinality (21: two rows of one batch updating the same row), data
/// exceptions (22), integrity constraints (23), triggered data change (27),
/// check option (44), program limits (54: an index row too large) and
/// PL/pgSQL raises (P0: a trigger's `RAISE`). Left out on purpose, so they
/// are retried and never dead-letter anything: connection (08), transaction
/// rollback (40: serialization, deadlock), resources (53: disk full),
/// operator intervention (57: shutdown, statement timeout), object state
/// (55: lock not available, database not accepting connections), access
/// and syntax (42: a schema that does not match the code — every message
/// would fail), system and internal errors (58, XX).
pub fn refusal_code(code: &str) -> bool {
    matches!(
        code.get(..2),
        Some("21" | "22" | "23" | "27" | "44" | "54" | "P0")
    )
}

/// The bisection of one batch of `len` messages: which piece to try next,
/// and what a refusal of it means. Pure; the consume loops drive it.
#[derive(Debug)]
pub struct Isolation {
    /// Pieces (index ranges into the batch) still to try, in order.
    todo: VecDeque<Range<usize>>,
    /// Refusals of the current piece, counted once it is a single message.
    refusals: u32,
    max_refusals: u32,
}

/// What to do after the current piece was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It was split: try its halves (at once: the database answered).
    Split,
    /// A single message, refused fewer than the maximum: try it again after
    /// a pause.
    RetryAlone,
    /// A single message refused too often: dead-letter the message at this
    /// index of the batch.
    Dead(usize),
}

impl Isolation {
    /// The whole batch is the first piece (none for an empty batch).
    pub fn new(len: usize, max_refusals: u32) -> Self {
        Self {
            todo: (len > 0).then_some(0..len).into_iter().collect(),
            refusals: 0,
            max_refusals: max_refusals.max(1),
        }
    }

    /// The piece to try next; `None` when every message has an outcome.
    pub fn current(&self) -> Option<Range<usize>> {
        self.todo.front().cloned()
    }

    /// The current piece was handled: move on.
    pub fn handled(&mut self) {
        self.todo.pop_front();
        self.refusals = 0;
    }

    /// The current piece was refused.
    pub fn refused(&mut self) -> Refusal {
        let Some(piece) = self.todo.pop_front() else {
            return Refusal::Split;
        };
        if piece.len() > 1 {
            let mid = piece.start + piece.len() / 2;
            self.todo.push_front(mid..piece.end);
            self.todo.push_front(piece.start..mid);
            self.refusals = 0;
            return Refusal::Split;
        }
        self.refusals += 1;
        if self.refusals >= self.max_refusals {
            self.refusals = 0;
            return Refusal::Dead(piece.start);
        }
        self.todo.push_front(piece);
        Refusal::RetryAlone
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Drives an isolation of `len` messages against a "transaction" that
    /// fails whenever its piece holds a poison index; returns how often each
    /// index was handled, the dead ones in order, and the number of calls.
    fn run(len: usize, poison: &BTreeSet<usize>, max: u32) -> (Vec<u32>, Vec<usize>, usize) {
        let mut handled = vec![0; len];
        let mut dead = Vec::new();
        let mut calls = 0;
        let mut iso = Isolation::new(len, max);
        while let Some(piece) = iso.current() {
            calls += 1;
            assert!(calls < 100_000, "isolation does not end");
            if piece.clone().any(|i| poison.contains(&i)) {
                if let Refusal::Dead(i) = iso.refused() {
                    dead.push(i);
                }
            } else {
                for i in piece {
                    handled[i] += 1;
                }
                iso.handled();
            }
        }
        (handled, dead, calls)
    }

    #[test]
    fn a_healthy_batch_is_one_call() {
        let (handled, dead, calls) = run(64, &BTreeSet::new(), MAX_REFUSALS);
        assert_eq!(calls, 1);
        assert!(dead.is_empty());
        assert!(handled.iter().all(|&n| n == 1));
        assert_eq!(Isolation::new(0, 3).current(), None);
    }

    #[test]
    fn one_poison_message_is_found_and_the_rest_handled_once() {
        for len in [1, 2, 3, 7, 64, 255] {
            for p in [0, len / 2, len - 1] {
                let poison = BTreeSet::from([p]);
                let (handled, dead, calls) = run(len, &poison, MAX_REFUSALS);
                assert_eq!(dead, [p], "len {len} poison {p}");
                for (i, n) in handled.iter().enumerate() {
                    assert_eq!(*n, u32::from(i != p), "len {len} poison {p} index {i}");
                }
                // Each level of the bisection costs at most two calls.
                let depth = usize::BITS - (len - 1).leading_zeros();
                let bound = 1 + 2 * depth as usize + MAX_REFUSALS as usize;
                assert!(calls <= bound, "len {len}: {calls} calls > {bound}");
            }
        }
    }

    #[test]
    fn any_set_of_poison_messages_is_dead_lettered_exactly_and_nothing_else() {
        // Property over pseudo-random batches: poison is dead exactly once,
        // every other message handled exactly once, in any pattern.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        for case in 0..300 {
            let len = 1 + next(100) as usize;
            let poisoned = next(len as u64 + 1) as usize;
            let poison: BTreeSet<usize> =
                (0..poisoned).map(|_| next(len as u64) as usize).collect();
            let max = 1 + next(4) as u32;
            let (handled, dead, _) = run(len, &poison, max);
            let dead_set: BTreeSet<usize> = dead.iter().copied().collect();
            assert_eq!(dead.len(), dead_set.len(), "case {case}: dead twice");
            assert_eq!(dead_set, poison, "case {case}");
            for (i, n) in handled.iter().enumerate() {
                assert_eq!(*n, u32::from(!poison.contains(&i)), "case {case} index {i}");
            }
        }
    }

    #[test]
    fn a_message_dies_only_after_the_maximum_refusals_alone() {
        let mut iso = Isolation::new(1, 3);
        assert_eq!(iso.refused(), Refusal::RetryAlone);
        assert_eq!(iso.current(), Some(0..1));
        assert_eq!(iso.refused(), Refusal::RetryAlone);
        assert_eq!(iso.refused(), Refusal::Dead(0));
        assert_eq!(iso.current(), None);

        // Refusals of a piece that then succeeds are forgotten.
        let mut iso = Isolation::new(2, 2);
        assert_eq!(iso.refused(), Refusal::Split);
        assert_eq!(iso.refused(), Refusal::RetryAlone);
        iso.handled();
        assert_eq!(iso.current(), Some(1..2));
        assert_eq!(iso.refused(), Refusal::RetryAlone);
        assert_eq!(iso.refused(), Refusal::Dead(1));
    }

    #[test]
    fn only_the_stores_answer_about_the_data_is_a_refusal() {
        let refused = [
            "23505", "23503", "23514", "22001", "22P02", "22021", "21000", "P0001", "54000",
            "27000", "44000",
        ];
        let transient = [
            "08006", "08001", "40001", "40P01", "53100", "53300", "57P01", "57014", "55000",
            "55P03", "42501", "42P01", "58030", "XX000", "25006", "", "2",
        ];
        for code in refused {
            assert!(refusal_code(code), "{code}");
        }
        for code in transient {
            assert!(!refusal_code(code), "{code}");
        }
        let not_db = anyhow::anyhow!("publishing retries: channel closed");
        assert_eq!(classify(&not_db), Failure::Transient);
        let io = anyhow::Error::from(sqlx::Error::Io(std::io::Error::other("reset")));
        assert_eq!(classify(&io.context("recording")), Failure::Transient);
        let pool = anyhow::Error::from(sqlx::Error::PoolTimedOut);
        assert_eq!(classify(&pool), Failure::Transient);

        let answer = |code: &str| {
            let e = sqlx::Error::Database(Box::new(Answer(code.into())));
            anyhow::Error::from(e).context("recording attempts")
        };
        assert_eq!(
            classify(&answer("P0001")),
            Failure::Refused(format!("{REFUSED}: no (SQLSTATE P0001)"))
        );
        assert_eq!(classify(&answer("57P01")), Failure::Transient);
    }

    /// A database's answer with this SQLSTATE and the message "no".
    #[derive(Debug)]
    struct Answer(String);

    impl std::fmt::Display for Answer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("no")
        }
    }

    impl std::error::Error for Answer {}

    impl sqlx::error::DatabaseError for Answer {
        fn message(&self) -> &str {
            "no"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.as_str().into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }
}
