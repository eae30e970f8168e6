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
//! An entry with three tags or more is stamped with one *group* slot that
//! stands for the set: bumping a tag bumps every group it belongs to, the
//! same way (expired or gone). So every entry's stamps fit inline (none,
//! one or two), and a hit copies them without touching shared memory.
//!
//! Bookkeeping follows the cache, not the clock. A sweep, run when the
//! tags and groups remembered reach 1.25 times what the last sweep kept (and
//! at least [`MIN_SWEEP`]), walks the entries every tagged cache holds and
//! forgets each tag and group that no held entry carries and no running
//! load has stamped. So the process remembers at most 1.25 times the tags
//! (and groups) its held entries and running loads carry, or 4 096 if that
//! is more, whatever the ttls and however many distinct tags go by. A sweep
//! costs one pass over the tagged caches' entries (a clone of each, on
//! moka) each time a quarter as many new tags came as the last one kept.
//! Forgetting bumps the slot's version and `gone_below` before the slot is
//! reused, so a stamp of a forgotten tag can only ever read as gone: a
//! forgetting may cost a miss (an entry stored as a sweep passed it), never
//! a stale value. Versions only grow, so no stamp comes back to life.
//!
//! The slots are 2^24 (16 M). Past that many tags held by entries, the
//! ones no load holds are forgotten anyway, held or not: misses, never a
//! value that cannot be cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};

/// Bits of a [`Stamp`] that hold the version; the rest hold the slot.
const VERSION_BITS: u32 = 40;
const VERSION_MASK: u64 = (1 << VERSION_BITS) - 1;
/// Slots the process can hold at once (2^24, 16 M tags).
const MAX_SLOTS: u32 = 1 << (64 - VERSION_BITS);
/// Slots are made in chunks of `1 << CHUNK_BITS`.
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Enough chunks to hold [`MAX_SLOTS`] (the array of them is 256 KiB).
const CHUNKS: usize = (MAX_SLOTS as usize) >> CHUNK_BITS;
/// The slot every stamp that could not be taken points at: always gone.
const GONE_SLOT: u32 = 0;
/// Sweeps never run below this many tags and groups remembered.
pub(crate) const MIN_SWEEP: usize = 4096;

/// One tag's (or group's) state.
#[derive(Debug, Default)]
struct TagSlot {
    /// Bumped by every invalidation and expiry of the tag.
    version: AtomicU64,
    /// A stamp below this version is gone, not merely expired.
    gone_below: AtomicU64,
    /// Loads that stamped this tag and have not finished.
    loading: AtomicU32,
    /// The last sweep generation in which a load finished with the tag, or
    /// a sweep found it on a held entry: a sweep forgets only what it
    /// neither found nor saw finish while it looked.
    marked: AtomicU32,
}

/// Slots in chunks that never move once made, so a read needs no lock:
/// two shifts, one pointer and one atomic load.
static CHUNK_SLOTS: [OnceLock<Box<[TagSlot; CHUNK]>>; CHUNKS] = [const { OnceLock::new() }; CHUNKS];

/// The sweep generation: each sweep takes the next one.
/// (A `u32`: a sweep a second would take 136 years to wrap it.)
static GENERATION: AtomicU32 = AtomicU32::new(1);

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

/// Which slot each tag in use has, by the fingerprint of its isolation
/// scope and name, and which slot each group of tags has.
///
/// A tag is known by a 64-bit fingerprint, not by its name: no allocation
/// per tag, 16 bytes in the map. Two tags whose fingerprints collide (keyed
/// per process, so no one can aim for it) share a slot: invalidating either
/// ends the entries of both. A miss, never a stale value.
struct Names {
    by_name: HashMap<u64, u32>,
    /// Groups of three tags or more, by their members' slots (sorted).
    groups: HashMap<Arc<[u32]>, u32>,
    /// Each group's members, by the group's slot.
    members: HashMap<u32, Arc<[u32]>>,
    /// The groups of each tag, by the tag's slot. A group forgotten may
    /// stay listed until the next sweep: bumping it then costs a miss to
    /// whatever reuses its slot, never a stale value.
    member_of: HashMap<u32, Vec<u32>>,
    free: Vec<u32>,
    next: u32,
    /// Slots never handed out reach this (below [`MAX_SLOTS`] in tests).
    limit: u32,
    sweep_at: usize,
    /// A sweep is walking the caches (outside this lock).
    sweeping: bool,
}

