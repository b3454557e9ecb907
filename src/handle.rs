//! [`Handle`]: a reference to a running executor, whatever its backend.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use unirun_core::{Executor, Schedule};

use crate::JoinHandle;

/// A cloneable reference to a running executor, usable from any thread and
/// inside its tasks. Implements [`Executor`], so it can be passed to code
/// that takes `&dyn Executor`.
///
/// # Examples
///
/// ```
/// use unirun::Executor;
///
/// let handle = unirun::get_executor();
/// let task = handle.spawn(async { "hi" });
/// let dynamic: &dyn Executor = &handle;
/// let blocking = dynamic.spawn_blocking(|| "there");
/// assert_eq!(task.join().unwrap(), "hi");
/// assert_eq!(blocking.join().unwrap(), "there");
/// ```
#[derive(Clone)]
pub struct Handle {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Threads(unirun_threads::Handle),
}

impl Handle {
    pub(crate) fn from_threads(handle: unirun_threads::Handle) -> Self {
        Self {
            repr: Repr::Threads(handle),
        }
    }

    /// Spawns a future on this executor.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.repr {
            Repr::Threads(handle) => handle.spawn(future),
        }
    }

    /// Runs a blocking closure where blocking is allowed.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match &self.repr {
            Repr::Threads(handle) => handle.spawn_blocking(f),
        }
    }

    /// Number of async worker threads.
    pub fn num_workers(&self) -> usize {
        match &self.repr {
            Repr::Threads(handle) => handle.num_workers(),
        }
    }
}

impl Executor for Handle {
    fn scheduler(&self) -> Arc<dyn Schedule> {
        match &self.repr {
            Repr::Threads(handle) => handle.scheduler(),
        }
    }

    fn blocking_scheduler(&self) -> Arc<dyn Schedule> {
        match &self.repr {
            Repr::Threads(handle) => handle.blocking_scheduler(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Threads(handle) => fmt::Debug::fmt(handle, f),
        }
    }
}
