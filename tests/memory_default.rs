//! `Memory::set_default` (its own test binary: the default is process-wide
//! and fixed by the first cache made).

use herdcache::{cached, Memory};

#[cached(ttl = "60s")]
async fn plain(id: u64) -> u64 {
    id
}

#[tokio::test]
async fn set_default_before_the_first_cache_fixes_the_tier_of_functions_without_one() {
    // Whatever HERDCACHE_MEMORY says: an explicit choice in code wins.
    assert!(Memory::set_default(Memory::Quick), "first call fixes it");
    assert!(
        !Memory::set_default(Memory::Moka),
        "a second call changes nothing"
    );
    plain(1).await;
    assert_eq!(plain_cache().memory(), Some(Memory::Quick));
    assert_eq!(Memory::process_default(), Memory::Quick);
}
