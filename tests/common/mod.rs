//! Helpers shared by the integration tests; the general ones (watchdog,
//! child processes, gates, skips) are in `unirun-test-support`.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::future::Future;

pub(crate) use unirun_test_support::child::{in_child_process, is_child, run_child};
pub(crate) use unirun_test_support::{lists_threads, watchdog_this_test};

/// Names of this process's threads (Linux: `/proc/self/task/*/comm`, at
/// most 15 bytes each).
///
/// # Panics
///
/// Where the platform cannot list threads: guard the check with
/// [`lists_threads`], which says that the test skips it.
pub(crate) fn thread_names() -> Vec<String> {
    unirun_test_support::thread_names()
        .expect("this platform lists no threads: guard the check with lists_threads()")
}

/// How many threads of this process have a name starting with `prefix`
/// (panics where threads cannot be listed; see [`thread_names`]).
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

/// Runs `body()` to completion on a new 2-worker multi-thread tokio
/// runtime, under the watchdog.
pub(crate) fn on_tokio<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    watchdog_this_test(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(body());
    });
}

/// The message of a caught panic, or "".
pub(crate) fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A process call that crashes its worker: the worker raises SIGSEGV
/// (with the default action restored) and never returns.
#[cfg(unix)]
pub(crate) fn segfault(_: ()) -> u64 {
    // SAFETY: SIG_DFL is valid for SIGSEGV; raising a signal at ourselves has
    // no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    unreachable!("SIGSEGV terminates the worker")
}
