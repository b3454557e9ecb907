//! unirun's own thread pool (always compiled in with `std`).

use unirun_threads::ThreadPool;

use super::{Backend, Owned, Started};
use crate::error::Error;

/// Starts a pool of `workers` threads named after `name`, with a blocking
/// lane of up to `blocking_cap` threads.
pub(crate) fn start(workers: usize, blocking_cap: usize, name: &str) -> Result<Started, Error> {
    let pool = pool(workers, blocking_cap, name)?;
    Ok(Started {
        backend: Backend::Threads(pool.handle()),
        owned: Owned::Threads(pool),
        #[cfg(all(unix, feature = "process-backend"))]
        processes: None,
    })
}

pub(super) fn pool(workers: usize, blocking_cap: usize, name: &str) -> Result<ThreadPool, Error> {
    Ok(ThreadPool::builder()
        .workers(workers)
        .max_blocking_threads(blocking_cap)
        .name(name)
        .build()?)
}
