//! Turns a hang into a failure: runs a test body on a thread of its own
//! and fails the test if it has not finished within a generous minute.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

/// How long a body may run before the test fails as hung.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` on its own thread; re-raises its panic; fails on a hang.
pub(crate) fn watchdog(body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(body)));
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => {}
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("the test body did not finish within {LIMIT:?}: it hangs"),
    }
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
