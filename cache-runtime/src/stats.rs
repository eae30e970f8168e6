//! What a cache did: counters on the hot path and a load-latency histogram,
//! and the plain [`Stats`] snapshot users read.
//!
//! A hit must not bounce a shared cache line between cores, so counters are
//! striped: each thread adds to its own padded stripe and a snapshot sums them.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::breaker::BreakerState;
use crate::tier::Memory;

/// A snapshot of one cached function's counters.
///
/// Every call counts once, as a hit or a miss: `hits + misses` is the
/// number of calls. A miss either led a load or joined one already running
/// (`coalesced`). Stale and negative hits count as hits too; a fail-safe
/// answer counts as the miss it was. It prints as one line (`Display`), and
/// [`stats_table`](crate::stats_table) renders every function as a table.
///
/// # Prometheus
///
/// With the `metrics` feature, every cache exports its counts through the
/// [`metrics`](https://docs.rs/metrics) facade. Install your exporter (say
/// `metrics_exporter_prometheus::PrometheusBuilder::new().install()`)
/// before the first cached call: each cache registers its handles when it
/// is made, and a hit then adds to one more atomic. A function's metrics
/// carry the label `name` (its name in [`stats()`](crate::stats())); the
/// Redis tier's carry `namespace`. A cache made before the exporter was
/// installed reports to nothing. The load duration is a histogram:
/// `metrics-exporter-prometheus` renders it as a summary unless you give it
/// buckets (`PrometheusBuilder::set_buckets`). The Redis tier's series
/// exist from the moment it is installed, at 0.
///
/// | field | metric | kind, label |
/// |---|---|---|
/// | `hits` | `herdcache_hits_total` | counter, `name` |
/// | `misses` | `herdcache_misses_total` | counter, `name` |
/// | `coalesced` | `herdcache_coalesced_total` | counter, `name` |
/// | `loads` | `herdcache_loads_total` | counter, `name` |
/// | `load_errors` | `herdcache_load_errors_total` | counter, `name` |
/// | `evictions` | `herdcache_evictions_total` | counter, `name`; set to the tier's count when a load ends and when stats are read |
/// | `invalidations` | `herdcache_invalidations_total` | counter, `name` |
/// | `stale_hits` | `herdcache_stale_hits_total` | counter, `name` |
/// | `refreshes` | `herdcache_refreshes_total` | counter, `name` |
/// | `refresh_errors` | `herdcache_refresh_errors_total` | counter, `name` |
/// | `fail_safe_hits` | `herdcache_fail_safe_hits_total` | counter, `name` |
/// | `negative_hits` | `herdcache_negative_hits_total` | counter, `name` |
/// | `timeouts` | `herdcache_timeouts_total` | counter, `name` |
/// | `l2_hits` | `herdcache_l2_hits_total` | counter, `name` |
/// | `l2_misses` | `herdcache_l2_misses_total` | counter, `name` |
/// | `l2_errors` | `herdcache_l2_errors_total` | counter, `name` |
/// | `l2_corrupt` | `herdcache_l2_corrupt_total` | counter, `name` |
/// | `remote_fills` | `herdcache_remote_fills_total` | counter, `name` |
/// | `retries` | `herdcache_retries_total` | counter, `name` |
/// | `breaker_rejected` | `herdcache_breaker_rejected_total` | counter, `name` |
/// | `breaker_openings` | `herdcache_breaker_openings_total` | counter, `name` |
/// | `not_modified` | `herdcache_not_modified_total` | counter, `name` |
/// | `breaker` | `herdcache_breaker_state` | gauge, `name`: 0 closed (or off), 1 open, 2 half-open |
/// | `load_p50`, `load_p95`, `load_p99` | `herdcache_load_duration_seconds` | histogram, `name`: every load's duration |
/// | — | `herdcache_loads_in_flight` | gauge, `name`: loads running now |
/// | `fleet_pending` | `herdcache_fleet_pending` | gauge, `namespace` |
/// | `fleet_failures` | `herdcache_fleet_failures_total` | counter, `namespace` |
/// | `l2_breaker_open` | `herdcache_l2_breaker_open` | gauge, `namespace`: 1 while open, 0 once closed |
/// | `bus_messages`, `memory` | — | not exported |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the cache: a fresh value, and also a stale one
    /// (`stale_hits`) or a cached failure (`negative_hits`).
    pub hits: u64,
    /// Calls that found no fresh value.
    pub misses: u64,
    /// Misses that joined a load already in flight instead of starting one.
    pub coalesced: u64,
    /// Loads run (calls of the original function body). Under `retry` a
    /// load may call the body again (counted in `retries`); a load the
    /// circuit breaker refused calls it not at all (`breaker_rejected`).
    pub loads: u64,
    /// Loader runs that returned an error or panicked.
    pub load_errors: u64,
    /// Entries the memory tier dropped on its own, to stay within
    /// `max_capacity` or because they expired (as Caffeine's `evictionCount`):
    /// not those removed by invalidation.
    pub evictions: u64,
    /// Calls of `…_invalidate` and `invalidate_all`.
    pub invalidations: u64,
    /// Calls answered with a stale value (`swr`) while a refresh ran.
    pub stale_hits: u64,
    /// Background refreshes started (`swr`, `early_refresh`).
    pub refreshes: u64,
    /// Background refreshes whose load failed (the stale value stayed).
    pub refresh_errors: u64,
    /// Calls answered with a fail-safe fallback instead of a failure.
    pub fail_safe_hits: u64,
    /// Calls answered with a cached failure (`negative_ttl`, `negative`).
    pub negative_hits: u64,
    /// Calls that stopped waiting for a load (`timeout`, `hard_timeout`).
    pub timeouts: u64,
    /// Loads answered by the Redis tier instead of the body (`distributed`).
    pub l2_hits: u64,
    /// Reads of the Redis tier that found nothing usable.
    pub l2_misses: u64,
    /// Calls of the Redis tier that failed or timed out, or were skipped
    /// while its circuit breaker was open.
    pub l2_errors: u64,
    /// Payloads read from the Redis tier that could not be decoded (corrupt,
    /// truncated or foreign): each counted as a miss too, and overwritten.
    pub l2_corrupt: u64,
    /// Loads this instance did not run because another instance filled the
    /// value while this one waited for it (the fleet's single flight).
    pub remote_fills: u64,
    /// Calls of the loader that were retries of a failed one (`retry`).
    pub retries: u64,
    /// Calls of the loader the origin's circuit breaker refused: the load
    /// failed at once with `Error::OriginUnavailable`.
    pub breaker_rejected: u64,
    /// Times the origin's circuit breaker opened.
    pub breaker_openings: u64,
    /// Loads whose body answered "not modified" (`previous().not_modified()`):
    /// the value kept with new horizons.
    pub not_modified: u64,
    /// Where the origin's circuit breaker stands now (`Off` without one).
    pub breaker: BreakerState,
    /// Bus messages from other instances that this process's Redis tier
    /// applied (key and tag invalidations, fills): the tier's count, the
    /// same for every `distributed` function of the process (0 for a
    /// function that is not distributed).
    pub bus_messages: u64,
    /// Fleet invalidations (of keys, tags, or a whole function) that Redis
    /// did not take and that the Redis tier keeps for replay now: the
    /// tier's count, the same for every `distributed` function of the
    /// process. Above 0 during an outage; see `flush_fleet`.
    pub fleet_pending: u64,
    /// Fleet invalidations (of keys, tags or functions) by this process
    /// that Redis did not take at first and that were kept for replay,
    /// since start: the tier's count, the same for every `distributed`
    /// function.
    pub fleet_failures: u64,
    /// The Redis tier's circuit breaker is open now: Redis is being
    /// skipped after consecutive failures.
    pub l2_breaker_open: bool,
    /// The memory tier holding the function's values (`memory = ..`, else
    /// the process default; `Moka`, the default's default, in the zeroed
    /// stats of a function not called yet).
    pub memory: Memory,
    /// Median loader latency (each percentile within 12.5%).
    pub load_p50: Duration,
    /// 95th percentile loader latency.
    pub load_p95: Duration,
    /// 99th percentile loader latency.
    pub load_p99: Duration,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 before the first call.
    pub fn hit_ratio(&self) -> f64 {
        let calls = self.hits + self.misses;
        if calls == 0 {
            0.0
        } else {
            self.hits as f64 / calls as f64
        }
    }

    /// Adds another snapshot's counters to this one; percentiles keep the
    /// larger of the two (they cannot be merged exactly), and `memory` stays
    /// this one's.
    pub fn merge(&mut self, other: &Stats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.coalesced += other.coalesced;
        self.loads += other.loads;
        self.load_errors += other.load_errors;
        self.evictions += other.evictions;
        self.invalidations += other.invalidations;
        self.stale_hits += other.stale_hits;
        self.refreshes += other.refreshes;
        self.refresh_errors += other.refresh_errors;
        self.fail_safe_hits += other.fail_safe_hits;
        self.negative_hits += other.negative_hits;
        self.timeouts += other.timeouts;
        self.l2_hits += other.l2_hits;
        self.l2_misses += other.l2_misses;
        self.l2_errors += other.l2_errors;
        self.l2_corrupt += other.l2_corrupt;
        self.remote_fills += other.remote_fills;
        self.retries += other.retries;
        self.breaker_rejected += other.breaker_rejected;
        self.breaker_openings += other.breaker_openings;
        self.not_modified += other.not_modified;
        // The worse of the two: an open breaker anywhere shows.
        self.breaker = match (self.breaker, other.breaker) {
            (BreakerState::Open, _) | (_, BreakerState::Open) => BreakerState::Open,
            (BreakerState::HalfOpen, _) | (_, BreakerState::HalfOpen) => BreakerState::HalfOpen,
            (BreakerState::Closed, _) | (_, BreakerState::Closed) => BreakerState::Closed,
            _ => BreakerState::Off,
        };
        // One tier's count, seen by each function: not a sum.
        self.bus_messages = self.bus_messages.max(other.bus_messages);
        self.fleet_pending = self.fleet_pending.max(other.fleet_pending);
        self.fleet_failures = self.fleet_failures.max(other.fleet_failures);
        self.l2_breaker_open |= other.l2_breaker_open;
        self.load_p50 = self.load_p50.max(other.load_p50);
        self.load_p95 = self.load_p95.max(other.load_p95);
        self.load_p99 = self.load_p99.max(other.load_p99);
    }
}

