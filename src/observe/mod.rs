//! Looking inside without changing code: `UNIRUN_TRACE` prints every
//! scheduler decision to stderr as it happens (one line of text, or one JSON
//! object per line), and the `tracing` feature turns decisions, environment
//! warnings and scope lifecycles into `tracing` events.
//!
//! Callers use the functions here whatever is compiled in; without the
//! `tracing` feature its half is a module of no-ops.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::trace::DecisionTrace;

mod json;

// Without the `tracing` feature: the same functions, doing nothing.
cfg_if::cfg_if! {
    if #[cfg(feature = "tracing")] {
        mod events;
    } else {
        #[path = "no_events.rs"]
        mod events;
    }
}

/// What `UNIRUN_TRACE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TraceOutput {
    Off,
    Text,
    Json,
}

/// The accepted values of `UNIRUN_TRACE`.
pub(crate) const EXPECTED_TRACE: &str = "0, 1, text or json";

/// Parses an `UNIRUN_TRACE` value (trimmed, ASCII case ignored).
pub(crate) fn parse_trace(s: &str) -> Result<TraceOutput, &'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "0" | "off" | "false" | "no" => Ok(TraceOutput::Off),
        "1" | "text" | "on" | "true" | "yes" => Ok(TraceOutput::Text),
        "json" => Ok(TraceOutput::Json),
        _ => Err(EXPECTED_TRACE),
    }
}

/// `UNIRUN_TRACE`, read once (0 = not read since the last reset).
static OUTPUT: AtomicU8 = AtomicU8::new(0);

/// The output `UNIRUN_TRACE` asks for. An invalid value means off; it is
/// reported with the other rejected variables when the environment is read.
fn output() -> TraceOutput {
    match OUTPUT.load(Ordering::Acquire) {
        1 => return TraceOutput::Off,
        2 => return TraceOutput::Text,
        3 => return TraceOutput::Json,
        _ => {}
    }
    let out = std::env::var(crate::env::TRACE.name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| parse_trace(&v).ok())
        .unwrap_or(TraceOutput::Off);
    let code = match out {
        TraceOutput::Off => 1,
        TraceOutput::Text => 2,
        TraceOutput::Json => 3,
    };
    OUTPUT.store(code, Ordering::Release);
    out
}

/// Forgets the cached `UNIRUN_TRACE` (for [`reset`](crate::reset)).
pub(crate) fn reset() {
    OUTPUT.store(0, Ordering::Release);
}

/// Writes one line to stderr in a single call, so lines of concurrent
/// decisions do not interleave.
fn print_line(line: &str) {
    use std::io::Write;
    let mut out = String::with_capacity(line.len() + 1);
    out.push_str(line);
    out.push('\n');
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// A scheduler decision was made: a scope was built or the shared default
/// (re)created.
pub(crate) fn decision(trace: &DecisionTrace) {
    match output() {
        TraceOutput::Off => {}
        TraceOutput::Text => print_line(&trace.to_string()),
        TraceOutput::Json => {
            if let Ok(json) = json::to_string(trace) {
                print_line(&json);
            }
        }
    }
    events::decision(trace);
}

/// The compat modules decided their mode; `from` says where it came from
/// (`UNIRUN_COMPAT_MODE=passthrough from the environment`, `configure`, or
/// `default`).
pub(crate) fn compat_mode(mode: crate::CompatMode, from: &str) {
    match output() {
        TraceOutput::Off => {}
        TraceOutput::Text => print_line(&format!("unirun: compat mode {mode} from {from}")),
        TraceOutput::Json => {
            #[derive(serde::Serialize)]
            struct CompatDecision<'a> {
                compat_mode: String,
                from: &'a str,
            }
            let decision = CompatDecision {
                compat_mode: mode.to_string(),
                from,
            };
            if let Ok(json) = json::to_string(&decision) {
                print_line(&json);
            }
        }
    }
    events::compat_mode(mode, from);
}

/// A process pool was created: `workers` forked workers (started on the
/// first call), and where they will be forked from.
#[cfg_attr(not(all(unix, feature = "process-backend")), allow(dead_code))]
pub(crate) fn process_pool(scope: &str, workers: usize, origin: &str) {
    match output() {
        TraceOutput::Off => {}
        TraceOutput::Text => print_line(&format!(
            "unirun: process pool for {scope}: {workers} workers, {}",
            crate::trace::OneLine(origin)
        )),
        TraceOutput::Json => {
            #[derive(serde::Serialize)]
            struct Pool<'a> {
                scope: &'a str,
                workers: usize,
                origin: &'a str,
            }
            #[derive(serde::Serialize)]
            struct PoolDecision<'a> {
                process_pool: Pool<'a>,
            }
            let decision = PoolDecision {
                process_pool: Pool {
                    scope,
                    workers,
                    origin,
                },
            };
            if let Ok(json) = json::to_string(&decision) {
                print_line(&json);
            }
        }
    }
    events::process_pool(scope, workers, origin);
}

/// A scope started on `flavor` (a `tracing` INFO event, `unirun::scope`).
pub(crate) fn scope_started(name: &str, flavor: crate::Flavor) {
    events::scope_started(name, flavor);
}

/// A scope ended: `how` it was shut down (`wait`, `now`, `timeout`), how
/// many of its tasks were cancelled, and how long the shutdown took.
pub(crate) fn scope_ended(name: &str, how: &str, cancelled: usize, took: std::time::Duration) {
    events::scope_ended(name, how, cancelled, took);
}

/// A warning about the environment (a rejected or unknown variable):
/// stderr, or a `tracing` WARN event with the `tracing` feature.
pub(crate) fn env_warning(line: &str) {
    if !events::env_warning(line) {
        print_line(line);
    }
}

#[cfg(test)]
mod tests;
