//! [`Handle`]: a reference to a running executor, whatever its backend.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use unirun_core::{Executor, RunQueue};

use crate::backend::Backend;
use crate::flavor::Flavor;
use crate::scope::{ScopeRunQueue, ScopeState};
use crate::JoinHandle;

/// A cloneable reference to a running executor, usable from any thread and
/// inside its tasks. Implements [`Executor`], so it can be passed to code
/// that takes `&dyn Executor`.
///
/// A handle from [`Run::handle`](crate::Run::handle) belongs to that scope:
/// what it spawns is one of the scope's tasks (the scope's shutdown waits for
/// it, and in [`ThreadMode::Gil`](crate::ThreadMode::Gil) it is serialized
/// with the rest of the scope). After the scope shut down, its handles
/// cancel what they spawn.
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
    backend: Backend,
    scope: Option<Arc<ScopeState>>,
}

impl Handle {
    pub(crate) fn new(backend: Backend, scope: Option<Arc<ScopeState>>) -> Self {
        Self { backend, scope }
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    #[cfg_attr(not(all(unix, feature = "process-backend")), allow(dead_code))]
    pub(crate) fn scope(&self) -> Option<&Arc<ScopeState>> {
        self.scope.as_ref()
    }

    /// The executor the calling code runs on, like tokio's
    /// `Handle::current()`; see [`try_current`](Self::try_current) for
    /// which one that is.
    ///
    /// # Panics
    ///
    /// Outside unirun's tasks, blocking closures and `block_on` calls
    /// (on a thread of your own, or in another runtime's task), with a
    /// message that names [`get_executor`](crate::get_executor) as the
    /// way to reach the shared default from anywhere. In a blocking
    /// closure of a shared default that [`reset`](crate::reset) replaced
    /// while it ran (and that looked at the default before), the message
    /// names the reset.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().name("here").build()?;
    /// let name = run.block_on(async {
    ///     // Spawns into `run`, not onto the shared default.
    ///     let task = unirun::Handle::current().spawn(async {
    ///         std::thread::current().name().map(String::from)
    ///     });
    ///     task.await
    /// });
    /// assert!(name.unwrap().unwrap().starts_with("here-"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Some(handle) => handle,
            None if crate::global::on_a_replaced_default() => panic!(
                "unirun::Handle::current() called in a blocking closure of a shared default \
                 executor that unirun::reset() (or configure) replaced while it ran: that \
                 executor is shut down, and this thread is none of the new one's (use \
                 unirun::get_executor() for the current shared default)"
            ),
            None => panic!(
                "unirun::Handle::current() called outside unirun: not in a task, blocking \
                 closure or block_on of a unirun executor (use unirun::get_executor() \
                 for the shared default from any thread)"
            ),
        }
    }

    /// The executor the calling code runs on, or `None` outside unirun:
    ///
    /// - inside a [`Run`](crate::Run) scope's task, blocking closure or
    ///   [`Run::block_on`](crate::Run::block_on): that scope (what the
    ///   handle spawns is one of the scope's tasks, as with
    ///   [`Run::handle`](crate::Run::handle));
    /// - inside a task or blocking closure of the shared default executor
    ///   (what [`spawn`](crate::spawn) and [`to_thread`](crate::to_thread)
    ///   start outside any scope), or inside
    ///   [`unirun::block_on`](crate::block_on): the shared default
    ///   ([`get_executor`](crate::get_executor));
    /// - anywhere else (a thread of your own, another runtime's task):
    ///   `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::Handle;
    ///
    /// assert!(Handle::try_current().is_none()); // a plain thread
    /// let run = unirun::Run::builder().name("mine").build()?;
    /// let inside = run.spawn(async { Handle::try_current().map(|h| h.name().to_string()) });
    /// assert_eq!(inside.join().unwrap().as_deref(), Some("mine"));
    /// let shared = unirun::spawn(async { Handle::try_current().map(|h| h.name().to_string()) });
    /// assert_eq!(shared.join().unwrap().as_deref(), Some("unirun"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn try_current() -> Option<Handle> {
        if let Some(scope) = crate::scope::current() {
            return Some(Handle::new(scope.backend.clone(), Some(scope)));
        }
        crate::global::current_default()
    }

    /// Spawns a future on this executor.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = unirun::get_executor();
    /// assert_eq!(handle.spawn(async { 2 + 2 }).join().unwrap(), 4);
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.scope {
            Some(scope) => scope.spawn(future),
            None => self.backend.spawn(future),
        }
    }

    /// Runs a blocking closure where blocking is allowed.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = unirun::get_executor();
    /// assert_eq!(handle.spawn_blocking(|| 6 * 7).join().unwrap(), 42);
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match &self.scope {
            Some(scope) => scope.spawn_blocking(f),
            None => self.backend.spawn_blocking(f),
        }
    }

    /// [`spawn_blocking`](Self::spawn_blocking) for the compat modules,
    /// which mirror independent threads: `f` never holds a serialized
    /// scope's gil (see the `gil` module).
    pub(crate) fn spawn_independent<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match &self.scope {
            Some(scope) => scope.spawn_independent(f),
            None => self.backend.spawn_blocking(f),
        }
    }

    /// Number of async worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun::get_executor().num_workers() >= 1);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.backend.workers().cpu()
    }

    /// A snapshot of this executor's tasks, workers and blocking lane (see
    /// [`Metrics`](crate::Metrics)): a scope's handle reports its scope's
    /// tasks, the shared default's handle those spawned through it.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = unirun::get_executor();
    /// let before = handle.metrics().spawned();
    /// handle.spawn(async {}).join().unwrap();
    /// assert!(handle.metrics().spawned() > before);
    /// assert!(handle.metrics().workers() >= 1);
    /// ```
    pub fn metrics(&self) -> crate::Metrics {
        crate::Metrics::collect(&self.backend, self.scope.as_deref())
    }

    /// Most threads the blocking lane may grow to.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun::get_executor().max_blocking_threads() >= 1);
    /// ```
    pub fn max_blocking_threads(&self) -> usize {
        self.backend.workers().blocking_cap()
    }

    /// The backend's thread name prefix: its threads are `{name}-{i}` and
    /// `{name}-blocking-{i}`.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().name("ingest").build()?;
    /// assert_eq!(run.handle().name(), "ingest");
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.backend.name()
    }

    /// The kind of backend the handle spawns on (`Threads` for unirun's
    /// thread pools, the shared default included), as its trace says.
    /// `Processes` for a scope the scheduler sent to processes: its `call`
    /// and `to_process` fork, its `spawn` and `spawn_blocking` run on its
    /// thread pool.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::get_executor().flavor(), unirun::Flavor::Threads);
    /// ```
    pub fn flavor(&self) -> Flavor {
        match &self.scope {
            Some(scope) if scope.cluster.get().is_some() => Flavor::Cluster,
            Some(scope) if scope.forks => Flavor::Processes,
            _ => self.backend.flavor(),
        }
    }
}

impl Executor for Handle {
    fn run_queue(&self) -> Arc<dyn RunQueue> {
        match &self.scope {
            Some(scope) => Arc::new(ScopeRunQueue {
                inner: self.backend.run_queue(),
                scope: scope.clone(),
                blocking: false,
            }),
            None => self.backend.run_queue(),
        }
    }

    fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        match &self.scope {
            Some(scope) => Arc::new(ScopeRunQueue {
                inner: self.backend.blocking_run_queue(),
                scope: scope.clone(),
                blocking: true,
            }),
            None => self.backend.blocking_run_queue(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Handle");
        d.field("backend", &self.backend);
        if let Some(scope) = &self.scope {
            d.field("scope_tasks", &scope.tasks.len())
                .field("serialized", &scope.gil.is_some());
        }
        d.finish()
    }
}
