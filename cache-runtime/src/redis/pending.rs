//! Fleet operations that could not reach Redis, kept and replayed.
//!
//! An invalidation or expiry (of a key, of tags, of a whole function) is
//! acknowledged to its caller once this instance's memory is done, whether
//! or not Redis answered. One that Redis did not take (a timeout, a refused
//! or cut connection) is kept here and replayed in order as soon as Redis
//! answers again: the version bump and delete first, then the bus message.
//! Until its replay succeeds, this instance distrusts the Redis copies it
//! would have ended (that key, entries carrying that tag, the function): a
//! load neither reads nor writes them, so this instance's own answers stay
//! right while it is cut off.
//!
//! Operations coalesce (ten invalidations of one key are one). The set is
//! bounded (`DEFAULT_PENDING_LIMIT`); past it, everything pending is
//! replaced by one operation that ends every copy of the namespace (its
//! epoch, part of every key name, is bumped) and every tagged entry of the
//! fleet: overflow costs misses, never a lost invalidation.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The default bound of the operations kept for replay
/// ([`RuntimeBuilder::pending_limit`](super::RuntimeBuilder::pending_limit)).
pub(crate) const DEFAULT_PENDING_LIMIT: usize = 10_000;

/// One fleet operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Bump the key's version and delete its copy (`expire` or not, as the
    /// bus message says), then tell the fleet.
    Key {
        function: String,
        version: u32,
        key: Vec<u8>,
        /// How long the key's version outlives its bump.
        keep: Duration,
        expire: bool,
    },
    /// Bump a tag's version, then tell the fleet (`gone`: invalidated, else
    /// expired).
    Tag { tag: String, gone: bool },
    /// Bump a function's epoch (every copy of it ends), then tell the fleet.
    All { function: String, version: u32 },
    /// Bump the namespace's epoch (every copy ends) and tell the fleet to
    /// drop every distributed and tagged entry: what overflow escalates to.
    Everything,
}

/// What an operation coalesces by, and what a read checks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Key(String, u32, Vec<u8>),
    Tag(u128),
    All(String, u32),
    Everything,
}

impl Op {
    fn target(&self) -> Target {
        match self {
            Op::Key {
                function,
                version,
                key,
                ..
            } => Target::Key(function.clone(), *version, key.clone()),
            Op::Tag { tag, .. } => Target::Tag(super::tag_digest(tag)),
            Op::All { function, version } => Target::All(function.clone(), *version),
            Op::Everything => Target::Everything,
        }
    }

    /// `self` merged with a newer operation on the same target: an
    /// invalidation wins over an expiry.
    fn merge(&mut self, newer: Op) {
        match (self, newer) {
            (
                Op::Key { expire, keep, .. },
                Op::Key {
                    expire: e, keep: k, ..
                },
            ) => {
                *expire &= e;
                *keep = (*keep).max(k);
            }
            (Op::Tag { gone, .. }, Op::Tag { gone: g, .. }) => *gone |= g,
            _ => {}
        }
    }

    /// The function an operation is about (for logs: never key text).
    pub(crate) fn function(&self) -> Option<&str> {
        match self {
            Op::Key { function, .. } | Op::All { function, .. } => Some(function),
            Op::Tag { .. } | Op::Everything => None,
        }
    }
}

/// A kept operation: where it stands in the order, and how often it was
/// renewed (a replay that started before a renewal does not settle it).
struct Kept {
    seq: u64,
    generation: u64,
    op: Op,
}

#[derive(Default)]
struct Queue {
    next_seq: u64,
    order: BTreeMap<u64, Target>,
    kept: HashMap<Target, Kept>,
}

/// The operations kept for replay, in order.
pub(crate) struct Pending {
    queue: Mutex<Queue>,
    /// How many are kept: the read path's one check while none is.
    count: AtomicUsize,
    limit: usize,
}

/// The next operation to replay, and what settles it.
pub(crate) struct Next {
    pub(crate) op: Op,
    target: Target,
    generation: u64,
}

/// What [`Pending::keep`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// The first pending operation: the outage begins.
    First,
    More,
    /// The bound was reached: everything pending became one
    /// [`Op::Everything`].
    Overflowed,
}