static NAMES: LazyLock<Mutex<Names>> = LazyLock::new(|| {
    // The slot of stamps that could not be taken: gone from the start.
    let gone = make_slot(GONE_SLOT);
    gone.gone_below.store(1, Ordering::Release);
    gone.version.store(1, Ordering::Release);
    Mutex::new(Names::starting_at(GONE_SLOT + 1, MAX_SLOTS))
});

fn names() -> MutexGuard<'static, Names> {
    // Nothing panics while the lock is held but allocation (a walk over the
    // caches under it catches a value's panicking `Clone`); the maps are
    // consistent between statements.
    NAMES.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Names {
    fn starting_at(next: u32, limit: u32) -> Self {
        Names {
            by_name: HashMap::new(),
            groups: HashMap::new(),
            members: HashMap::new(),
            member_of: HashMap::new(),
            free: Vec::new(),
            next,
            limit,
            sweep_at: MIN_SWEEP,
            sweeping: false,
        }
    }

    /// Tags and groups remembered.
    fn remembered(&self) -> usize {
        self.by_name.len() + self.members.len()
    }

    /// The slot of `name`, made if it has none; `None` only when every
    /// slot is held by a running load.
    fn slot(&mut self, scope: u64, name: &str) -> Option<u32> {
        let fingerprint = fingerprint(scope, name);
        if let Some(&slot) = self.by_name.get(&fingerprint) {
            return Some(slot);
        }
        let slot = self.take_slot()?;
        self.by_name.insert(fingerprint, slot);
        Some(slot)
    }

    /// The group slot of these tag slots (sorted, three or more), made if
    /// they have none; `None` only when every slot is held by a load.
    fn group(&mut self, members: &[u32]) -> Option<u32> {
        if let Some(&group) = self.groups.get(members) {
            return Some(group);
        }
        // The members are held by the caller's load: taking a slot never
        // forgets them.
        let group = self.take_slot()?;
        let members: Arc<[u32]> = members.into();
        for &member in members.iter() {
            self.member_of.entry(member).or_default().push(group);
        }
        self.groups.insert(Arc::clone(&members), group);
        self.members.insert(group, members);
        Some(group)
    }

    /// A free slot: one forgotten, or one never used; when every slot is
    /// taken, a sweep first, then whatever no load holds.
    fn take_slot(&mut self) -> Option<u32> {
        if let Some(slot) = self.take_free() {
            return Some(slot);
        }
        let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
        if mark_held(generation) {
            self.forget_unheld(generation);
        }
        if self.free.is_empty() {
            // More tags held by entries than slots: forget a sixteenth of
            // them (misses, never stale), so no new value goes uncached.
            self.forget_any(self.remembered() / 16 + 1);
        }
        self.take_free()
    }

    fn take_free(&mut self) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.next < self.limit => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        // A reused slot was bumped past every stamp of its last tag when
        // it was freed; its state restarts from there.
        make_slot(slot).marked.store(0, Ordering::Relaxed);
        Some(slot)
    }

    /// Whether a sweep is due: then it is marked as running, and the
    /// generation it is to mark with is returned.
    fn sweep_due(&mut self) -> Option<u32> {
        if self.sweeping || self.remembered() < self.sweep_at {
            return None;
        }
        self.sweeping = true;
        Some(GENERATION.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Forgets every tag and group that no load holds and that was neither
    /// found on a held entry nor released by a load in `generation`.
    fn forget_unheld(&mut self, generation: u32) {
        let held = |slot: u32| {
            let state = make_slot(slot);
            state.loading.load(Ordering::Acquire) > 0
                || state.marked.load(Ordering::Acquire) >= generation
        };
        // Groups first: a group kept keeps its members.
        let mut groups_gone = Vec::new();
        for (&group, members) in &self.members {
            if held(group) {
                for &member in members.iter() {
                    make_slot(member)
                        .marked
                        .fetch_max(generation, Ordering::AcqRel);
                }
            } else {
                groups_gone.push(group);
            }
        }
        for group in groups_gone {
            self.forget_group(group);
        }
        let mut tags_gone = Vec::new();
        self.by_name.retain(|_, &mut slot| {
            let keep = held(slot);
            if !keep {
                tags_gone.push(slot);
            }
            keep
        });
        for slot in tags_gone {
            self.forget_tag(slot);
        }
        // Lists of groups lose the groups forgotten.
        let members = &self.members;
        self.member_of.retain(|member, groups| {
            groups.retain(|group| {
                members
                    .get(group)
                    .is_some_and(|of| of.binary_search(member).is_ok())
            });
            !groups.is_empty()
        });
        self.sweep_at = next_sweep_at(self.remembered());
    }

    /// Forgets up to `count` tags no load holds, whatever entries hold them.
    fn forget_any(&mut self, count: usize) {
        let mut tags_gone = Vec::new();
        self.by_name.retain(|_, &mut slot| {
            let idle =
                tags_gone.len() < count && make_slot(slot).loading.load(Ordering::Acquire) == 0;
            if idle {
                tags_gone.push(slot);
            }
            !idle
        });
        for slot in tags_gone {
            self.forget_tag(slot);
        }
    }

    /// Frees the slot of a tag already out of `by_name`, and its groups.
    fn forget_tag(&mut self, slot: u32) {
        for group in self.member_of.remove(&slot).unwrap_or_default() {
            self.forget_group(group);
        }
        bump(make_slot(slot), true);
        self.free.push(slot);
    }

    /// Frees a group's slot (its stamps read as gone from now on).
    fn forget_group(&mut self, group: u32) {
        if let Some(members) = self.members.remove(&group) {
            self.groups.remove(&*members);
            bump(make_slot(group), true);
            self.free.push(group);
        }
    }

    /// Bumps a tag's slot and every group it belongs to.
    fn bump_tag(&self, slot: u32, gone: bool) {
        bump(make_slot(slot), gone);
        for &group in self.member_of.get(&slot).into_iter().flatten() {
            bump(make_slot(group), gone);
        }
    }
}

/// When the next sweep runs, `kept` being remembered now: once a quarter
/// more came, and never below [`MIN_SWEEP`].
fn next_sweep_at(kept: usize) -> usize {
    (kept + kept / 4).max(MIN_SWEEP)
}

/// Marks with `generation` every tag and group an entry held by a tagged
/// cache carries.
/// Whether the walk finished: a value's `Clone` (moka's iterator clones
/// each entry) that panics stops it, and is not the caller's panic; the
/// sweep then forgets nothing.
fn mark_held(generation: u32) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for holder in holders() {
            holder.each_stamps(&mut |stamps| stamps.mark(generation));
        }
    }))
    .is_ok()
}

