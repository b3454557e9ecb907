//! The `tracing` events when the feature is off: nothing, at no cost.

use std::time::Duration;

use crate::trace::DecisionTrace;

pub(crate) fn decision(_trace: &DecisionTrace) {}

pub(crate) fn compat_mode(_mode: crate::CompatMode, _from: &str) {}

#[cfg_attr(not(all(unix, feature = "process-backend")), allow(dead_code))]
pub(crate) fn process_pool(_scope: &str, _workers: usize, _origin: &str) {}

pub(crate) fn scope_started(_name: &str, _flavor: crate::Flavor) {}

pub(crate) fn scope_ended(_name: &str, _how: &str, _cancelled: usize, _took: Duration) {}

/// Returns whether the warning was taken (never: it goes to stderr).
pub(crate) fn env_warning(_line: &str) -> bool {
    false
}
