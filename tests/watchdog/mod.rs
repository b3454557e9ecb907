//! Turns a hang into a failure, for the tests that name no body: the
//! shared watchdog (`unirun-test-support`), named after the running test.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;

/// Runs `body` on its own thread; re-raises its panic; fails on a hang
/// (see `unirun_test_support::watchdog`).
pub(crate) fn watchdog(body: impl FnOnce() + Send + 'static) {
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("the test body")
        .to_string();
    unirun_test_support::watchdog(&test, body);
}

/// Runs `body()` to completion on a new 2-worker multi-thread tokio
/// runtime, under the watchdog.
pub(crate) fn on_tokio<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    watchdog(move || {
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
