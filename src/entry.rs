//! [`block_on`] with `std`: the core's, plus the context a `main` needs
//! (tokio's reactor with `tokio-backend`, the current executor for
//! [`Handle::current`](crate::Handle::current)).

use std::cell::Cell;
use std::future::Future;

thread_local! {
    /// How many [`block_on`] calls the calling thread is inside.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Whether the calling thread is inside [`block_on`].
pub(crate) fn in_block_on() -> bool {
    DEPTH.try_with(Cell::get).is_ok_and(|depth| depth > 0)
}

/// Counts one [`block_on`] on this thread while alive.
struct Depth;

impl Depth {
    fn enter() -> Depth {
        let _ = DEPTH.try_with(|d| d.set(d.get() + 1));
        Depth
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
    }
}

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
/// # #[cfg(feature = "tokio-backend")]
/// unirun::block_on(async {
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = unirun::spawn(async move { tokio::net::TcpStream::connect(addr).await });
///     let (_server_side, _) = listener.accept().await?;
///     client.await.unwrap()?;
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let _depth = Depth::enter();
    #[cfg(feature = "tokio-backend")]
    if tokio::runtime::Handle::try_current().is_err() {
        let default = crate::get_executor();
        let _context = default.backend().enter();
        return unirun_core::block_on(future);
    }
    unirun_core::block_on(future)
}
