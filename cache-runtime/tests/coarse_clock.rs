//! The coarse clock's ticker parks when nothing reads it, and a read while
//! it is parked sees the precise time, never the value it stopped at. Its
//! own test binary: no other test reads the clock meanwhile. The ticker's
//! wake-ups are read from outside, as an operator would: the thread's
//! voluntary context switches in `/proc` (Linux).

use std::time::{Duration, Instant};

use herdcache_runtime::{CacheConfig, FailureShare, FnCache};

/// Voluntary context switches of the `herdcache-clock` thread so far.
fn ticker_switches() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?.path();
        let name = std::fs::read_to_string(task.join("comm")).ok()?;
        if name.trim() != "herdcache-clock" {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).ok()?;
        return status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|count| count.trim().parse().ok());
    }
    None
}

/// Wake-ups of the ticker over `span` of quiet.
fn wake_ups_over(span: Duration) -> u64 {
    let before = ticker_switches().expect("the ticker runs");
    std::thread::sleep(span);
    ticker_switches().expect("the ticker runs") - before
}

#[test]
fn the_ticker_parks_when_idle_and_a_read_while_parked_sees_the_precise_time() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // swr: its hits read the coarse clock (and its cache starts it);
    // fail-safe: the memory tier keeps the entry past its freshness, so
    // that the engine, not the tier, judges it.
    let cache: FnCache<u64, u64> = FnCache::new(
        CacheConfig::new("idle-clock", Duration::from_millis(1_200))
            .swr(Duration::from_millis(1))
            .fail_safe(Duration::from_secs(3600)),
    );
    let load = |cache: &FnCache<u64, u64>, value: u64| {
        runtime.block_on(cache.get_or_load(1, FailureShare::unit(), async move { Some(value) }))
    };
    assert_eq!(load(&cache, 1), Some(1));
    assert_eq!(load(&cache, 2), Some(1), "a hit");

    // Read for a while: the ticker ticks (about 1 000 times a second).
    let busy_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < busy_until {
        let _ = cache.get_fresh(&1);
        std::thread::sleep(Duration::from_micros(200));
    }
    let busy = wake_ups_over(Duration::from_millis(500));
    // Quiet: after a second without reads it parks, and stays parked.
    std::thread::sleep(Duration::from_millis(1_500));
    let idle = wake_ups_over(Duration::from_secs(1));
    println!("coarse clock wake-ups: {busy} in 0.5 s while ticking, {idle} in 1 s idle");
    assert!(busy >= 100, "it ticked: {busy}");
    assert!(idle <= 2, "parked while idle: {idle} wake-ups in a second");

    // Parked since about a second after it started, before the value's
    // 1.2 s ran out: a read must see it expired (the precise time), not
    // fresh at the time the ticker stopped.
    assert_eq!(cache.get_fresh(&1), None, "expired, by the precise clock");
    assert_eq!(load(&cache, 3), Some(3), "loaded again");
    // And that read woke it: ticking again.
    assert_eq!(cache.get_fresh(&1), Some(3));
    let woken = wake_ups_over(Duration::from_millis(300));
    assert!(woken >= 50, "ticking again after a read: {woken}");
}
