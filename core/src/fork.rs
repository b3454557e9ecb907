//! Whether this process is a forked child of a unirun process.
//!
//! `fork` copies only the calling thread: an inherited pool's workers and
//! blocking lane do not exist in the child, and queueing work for them (or
//! waiting to join them) would hang. The process backend marks the child
//! right after the fork; schedulers then run what they are given inline on
//! the calling thread, and pools skip joining threads that are not there.

// A plain flag, not part of a lock-free protocol, and a `static` (loom
// atomics cannot be): so not through `crate::sync`.
use core::sync::atomic::{AtomicBool, Ordering};

static FORKED_CHILD: AtomicBool = AtomicBool::new(false);

/// Records that this process is a forked child: from now on unirun's pools
/// run tasks inline and never wait for their (absent) threads.
///
/// Called by the process backend in the child, right after `fork`.
///
/// # Examples
///
/// ```
/// // Only a forked child should call `mark_forked_child`.
/// assert!(!unirun_core::in_forked_child());
/// ```
pub fn mark_forked_child() {
    FORKED_CHILD.store(true, Ordering::Relaxed);
}

/// Whether [`mark_forked_child`] was called in this process.
///
/// # Examples
///
/// ```
/// assert!(!unirun_core::in_forked_child());
/// ```
#[inline]
pub fn in_forked_child() -> bool {
    FORKED_CHILD.load(Ordering::Relaxed)
}
