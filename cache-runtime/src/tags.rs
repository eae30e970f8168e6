//! Tags: names an entry carries (`"user:42"`) so that one call drops every
//! entry of every function that carries it.
//!
//! A tag is a *version*, never a scan. The process holds one slot per tag
//! in use, with a version counter; invalidating or expiring the tag bumps
//! it (O(1)). A load reads the versions of its tags before its loader runs
//! and its entry keeps them as [`Stamps`]: a read compares each with the
//! slot's current version (one atomic load per tag, no hashing, no
//! allocation) and the entry is dead once one of them moved. So a value
//! whose load began before an invalidation can never be served after it,
//! whether it was stored before, during or after the invalidation.
//!
//! The two verbs differ in a second counter: `gone_below`. Invalidation
//! moves it with the version, so every older stamp is *gone* (never served,
//! not even as a fail-safe fallback); expiry moves only the version, so an
//! older stamp is *expired* (stale at once, kept for swr and fail-safe).
//!
//! Bookkeeping is bounded: a sweep, run when the number of tags has doubled
//! since the last one, forgets every tag that no load holds (`loading`) and
//! no stored entry can still be served under (`live_until`, the end of the
//! longest life any entry stamped with it was given). Forgetting bumps the
//! slot's version and `gone_below` before the slot is reused, so a stamp of
//! a forgotten tag can only ever read as gone: a sweep may cost a miss,
//! never a stale value. Versions only grow, so no stamp comes back to life.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use crate::clock::Nanos;

/// Bits of a [`Stamp`] that hold the version; the rest hold the slot.
const VERSION_BITS: u32 = 40;
const VERSION_MASK: u64 = (1 << VERSION_BITS) - 1;
/// Slots the process can hold at once (2^24, 16 M tags).
const MAX_SLOTS: u32 = 1 << (64 - VERSION_BITS);
/// Slots are made in chunks of `1 << CHUNK_BITS`.
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Enough chunks to hold [`MAX_SLOTS`] (the array of them is 64 KiB).
const CHUNKS: usize = (MAX_SLOTS as usize) >> CHUNK_BITS;
/// The slot every stamp that could not be taken points at: always gone.
const GONE_SLOT: u32 = 0;
/// Sweeps never run below this many tags.
const MIN_SWEEP: usize = 4096;

/// One tag's state.
#[derive(Debug, Default)]
struct TagSlot {
    /// Bumped by every invalidation and expiry of the tag.
    version: AtomicU64,
    /// A stamp below this version is gone, not merely expired.
    gone_below: AtomicU64,
    /// Loads that stamped this tag and have not finished.
    loading: AtomicU32,
    /// No entry stamped with this tag lives past this (process nanos).
    live_until: AtomicU64,
}

/// Slots in chunks that never move once made, so a read needs no lock:
/// two shifts, one pointer and one atomic load.
static CHUNK_SLOTS: [OnceLock<Box<[TagSlot; CHUNK]>>; CHUNKS] = [const { OnceLock::new() }; CHUNKS];

#[inline(always)]
fn slot_of(slot: u32) -> Option<&'static TagSlot> {
    let chunk = CHUNK_SLOTS.get((slot >> CHUNK_BITS) as usize)?.get()?;
    Some(&chunk[slot as usize & (CHUNK - 1)])
}

/// `slot`, making its chunk if needed (under the names' lock).
fn make_slot(slot: u32) -> &'static TagSlot {
    let chunk = CHUNK_SLOTS[(slot >> CHUNK_BITS) as usize].get_or_init(|| {
        let slots: Box<[TagSlot]> = (0..CHUNK).map(|_| TagSlot::default()).collect();
        slots.try_into().expect("a chunk holds CHUNK slots")
    });
    &chunk[slot as usize & (CHUNK - 1)]
}

/// Which slot each tag in use has, by isolation scope and name.
struct Names {
    by_name: HashMap<(u64, Box<str>), u32>,
    free: Vec<u32>,
    next: u32,
    sweep_at: usize,
    /// When every slot was last found taken and a sweep ran for it.
    exhausted_sweep: Nanos,
}

