//! The `metrics` feature: every cache's counters, its load latency and its
//! loads in flight, through the `metrics` crate's facade, labelled with the
//! function's `name`. Handles are registered once, when the cache is made
//! (so install the exporter, e.g. `metrics-exporter-prometheus`, at start-up,
//! before the first call); a hit then adds to one more atomic, and allocates
//! nothing.

use std::time::Duration;

use crate::stats::Counter;

/// The metric behind each counter, in `Counter`'s order.
const COUNTERS: [&str; 21] = [
    "herdcache_hits_total",
    "herdcache_misses_total",
    "herdcache_coalesced_total",
    "herdcache_loads_total",
    "herdcache_load_errors_total",
    "herdcache_invalidations_total",
    "herdcache_stale_hits_total",
    "herdcache_refreshes_total",
    "herdcache_refresh_errors_total",
    "herdcache_fail_safe_hits_total",
    "herdcache_negative_hits_total",
    "herdcache_timeouts_total",
    "herdcache_l2_hits_total",
    "herdcache_l2_misses_total",
    "herdcache_l2_errors_total",
    "herdcache_l2_corrupt_total",
    "herdcache_remote_fills_total",
    "herdcache_retries_total",
    "herdcache_breaker_rejected_total",
    "herdcache_breaker_openings_total",
    "herdcache_not_modified_total",
];

/// One cache's metric handles.
pub(crate) struct Exported {
    counters: [metrics::Counter; 21],
    breaker: metrics::Gauge,
    evictions: metrics::Counter,
    load_duration: metrics::Histogram,
    in_flight: metrics::Gauge,
}

impl Exported {
    pub(crate) fn new(name: &str) -> Self {
        let label = || [("name", name.to_owned())];
        Exported {
            counters: COUNTERS.map(|metric| metrics::counter!(metric, &label())),
            evictions: metrics::counter!("herdcache_evictions_total", &label()),
            load_duration: metrics::histogram!("herdcache_load_duration_seconds", &label()),
            in_flight: metrics::gauge!("herdcache_loads_in_flight", &label()),
            breaker: metrics::gauge!("herdcache_breaker_state", &label()),
        }
    }

    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.counters[counter as usize].increment(n);
    }

    pub(crate) fn load_started(&self) {
        self.in_flight.increment(1.0);
    }

    pub(crate) fn load_finished(&self, took: Duration) {
        self.in_flight.decrement(1.0);
        self.load_duration.record(took.as_secs_f64());
    }

    pub(crate) fn breaker(&self, state: crate::BreakerState) {
        self.breaker.set(state.as_gauge());
    }

    pub(crate) fn evictions(&self, evictions: u64) {
        self.evictions.absolute(evictions);
    }
}

/// One idempotent function's counters (`herdcache_idempotent_<field>_total`,
/// labelled with its `name`), in `idempotent::Count`'s order.
pub(crate) struct IdemExported {
    counters: [metrics::Counter; crate::idempotent::COUNTS],
}

impl IdemExported {
    pub(crate) fn new(name: &str) -> Self {
        IdemExported {
            counters: crate::idempotent::COUNT_NAMES.map(|field| {
                metrics::counter!(
                    format!("herdcache_idempotent_{field}_total"),
                    &[("name", name.to_owned())]
                )
            }),
        }
    }

    pub(crate) fn add(&self, index: usize) {
        self.counters[index].increment(1);
    }
}
