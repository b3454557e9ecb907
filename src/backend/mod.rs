//! The backends a scope can run on, one module each, each gated by its
//! feature once (at its declaration below), and [`start`]: the one place a
//! [`Plan`] becomes a running backend, for [`RunBuilder::build`]
//! (crate::RunBuilder::build) and the shared default executor alike.
//!
//! A [`Backend`] is a handle; every handle implements the core's
//! [`BackendHandle`], so the facade calls one interface through
//! [`dispatch!`] (the only `match` over the variants).

use std::future::Future;
use std::sync::Arc;

use unirun_core::{BackendHandle, Executor, JoinHandle, Schedule, TaskSet};

use crate::error::Error;
use crate::flavor::Flavor;
use crate::scheduler::Plan;
use crate::trace::Workers;

#[cfg(all(unix, feature = "process-backend"))]
pub(crate) mod process;
#[cfg(feature = "smol-backend")]
pub(crate) mod smol;
pub(crate) mod threads;
#[cfg(feature = "tokio-backend")]
pub(crate) mod tokio;

/// A backend a scope can run on. One variant per compiled-in backend.
#[derive(Clone)]
pub(crate) enum Backend {
    Threads(unirun_threads::Handle),
    #[cfg(feature = "tokio-backend")]
    Tokio(unirun_tokio::Handle),
    #[cfg(feature = "smol-backend")]
    Smol(unirun_smol::Handle),
}

/// Runs `$body` with `$h` bound to the backend's handle, whatever its kind.
macro_rules! dispatch {
    ($backend:expr, $h:ident => $body:expr) => {
        match $backend {
            Backend::Threads($h) => $body,
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio($h) => $body,
            #[cfg(feature = "smol-backend")]
            Backend::Smol($h) => $body,
        }
    };
}

/// What a scope owns and tears down: the backend it started.
pub(crate) enum Owned {
    Threads(unirun_threads::ThreadPool),
    #[cfg(feature = "tokio-backend")]
    Tokio(unirun_tokio::TokioRuntime),
    #[cfg(feature = "smol-backend")]
    Smol(unirun_smol::SmolPool),
}

impl Owned {
    /// Shuts the backend down and joins its threads (a tokio runtime
    /// dropped where blocking is not allowed moves its shutdown to a
    /// thread of its own instead).
    pub(crate) fn shutdown(self) {
        match self {
            Owned::Threads(pool) => pool.shutdown(),
            #[cfg(feature = "tokio-backend")]
            Owned::Tokio(runtime) => drop(runtime),
            #[cfg(feature = "smol-backend")]
            Owned::Smol(pool) => pool.shutdown(),
        }
    }

    /// [`shutdown`](Self::shutdown) that gives up on blocking closures
    /// still running after `timeout`: their threads are left to exit when
    /// the closure returns.
    pub(crate) fn shutdown_timeout(self, timeout: std::time::Duration) {
        match self {
            Owned::Threads(pool) => {
                pool.shutdown_timeout(timeout);
            }
            #[cfg(feature = "tokio-backend")]
            Owned::Tokio(runtime) => runtime.shutdown_timeout(timeout),
            #[cfg(feature = "smol-backend")]
            Owned::Smol(pool) => {
                pool.shutdown_timeout(timeout);
            }
        }
    }

    /// Stops the backend without waiting for its tasks (they are
    /// cancelled); blocking closures already running finish.
    pub(crate) fn shutdown_now(self) {
        match self {
            Owned::Threads(pool) => pool.shutdown_now(),
            #[allow(unreachable_patterns)] // with tokio or smol compiled in
            other => other.shutdown(),
        }
    }
}

/// A backend [`start`] brought up: the handle, what the caller now owns,
/// and, for `Plan::Processes`, the pre-forked pool (its workers start on
/// the first call).
pub(crate) struct Started {
    pub(crate) backend: Backend,
    pub(crate) owned: Owned,
    #[cfg(all(unix, feature = "process-backend"))]
    pub(crate) processes: Option<unirun_process::ProcessPool>,
}

