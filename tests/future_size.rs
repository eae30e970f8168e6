//! A cached call's future stays small whatever the body holds: the slow
//! path is boxed on a miss, so a hit does not move the body's state around
//! (unboxed, a one-line body made a 360-byte future and a 256-byte buffer
//! a 1.6 KB one).

#[herdcache::cached(ttl = "1h")]
async fn one_line(key: u64) -> u64 {
    key
}

#[herdcache::cached(ttl = "1h")]
async fn big_body(key: u64, name: &str) -> Result<String, std::io::Error> {
    let buffer = [7u8; 256];
    tokio::task::yield_now().await;
    Ok(format!("{key}{name}{}", buffer.len()))
}

#[test]
fn a_cached_future_holds_its_arguments_not_its_body() {
    let small = std::mem::size_of_val(&one_line(1));
    let big = std::mem::size_of_val(&big_body(1, "x"));
    assert!(small <= 64, "one_line's future is {small} bytes");
    assert!(big <= 128, "big_body's future is {big} bytes");
}

#[tokio::test]
async fn the_boxed_slow_path_still_loads_and_caches() {
    assert_eq!(big_body(2, "y").await.unwrap(), "2y256");
    assert_eq!(big_body(2, "y").await.unwrap(), "2y256");
    assert_eq!(big_body_cache().stats().hits, 1);
}
