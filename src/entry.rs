//! [`block_on`] with `std`: the core's, plus the context a `main` needs
//! (tokio's reactor with `tokio-backend`, the current executor for
//! [`Handle::current`](crate::Handle::current)).

use std::future::Future;

use crate::scope::Depth;

// What `block_on` does inside and outside a tokio context with
// `tokio-backend`; without it, the core's `block_on` and nothing to check.
cfg_if::cfg_if! {
    if #[cfg(feature = "tokio-backend")] {
        mod in_tokio;
    } else {
        #[path = "entry/no_tokio.rs"]
        mod in_tokio;
    }
}

// Used by fork-join's tokio path only.
#[cfg_attr(not(feature = "tokio-backend"), allow(unused_imports))]
pub(crate) use self::in_tokio::block_in_place;

/// Runs `future` to completion on the calling thread and returns its
/// output: the entry point of a program's `main` (and of
/// `#[unirun::main]` with feature `macros`).
///
/// Inside it, [`spawn`](crate::spawn) and
/// [`Handle::current`](crate::Handle::current) reach the shared default
/// executor, smol's I/O (`async-io`, `async-net`) works as anywhere, and
/// with `tokio-backend` so does tokio's (`tokio::net`, `tokio::time`): on
/// a thread outside any tokio runtime, the call enters the reactor of the
/// shared default's workers (see [`crate::io`]), starting the shared
/// default if it has not started yet. Inside a tokio runtime, or on a
/// unirun worker, the context already there serves.
///
/// Entering the reactor costs what tokio's `Handle::enter` costs (tens of
/// nanoseconds a call, as [`Run::block_on`](crate::Run::block_on) pays,
/// nothing per poll): a `block_on` of a future
/// that is ready at once is that much slower with `tokio-backend` on
/// (`block_on_ready` in `cargo bench`). Without the feature it is the
/// core's call plus a thread-local counter.
///
/// Called on a unirun worker it does not deadlock the pool: the worker
/// hands its queue to another thread while it waits (see
/// [`unirun_core::block_on`], the same call without the context, which is
/// what `unirun::block_on` is without `std`).
///
/// The shared default's reactor stays up while the call is inside it: a
/// `#[unirun::main]` body may call [`configure`](crate::configure) first
/// (which replaces the default whose reactor the call entered), and another
/// thread may call [`reset`](crate::reset), without stopping the call's
/// timers and sockets.
///
/// Inside a task of a multi-thread tokio runtime (a `Flavor::Tokio` scope's,
/// or `#[tokio::test(flavor = "multi_thread")]`'s), the wait runs in
/// `tokio::task::block_in_place`: the worker's other tasks, timers and I/O
/// move to another thread meanwhile, so a future that needs them completes,
/// even on a runtime of one worker.
///
/// # Panics
///
/// Inside a task of a current-thread tokio runtime (`#[tokio::test]`'s, or a
/// task of an `Auto` scope that borrowed it), and on the thread inside such
/// a runtime's `block_on` (with tokio's own message there): the thread it
/// would block drives that runtime, so nothing the future waits for on it
/// could ever happen. Use `.await` there.
///
/// # Examples
///
/// ```
/// let task = unirun::spawn(async { 6 * 7 });
/// assert_eq!(unirun::block_on(task).unwrap(), 42);
/// ```
///
/// With `tokio-backend`, tokio's sockets work in it:
///
/// ```
/// # if cfg!(feature = "tokio-backend") {
/// unirun::block_on(async {
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = unirun::spawn(async move { tokio::net::TcpStream::connect(addr).await });
///     let (_server_side, _) = listener.accept().await?;
///     client.await.unwrap()?;
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// # }
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let _depth = Depth::enter();
    in_tokio::block_on(future)
}

/// [`block_on`] for the body of a `#[unirun::test]`: after the body, a
/// tokio clock the body paused (`tokio::time::pause()`) on the reactor the
/// call entered, the shared default's, which every other test of the
/// process uses too, fails the test with a message that says so.
///
/// tokio can resume a clock only with its `test-util` feature, which unirun
/// does not turn on (it makes every read of tokio's clock take a lock), so
/// the clock stays paused for the rest of the process: the failure names
/// the test that paused it, and the way to write such a test.
#[doc(hidden)]
pub fn __block_on_test<F: Future>(future: F) -> F::Output {
    let output = block_on(future);
    in_tokio::fail_if_clock_paused();
    output
}
