//! An async-executor driven by threads of its own (feature `smol-backend`).

pub(crate) use unirun_smol::Handle;
use unirun_smol::SmolPool;

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

#[cfg_attr(docsrs, doc(cfg(feature = "smol-backend")))]
impl crate::Handle {
    /// A handle onto an async-executor the caller drives, for
    /// [`RunBuilder::executor`](crate::RunBuilder::executor). The handle does
    /// not keep the executor alive: once the caller drops it, what the
    /// handle spawns is cancelled at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun::{Flavor, Handle, Run};
    ///
    /// let ex = Arc::new(async_executor::Executor::new());
    /// let run = Run::builder().executor(Handle::from_smol(ex.clone())).build()?;
    /// assert_eq!(run.trace().resolved(), Flavor::Smol);
    /// let task = run.spawn(async { 2 });
    /// assert_eq!(futures_lite::future::block_on(ex.run(task)).unwrap(), 2);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn from_smol(
        executor: std::sync::Arc<unirun_smol::async_executor::Executor<'static>>,
    ) -> crate::Handle {
        crate::Handle::new(Backend::Smol(Handle::from_executor(executor)), None)
    }
}
