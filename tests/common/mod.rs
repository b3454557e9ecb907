//! Helpers shared by the integration tests; the general ones (watchdog,
//! child processes, gates, skips) are in `unirun-test-support`.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub(crate) use unirun_test_support::child::{in_child_process, is_child, run_child};

/// Names of this process's threads (Linux: `/proc/self/task/*/comm`, at
/// most 15 bytes each). Where threads cannot be listed, says that the
/// thread-name checks are skipped and returns no names.
pub(crate) fn thread_names() -> Vec<String> {
    unirun_test_support::thread_names().unwrap_or_else(|| {
        unirun_test_support::skip("thread-name checks", "this platform cannot list threads");
        Vec::new()
    })
}

/// How many threads of this process have a name starting with `prefix`
/// (none where threads cannot be listed; see [`thread_names`]).
pub(crate) fn threads_named(prefix: &str) -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Spins (yielding) until `done()` holds. Used only where the awaited event
/// has no notification to wait on (a thread exiting); never a timing check.
pub(crate) fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        std::thread::yield_now();
    }
}

/// Runs test `name` again in a child process with
/// `UNIRUN_COMPAT_MODE=passthrough` and asserts it passed; in that child,
/// does nothing. The caller then runs the test's body in its own mode.
pub(crate) fn also_in_passthrough(name: &str) {
    if !is_child() {
        run_child(name, &[("UNIRUN_COMPAT_MODE", "passthrough")]);
    }
}

/// Whether this process runs the compat modules in passthrough mode.
pub(crate) fn passthrough() -> bool {
    std::env::var("UNIRUN_COMPAT_MODE").is_ok_and(|v| v.eq_ignore_ascii_case("passthrough"))
}
