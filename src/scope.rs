//! What a [`Run`](crate::Run) scope shares with its handles and tasks: the
//! backend it runs on, the set of its live tasks, its gil in `Gil` mode, and
//! the thread-local "current scope" that nested scopes look at.
//!
//! Every task a scope spawns (through `Run` or its `Handle`) is wrapped in
//! [`Scoped`]: each poll, or the one call of a blocking closure, makes the
//! scope current on its thread and, in `Gil` mode, holds the scope's gil.
//! The current scope is what lets `Run::builder().build()` inside a task or
//! inside `run.block_on` find its parent and reuse the parent's backend.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use unirun_core::{Executor, JoinHandle, Runnable, Schedule, ScheduleInfo, TaskSet};

use crate::flavor::Flavor;
use crate::gil::{self, Gil};
use crate::trace::Workers;

/// A backend a scope can run on. One variant per compiled-in backend.
#[derive(Clone)]
pub(crate) enum Backend {
    Threads(unirun_threads::Handle),
    #[cfg(feature = "tokio-backend")]
    Tokio(unirun_tokio::Handle),
    #[cfg(feature = "smol-backend")]
    Smol(unirun_smol::Handle),
}

/// A backend's runtime context, entered on a thread (see [`Backend::enter`]).
#[cfg(feature = "tokio-backend")]
pub(crate) type BackendContext<'a> = tokio::runtime::EnterGuard<'a>;
/// A backend's runtime context: none without `tokio-backend`.
#[cfg(not(feature = "tokio-backend"))]
pub(crate) type BackendContext<'a> = std::marker::PhantomData<&'a ()>;

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
}

/// Whether the calling thread runs async code that must not block: a
/// unirun worker, or a thread inside a tokio runtime.
pub(crate) fn on_async_thread() -> bool {
    unirun_core::on_worker_thread() || ambient_tokio().is_some()
}

/// The tokio runtime the calling thread runs in, when unirun can borrow it.
#[cfg(feature = "tokio-backend")]
pub(crate) fn ambient_tokio() -> Option<unirun_tokio::Handle> {
    unirun_tokio::Handle::current()
}

/// The tokio runtime the calling thread runs in: never, without `tokio-backend`.
#[cfg(not(feature = "tokio-backend"))]
pub(crate) fn ambient_tokio() -> Option<std::convert::Infallible> {
    None
}

impl Backend {
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Backend::Threads(h) => h.spawn(future),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => h.spawn(future),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => h.spawn(future),
        }
    }

    pub(crate) fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self {
            Backend::Threads(h) => h.spawn_blocking(f),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => h.spawn_blocking(f),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => h.spawn_blocking(f),
        }
    }

    fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Backend::Threads(h) => h.spawn_in(tasks, future),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => h.spawn_in(tasks, future),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => h.spawn_in(tasks, future),
        }
    }

    fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self {
            Backend::Threads(h) => h.spawn_blocking_in(tasks, f),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => h.spawn_blocking_in(tasks, f),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => h.spawn_blocking_in(tasks, f),
        }
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
        match self {
            Backend::Threads(h) => Workers::new(h.num_workers(), h.max_blocking_threads()),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => Workers::new(h.num_workers(), h.max_blocking_threads()),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => Workers::new(h.num_workers(), h.max_blocking_threads()),
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Backend::Threads(h) => h.name(),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => h.name(),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => h.name(),
        }
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
        match self {
            Backend::Threads(h) => h.scheduler(),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => h.scheduler(),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => h.scheduler(),
        }
    }

    pub(crate) fn blocking_scheduler(&self) -> Arc<dyn Schedule> {
        match self {
            Backend::Threads(h) => h.blocking_scheduler(),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => h.blocking_scheduler(),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => h.blocking_scheduler(),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Threads(h) => std::fmt::Debug::fmt(h, f),
            #[cfg(feature = "tokio-backend")]
            Backend::Tokio(h) => std::fmt::Debug::fmt(h, f),
            #[cfg(feature = "smol-backend")]
            Backend::Smol(h) => std::fmt::Debug::fmt(h, f),
        }
    }
}

