//! Tracing, in functions that are not generic, so that each cached function
//! does not compile its own copy of the macros' expansions.
//!
//! Everything herdcache traces has the target `herdcache`, so one filter
//! (`RUST_LOG=herdcache=debug` with `tracing_subscriber`'s `EnvFilter`)
//! shows it all: a span per load or refresh and an event when each ends, at
//! `debug`; a failed refresh at `warn`, a fail-safe answer at `info`.
use std::time::Duration;

use super::LoadKind;

/// A load's span, at `debug`, never with the key: keys may be personal data.
pub(super) fn load_span(function: &str, kind: LoadKind) -> tracing::Span {
    match kind {
        LoadKind::Background => tracing::debug_span!(
            target: "herdcache",
            "herdcache.refresh",
            function,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            waiters = tracing::field::Empty,
        ),
        _ => tracing::debug_span!(
            target: "herdcache",
            "herdcache.load",
            function,
            kind = ?kind,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            waiters = tracing::field::Empty,
        ),
    }
}

pub(super) fn record_duration(span: &tracing::Span, took: Duration) {
    span.record(
        "duration_us",
        u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
    );
}

pub(super) fn record_waiters(span: &tracing::Span, waiters: usize) {
    span.record("waiters", waiters as u64);
}

/// Records how a load ended on its span, and says so in an event: a span
/// shows only to a subscriber that reports span closes (`fmt` does not, by
/// default), an event to every one.
pub(super) fn load_ended(
    span: &tracing::Span,
    function: &str,
    kind: LoadKind,
    outcome: &'static str,
    took: Duration,
) {
    span.record("outcome", outcome);
    let duration_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    match kind {
        LoadKind::Background => tracing::debug!(
            target: "herdcache",
            parent: span,
            function,
            outcome,
            duration_us,
            "herdcache: refresh ended"
        ),
        _ => tracing::debug!(
            target: "herdcache",
            parent: span,
            function,
            outcome,
            duration_us,
            "herdcache: load ended"
        ),
    }
}

/// A load's body answered "not modified": recorded on its span.
pub(super) fn not_modified(span: &tracing::Span) {
    span.in_scope(|| {
        tracing::debug!(target: "herdcache", "herdcache: not modified: the value is kept with new horizons");
    });
}

pub(super) fn refresh_failed(function: &str) {
    tracing::warn!(
        target: "herdcache",
        function,
        "herdcache: a background refresh failed; the stale value is served until its window ends"
    );
}

pub(super) fn fail_safe_answered(function: &str, answered: u64, how: &str) {
    tracing::info!(
        target: "herdcache",
        function,
        answered,
        "herdcache: the load {how}; fail-safe served the last good value"
    );
}

pub(super) fn retrying(function: &str, failed: u32, wait: Duration) {
    tracing::debug!(
        target: "herdcache",
        function,
        failed,
        wait_us = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX),
        "herdcache: the load failed; retrying after a jittered wait"
    );
}

/// A move of the origin's breaker, at `warn` when it opens (the origin is
/// being spared) and `info` otherwise.
pub(super) fn breaker_moved(function: &str, state: crate::BreakerState) {
    let state = state.name();
    if state == "open" {
        tracing::warn!(
            target: "herdcache",
            function,
            state,
            "herdcache: the origin's circuit breaker opened; loads fail at once until it half-opens"
        );
    } else {
        tracing::info!(
            target: "herdcache",
            function,
            state,
            "herdcache: the origin's circuit breaker moved"
        );
    }
}
