//! The memory soak: a stream of distinct keys (and, for tagged functions,
//! distinct tags) through caches bounded to 10 000 entries, tagged and
//! untagged, on each memory tier, memory-only and `distributed` against a
//! `redis-server` of its own. Each variant runs in a process of its own
//! (resident memory never shrinks, so variants must not share one), which
//! samples its resident set, the tags it remembers and, distributed, Redis's
//! `used_memory` and key count at each quarter of its run. Both must plateau.
//!
//! Memory-only functions live an hour and see `HERDCACHE_SOAK_KEYS` keys
//! (default 2 000 000): the tags of evicted entries must not pile up for the
//! hour. Distributed ones live 2 s (with `longest_load` 1 s) and run for
//! `HERDCACHE_SOAK_REDIS_SECS` seconds (default 20), invalidating the tag of
//! one key in ten as it goes: copies, versions and tag versions must leave
//! Redis as fast as they come.
//!
//! Run: `cargo bench --bench memory_soak --features redis`

use std::process::Command;
use std::time::{Duration, Instant};

use herdcache::cached;
use herdcache_test_support::RedisServer;

const CAPACITY: u64 = 10_000;

#[cached(ttl = "1h", max_capacity = 10_000)]
async fn moka_untagged(key: u64) -> u64 {
    key
}

#[cached(ttl = "1h", max_capacity = 10_000, tags = ["user:{key}"])]
async fn moka_tagged(key: u64) -> u64 {
    key
}

#[cached(ttl = "1h", max_capacity = 10_000, memory = "quick")]
async fn quick_untagged(key: u64) -> u64 {
    key
}

#[cached(ttl = "1h", max_capacity = 10_000, memory = "quick", tags = ["user:{key}"])]
async fn quick_tagged(key: u64) -> u64 {
    key
}

#[cached(ttl = "2s", max_capacity = 10_000, distributed = true)]
async fn redis_moka_untagged(key: u64) -> u64 {
    key
}

#[cached(ttl = "2s", max_capacity = 10_000, distributed = true, tags = ["user:{key}"])]
async fn redis_moka_tagged(key: u64) -> u64 {
    key
}

#[cached(
    ttl = "2s",
    max_capacity = 10_000,
    distributed = true,
    memory = "quick"
)]
async fn redis_quick_untagged(key: u64) -> u64 {
    key
}

#[cached(
    ttl = "2s",
    max_capacity = 10_000,
    distributed = true,
    memory = "quick",
    tags = ["user:{key}"]
)]
async fn redis_quick_tagged(key: u64) -> u64 {
    key
}

const VARIANTS: [&str; 8] = [
    "moka untagged",
    "moka tagged",
    "quick untagged",
    "quick tagged",
    "redis moka untagged",
    "redis moka tagged",
    "redis quick untagged",
    "redis quick tagged",
];

async fn call(variant: &str, key: u64) -> u64 {
    match variant {
        "moka untagged" => moka_untagged(key).await,
        "moka tagged" => moka_tagged(key).await,
        "quick untagged" => quick_untagged(key).await,
        "quick tagged" => quick_tagged(key).await,
        "redis moka untagged" => redis_moka_untagged(key).await,
        "redis moka tagged" => redis_moka_tagged(key).await,
        "redis quick untagged" => redis_quick_untagged(key).await,
        "redis quick tagged" => redis_quick_tagged(key).await,
        other => panic!("unknown variant {other}"),
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// Redis's `used_memory` (MiB) and key count.
async fn redis_figures(redis: &mut redis::aio::MultiplexedConnection) -> (f64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(redis)
        .await
        .unwrap();
    let used: f64 = info
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|bytes| bytes.trim().parse().ok())
        .unwrap_or(0.0);
    let keys: u64 = redis::cmd("DBSIZE").query_async(redis).await.unwrap();
    (used / (1024.0 * 1024.0), keys)
}

/// One variant, in this (child) process: one line per quarter.
async fn run(variant: &str, redis_url: Option<&str>) {
    let mut redis = None;
    if let Some(url) = redis_url {
        herdcache::Runtime::builder()
            .redis(url)
            .namespace("soak")
            .timeout(Duration::from_secs(5))
            .longest_load(Duration::from_secs(1))
            .install()
            .unwrap();
        let client = redis::Client::open(url).unwrap();
        redis = Some(client.get_multiplexed_async_connection().await.unwrap());
    }
    // The process before the stream: the runtime, the binary, the allocator.
    call(variant, u64::MAX).await;
    let start_rss = rss_mib();
    let keys = env_or("HERDCACHE_SOAK_KEYS", 2_000_000);
    let seconds = env_or("HERDCACHE_SOAK_REDIS_SECS", 20);
    let started = Instant::now();
    let mut key = 0u64;
    let mut quarter = 1;
    while quarter <= 4 {
        call(variant, key).await;
        if redis.is_some() && key % 10 == 5 {
            herdcache::invalidate_tag(&format!("user:{}", key - 5)).await;
        }
        key += 1;
        let done = match redis {
            Some(_) => started.elapsed() >= Duration::from_secs(seconds * quarter / 4),
            None => key >= keys * quarter / 4,
        };
        if done {
            let (used, redis_keys) = match redis.as_mut() {
                Some(redis) => redis_figures(redis).await,
                None => (0.0, 0),
            };
            println!(
                "{quarter} {key} {start_rss:.1} {:.1} {} {used:.1} {redis_keys} {:.1}",
                rss_mib(),
                herdcache::testing::remembered_tags(),
                started.elapsed().as_secs_f64(),
            );
            quarter += 1;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--variant") {
        let variant = args[at + 1].replace('_', " ");
        let redis_url = args.get(at + 2).map(String::as_str);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(&variant, redis_url));
        return;
    }
    // `cargo bench` passes `--bench`; anything else picks variants by the
    // start of their names, spaces as `_` (`moka`, `redis_quick`).
    let only: Vec<&String> = args[1..]
        .iter()
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    println!(
        "| variant | keys | seconds | RSS at start (MiB) | RSS at 1/4, 1/2, 3/4, end (MiB) | tags remembered at the end | Redis used_memory at 1/4 .. end (MiB) | Redis keys at 1/4 .. end |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for variant in VARIANTS {
        let name = variant.replace(' ', "_");
        if !only.is_empty() && !only.iter().any(|wanted| name.starts_with(wanted.as_str())) {
            continue;
        }
        let server = variant
            .starts_with("redis")
            .then(|| RedisServer::start().unwrap());
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.arg("--variant").arg(variant.replace(' ', "_"));
        if let Some(server) = &server {
            command.arg(server.url());
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{variant}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<Vec<String>> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.split(' ').map(str::to_owned).collect())
            .collect();
        let column =
            |at: usize| -> Vec<String> { lines.iter().map(|line| line[at].clone()).collect() };
        let last = lines.last().unwrap();
        let redis_columns = if server.is_some() {
            (column(5).join(", "), column(6).join(", "))
        } else {
            ("—".to_owned(), "—".to_owned())
        };
        println!(
            "| {variant} | {} | {} | {} | {} | {} | {} | {} |",
            last[1],
            last[7],
            last[2],
            column(3).join(", "),
            last[4],
            redis_columns.0,
            redis_columns.1,
        );
    }
    println!("(capacity {CAPACITY} entries each)");
}
