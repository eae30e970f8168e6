//! Tag bookkeeping follows the caches, not the clock: a bounded tagged cache
//! fed a stream of distinct tags under a long ttl remembers at most 1.25
//! times the tags its held entries carry (or 4 096), and the tags of the
//! entries it keeps are never the ones forgotten. (Its own binary: the
//! figure is the whole process's.)

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use herdcache::{cached, testing};

const CAPACITY: u64 = 5_000;
const DISTINCT: u64 = 60_000;

/// The figure is the process's: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

static USER_LOADS: AtomicUsize = AtomicUsize::new(0);
static MEMBER_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", max_capacity = 5_000, tags = ["bound:user:{id}"])]
async fn user(id: u64) -> u64 {
    USER_LOADS.fetch_add(1, SeqCst);
    id
}

/// Three tags an entry: one group each, made of a distinct tag and two
/// shared ones.
#[cached(
    ttl = "1h",
    max_capacity = 5_000,
    memory = "quick",
    tags = ["bound:member:{id}", "bound:org:{org}", "bound:everyone"],
    key = id
)]
async fn member(id: u64, org: u64) -> u64 {
    MEMBER_LOADS.fetch_add(1, SeqCst);
    id + org
}

/// The bound the docs state, for what `entries` hold with `tags_each`.
fn bound(entries: u64, tags_each: u64) -> usize {
    usize::try_from((5 * entries * tags_each / 4).max(4_096)).unwrap()
}

#[tokio::test]
async fn distinct_tags_stay_within_a_quarter_more_than_what_held_entries_carry_and_hot_entries_keep_theirs(
) {
    let _serial = SERIAL.lock().await;
    // A hot set, read all along, that moka keeps (TinyLFU) while distinct
    // keys stream by: its tags were stamped once, at the start.
    let hot = 0..100;
    for id in hot.clone() {
        user(id).await;
    }
    let mut peak = 0;
    for id in 1_000..1_000 + DISTINCT {
        user(id).await;
        if id % 50 == 0 {
            for hot_id in hot.clone() {
                user(hot_id).await;
            }
        }
        peak = peak.max(testing::remembered_tags());
    }
    let held = user_cache().len();
    assert!(held <= CAPACITY + CAPACITY / 10, "{held} entries held");
    // Each held entry carries one tag; loads in flight, none. (The other
    // test's entries, if it ran first, carry a tag and a group each, and
    // share four more.)
    let others = 2 * member_cache().len() + 4;
    assert!(
        peak <= bound(CAPACITY + CAPACITY / 10 + others, 1),
        "{peak} tags remembered at the peak, for {held} entries held \
         (every one of the {DISTINCT} tags would be kept for an hour by time)"
    );
    // The hot entries were hits all along, and still are: no sweep forgot
    // a tag an entry held, which would have made it a miss.
    let loads = USER_LOADS.load(SeqCst);
    for id in hot.clone() {
        assert_eq!(user(id).await, id);
    }
    assert_eq!(
        USER_LOADS.load(SeqCst),
        loads,
        "a hot entry was loaded again"
    );
    // And invalidation still reaches them, after every sweep.
    herdcache::invalidate_tag("bound:user:7").await;
    user(7).await;
    assert_eq!(USER_LOADS.load(SeqCst), loads + 1);
    user(8).await;
    assert_eq!(USER_LOADS.load(SeqCst), loads + 1);
}

#[tokio::test]
async fn entries_with_three_tags_stay_bounded_on_the_quick_tier_and_each_tag_still_reaches_them() {
    let _serial = SERIAL.lock().await;
    for id in 0..DISTINCT {
        member(id, id % 10).await;
    }
    let held = member_cache().len();
    let remembered = testing::remembered_tags();
    // Both tests' entries (the other may have run first): one tag each
    // there, three tags and a group each here.
    assert!(
        remembered <= bound(2 * (CAPACITY + CAPACITY / 10), 4),
        "{remembered} tags remembered for {held} entries"
    );
    // The newest entries were kept by quick's S3-FIFO: each of their tags
    // still ends them, the shared ones too.
    let last = DISTINCT - 1;
    let loads = MEMBER_LOADS.load(SeqCst);
    assert_eq!(member(last, last % 10).await, last + last % 10);
    assert_eq!(MEMBER_LOADS.load(SeqCst), loads, "the newest entry is held");
    herdcache::invalidate_tag(&format!("bound:member:{last}")).await;
    member(last, last % 10).await;
    assert_eq!(MEMBER_LOADS.load(SeqCst), loads + 1);
    member(last - 1, (last - 1) % 10).await;
    assert_eq!(MEMBER_LOADS.load(SeqCst), loads + 1, "held, untouched");
    herdcache::invalidate_tag(&format!("bound:org:{}", (last - 1) % 10)).await;
    member(last - 1, (last - 1) % 10).await;
    assert_eq!(MEMBER_LOADS.load(SeqCst), loads + 2);
    herdcache::invalidate_tag("bound:everyone").await;
    member(last, last % 10).await;
    assert_eq!(MEMBER_LOADS.load(SeqCst), loads + 3);
}