impl Pending {
    pub(crate) fn new(limit: usize) -> Self {
        Pending {
            queue: Mutex::new(Queue::default()),
            count: AtomicUsize::new(0),
            limit: limit.max(1),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Operations not yet replayed.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Keeps `op` for replay, merged into one pending on the same target.
    pub(crate) fn keep(&self, op: Op) -> Queued {
        let mut queue = self.queue();
        let was_empty = queue.kept.is_empty();
        let target = op.target();
        let mut overflowed = false;
        if let Some(kept) = queue.kept.get_mut(&target) {
            kept.op.merge(op);
            kept.generation += 1;
        } else if queue.kept.contains_key(&Target::Everything) {
            // Everything ends anyway once that replays.
        } else if queue.kept.len() >= self.limit {
            queue.kept.clear();
            queue.order.clear();
            Self::push(&mut queue, Target::Everything, Op::Everything);
            overflowed = true;
        } else {
            Self::push(&mut queue, target, op);
        }
        self.count.store(queue.kept.len(), Ordering::Release);
        match (overflowed, was_empty) {
            (true, _) => Queued::Overflowed,
            (false, true) => Queued::First,
            (false, false) => Queued::More,
        }
    }

    fn push(queue: &mut Queue, target: Target, op: Op) {
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.order.insert(seq, target.clone());
        queue.kept.insert(
            target,
            Kept {
                seq,
                generation: 0,
                op,
            },
        );
    }

    /// The oldest operation, left in place until [`settle`](Self::settle).
    pub(crate) fn next(&self) -> Option<Next> {
        let queue = self.queue();
        let (_, target) = queue.order.iter().next()?;
        let kept = &queue.kept[target];
        Some(Next {
            op: kept.op.clone(),
            target: target.clone(),
            generation: kept.generation,
        })
    }

    /// `next` was replayed: it is done unless it was renewed meanwhile (then
    /// it goes to the back, to be replayed again). True when none is left.
    pub(crate) fn settle(&self, next: &Next) -> bool {
        let mut queue = self.queue();
        if let Some(kept) = queue.kept.get(&next.target) {
            let seq = kept.seq;
            if kept.generation == next.generation {
                queue.kept.remove(&next.target);
                queue.order.remove(&seq);
            } else {
                queue.order.remove(&seq);
                let seq = queue.next_seq;
                queue.next_seq += 1;
                queue.order.insert(seq, next.target.clone());
                if let Some(kept) = queue.kept.get_mut(&next.target) {
                    kept.seq = seq;
                }
            }
        }
        self.count.store(queue.kept.len(), Ordering::Release);
        queue.kept.is_empty()
    }

    /// Whether a load of `function`'s key (these bytes) carrying tags with
    /// these digests must not use the Redis copy: an operation that would
    /// end it is pending.
    pub(crate) fn distrusts(
        &self,
        function: &str,
        version: u32,
        key: &[u8],
        tags: &[u128],
    ) -> bool {
        if self.len() == 0 {
            return false;
        }
        let queue = self.queue();
        let kept = &queue.kept;
        kept.contains_key(&Target::Everything)
            || kept.contains_key(&Target::All(function.to_owned(), version))
            || kept.contains_key(&Target::Key(function.to_owned(), version, key.to_vec()))
            || tags.iter().any(|tag| kept.contains_key(&Target::Tag(*tag)))
    }

    /// How many are pending, by function (`None`: tags and the namespace).
    pub(crate) fn by_function(&self) -> Vec<(Option<String>, usize)> {
        let queue = self.queue();
        let mut counts: BTreeMap<Option<String>, usize> = BTreeMap::new();
        for kept in queue.kept.values() {
            *counts
                .entry(kept.op.function().map(str::to_owned))
                .or_default() += 1;
        }
        counts.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8, expire: bool) -> Op {
        Op::Key {
            function: "f".into(),
            version: 1,
            key: vec![n],
            keep: Duration::from_secs(1),
            expire,
        }
    }

    #[test]
    fn operations_on_one_target_coalesce_and_an_invalidation_wins() {
        let pending = Pending::new(100);
        assert_eq!(pending.keep(key(1, true)), Queued::First);
        for _ in 0..10 {
            assert_eq!(pending.keep(key(1, false)), Queued::More);
        }
        assert_eq!(pending.len(), 1);
        let next = pending.next().unwrap();
        assert_eq!(next.op, key(1, false), "the invalidation won");
        assert!(pending.distrusts("f", 1, &[1], &[]));
        assert!(!pending.distrusts("f", 1, &[2], &[]));
        assert!(!pending.distrusts("g", 1, &[1], &[]));
        assert!(pending.settle(&next));
        assert_eq!(pending.len(), 0);
        assert!(!pending.distrusts("f", 1, &[1], &[]));
    }

    #[test]
    fn a_renewal_during_a_replay_is_replayed_again() {
        let pending = Pending::new(100);
        pending.keep(key(1, false));
        pending.keep(key(2, false));
        let next = pending.next().unwrap();
        pending.keep(key(1, false));
        assert!(!pending.settle(&next));
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.next().unwrap().op, key(2, false), "in order");
        let second = pending.next().unwrap();
        assert!(!pending.settle(&second));
        let third = pending.next().unwrap();
        assert_eq!(third.op, key(1, false), "the renewed one, again");
        assert!(pending.settle(&third));
    }

    #[test]
    fn overflow_becomes_one_operation_that_ends_everything() {
        let pending = Pending::new(3);
        for n in 0..3 {
            pending.keep(key(n, false));
        }
        pending.keep(Op::Tag {
            tag: "t".into(),
            gone: true,
        });
        assert_eq!(pending.len(), 1);
        assert_eq!(pending.next().unwrap().op, Op::Everything);
        // Anything else is covered by it, and every copy is distrusted.
        assert_eq!(pending.keep(key(9, false)), Queued::More);
        assert_eq!(pending.len(), 1);
        assert!(pending.distrusts("any", 7, &[4], &[]));
    }

    #[test]
    fn tags_and_functions_are_distrusted_while_pending() {
        let pending = Pending::new(100);
        pending.keep(Op::Tag {
            tag: "user:1".into(),
            gone: false,
        });
        pending.keep(Op::All {
            function: "g".into(),
            version: 2,
        });
        let tag = super::super::tag_digest("user:1");
        assert!(pending.distrusts("f", 1, &[1], &[7, tag]));
        assert!(!pending.distrusts("f", 1, &[1], &[7]));
        assert!(pending.distrusts("g", 2, &[1], &[]));
        assert!(!pending.distrusts("g", 3, &[1], &[]));
        assert_eq!(
            pending.by_function(),
            vec![(None, 1), (Some("g".to_owned()), 1)]
        );
    }
}
