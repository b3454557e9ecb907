//! The `tracing` events (feature `tracing`).

use crate::trace::DecisionTrace;

pub(crate) fn decision(trace: &DecisionTrace) {
    let reasons: Vec<String> = trace.reasons().iter().map(ToString::to_string).collect();
    tracing::info!(
        target: "unirun::decision",
        scope = trace.name().unwrap_or("unirun"),
        requested = %trace.requested(),
        resolved = %trace.resolved(),
        reasons = %reasons.join(", then "),
        "{trace}"
    );
}

pub(crate) fn compat_mode(mode: crate::CompatMode, from: &str) {
    tracing::info!(
        target: "unirun::decision",
        scope = "compat",
        resolved = %mode,
        reasons = from,
        "unirun: compat mode {mode} from {from}"
    );
}

#[cfg_attr(not(all(unix, feature = "process-backend")), allow(dead_code))]
pub(crate) fn process_pool(scope: &str, workers: usize, origin: &str) {
    tracing::info!(
        target: "unirun::decision",
        scope,
        workers,
        origin,
        "unirun: process pool for {scope}: {workers} workers"
    );
}

pub(crate) fn scope_started(name: &str, flavor: crate::Flavor) {
    tracing::info!(
        target: "unirun::scope",
        name,
        flavor = %flavor,
        "unirun: scope {name:?} started on {flavor}"
    );
}

pub(crate) fn scope_ended(name: &str, how: &str, cancelled: usize, took: std::time::Duration) {
    tracing::info!(
        target: "unirun::scope",
        name,
        how,
        cancelled,
        took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        "unirun: scope {name:?} shut down ({how}): {cancelled} tasks cancelled in {took:?}"
    );
}

/// Returns whether the warning was taken: a WARN event when a subscriber
/// wants it; otherwise it stays on stderr (never lost for want of one).
pub(crate) fn env_warning(line: &str) -> bool {
    if !tracing::enabled!(target: "unirun::env", tracing::Level::WARN) {
        return false;
    }
    tracing::warn!(target: "unirun::env", "{line}");
    true
}