/// One line an operator can read: the hit ratio and what made it, loads
/// and their latency, and the policies' counts when any is not zero.
///
/// ```
/// let stats = herdcache_runtime::Stats::default();
/// assert_eq!(
///     stats.to_string(),
///     "hit ratio 0.0% (0 hits, 0 misses, 0 coalesced), 0 loads, 0 errors, load p50 0ns p95 0ns p99 0ns"
/// );
/// ```
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "hit ratio {:.1}% ({} hits, {} misses, {} coalesced), {} loads, {} errors, load p50 {:?} p95 {:?} p99 {:?}",
            self.hit_ratio() * 100.0,
            self.hits,
            self.misses,
            self.coalesced,
            self.loads,
            self.load_errors,
            self.load_p50,
            self.load_p95,
            self.load_p99,
        )?;
        for (count, what) in [
            (self.stale_hits, "stale hits"),
            (self.refreshes, "refreshes"),
            (self.refresh_errors, "refresh errors"),
            (self.fail_safe_hits, "fail-safe answers"),
            (self.negative_hits, "negative hits"),
            (self.timeouts, "timeouts"),
            (self.evictions, "evictions"),
            (self.invalidations, "invalidations"),
            (self.l2_hits, "Redis hits"),
            (self.l2_misses, "Redis misses"),
            (self.l2_errors, "Redis errors"),
            (self.l2_corrupt, "corrupt Redis payloads"),
            (self.remote_fills, "loads filled by another instance"),
            (self.retries, "retries"),
            (self.breaker_rejected, "loads refused by the breaker"),
            (self.breaker_openings, "breaker openings"),
            (self.not_modified, "not modified"),
            (self.bus_messages, "bus messages"),
            (self.fleet_pending, "fleet invalidations pending"),
            (self.fleet_failures, "fleet invalidations kept for replay"),
        ] {
            if count > 0 {
                write!(f, ", {count} {what}")?;
            }
        }
        if matches!(self.breaker, BreakerState::Open | BreakerState::HalfOpen) {
            write!(f, ", breaker {}", self.breaker.name())?;
        }
        if self.l2_breaker_open {
            write!(f, ", Redis breaker open")?;
        }
        Ok(())
    }
}