/// Starts what `plan` describes. `Provided`, `Shared`, `Reuse` and
/// `AmbientTokio` borrow a running backend and start nothing: `None`.
#[cfg_attr(not(all(unix, feature = "process-backend")), allow(unused_variables))]
pub(crate) fn start(
    plan: &Plan,
    process_options: ProcessOptions,
) -> Result<Option<Started>, Error> {
    let started = match plan {
        Plan::Threads {
            workers,
            blocking_cap,
            name,
        } => threads::start(*workers, *blocking_cap, name)?,
        #[cfg(all(unix, feature = "process-backend"))]
        Plan::Processes {
            workers,
            blocking_cap,
            name,
        } => process::start(*workers, *blocking_cap, name, process_options)?,
        // Not reachable: the scheduler falls back before planning processes
        // without the feature. Threads are still the honest answer.
        #[cfg(not(all(unix, feature = "process-backend")))]
        Plan::Processes {
            workers,
            blocking_cap,
            name,
        } => threads::start(*workers, *blocking_cap, name)?,
        #[cfg(feature = "tokio-backend")]
        Plan::Tokio {
            workers,
            blocking_cap,
            name,
        } => tokio::start(*workers, *blocking_cap, name)?,
        #[cfg(feature = "smol-backend")]
        Plan::Smol {
            workers,
            blocking_cap,
            name,
        } => smol::start(*workers, *blocking_cap, name)?,
        _ => return Ok(None),
    };
    Ok(Some(started))
}

impl Backend {
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        dispatch!(self, h => h.spawn(future))
    }

    pub(crate) fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        dispatch!(self, h => h.spawn_blocking(f))
    }

    pub(crate) fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        dispatch!(self, h => BackendHandle::spawn_in(h, tasks, future))
    }

    pub(crate) fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        dispatch!(self, h => BackendHandle::spawn_blocking_in(h, tasks, f))
    }

    /// The flavor of backend this is (`Threads` for the shared pool too).
    pub(crate) fn flavor(&self) -> Flavor {
        match self {
            Backend::Threads(_) => Flavor::Threads,
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(_) => Flavor::Tokio,
            #[cfg(feature = "smol-backend")]
            Backend::Smol(_) => Flavor::Smol,
        }
    }

    pub(crate) fn workers(&self) -> Workers {
        dispatch!(self, h => Workers::new(
            BackendHandle::num_workers(h),
            BackendHandle::max_blocking_threads(h),
        ))
    }

    pub(crate) fn name(&self) -> &str {
        dispatch!(self, h => BackendHandle::name(h))
    }

    /// Enters the backend's runtime context on this thread until the guard
    /// drops (tokio's; nothing for the others).
    pub(crate) fn enter(&self) -> Option<BackendContext<'_>> {
        match self {
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => Some(h.tokio().enter()),
            _ => None,
        }
    }

    pub(crate) fn scheduler(&self) -> Arc<dyn Schedule> {
        dispatch!(self, h => Executor::scheduler(h))
    }

    pub(crate) fn blocking_scheduler(&self) -> Arc<dyn Schedule> {
        dispatch!(self, h => Executor::blocking_scheduler(h))
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        dispatch!(self, h => std::fmt::Debug::fmt(h, f))
    }
}

/// The limits a scope's forked calls default to (nothing without the
/// process backend).
#[cfg(all(unix, feature = "process-backend"))]
pub(crate) type ProcessOptions = unirun_process::ProcessOptions;
/// The limits a scope's forked calls default to: none without the process
/// backend.
#[cfg(not(all(unix, feature = "process-backend")))]
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ProcessOptions;

/// A backend's runtime context, entered on a thread (see [`Backend::enter`]).
#[cfg(feature = "tokio-backend")]
pub(crate) type BackendContext<'a> = ::tokio::runtime::EnterGuard<'a>;
/// A backend's runtime context: none without `tokio-backend`.
#[cfg(not(feature = "tokio-backend"))]
pub(crate) type BackendContext<'a> = std::marker::PhantomData<&'a ()>;

/// Whether the calling thread runs async code that must not block: a
/// unirun worker, or a thread inside a tokio runtime.
pub(crate) fn on_async_thread() -> bool {
    unirun_core::on_worker_thread() || ambient_tokio().is_some()
}

#[cfg(feature = "tokio-backend")]
pub(crate) use self::tokio::ambient as ambient_tokio;

/// The tokio runtime the calling thread runs in: never, without `tokio-backend`.
#[cfg(not(feature = "tokio-backend"))]
pub(crate) fn ambient_tokio() -> Option<std::convert::Infallible> {
    None
}
