//! An async-executor driven by threads of its own (feature `smol-backend`).

use unirun_smol::{Handle, SmolPool};

use super::{Backend, BackendHandle, BackendTimer, Shutdown, Started};
use crate::error::Error;
use crate::flavor::Flavor;

/// Starts an executor driven by `workers` threads named after `name`, with
/// a blocking lane of up to `blocking_cap` threads.
pub(crate) fn start(workers: usize, blocking_cap: usize, name: &str) -> Result<Started, Error> {
    let pool = SmolPool::builder()
        .workers(workers)
        .max_blocking_threads(blocking_cap)
        .name(name)
        .build()?;
    Ok(Started {
        backend: Backend::Smol(pool.handle()),
        owned: Box::new(pool),
        processes: None,
    })
}

impl Shutdown for SmolPool {
    fn shutdown(self: Box<Self>) {
        SmolPool::shutdown(*self);
    }

    fn shutdown_timeout(self: Box<Self>, timeout: std::time::Duration) -> bool {
        SmolPool::shutdown_timeout(*self, timeout)
    }
}

impl BackendHandle for Handle {
    super::inherent_spawn_methods!();

    fn flavor(&self) -> Flavor {
        Flavor::Smol
    }

    fn lane_stats(&self) -> Option<unirun_threads::LaneStats> {
        Some(Handle::blocking_stats(self))
    }

    /// async-io's timer, as smol code would use.
    fn timer(&self, deadline: std::time::Instant) -> Option<BackendTimer> {
        let timer = ::smol::Timer::at(deadline);
        Some(BackendTimer {
            sleep: Box::pin(async move {
                timer.await;
            }),
            name: "async-io",
        })
    }
}
