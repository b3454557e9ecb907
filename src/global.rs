//! The shared default executor and the top-level helpers that use it.

use std::future::Future;
use std::sync::OnceLock;

use unirun_threads::ThreadPool;

use crate::{Handle, JoinHandle};

static DEFAULT: OnceLock<ThreadPool> = OnceLock::new();

/// The shared default executor: a threads-backend pool sized from the CPU
/// budget, started on first use and kept for the life of the process.
///
/// # Examples
///
/// ```
/// let handle = unirun::get_executor();
/// assert!(handle.num_workers() >= 1);
/// ```
///
/// # Panics
///
/// If the OS refuses to start even one worker thread.
pub fn get_executor() -> Handle {
    let pool = DEFAULT.get_or_init(|| {
        ThreadPool::builder()
            .name("unirun")
            .build()
            .unwrap_or_else(|err| panic!("unirun: could not start the default thread pool: {err}"))
    });
    Handle::from_threads(pool.handle())
}

/// Spawns a future on the shared default executor.
///
/// # Examples
///
/// ```
/// let handle = unirun::spawn(async { 6 * 7 });
/// assert_eq!(unirun::block_on(handle).unwrap(), 42);
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    get_executor().spawn(future)
}

/// Runs a blocking closure on the shared default executor's blocking lane and
/// returns a handle to await (`asyncio.to_thread`, `spawn_blocking`).
///
/// # Examples
///
/// ```
/// let len = unirun::to_thread(|| std::fs::read_dir(".").map(|d| d.count()).unwrap_or(0));
/// let len = unirun::block_on(len).unwrap();
/// assert!(len > 0);
/// ```
pub fn to_thread<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    get_executor().spawn_blocking(f)
}
