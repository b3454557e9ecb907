//! [`block_on`](crate::block_on) without `tokio-backend`: the core's, with
//! no tokio context to enter and no tokio clock to check (the interface of
//! `in_tokio.rs`).

use std::future::Future;

/// Runs `future` to completion on this thread.
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    unirun_core::block_on(future)
}

/// No tokio clock a test could have paused.
pub(super) fn fail_if_clock_paused() {}

/// Runs `f` (no tokio runtime could refuse to block here; used only by
/// fork-join's tokio path).
#[allow(dead_code)]
pub(crate) fn block_in_place<R>(f: impl FnOnce() -> R) -> Option<R> {
    Some(f())
}