/// Runs the sweep [`Names::sweep_due`] started: the walk over the caches
/// outside the names' lock (loads go on stamping meanwhile), the
/// forgetting under it.
fn sweep(generation: u32) {
    let walked = mark_held(generation);
    let mut names = names();
    if walked {
        names.forget_unheld(generation);
    } else {
        // Tried again once as many new tags came.
        names.sweep_at = next_sweep_at(names.remembered());
    }
    names.sweeping = false;
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

/// Whatever holds entries' stamps: a cache's memory tier. A sweep walks
/// each one registered.
pub(crate) trait HoldsStamps: Send + Sync {
    /// Calls `each` with the stamps of every entry held.
    fn each_stamps(&self, each: &mut dyn FnMut(&Stamps));
}

type Holders = Vec<(u64, Arc<dyn HoldsStamps>)>;

static HOLDERS: Mutex<Holders> = Mutex::new(Vec::new());
static NEXT_HOLDER: AtomicU64 = AtomicU64::new(1);

fn holders() -> Vec<Arc<dyn HoldsStamps>> {
    HOLDERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(_, holder)| Arc::clone(holder))
        .collect()
}

/// A cache's place among the holders a sweep walks: it leaves when this
/// drops (or is [`withdrawn`](Self::withdraw)).
#[derive(Debug, Default)]
pub(crate) struct HolderPlace {
    /// Registered or withdrawn: nothing more to do on a load.
    settled: AtomicBool,
    /// `Some(id)` once registered; `withdrawn` once left (for good).
    state: Mutex<PlaceState>,
}