static NAMES: LazyLock<Mutex<Names>> = LazyLock::new(|| {
    // The slot of stamps that could not be taken: gone from the start.
    let gone = make_slot(GONE_SLOT);
    gone.gone_below.store(1, Ordering::Release);
    gone.version.store(1, Ordering::Release);
    Mutex::new(Names {
        by_name: HashMap::new(),
        free: Vec::new(),
        next: GONE_SLOT + 1,
        sweep_at: MIN_SWEEP,
        exhausted_sweep: 0,
    })
});

fn names() -> MutexGuard<'static, Names> {
    // Nothing panics while the lock is held but allocation; the map is
    // consistent between statements.
    NAMES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Now, in the process nanos `live_until` is kept in.
fn process_now() -> Nanos {
    crate::clock::nanos_since_epoch(Instant::now())
}

impl Names {
    /// The slot of `name`, made if it has none; `None` when every slot is
    /// taken by a tag in use.
    fn slot(&mut self, scope: u64, name: &str) -> Option<u32> {
        // Looked up by a borrowed key first: a hit allocates nothing.
        if let Some(&slot) = self.by_name.get(&(scope, name) as &dyn NameKey) {
            return Some(slot);
        }
        if self.by_name.len() >= self.sweep_at {
            self.sweep();
        }
        if self.free.is_empty() && self.next == MAX_SLOTS {
            // Every slot taken: sweep now (at most once a second, as a
            // sweep of 16 M tags is slow), else this tag gets no slot.
            let now = process_now();
            if now.saturating_sub(self.exhausted_sweep) >= 1_000_000_000 {
                self.exhausted_sweep = now;
                self.sweep();
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.next < MAX_SLOTS => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        // A reused slot was bumped past every stamp of its last tag when
        // it was freed; its state restarts from there.
        let state = make_slot(slot);
        state.live_until.store(0, Ordering::Relaxed);
        self.by_name.insert((scope, name.into()), slot);
        Some(slot)
    }

    /// Forgets every tag no load holds and no live entry carries.
    fn sweep(&mut self) {
        let now = process_now();
        let free = &mut self.free;
        self.by_name.retain(|_, &mut slot| {
            let state = make_slot(slot);
            let held = state.loading.load(Ordering::Acquire) > 0
                || state.live_until.load(Ordering::Acquire) > now;
            if !held {
                bump(state, true);
                free.push(slot);
            }
            held
        });
        self.sweep_at = (self.by_name.len() * 2).clamp(MIN_SWEEP, MAX_SLOTS as usize);
    }
}

/// Moves the version of `state`: every stamp taken before is expired, or
/// gone when `gone`. The caller holds the names' lock.
fn bump(state: &TagSlot, gone: bool) {
    let next = (state.version.load(Ordering::Relaxed) + 1) & VERSION_MASK;
    if gone {
        // Before the version: a read that sees the new version sees this.
        state.gone_below.store(next, Ordering::Release);
    }
    // Sequentially consistent, as its loads on the read path: a call that
    // starts after the bump returned reads it.
    state.version.store(next, Ordering::SeqCst);
}

/// A map key that a `(u64, &str)` can look up without allocating.
trait NameKey {
    fn parts(&self) -> (u64, &str);
}

impl NameKey for (u64, Box<str>) {
    fn parts(&self) -> (u64, &str) {
        (self.0, &self.1)
    }
}

impl NameKey for (u64, &str) {
    fn parts(&self) -> (u64, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn NameKey + 'a> for (u64, Box<str>) {
    fn borrow(&self) -> &(dyn NameKey + 'a) {
        self
    }
}

impl PartialEq for dyn NameKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn NameKey + '_ {}

impl std::hash::Hash for dyn NameKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the tuple `(u64, Box<str>)` hashes: field by field.
        let (scope, name) = self.parts();
        scope.hash(state);
        name.hash(state);
    }
}

/// What reading an entry's stamps finds, worst tag first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TagState {
    /// No tag moved since the load began.
    Current,
    /// A tag was expired since: stale at once.
    Expired,
    /// A tag was invalidated (or forgotten) since: never served.
    Gone,
}

/// A tag's slot and the version it had when a load began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp(u64);

impl Stamp {
    fn new(slot: u32, version: u64) -> Self {
        Stamp((u64::from(slot) << VERSION_BITS) | (version & VERSION_MASK))
    }

