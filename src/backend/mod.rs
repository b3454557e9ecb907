//! The backends a scope can run on, one module each, each gated by its
//! feature once (at its declaration below), and [`start`]: the one place a
//! [`Plan`] becomes a running backend, for [`RunBuilder::build`]
//! (crate::RunBuilder::build) and the shared default executor alike.
//!
//! A [`Backend`] is a handle; every backend's handle implements
//! [`BackendHandle`], the one interface the facade calls, through
//! [`dispatch!`] (the only `match` over the variants besides [`start`]).
//! What a scope owns is a boxed [`Shutdown`], so tearing it down needs no
//! `match` either.
//!
//! # Why an enum and not `dyn BackendHandle`
//!
//! Spawning is the hot path, and its methods are generic over the future
//! (and the closure): `BackendHandle` is not object-safe, and an
//! object-safe version would box every future and make a virtual call per
//! spawn, an allocation more than the backend's own. A type parameter
//! (`Run<B>`) would spread through every public type of the facade. The
//! set of backends is closed (one per cargo feature), so an enum whose
//! [`dispatch!`] arms are all the same call keeps each spawn a direct,
//! inlinable call into the backend's crate at the cost of one predictable
//! branch; adding a backend is one variant and one arm here.

use std::future::Future;
use std::sync::Arc;

use unirun_core::{Executor, JoinHandle, RunQueue, TaskSet};

use crate::error::Error;
use crate::flavor::Flavor;
use crate::scheduler::Plan;
use crate::trace::Workers;

// Each optional part has a stand-in with the same interface, doing
// nothing, so that callers need no `cfg` of their own: without the process
// backend, the cluster, tokio or smol their types have no values (so the
// `Backend` variants of the missing backends cannot be built, and take no
// room); without tokio a thread pool runs in no reactor and there is no
// ambient runtime to borrow. One gate per feature.
cfg_if::cfg_if! {
    if #[cfg(all(unix, feature = "process-backend"))] {
        pub(crate) mod process;
    } else {
        #[path = "no_process.rs"]
        pub(crate) mod process;
    }
}
cfg_if::cfg_if! {
    if #[cfg(all(unix, feature = "cluster-backend"))] {
        pub(crate) mod cluster;
    } else {
        #[path = "no_cluster.rs"]
        pub(crate) mod cluster;
    }
}
cfg_if::cfg_if! {
    if #[cfg(feature = "tokio-backend")] {
        mod tokio_io;
        pub(crate) mod tokio;
    } else {
        #[path = "no_tokio_io.rs"]
        mod tokio_io;
        #[path = "no_tokio.rs"]
        pub(crate) mod tokio;
    }
}
cfg_if::cfg_if! {
    if #[cfg(feature = "smol-backend")] {
        pub(crate) mod smol;
    } else {
        #[path = "no_smol.rs"]
        pub(crate) mod smol;
    }
}
pub(crate) mod refused;
pub(crate) mod threads;

/// A backend a scope can run on. One variant per compiled-in backend.
#[derive(Clone)]
pub(crate) enum Backend {
    Threads(unirun_threads::Handle),
    // A compiled-out backend's variant holds a handle with no values.
    #[cfg_attr(not(feature = "tokio-backend"), allow(dead_code))]
    Tokio(tokio::Handle),
    #[cfg_attr(not(feature = "smol-backend"), allow(dead_code))]
    Smol(smol::Handle),
    /// A shared default whose pool the OS refused threads (cold: see
    /// `refused`); last, so the running backends' arms come first.
    Refused(refused::Handle),
}

/// Runs `$body` with `$h` bound to the backend's handle, whatever its kind.
macro_rules! dispatch {
    ($backend:expr, $h:ident => $body:expr) => {
        match $backend {
            Backend::Threads($h) => $body,
            Backend::Tokio($h) => $body,
            Backend::Smol($h) => $body,
            Backend::Refused($h) => $body,
        }
    };
}

