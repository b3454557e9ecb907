//! unirun's own thread pool (always compiled in with `std`), and with
//! `tokio-backend` the tokio reactor its workers run inside (see
//! [`crate::io`]).

use unirun_threads::{Handle, ThreadPool};

use super::tokio_io::{self, Lease};
use super::{Backend, BackendContext, BackendHandle, Shutdown, Started};
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

/// A started pool and its hold on unirun's own tokio runtime (with
/// `tokio-backend`), released after the pool's threads are joined.
pub(super) struct Pool {
    pool: ThreadPool,
    io: Lease,
}

impl Pool {
    pub(super) fn handle(&self) -> Handle {
        self.pool.handle()
    }
}

pub(super) fn pool(workers: usize, blocking_cap: usize, name: &str) -> Result<Pool, Error> {
    let builder = ThreadPool::builder()
        .workers(workers)
        .max_blocking_threads(blocking_cap)
        .name(name);
    let (builder, io) = tokio_io::attach(builder)?;
    Ok(Pool {
        pool: builder.build()?,
        io,
    })
}

// Each form shuts the pool down first; the lease (a field) goes after.
impl Shutdown for Pool {
    fn shutdown(self: Box<Self>) {
        self.pool.shutdown();
    }

    fn shutdown_timeout(self: Box<Self>, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now().checked_add(timeout);
        let Pool { pool, io } = *self;
        let clean = pool.shutdown_timeout(timeout);
        // unirun-io, if this was its last pool, stops by the same deadline.
        let io_clean = io.release_by(deadline);
        clean && io_clean
    }

    fn shutdown_now(self: Box<Self>) {
        let Pool { pool, io } = *self;
        pool.shutdown_now();
        // "Now": unirun-io, if this was its last pool, stops without
        // waiting for tokio blocking closures still running.
        io.release_now();
    }
}

impl BackendHandle for Handle {
    super::inherent_spawn_methods!();

    fn flavor(&self) -> Flavor {
        Flavor::Threads
    }

    fn task_counts(&self) -> unirun_core::TaskCounts {
        Handle::task_counts(self)
    }

    fn pool_stats(&self) -> Option<unirun_core::PoolStats> {
        Some(Handle::pool_stats(self))
    }

    fn lane_stats(&self) -> Option<unirun_threads::LaneStats> {
        Some(Handle::blocking_stats(self))
    }

    fn task_set(&self) -> unirun_core::TaskSet {
        Handle::task_set(self)
    }

    fn enter(&self) -> Option<BackendContext<'_>> {
        tokio_io::enter(self)
    }

    fn reactor(&self) -> Option<&'static str> {
        tokio_io::describe(self)
    }
}