    fn slot(self) -> u32 {
        (self.0 >> VERSION_BITS) as u32
    }

    fn version(self) -> u64 {
        self.0 & VERSION_MASK
    }

    #[inline(always)]
    fn state(self) -> TagState {
        let Some(slot) = slot_of(self.slot()) else {
            return TagState::Gone;
        };
        if slot.version.load(Ordering::SeqCst) == self.version() {
            TagState::Current
        } else if self.version() < slot.gone_below.load(Ordering::Acquire) {
            TagState::Gone
        } else {
            TagState::Expired
        }
    }
}

/// The versions of an entry's tags when its load began. Most entries carry
/// none, one or two tags, held inline: a hit clones the entry, and cloning
/// these must not allocate (nor touch a shared reference count).
#[derive(Clone, Debug, Default)]
pub(crate) enum Stamps {
    #[default]
    None,
    One(Stamp),
    Two(Stamp, Stamp),
    Many(Arc<[Stamp]>),
}

impl Stamps {
    /// The state of the entry's tags: the worst of them. An untagged entry
    /// pays one comparison; one or two tags, one atomic load each, inline.
    #[inline(always)]
    pub(crate) fn state(&self) -> TagState {
        match self {
            Stamps::None => TagState::Current,
            Stamps::One(a) => a.state(),
            Stamps::Two(a, b) => a.state().max(b.state()),
            Stamps::Many(all) => state_of_many(all),
        }
    }

    /// Whether a tag moved since these versions were read. A stamp that
    /// could not be taken (no slot left) never moved: a load stamped so
    /// still gathers its callers, though its value is never stored.
    pub(crate) fn moved(&self) -> bool {
        self.iter()
            .any(|stamp| stamp.slot() != GONE_SLOT && stamp.state() != TagState::Current)
    }

    /// An entry stamped so may be served for `lifetime` more nanos: its
    /// tags are not forgotten before.
    pub(crate) fn keep_for(&self, lifetime: Nanos) {
        if matches!(self, Stamps::None) {
            return;
        }
        let until = process_now().saturating_add(lifetime);
        for stamp in self.iter() {
            if let Some(slot) = slot_of(stamp.slot()) {
                slot.live_until.fetch_max(until, Ordering::AcqRel);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = Stamp> + '_ {
        let (inline, many): ([Option<Stamp>; 2], &[Stamp]) = match self {
            Stamps::None => ([None, None], &[]),
            Stamps::One(a) => ([Some(*a), None], &[]),
            Stamps::Two(a, b) => ([Some(*a), Some(*b)], &[]),
            Stamps::Many(all) => ([None, None], all),
        };
        inline.into_iter().flatten().chain(many.iter().copied())
    }
}

#[inline(never)]
fn state_of_many(all: &[Stamp]) -> TagState {
    all.iter()
        .map(|stamp| stamp.state())
        .max()
        .unwrap_or(TagState::Current)
}

/// The tags a call's load will carry, named; see [`LoadHooks::tags`](crate::LoadHooks::tags).
#[derive(Clone, Debug, Default)]
pub struct Tags(Vec<String>);

impl Tags {
    /// No tags.
    pub fn new() -> Self {
        Tags(Vec::new())
    }

    /// Adds one tag.
    pub fn push(&mut self, tag: impl Into<String>) {
        self.0.push(tag.into());
    }

    /// Adds a tag expression's tags: one tag (`String`, `&str`), or any
    /// iterable of them (`Vec<String>`, `Option<&str>`, `[&str; 2]`).
    pub fn add<T: TagSource>(&mut self, source: T) {
        source.add_to(self);
    }

    /// Adds every tag of `other`.
    pub(crate) fn append(&mut self, mut other: Tags) {
        if self.0.is_empty() {
            self.0 = other.0;
        } else {
            self.0.append(&mut other.0);
        }
    }

    /// The tag names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Reads the versions of these tags now, for a load about to begin,
    /// and holds them so that no sweep forgets them until the load is over.
    pub(crate) fn stamp(&self, scope: u64) -> Pinned {
        if self.0.is_empty() {
            return Pinned(Stamps::None);
        }
        let mut names = names();
        let mut stamps: Vec<Stamp> = Vec::with_capacity(self.0.len());
        for name in &self.0 {
            // No slot left: a stamp that is gone at once, so the value
            // answers its callers but is never served from the cache.
            let slot = names.slot(scope, name).unwrap_or(GONE_SLOT);
            if stamps.iter().any(|stamp| stamp.slot() == slot) {
                continue;
            }
            let version = if slot == GONE_SLOT {
                0
            } else {
                let state = make_slot(slot);
                state.loading.fetch_add(1, Ordering::AcqRel);
                state.version.load(Ordering::Acquire)
            };
            stamps.push(Stamp::new(slot, version));
        }
        drop(names);
        Pinned(match stamps.as_slice() {
            [a] => Stamps::One(*a),
            [a, b] => Stamps::Two(*a, *b),
            _ => Stamps::Many(stamps.into()),
        })
    }
}

/// One tag or several: what a `tags = [expr]` expression may yield.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tag",
    label = "a tag expression yields a `String` or `&str`, or an iterable of them",
    note = "to make a tag of a value, write a template: `\"org:{{org_id}}\"`"
)]
pub trait TagSource {
    /// Adds the tags to `tags`.
    fn add_to(self, tags: &mut Tags);
}

