//! Generated code names only `::herdcache::__private`, `::core` and `::std`:
//! local modules of those names do not break it, and `crate = path` points
//! it at a re-export.

#![allow(dead_code)]
// Helpers the test does not call must not warn, whatever the function's lints.
#![deny(warnings)]

mod core {}
mod std {}
mod herdcache {}

mod reexport {
    pub use ::herdcache as cache;
}

#[::herdcache::cached(ttl = "1m")]
async fn shadowed(n: u64) -> Option<u64> {
    n.checked_mul(2)
}

#[::herdcache::cached(ttl = "1m", crate = reexport::cache)]
async fn through_a_reexport(n: u64) -> Result<u64, ::std::string::String> {
    Ok(n + 1)
}

/// Argument names that generated code might clash with.
#[::herdcache::cached(ttl = "1m")]
async fn clashing(key: u64, cache: u64, value: u64) -> u64 {
    key + cache + value
}

/// Lint attributes are copied to the helpers; `expect` must not turn into an
/// unfulfilled expectation there, nor `deny(unused)` into an error.
#[::herdcache::cached(ttl = "1m")]
#[deny(unused)]
#[expect(unused_variables)]
async fn linted(n: u64) -> u64 {
    let unused = n;
    7
}

#[::tokio::test]
async fn generated_code_survives_shadowing_modules() {
    assert_eq!(shadowed(2).await, Some(4));
    assert_eq!(through_a_reexport(2).await, Ok(3));
    assert_eq!(clashing(1, 2, 3).await, 6);
    assert_eq!(clashing(1, 2, 3).await, 6);
    assert_eq!(clashing_cache().stats().hits, 1);
    assert_eq!(linted(1).await, 7);
}
