//! unirun's own thread pool (always compiled in with `std`), and with
//! `tokio-backend` the tokio reactor its workers run inside (see
//! [`crate::io`]).

use unirun_threads::{Handle, ThreadPool};

use super::{Backend, BackendContext, FacadeHandle, Shutdown, Started};
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

/// A started pool and, with `tokio-backend`, its hold on unirun's own tokio
/// runtime (released after the pool's threads are joined).
pub(super) struct Pool {
    pool: ThreadPool,
    #[cfg(feature = "tokio-backend")]
    _io: Option<crate::io::Lease>,
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
    #[cfg(feature = "tokio-backend")]
    {
        let (reactor, lease) = crate::io::Reactor::for_new_pool()?;
        Ok(Pool {
            pool: builder.worker_context(reactor).build()?,
            _io: lease,
        })
    }
    #[cfg(not(feature = "tokio-backend"))]
    Ok(Pool {
        pool: builder.build()?,
    })
}

// Each form shuts the pool down first; the lease (a field) drops after.
impl Shutdown for Pool {
    fn shutdown(self: Box<Self>) {
        self.pool.shutdown();
    }

    fn shutdown_timeout(self: Box<Self>, timeout: std::time::Duration) -> bool {
        #[cfg(feature = "tokio-backend")]
        {
            let deadline = std::time::Instant::now().checked_add(timeout);
            let Pool { pool, _io: io } = *self;
            let clean = pool.shutdown_timeout(timeout);
            // unirun-io, if this was its last pool, stops by the same
            // deadline (its blocking closures are not waited for past it).
            let io_clean = match (io, deadline) {
                (Some(io), Some(deadline)) => io.release_by(deadline),
                _ => true,
            };
            clean && io_clean
        }
        #[cfg(not(feature = "tokio-backend"))]
        self.pool.shutdown_timeout(timeout)
    }

    fn shutdown_now(self: Box<Self>) {
        #[cfg(feature = "tokio-backend")]
        {
            let Pool { pool, _io: io } = *self;
            pool.shutdown_now();
            // "Now": unirun-io, if this was its last pool, stops without
            // waiting for tokio blocking closures still running (a plain
            // drop of the lease would wait for them, without bound).
            if let Some(io) = io {
                io.release_now();
            }
        }
        #[cfg(not(feature = "tokio-backend"))]
        self.pool.shutdown_now();
    }
}

impl FacadeHandle for Handle {
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
        #[cfg(feature = "tokio-backend")]
        {
            crate::io::reactor_of(self).map(crate::io::Reactor::enter)
        }
        #[cfg(not(feature = "tokio-backend"))]
        None
    }

    fn reactor(&self) -> Option<&'static str> {
        #[cfg(feature = "tokio-backend")]
        {
            crate::io::reactor_of(self).map(crate::io::Reactor::describe)
        }
        #[cfg(not(feature = "tokio-backend"))]
        None
    }
}