/// The [`BackendHandle`] methods a backend crate's handle has as inherent
/// methods of the same name and signature: each calls that method (inherent
/// methods win over the trait's in `Self::name` paths).
macro_rules! inherent_spawn_methods {
    () => {
        #[inline]
        fn spawn<F>(&self, future: F) -> unirun_core::JoinHandle<F::Output>
        where
            F: std::future::Future + Send + 'static,
            F::Output: Send + 'static,
        {
            Self::spawn(self, future)
        }

        #[inline]
        fn spawn_blocking<F, R>(&self, f: F) -> unirun_core::JoinHandle<R>
        where
            F: FnOnce() -> R + Send + 'static,
            R: Send + 'static,
        {
            Self::spawn_blocking(self, f)
        }

        #[inline]
        fn spawn_in<F>(
            &self,
            tasks: &std::sync::Arc<unirun_core::TaskSet>,
            future: F,
        ) -> unirun_core::JoinHandle<F::Output>
        where
            F: std::future::Future + Send + 'static,
            F::Output: Send + 'static,
        {
            Self::spawn_in(self, tasks, future)
        }

        #[inline]
        fn spawn_blocking_in<F, R>(
            &self,
            tasks: &std::sync::Arc<unirun_core::TaskSet>,
            f: F,
        ) -> unirun_core::JoinHandle<R>
        where
            F: FnOnce() -> R + Send + 'static,
            R: Send + 'static,
        {
            Self::spawn_blocking_in(self, tasks, f)
        }

        fn name(&self) -> &str {
            Self::name(self)
        }

        fn num_workers(&self) -> usize {
            Self::num_workers(self)
        }

        fn max_blocking_threads(&self) -> usize {
            Self::max_blocking_threads(self)
        }
    };
}
use inherent_spawn_methods;

/// The stand-in `Handle` of a backend that is not compiled in: a type with
/// no values, so every method is an empty `match`.
#[allow(unused_macros)] // unused when every backend is compiled in
macro_rules! absent_handle {
    ($flavor:ident, $feature:literal) => {
        /// The backend's handle: it is not compiled in, so there are none.
        #[derive(Debug, Clone)]
        pub(crate) enum Handle {}

        impl unirun_core::Executor for Handle {
            fn run_queue(&self) -> std::sync::Arc<dyn unirun_core::RunQueue> {
                match *self {}
            }

            fn blocking_run_queue(&self) -> std::sync::Arc<dyn unirun_core::RunQueue> {
                match *self {}
            }
        }

        impl super::BackendHandle for Handle {
            fn spawn<F>(&self, _future: F) -> unirun_core::JoinHandle<F::Output>
            where
                F: std::future::Future + Send + 'static,
                F::Output: Send + 'static,
            {
                match *self {}
            }

            fn spawn_blocking<F, R>(&self, _f: F) -> unirun_core::JoinHandle<R>
            where
                F: FnOnce() -> R + Send + 'static,
                R: Send + 'static,
            {
                match *self {}
            }

            fn spawn_in<F>(
                &self,
                _tasks: &std::sync::Arc<unirun_core::TaskSet>,
                _future: F,
            ) -> unirun_core::JoinHandle<F::Output>
            where
                F: std::future::Future + Send + 'static,
                F::Output: Send + 'static,
            {
                match *self {}
            }

            fn spawn_blocking_in<F, R>(
                &self,
                _tasks: &std::sync::Arc<unirun_core::TaskSet>,
                _f: F,
            ) -> unirun_core::JoinHandle<R>
            where
                F: FnOnce() -> R + Send + 'static,
                R: Send + 'static,
            {
                match *self {}
            }

            fn name(&self) -> &str {
                match *self {}
            }

            fn num_workers(&self) -> usize {
                match *self {}
            }

            fn max_blocking_threads(&self) -> usize {
                match *self {}
            }

            fn flavor(&self) -> crate::flavor::Flavor {
                match *self {}
            }
        }

        /// Not reached: the scheduler plans this backend only when it is
        /// compiled in. Says which feature it needs.
        pub(crate) fn start(
            _workers: usize,
            _blocking_cap: usize,
            _name: &str,
        ) -> Result<super::Started, crate::error::Error> {
            Err(crate::error::Error::BackendUnavailable {
                flavor: crate::flavor::Flavor::$flavor,
                feature: $feature,
            })
        }
    };
}
#[allow(unused_imports)] // unused when every backend is compiled in
use absent_handle;