#[derive(Debug, Default)]
struct PlaceState {
    id: Option<u64>,
    withdrawn: bool,
}

impl HolderPlace {
    /// Registers the holder `make` builds, the first time only (and never
    /// once withdrawn).
    pub(crate) fn register(&self, make: impl FnOnce() -> Arc<dyn HoldsStamps>) {
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.id.is_none() && !state.withdrawn {
            let id = NEXT_HOLDER.fetch_add(1, Ordering::Relaxed);
            let holder = make();
            HOLDERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((id, holder));
            state.id = Some(id);
        }
        self.settled.store(true, Ordering::Release);
    }

    /// Leaves the holders: a cache whose storage was released.
    pub(crate) fn withdraw(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.withdrawn = true;
        self.settled.store(true, Ordering::Release);
        if let Some(id) = state.id.take() {
            HOLDERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|(of, _)| *of != id);
        }
    }
}

impl Drop for HolderPlace {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// The fingerprint of tag `name` in isolation `scope`.
fn fingerprint(scope: u64, name: &str) -> u64 {
    static KEYED: LazyLock<std::hash::RandomState> = LazyLock::new(std::hash::RandomState::new);
    std::hash::BuildHasher::hash_one(&*KEYED, (scope, name))
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

/// A tag's (or group's) slot and the version it had when a load began.
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

/// The versions of an entry's tags when its load began: none, one or two
/// tags, or the group of three or more, always inline. A hit clones the
/// entry, and cloning these must not allocate nor touch a shared counter.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Stamps {
    #[default]
    None,
    One(Stamp),
    Two(Stamp, Stamp),
}

impl Stamps {
    /// The state of the entry's tags: the worst of them. An untagged entry
    /// pays one comparison; one or two tags (or a group), one atomic load
    /// each, inline.
    #[inline(always)]
    pub(crate) fn state(&self) -> TagState {
        match self {
            Stamps::None => TagState::Current,
            Stamps::One(a) => a.state(),
            Stamps::Two(a, b) => a.state().max(b.state()),
        }
    }

    /// Whether a tag moved since these versions were read. A stamp that
    /// could not be taken (no slot left) never moved: a load stamped so
    /// still gathers its callers, though its value is never stored.
    pub(crate) fn moved(&self) -> bool {
        self.iter()
            .any(|stamp| stamp.slot() != GONE_SLOT && stamp.state() != TagState::Current)
    }