/// Renders `stats` (as [`crate::stats()`] lists them) as a plain-text
/// table, one function a row, the way an operator pastes it into a ticket.
pub fn table(stats: &[(String, Stats)]) -> String {
    use std::fmt::Write as _;
    let headers = [
        "function",
        "memory",
        "hit %",
        "hits",
        "misses",
        "loads",
        "errors",
        "stale",
        "fail-safe",
        "p95",
    ];
    let rows: Vec<[String; 10]> = stats
        .iter()
        .map(|(name, s)| {
            [
                name.clone(),
                s.memory.name().to_owned(),
                format!("{:.1}", s.hit_ratio() * 100.0),
                s.hits.to_string(),
                s.misses.to_string(),
                s.loads.to_string(),
                (s.load_errors + s.refresh_errors).to_string(),
                s.stale_hits.to_string(),
                s.fail_safe_hits.to_string(),
                format!("{:?}", s.load_p95),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            // In characters, as the padding counts them (`µs` is 3 bytes).
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([headers[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        for (column, cell) in cells.iter().enumerate() {
            let gap = if column == 0 { "" } else { "  " };
            if column == 0 {
                let _ = write!(out, "{gap}{cell:<width$}", width = widths[column]);
            } else {
                let _ = write!(out, "{gap}{cell:>width$}", width = widths[column]);
            }
        }
        out.push('\n');
    };
    line(&headers);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

/// The counters a cache keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Hits,
    Misses,
    Coalesced,
    Loads,
    LoadErrors,
    Invalidations,
    StaleHits,
    Refreshes,
    RefreshErrors,
    FailSafeHits,
    NegativeHits,
    Timeouts,
    L2Hits,
    L2Misses,
    L2Errors,
    L2Corrupt,
    RemoteFills,
    Retries,
    BreakerRejected,
    BreakerOpenings,
    NotModified,
}

const COUNTERS: usize = 21;
const STRIPES: usize = 16;

/// One thread's share of the counters, alone on its cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Stripe([AtomicU64; COUNTERS]);

pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
    /// The same counts, exported through the `metrics` facade.
    #[cfg(feature = "metrics")]
    pub(crate) exported: crate::metrics::Exported,
}

impl Counters {
    /// Counters of the cache named `name` (the name labels the exported metrics).
    pub(crate) fn new(name: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = name;
        Counters {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            #[cfg(feature = "metrics")]
            exported: crate::metrics::Exported::new(name),
        }
    }

    #[inline]
    pub(crate) fn incr(&self, counter: Counter) {
        self.add(counter, 1);
    }

    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.stripes[stripe_index()].0[counter as usize].fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.exported.add(counter, n);
    }

    pub(crate) fn sum(&self, counter: Counter) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| stripe.0[counter as usize].load(Ordering::Relaxed))
            .sum()
    }
}

/// Each thread picks a stripe once, round robin, so the first `STRIPES`
/// threads never share one.
#[inline]
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        let mut i = index.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            index.set(i);
        }
        i
    })
}