/// Tearing down a backend a scope started; each backend module implements
/// it for what its `start` returns.
pub(crate) trait Shutdown: Send + Sync {
    /// Shuts the backend down and joins its threads (a tokio runtime
    /// dropped where blocking is not allowed moves its shutdown to a
    /// thread of its own instead).
    fn shutdown(self: Box<Self>);

    /// [`shutdown`](Self::shutdown) that gives up on blocking closures
    /// still running after `timeout`: their threads are left to exit when
    /// the closure returns. Returns about `timeout` later at most, and
    /// whether nothing was left running (tasks, blocking closures, the
    /// blocking closures of a tokio runtime it stopped).
    fn shutdown_timeout(self: Box<Self>, timeout: std::time::Duration) -> bool;

    /// Stops the backend without waiting for its tasks (they are
    /// cancelled); blocking closures already running finish.
    fn shutdown_now(self: Box<Self>) {
        self.shutdown();
    }
}

/// What a scope owns and tears down: the backend it started.
pub(crate) type Owned = Box<dyn Shutdown>;

/// What every backend's handle offers a scope: spawning (into the scope's
/// [`TaskSet`] or not), the backend's name, sizes and flavor, and the
/// hooks the facade's timers, I/O and metrics need. Each backend module
/// implements it for its crate's handle, calling that handle's own
/// methods; the object-safe [`Executor`] supertrait gives the task hooks.
///
/// The spawn methods are generic over the future (see the module docs for
/// why that rules out `dyn BackendHandle`).
pub(crate) trait BackendHandle:
    Executor + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// Spawns `future` outside any scope.
    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Runs `f` where blocking is allowed, outside any scope.
    fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// Spawns `future` as a member of `tasks` (so closing the set cancels
    /// it and waiting for the set waits for it).
    fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Runs `f` where blocking is allowed, as a member of `tasks`.
    fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// The backend's name: its threads are named after it.
    fn name(&self) -> &str;

    /// How many threads run async tasks.
    fn num_workers(&self) -> usize;

    /// The most threads the blocking lane may run at once.
    fn max_blocking_threads(&self) -> usize;

    /// The flavor of backend this is (`Threads` for the shared pool too).
    fn flavor(&self) -> Flavor;

    /// Enters the backend's runtime context on this thread until the guard
    /// drops (tokio's; nothing for the others).
    fn enter(&self) -> Option<BackendContext<'_>> {
        None
    }

    /// A sleep until `deadline` on the backend's own timer, for
    /// `unirun::time` in the backend's tasks; `None` where unirun's timer
    /// driver serves (the default).
    fn timer(&self, deadline: std::time::Instant) -> Option<BackendTimer> {
        let _ = deadline;
        None
    }

    /// Which tokio reactor the backend's tasks use, for the trace (see
    /// [`crate::io`]); `None` where tokio has no context.
    fn reactor(&self) -> Option<&'static str> {
        None
    }

    /// The counts of the tasks spawned through the backend's own handle
    /// (outside any scope); only the threads backend keeps them.
    fn task_counts(&self) -> unirun_core::TaskCounts {
        unirun_core::TaskCounts::default()
    }

    /// unirun's scheduler counters, where unirun's scheduler runs the
    /// tasks (the threads backend only).
    fn pool_stats(&self) -> Option<unirun_core::PoolStats> {
        None
    }

    /// unirun's blocking lane, where the backend runs one (threads and
    /// smol; tokio's blocking pool is tokio's).
    fn lane_stats(&self) -> Option<unirun_threads::LaneStats> {
        None
    }

    /// An empty task set for a scope on this backend: counted per worker
    /// on the threads backend, through stripes elsewhere.
    fn task_set(&self) -> TaskSet {
        TaskSet::new()
    }
}

/// A sleep on a backend's own timer (see [`BackendHandle::timer`]), boxed so
/// that `unirun::time` needs no per-backend code.
pub(crate) struct BackendTimer {
    /// Completes at the deadline.
    pub(crate) sleep: std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// Whose timer it is, for `Debug`.
    pub(crate) name: &'static str,
}

/// A backend [`start`] brought up: the handle, what the caller now owns,
/// and, for `Plan::Processes`, the pre-forked pool (its workers start on
/// the first call).
pub(crate) struct Started {
    pub(crate) backend: Backend,
    pub(crate) owned: Owned,
    pub(crate) processes: Option<process::ProcessPool>,
}

