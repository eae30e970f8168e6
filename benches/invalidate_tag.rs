//! The cost of `herdcache::invalidate_tag`: one version bump, whatever the
//! number of entries that carry the tag. 10 000 entries of one function,
//! over 1 000 tags (10 entries each), all also carrying one shared tag:
//! invalidating a tag of 10 entries and the tag of all 10 000 cost the
//! same, since entries are judged when next read, never scanned.
//!
//! Run: `cargo bench --bench invalidate_tag`

// Only `ready` is used here; the hit-path functions are the others'.
#[allow(dead_code)]
mod common;

use common::ready;
use divan::{black_box, Bencher};

const ENTRIES: u64 = 10_000;
const TAGS: u64 = 1_000;

fn main() {
    divan::main();
}

#[herdcache::cached(ttl = "1h", max_capacity = 100_000, key = id, tags = ["bench:tag:{tag}", "bench:all"])]
async fn tagged_entry(id: u64, tag: u64) -> u64 {
    id + tag
}

fn fill() {
    for id in 0..ENTRIES {
        ready(tagged_entry(id, id % TAGS));
    }
    assert_eq!(tagged_entry_cache().len(), ENTRIES);
}

/// A tag 10 of the 10 000 entries carry, a different one each time.
#[divan::bench]
fn tag_of_10_entries(bencher: Bencher) {
    fill();
    let tags: Vec<String> = (0..TAGS).map(|tag| format!("bench:tag:{tag}")).collect();
    let mut next = 0;
    bencher.bench_local(|| {
        next = (next + 1) % tags.len();
        ready(herdcache::invalidate_tag(black_box(&tags[next])));
    });
}

/// The tag all 10 000 entries carry.
#[divan::bench]
fn tag_of_10_000_entries(bencher: Bencher) {
    fill();
    bencher.bench_local(|| ready(herdcache::invalidate_tag(black_box("bench:all"))));
}

/// For scale: dropping 10 entries one by one, by key.
#[divan::bench]
fn ten_keys_one_by_one(bencher: Bencher) {
    fill();
    let mut next = 0;
    bencher.bench_local(|| {
        next = (next + 10) % ENTRIES;
        for id in next..next + 10 {
            ready(tagged_entry_invalidate(black_box(id)));
        }
    });
}