/// A scope: its backend (owned by the `Run`, or borrowed), its live tasks
/// and, in `Gil` mode, its lock.
pub(crate) struct Scope {
    pub(crate) backend: Backend,
    pub(crate) tasks: Arc<TaskSet>,
    pub(crate) gil: Option<Arc<Gil>>,
    /// Whether a nested scope may reuse this scope's backend.
    pub(crate) reusable: bool,
    /// The scope's pre-forked workers, started by its first `call`.
    #[cfg(all(unix, feature = "process-backend"))]
    pub(crate) processes: std::sync::OnceLock<unirun_process::ProcessPool>,
    /// The scope's default limits for its forked calls and its pool
    /// (`RunBuilder::process_options`).
    #[cfg(all(unix, feature = "process-backend"))]
    pub(crate) process_options: unirun_process::ProcessOptions,
}

impl Scope {
    pub(crate) fn new(backend: Backend, gil: Option<Arc<Gil>>, reusable: bool) -> Arc<Self> {
        Arc::new(Scope {
            backend,
            tasks: Arc::new(TaskSet::new()),
            gil,
            reusable,
            #[cfg(all(unix, feature = "process-backend"))]
            processes: std::sync::OnceLock::new(),
            #[cfg(all(unix, feature = "process-backend"))]
            process_options: unirun_process::ProcessOptions::default(),
        })
    }

    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let future = Scoped::new(self.clone(), future);
        self.backend.spawn_in(&self.tasks, future)
    }

    pub(crate) fn spawn_blocking<F, R>(self: &Arc<Self>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let scope = self.clone();
        self.backend.spawn_blocking_in(&self.tasks, move || {
            let _enter = scope.enter();
            f()
        })
    }

    /// Like [`spawn_blocking`](Self::spawn_blocking), but `f` enters the
    /// scope itself, e.g. once per item so a serialized scope interleaves.
    pub(crate) fn spawn_blocking_entering_itself<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.backend.spawn_blocking_in(&self.tasks, f)
    }

    /// Makes this scope current on this thread (and holds its gil) until
    /// the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> Enter {
        let hold = self.gil.as_ref().map(gil::hold);
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        Enter {
            previous,
            _hold: hold,
        }
    }

    /// Whether the calling thread is running one of this scope's tasks (or
    /// its `block_on`).
    pub(crate) fn is_current(self: &Arc<Self>) -> bool {
        CURRENT.with(|c| c.borrow().as_ref().is_some_and(|s| Arc::ptr_eq(s, self)))
    }
}

thread_local! {
    /// The scope whose task (or `block_on`) this thread is running.
    static CURRENT: RefCell<Option<Arc<Scope>>> = const { RefCell::new(None) };
}

/// The scope whose task or `block_on` the calling thread is running, if any.
pub(crate) fn current() -> Option<Arc<Scope>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Restores the previous current scope, then releases the gil.
pub(crate) struct Enter {
    previous: Option<Arc<Scope>>,
    // Declared last: dropped after `drop` below restored the current scope.
    _hold: Option<gil::Hold>,
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // Dropped after the borrow ends: the last reference to a scope may
        // run task destructors that look at the current scope.
        let _ours = CURRENT.with(|c| c.replace(previous));
    }
}

pin_project_lite::pin_project! {
    /// A future that runs each poll inside its scope (see [`Scope::enter`]).
    pub(crate) struct Scoped<F> {
        scope: Arc<Scope>,
        #[pin]
        inner: F,
    }
}

impl<F> Scoped<F> {
    pub(crate) fn new(scope: Arc<Scope>, inner: F) -> Self {
        Scoped { scope, inner }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _enter = this.scope.enter();
        this.inner.poll(cx)
    }
}

/// The schedule hook behind a scoped [`Handle`](crate::Handle)'s
/// [`Executor`] impl: tasks join the scope's set and, in `Gil` mode, every
/// run of one holds the scope's gil.
///
/// Tasks spawned through `dyn Executor` are allocated by the core before the
/// scope sees them, so they cannot be wrapped in [`Scoped`]; in `Gil` mode
/// each wake-up is wrapped instead (one small task per wake-up, the price of
/// serializing code that was written against the trait).
pub(crate) struct ScopeSchedule {
    pub(crate) inner: Arc<dyn Schedule>,
    pub(crate) scope: Arc<Scope>,
}

impl Schedule for ScopeSchedule {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        if self.scope.gil.is_none() {
            self.inner.schedule(runnable, info);
            return;
        }
        let scope = self.scope.clone();
        let inner = self.inner.clone();
        let (wrapper, handle) = unirun_core::spawn_with(
            async move {
                let _enter = scope.enter();
                runnable.run();
            },
            None,
            move |r, info| inner.schedule(r, info),
        );
        handle.detach();
        wrapper.schedule();
    }

    fn task_set(&self) -> Option<&Arc<TaskSet>> {
        Some(&self.scope.tasks)
    }
}
