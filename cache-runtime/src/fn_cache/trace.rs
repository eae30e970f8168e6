//! Tracing, in functions that are not generic, so that each cached function
//! does not compile its own copy of the macros' expansions.
use std::time::Duration;

use super::LoadKind;

/// A load's span, at `debug`, never with the key: keys may be personal data.
pub(super) fn load_span(function: &str, kind: LoadKind) -> tracing::Span {
    match kind {
        LoadKind::Background => tracing::debug_span!(
            "herdcache.refresh",
            function,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
            waiters = tracing::field::Empty,
        ),
        _ => tracing::debug_span!(
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

pub(super) fn record_outcome(span: &tracing::Span, outcome: &'static str) {
    span.record("outcome", outcome);
}

pub(super) fn refresh_failed(function: &str) {
    tracing::warn!(
        function,
        "herdcache: a background refresh failed; the stale value is served until its window ends"
    );
}

pub(super) fn fail_safe_answered(function: &str, answered: u64, how: &str) {
    tracing::info!(
        function,
        answered,
        "herdcache: the load {how}; fail-safe served the last good value"
    );
}
