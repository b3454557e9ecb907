//! Fallback for platforms without a dedicated implementation.

use std::num::NonZeroUsize;

/// Number of CPUs, as estimated by the standard library.
pub(crate) fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Affinity masks are not queried on this platform.
pub(crate) fn affinity_cpus() -> Option<usize> {
    None
}

/// Renaming threads is not supported on this platform.
pub(crate) fn set_current_thread_name(_name: &str) {}

/// Counting threads is not supported on this platform.
pub(crate) fn thread_count() -> Option<usize> {
    None
}

/// Listing threads is not supported on this platform.
pub(crate) fn thread_names() -> Option<Vec<String>> {
    None
}