    /// Marks the tags (or group) as held in sweep `generation`.
    fn mark(&self, generation: u32) {
        for stamp in self.iter() {
            if let Some(slot) = slot_of(stamp.slot()) {
                // Never back: a sweep that started later may have marked it.
                slot.marked.fetch_max(generation, Ordering::Relaxed);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = Stamp> {
        let stamps = match *self {
            Stamps::None => [None, None],
            Stamps::One(a) => [Some(a), None],
            Stamps::Two(a, b) => [Some(a), Some(b)],
        };
        stamps.into_iter().flatten()
    }
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
        // Each slot held by this load as soon as it is found: finding the
        // next one may take a sweep.
        let mut slots: Vec<u32> = Vec::with_capacity(self.0.len());
        for name in &self.0 {
            // No slot left: a stamp that is gone at once, so the value
            // answers its callers but is never served from the cache.
            let slot = names.slot(scope, name).unwrap_or(GONE_SLOT);
            if slots.contains(&slot) {
                continue;
            }
            if slot != GONE_SLOT {
                make_slot(slot).loading.fetch_add(1, Ordering::AcqRel);
            }
            slots.push(slot);
        }
        slots.sort_unstable();
        if slots.len() > 2 || slots.first() == Some(&GONE_SLOT) {
            let group = match slots.first() {
                Some(&GONE_SLOT) => GONE_SLOT,
                _ => names.group(&slots).unwrap_or(GONE_SLOT),
            };
            if group != GONE_SLOT {
                make_slot(group).loading.fetch_add(1, Ordering::AcqRel);
            }
            for &slot in slots.iter().filter(|&&slot| slot != GONE_SLOT) {
                make_slot(slot).loading.fetch_sub(1, Ordering::AcqRel);
            }
            slots = vec![group];
        }
        let stamps: Vec<Stamp> = slots
            .iter()
            .map(|&slot| match slot {
                GONE_SLOT => Stamp::new(GONE_SLOT, 0),
                _ => Stamp::new(slot, make_slot(slot).version.load(Ordering::Acquire)),
            })
            .collect();
        let due = names.sweep_due();
        drop(names);
        let pinned = Pinned(match stamps.as_slice() {
            [a, b] => Stamps::Two(*a, *b),
            [a, ..] => Stamps::One(*a),
            [] => Stamps::None,
        });
        if let Some(generation) = due {
            sweep(generation);
        }
        pinned
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
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Marked before released: a sweep walking the caches now may have
        // passed the entry this load stored, and must not forget its tags.
        let generation = GENERATION.load(Ordering::SeqCst);
        for stamp in self.0.iter() {
            if stamp.slot() == GONE_SLOT {
                continue;
            }
            if let Some(slot) = slot_of(stamp.slot()) {
                slot.marked.fetch_max(generation, Ordering::AcqRel);
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
    for &slot in names.by_name.values().chain(names.members.keys()) {
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
        if let Some(&slot) = names.by_name.get(&fingerprint(scope, tag.as_ref())) {
            names.bump_tag(slot, gone);
        }
    }
}

/// Tags (and groups of three or more) the process remembers now: at most
/// 1.25 times the tags that entries held and loads running carry, or 4 096
/// if that is more, whatever the ttls and however many distinct tags went
/// by. Each costs about 50 bytes.
pub fn remembered_tags() -> usize {
    names().remembered()
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
    fn stamps_are_plain_copies_so_a_hit_writes_no_shared_counter() {
        // `Copy`: no `Arc` (whose clone on every hit writes a counter every
        // reader shares) can hide in it, however many tags an entry has.
        fn plain<T: Copy>() {}
        plain::<Stamps>();
        assert!(std::mem::size_of::<Stamps>() <= 24);
    }

    fn tags(names: &[&str]) -> Tags {
        let mut tags = Tags::new();
        for name in names {
            tags.push(*name);
        }
        tags
    }

    #[test]
    fn a_stamp_reads_current_then_expired_then_gone() {
        let tags = tags(&["tags-unit:a"]);
        let pinned = tags.stamp(u64::MAX);
        assert_eq!(pinned.stamps().state(), TagState::Current);
        bump_tags_of(u64::MAX, ["tags-unit:a"], false);
        assert_eq!(pinned.stamps().state(), TagState::Expired);
        bump_tags_of(u64::MAX, ["tags-unit:a"], true);
        assert_eq!(pinned.stamps().state(), TagState::Gone);
        // Expiring after an invalidation does not bring it back.
        bump_tags_of(u64::MAX, ["tags-unit:a"], false);
        assert_eq!(pinned.stamps().state(), TagState::Gone);
        // A new load of the tag is current again.
        assert_eq!(tags.stamp(u64::MAX).stamps().state(), TagState::Current);
    }

    #[test]
    fn three_tags_or_more_share_one_inline_group_stamp_that_each_tag_moves() {
        let scope = u64::MAX - 3;
        let three = tags(&["tags-unit:g1", "tags-unit:g2", "tags-unit:g3"]);
        let first = three.stamp(scope).stamps().to_owned();
        assert!(matches!(first, Stamps::One(_)), "{first:?}");
        // The same set, in another order, is the same group.
        let again = tags(&["tags-unit:g3", "tags-unit:g1", "tags-unit:g2"])
            .stamp(scope)
            .stamps()
            .to_owned();
        assert_eq!(format!("{first:?}"), format!("{again:?}"));
        bump_tags_of(scope, ["tags-unit:g2"], false);
        assert_eq!(first.state(), TagState::Expired);
        let second = three.stamp(scope).stamps().to_owned();
        assert_eq!(second.state(), TagState::Current);
        bump_tags_of(scope, ["tags-unit:g3"], true);
        assert_eq!(first.state(), TagState::Gone);
        assert_eq!(second.state(), TagState::Gone);
        // A tag outside the set leaves it alone.
        let third = three.stamp(scope).stamps().to_owned();
        bump_tags_of(scope, ["tags-unit:g4"], true);
        assert_eq!(third.state(), TagState::Current);
    }

    /// Entries held, as a cache's tier would hold them.
    #[derive(Default)]
    struct Held(Mutex<Vec<Stamps>>);

    impl HoldsStamps for Held {
        fn each_stamps(&self, each: &mut dyn FnMut(&Stamps)) {
            for stamps in self.0.lock().unwrap().iter() {
                each(stamps);
            }
        }
    }

    #[test]
    fn a_sweep_forgets_only_tags_no_entry_or_load_holds_and_never_revives_a_stamp() {
        let _walks = WALKS.lock().unwrap_or_else(PoisonError::into_inner);
        let scope = u64::MAX - 1;
        let held = Arc::new(Held::default());
        let place = HolderPlace::default();
        place.register(|| Arc::clone(&held) as Arc<dyn HoldsStamps>);
        let loading = tags(&["tags-unit:loading"]).stamp(scope);
        let stored = tags(&["tags-unit:stored"]).stamp(scope).stamps().to_owned();
        let grouped = tags(&["tags-unit:m1", "tags-unit:m2", "tags-unit:m3"])
            .stamp(scope)
            .stamps()
            .to_owned();
        held.0.lock().unwrap().extend([stored, grouped]);
        let idle = tags(&["tags-unit:idle"]).stamp(scope).stamps().to_owned();
        let idle_group = tags(&["tags-unit:i1", "tags-unit:i2", "tags-unit:i3"])
            .stamp(scope)
            .stamps()
            .to_owned();
        let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
        mark_held(generation);
        names().forget_unheld(generation);
        let known = |name: &str| names().by_name.contains_key(&fingerprint(scope, name));
        assert!(known("tags-unit:loading"));
        assert!(known("tags-unit:stored"));
        // A held group keeps its members.
        assert!(known("tags-unit:m1") && known("tags-unit:m2") && known("tags-unit:m3"));
        assert!(!known("tags-unit:idle"));
        assert!(!known("tags-unit:i1"));
        assert_eq!(loading.stamps().state(), TagState::Current);
        assert_eq!(stored.state(), TagState::Current);
        assert_eq!(grouped.state(), TagState::Current);
        // What was forgotten reads as gone, and stays gone when its slot
        // is reused by another tag.
        assert_eq!(idle.state(), TagState::Gone);
        assert_eq!(idle_group.state(), TagState::Gone);
        let reuse = tags(&["tags-unit:reuses-a-slot"]).stamp(scope);
        let reuse_too = tags(&["tags-unit:reuses-another"]).stamp(scope);
        assert_eq!(idle.state(), TagState::Gone);
        assert_eq!(idle_group.state(), TagState::Gone);
        assert_eq!(reuse.stamps().state(), TagState::Current);
        assert_eq!(reuse_too.stamps().state(), TagState::Current);
        // The held group still follows its members.
        bump_tags_of(scope, ["tags-unit:m2"], true);
        assert_eq!(grouped.state(), TagState::Gone);
        place.withdraw();
    }

    /// The tests that need every sweep to finish, and the one that makes
    /// them fail.
    static WALKS: Mutex<()> = Mutex::new(());

    struct Panics;

    impl HoldsStamps for Panics {
        fn each_stamps(&self, _: &mut dyn FnMut(&Stamps)) {
            panic!("a value's `Clone` panicked");
        }
    }

    #[test]
    fn a_walk_that_panics_forgets_nothing_and_does_not_reach_the_caller() {
        let _walks = WALKS.lock().unwrap_or_else(PoisonError::into_inner);
        let scope = u64::MAX - 5;
        let place = HolderPlace::default();
        place.register(|| Arc::new(Panics));
        let idle = tags(&["tags-unit:outlives-a-panic"])
            .stamp(scope)
            .stamps()
            .to_owned();
        let generation = {
            let mut names = names();
            names.sweeping = true;
            GENERATION.fetch_add(1, Ordering::SeqCst) + 1
        };
        sweep(generation);
        place.withdraw();
        assert!(!names().sweeping, "the next sweep may run");
        assert_eq!(idle.state(), TagState::Current, "nothing was forgotten");
        assert!(names()
            .by_name
            .contains_key(&fingerprint(scope, "tags-unit:outlives-a-panic")));
    }

    #[test]
    fn tags_nothing_holds_are_forgotten_so_bookkeeping_stays_bounded() {
        let _walks = WALKS.lock().unwrap_or_else(PoisonError::into_inner);
        let scope = u64::MAX - 2;
        for n in 0..50_000 {
            drop(tags(&[&format!("tags-unit:once:{n}")]).stamp(scope));
            drop(
                tags(&[
                    &format!("tags-unit:a:{n}"),
                    &format!("tags-unit:b:{n}"),
                    "tags-unit:c",
                ])
                .stamp(scope),
            );
        }
        let remembered = remembered_tags();
        assert!(remembered <= 2 * MIN_SWEEP, "{remembered} tags remembered");
    }

    #[test]
    fn when_every_slot_is_taken_tags_held_by_entries_make_room_never_an_uncacheable_value() {
        // A table of its own at the top of the slots, eight of them.
        let mut names = Names::starting_at(MAX_SLOTS - 8, MAX_SLOTS);
        let scope = u64::MAX - 4;
        let mut slots = Vec::new();
        for n in 0..40 {
            let slot = names.slot(scope, &format!("tags-unit:full:{n}"));
            let slot = slot.expect("a slot is found while no load holds them all");
            assert!(slot >= MAX_SLOTS - 8);
            // Held by an entry in a sweep that cannot see it: marked now.
            make_slot(slot)
                .marked
                .store(GENERATION.load(Ordering::SeqCst) + 1_000, Ordering::Relaxed);
            slots.push(slot);
            assert!(names.remembered() <= 8);
        }
        // Held by loads, they are never taken: then the stamp is gone.
        for slot in MAX_SLOTS - 8..MAX_SLOTS {
            make_slot(slot).loading.fetch_add(1, Ordering::AcqRel);
        }
        let before = names.remembered();
        assert_eq!(names.slot(scope, "tags-unit:full:last"), None);
        assert_eq!(names.remembered(), before);
        for slot in MAX_SLOTS - 8..MAX_SLOTS {
            make_slot(slot).loading.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