/// Sub-buckets per power of two: latencies are kept within 12.5%.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A log-linear histogram of nanoseconds, written lock-free on the load path.
pub(crate) struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
}

impl LatencyHistogram {
    pub(crate) fn new() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
    }

    /// The latency at quantile `q` (0..=1), as the upper bound of its bucket.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(bucket_upper_bound(index));
            }
        }
        Duration::from_nanos(u64::MAX)
    }
}

fn bucket_of(nanos: u64) -> usize {
    if nanos < SUB as u64 {
        return nanos as usize;
    }
    let exponent = 63 - nanos.leading_zeros(); // >= SUB_BITS
    let mantissa = (nanos >> (exponent - SUB_BITS)) as usize & (SUB - 1);
    (exponent - SUB_BITS + 1) as usize * SUB + mantissa
}

fn bucket_upper_bound(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exponent = (index / SUB) as u32 + SUB_BITS - 1;
    let mantissa = (index % SUB) as u64;
    let low = (1u64 << exponent) | (mantissa << (exponent - SUB_BITS));
    low.saturating_add((1u64 << (exponent - SUB_BITS)) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_whose_bound_covers_it_within_an_eighth() {
        for nanos in (0..5_000u64).chain([1 << 20, 123_456_789, u64::MAX / 3, u64::MAX]) {
            let index = bucket_of(nanos);
            let upper = bucket_upper_bound(index);
            assert!(upper >= nanos, "{nanos} above its bucket bound {upper}");
            assert!(
                (upper - nanos) as f64 <= nanos as f64 / SUB as f64 + 1.0,
                "{nanos} too far below its bucket bound {upper}"
            );
        }
    }

    #[test]
    fn quantiles_follow_the_recorded_latencies() {
        let histogram = LatencyHistogram::new();
        for ms in 1..=100 {
            histogram.record(Duration::from_millis(ms));
        }
        let close = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() <= ms / 8.0;
        assert!(
            close(histogram.quantile(0.50), 50.0),
            "{:?}",
            histogram.quantile(0.5)
        );
        assert!(
            close(histogram.quantile(0.95), 95.0),
            "{:?}",
            histogram.quantile(0.95)
        );
        assert!(
            close(histogram.quantile(0.99), 99.0),
            "{:?}",
            histogram.quantile(0.99)
        );
    }

    #[test]
    fn an_empty_histogram_reports_zero() {
        assert_eq!(LatencyHistogram::new().quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn counters_sum_across_threads() {
        let counters = std::sync::Arc::new(Counters::new("test"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counters = counters.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counters.incr(Counter::Hits);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counters.sum(Counter::Hits), 4000);
        assert_eq!(counters.sum(Counter::Misses), 0);
    }
}