/// Starts what `plan` describes. `Provided`, `Shared`, `Reuse` and
/// `AmbientTokio` borrow a running backend and start nothing: `None`.
pub(crate) fn start(
    plan: &Plan,
    process_options: ProcessOptions,
) -> Result<Option<Started>, Error> {
    // A child forked by other code must know it is one, whichever
    // backend's threads it lacks (see `unirun_threads::watch_forks`).
    unirun_threads::watch_forks();
    let started = match plan {
        Plan::Threads {
            workers,
            blocking_cap,
            name,
        } => threads::start(*workers, *blocking_cap, name)?,
        Plan::Processes {
            workers,
            blocking_cap,
            name,
        } => process::start(*workers, *blocking_cap, name, process_options)?,
        // The cluster's calls go through the scope's connection (the
        // builder makes it); locally it is a processes scope, whose pool
        // serves the scope as a worker would.
        Plan::Cluster {
            workers,
            blocking_cap,
            name,
        } => process::start(*workers, *blocking_cap, name, process_options)?,
        Plan::Tokio {
            workers,
            blocking_cap,
            name,
        } => tokio::start(*workers, *blocking_cap, name)?,
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
    /// Whether this is a shared default that could not start (see
    /// `refused`): for the paths that do not go through `spawn`.
    pub(crate) fn is_refused(&self) -> bool {
        matches!(self, Backend::Refused(_))
    }

    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        dispatch!(self, h => BackendHandle::spawn(h, future))
    }

    pub(crate) fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        dispatch!(self, h => BackendHandle::spawn_blocking(h, f))
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
        dispatch!(self, h => BackendHandle::flavor(h))
    }

    /// The core pool behind unirun's own workers, where fork-join runs;
    /// `None` on tokio, smol and a refused default.
    pub(crate) fn core_pool(&self) -> Option<&unirun_core::Pool> {
        match self {
            Backend::Threads(h) => Some(h.pool()),
            _ => None,
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
        dispatch!(self, h => BackendHandle::enter(h))
    }

    /// A sleep until `deadline` on the backend's own timer, if it has one
    /// that unirun may use.
    pub(crate) fn timer(&self, deadline: std::time::Instant) -> Option<BackendTimer> {
        dispatch!(self, h => BackendHandle::timer(h, deadline))
    }

    /// Which tokio reactor the backend's tasks use (see [`crate::io`]).
    pub(crate) fn reactor(&self) -> Option<&'static str> {
        dispatch!(self, h => BackendHandle::reactor(h))
    }

    /// See [`BackendHandle::task_counts`].
    pub(crate) fn task_counts(&self) -> unirun_core::TaskCounts {
        dispatch!(self, h => BackendHandle::task_counts(h))
    }

    /// See [`BackendHandle::pool_stats`].
    pub(crate) fn pool_stats(&self) -> Option<unirun_core::PoolStats> {
        dispatch!(self, h => BackendHandle::pool_stats(h))
    }

    /// See [`BackendHandle::lane_stats`].
    pub(crate) fn lane_stats(&self) -> Option<unirun_threads::LaneStats> {
        dispatch!(self, h => BackendHandle::lane_stats(h))
    }

    /// See [`BackendHandle::task_set`].
    pub(crate) fn task_set(&self) -> TaskSet {
        dispatch!(self, h => BackendHandle::task_set(h))
    }

    pub(crate) fn run_queue(&self) -> Arc<dyn RunQueue> {
        dispatch!(self, h => Executor::run_queue(h))
    }

    pub(crate) fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        dispatch!(self, h => Executor::blocking_run_queue(h))
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        dispatch!(self, h => std::fmt::Debug::fmt(h, f))
    }
}

/// The limits a scope's forked calls default to (nothing without the
/// process backend).
pub(crate) use self::process::ProcessOptions;

pub(crate) use self::tokio_io::BackendContext;

/// Whether the calling thread runs async code that must not block: a
/// unirun worker, or a thread inside a tokio runtime.
pub(crate) fn on_async_thread() -> bool {
    unirun_core::on_worker_thread() || ambient_tokio().is_some()
}

/// The tokio runtime the calling thread runs in, as a backend to borrow:
/// never, without `tokio-backend`.
pub(crate) fn ambient_tokio() -> Option<Backend> {
    tokio_io::ambient()
}
