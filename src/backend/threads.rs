//! unirun's own thread pool (always compiled in with `std`).

use unirun_threads::{Handle, ThreadPool};

use super::{Backend, FacadeHandle, Shutdown, Started};
use crate::error::Error;
use crate::flavor::Flavor;

/// Starts a pool of `workers` threads named after `name`, with a blocking
/// lane of up to `blocking_cap` threads.
pub(crate) fn start(workers: usize, blocking_cap: usize, name: &str) -> Result<Started, Error> {
    let pool = pool(workers, blocking_cap, name)?;
    Ok(Started {
        backend: Backend::Threads(pool.handle()),
        owned: Box::new(pool),
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

impl Shutdown for ThreadPool {
    fn shutdown(self: Box<Self>) {
        ThreadPool::shutdown(*self);
    }

    fn shutdown_timeout(self: Box<Self>, timeout: std::time::Duration) {
        ThreadPool::shutdown_timeout(*self, timeout);
    }

    fn shutdown_now(self: Box<Self>) {
        ThreadPool::shutdown_now(*self);
    }
}

impl FacadeHandle for Handle {
    fn flavor(&self) -> Flavor {
        Flavor::Threads
    }
}