macro_rules! one_tag {
    ($($ty:ty),*) => {$(
        impl TagSource for $ty {
            fn add_to(self, tags: &mut Tags) {
                tags.push(<str as ToOwned>::to_owned(AsRef::<str>::as_ref(&self)));
            }
        }
    )*};
}

one_tag!(
    &str,
    &&str,
    &String,
    &Box<str>,
    Box<str>,
    Arc<str>,
    std::borrow::Cow<'_, str>
);

impl TagSource for String {
    fn add_to(self, tags: &mut Tags) {
        tags.push(self);
    }
}

macro_rules! many_tags {
    ($([$($generics:tt)*] $ty:ty),*) => {$(
        impl<$($generics)*> TagSource for $ty {
            fn add_to(self, tags: &mut Tags) {
                for tag in self {
                    tag.add_to(tags);
                }
            }
        }
    )*};
}

many_tags!(
    [T: TagSource] Vec<T>,
    [T: TagSource, const N: usize] [T; N],
    [T: TagSource, S] std::collections::HashSet<T, S>,
    [T: TagSource] std::collections::BTreeSet<T>
);

impl<T: TagSource> TagSource for Option<T> {
    fn add_to(self, tags: &mut Tags) {
        if let Some(tag) = self {
            tag.add_to(tags);
        }
    }
}

impl<'a, T> TagSource for &'a [T]
where
    &'a T: TagSource,
{
    fn add_to(self, tags: &mut Tags) {
        for tag in self {
            tag.add_to(tags);
        }
    }
}

impl<'a, T> TagSource for &'a Vec<T>
where
    &'a T: TagSource,
{
    fn add_to(self, tags: &mut Tags) {
        self.as_slice().add_to(tags);
    }
}

/// The stamps of a running load, holding their tags against a sweep until
/// the load is over.
#[derive(Debug, Default)]
pub(crate) struct Pinned(Stamps);

impl Pinned {
    pub(crate) fn stamps(&self) -> &Stamps {
        &self.0
    }

