//! Without `tokio-backend`: unirun runs no tokio runtime of its own.

/// Whether unirun's own runtime runs: never without tokio.
#[cfg_attr(not(feature = "__test-hooks"), allow(dead_code))] // read by the test hooks only
pub(crate) fn own_running() -> bool {
    false
}