    /// See [`Stamps::keep_for`].
    pub(crate) fn keep_for(&self, lifetime: Nanos) {
        self.0.keep_for(lifetime);
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for stamp in self.0.iter() {
            if stamp.slot() == GONE_SLOT {
                continue;
            }
            if let Some(slot) = slot_of(stamp.slot()) {
                slot.loading.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Ends every tagged entry, of every scope: bus messages may have been
/// lost, so any tag may have moved elsewhere. (The bus's; a build
/// without the shared tier has none.)
#[allow(dead_code)]
pub(crate) fn bump_all() {
    let names = names();
    for &slot in names.by_name.values() {
        bump(make_slot(slot), true);
    }
}

/// Invalidates (`gone`) or expires `tags` in the caller's isolation scope,
/// in this process's memory.
pub(crate) fn bump_tags<I>(tags: I, gone: bool)
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    bump_tags_of(crate::isolation::current_isolation(), tags, gone);
}

/// Invalidates (`gone`) or expires `tags` of isolation `scope`: the
/// caller's, or the process's (0) for what another instance asked over the
/// bus.
pub(crate) fn bump_tags_of<I>(scope: u64, tags: I, gone: bool)
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let names = names();
    for tag in tags {
        // A tag no load ever stamped (or one forgotten) has no entry to end.
        if let Some(&slot) = names.by_name.get(&(scope, tag.as_ref()) as &dyn NameKey) {
            bump(make_slot(slot), gone);
        }
    }
}

/// Tags currently remembered, for tests of the bookkeeping.
#[cfg(test)]
pub(crate) fn remembered() -> usize {
    names().by_name.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_its_own_place() {
        let last = make_slot(MAX_SLOTS - 1);
        let first_of_chunk = make_slot(MAX_SLOTS - CHUNK as u32);
        assert!(!std::ptr::eq(last, first_of_chunk));
        assert!(std::ptr::eq(slot_of(MAX_SLOTS - 1).unwrap(), last));
        assert!(slot_of(MAX_SLOTS).is_none());
    }

    #[test]
    fn a_stamp_reads_current_then_expired_then_gone() {
        let mut tags = Tags::new();
        tags.push("tags-unit:a");
        let pinned = tags.stamp(u64::MAX);
        assert_eq!(pinned.stamps().state(), TagState::Current);
        bump_tags_in(u64::MAX, "tags-unit:a", false);
        assert_eq!(pinned.stamps().state(), TagState::Expired);
        bump_tags_in(u64::MAX, "tags-unit:a", true);
        assert_eq!(pinned.stamps().state(), TagState::Gone);
        // Expiring after an invalidation does not bring it back.
        bump_tags_in(u64::MAX, "tags-unit:a", false);
        assert_eq!(pinned.stamps().state(), TagState::Gone);
        // A new load of the tag is current again.
        assert_eq!(tags.stamp(u64::MAX).stamps().state(), TagState::Current);
    }

    #[test]
    fn a_sweep_forgets_only_tags_nothing_holds_and_never_revives_a_stamp() {
        let scope = u64::MAX - 1;
        let mut held = Tags::new();
        held.push("tags-unit:held");
        let held = held.stamp(scope);
        let mut kept = Tags::new();
        kept.push("tags-unit:kept");
        let kept_pin = kept.stamp(scope);
        kept_pin.keep_for(u64::MAX / 4);
        let kept_stamps = kept_pin.stamps().clone();
        drop(kept_pin);
        let mut idle = Tags::new();
        idle.push("tags-unit:idle");
        let idle_stamps = idle.stamp(scope).stamps().clone();
        names().sweep();
        let after = names();
        assert!(after
            .by_name
            .contains_key(&(scope, "tags-unit:held") as &dyn NameKey));
        assert!(after
            .by_name
            .contains_key(&(scope, "tags-unit:kept") as &dyn NameKey));
        assert!(!after
            .by_name
            .contains_key(&(scope, "tags-unit:idle") as &dyn NameKey));
        drop(after);
        assert_eq!(held.stamps().state(), TagState::Current);
        assert_eq!(kept_stamps.state(), TagState::Current);
        // The forgotten tag's stamp is gone, and stays gone when its slot
        // is reused by another tag.
        assert_eq!(idle_stamps.state(), TagState::Gone);
        let mut other = Tags::new();
        other.push("tags-unit:reuses-the-slot");
        let other = other.stamp(scope);
        assert_eq!(idle_stamps.state(), TagState::Gone);
        assert_eq!(other.stamps().state(), TagState::Current);
        assert!(remembered() >= 3);
    }

    #[test]
    fn tags_nothing_holds_are_forgotten_so_bookkeeping_stays_bounded() {
        let scope = u64::MAX - 2;
        for n in 0..50_000 {
            let mut tags = Tags::new();
            tags.push(format!("tags-unit:once:{n}"));
            drop(tags.stamp(scope));
        }
        let remembered = remembered();
        assert!(remembered <= 2 * MIN_SWEEP, "{remembered} tags remembered");
    }

    fn bump_tags_in(scope: u64, tag: &str, gone: bool) {
        let names = names();
        let slot = names.by_name[&(scope, tag) as &dyn NameKey];
        bump(make_slot(slot), gone);
    }
}
