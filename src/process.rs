//! Forked-process execution (cargo feature `process-backend`, unix):
//! [`to_process`], [`to_process_with`], [`Handle::to_process_with`] and
//! [`Run::to_process`].
//!
//! Each call forks: the closure runs in a child process on a copy-on-write
//! snapshot of the parent (captured data just works, nothing is
//! registered, nothing is re-executed), and its result comes back
//! serialized. The parent waits on the blocking lane of the executor the
//! call goes through, never on an async worker. A child that panics, is
//! killed by a signal, runs past its timeout or sends back something
//! unreadable turns into a [`JoinError`](crate::JoinError) saying which;
//! the parent and its other work are unaffected. Every child is reaped and
//! every pipe closed; children die with the parent (Linux
//! `PR_SET_PDEATHSIG`) and a scope that shuts down without waiting
//! ([`Run::shutdown_now`], or [`Run::shutdown_timeout`] past its limit)
//! kills its running children, whose handles resolve to `Err(cancelled)`.
//!
//! # What is safe inside the closure
//!
//! Only the forking thread exists in the child. unirun forks only while no
//! thread holds one of unirun's own locks, and with `stdout` and `stderr`
//! locked by the forking thread, so inside the closure unirun's helpers
//! work (pools inherited from the parent, whose threads do not exist
//! there, run work inline: `unirun::spawn(..).join()` and
//! `unirun::to_thread` complete on the calling thread, a nested
//! `to_process` forks again, inherited pools are forgotten rather than
//! joined when dropped), and so do `println!`/`eprintln!`, pure
//! computation on captured data, allocation with glibc's malloc (it re-arms
//! its locks through atfork handlers), system calls, new files and new
//! threads.
//!
//! Still unsafe: locks unirun does not own that other parent threads may
//! have held at the fork -- your own `Mutex`es, a logger's or a connection
//! pool's locks, a non-glibc global allocator, the environment lock behind
//! `std::env::set_var` -- stay held in the child forever. A
//! [`ProcessOptions::timeout`] is the safety net that kills a child stuck on
//! such a lock; it is on by default
//! ([`ProcessOptions::DEFAULT_TIMEOUT`], one hour), so no handle waits
//! forever; set a tighter one, or `timeout(None)` for none. The number of
//! threads the parent had when a scope chose processes is in its trace
//! ([`DecisionTrace::parent_threads`](crate::DecisionTrace::parent_threads)).
//! The details are in the `unirun-process` crate docs.
//!
//! For many small calls, [`ProcessPool`] keeps pre-forked workers that run
//! `fn(A) -> R` with serde payloads, without a fork per call
//! ([`Run::call`] and [`Handle::call`] on a scope's own pool). A call
//! starts at once when a worker is idle (its request is written by the
//! calling thread) and queues otherwise; joining its handle from a thread
//! reads the reply right there, so a call joined at once costs about one
//! pipe round trip, while the replies of awaited (or detached) handles are
//! waited for by one thread per pool, `unirun-replies`, which hands each
//! worker its next queued call as soon as its reply is in (the async worker
//! never blocks, and no blocking-lane thread is held per call). Call
//! [`init`] at the top of `main`, while the process is single-threaded: the
//! workers then come from a fork server forked at that moment, so no lock
//! can be stuck in them. Without it the pools fork workers directly from a
//! thread of the parent ([`ProcessPool::origin`] says which). Functions
//! travel to the workers by address: call only functions that were in the
//! program when the workers started (for workers from the fork server,
//! when `init` ran), not ones from a library loaded later; on Linux such a
//! call fails with a transport error saying so (see [`ProcessPool`]).
//!
//! What a child sends back for an error is capped: a panic message longer
//! than [`MAX_PANIC_MESSAGE`] bytes is cut in the child and says how much
//! was cut, and the parent keeps no error report over [`MAX_ERROR_FRAME`]
//! bytes. A result value is not capped (it is your data). A
//! [`ProcessOptions::memory_limit`] is headroom: how much more the child
//! may map than the address space it inherited.
//!
//! A [`Flavor::Processes`] scope runs its
//! `spawn`/`spawn_blocking` tasks on a thread pool of its own, like any
//! scope; its process work is what goes through [`Run::to_process`] and
//! [`Run::call`]. Limits are [`ProcessOptions`]: a scope's default is set
//! with [`RunBuilder::process_options`](crate::RunBuilder::process_options)
//! (used by [`Run::to_process`] and the scope's pool), and options given
//! per call ([`Run::to_process_with`], [`to_process_with`],
//! [`Handle::to_process_with`]) replace it for that call. A
//! `Flavor::Processes` scope's trace says where its pool's workers come
//! from ([`DecisionTrace::process_pool`](crate::DecisionTrace::process_pool)).
//!
//! `UNIRUN_FORCE_THREADS=1` (or `force_threads` in code, given to
//! [`configure`](crate::configure) or in a scope's own config) sends this
//! work to the blocking lane of the executor it goes through instead (the
//! scope's, for a scope's handle), without a fork, and publishes a
//! decision saying so (naming the scope when its own config forced it).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use unirun::process::ProcessOptions;
//!
//! let words = vec!["fork", "and", "join"];
//! let total = unirun::to_process(move || words.iter().map(|w| w.len()).sum::<usize>());
//! assert_eq!(total.join().unwrap(), 11);
//!
//! let options = ProcessOptions::default().timeout(Duration::from_secs(30));
//! let crash = unirun::to_process_with(options, || -> u8 { std::process::abort() });
//! let err = crash.join().unwrap_err();
//! assert_eq!(err.signal_name(), Some("SIGABRT"));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use unirun_process::{
    in_forked_child, init, running_children, shutdown, ProcessOptions, ProcessPool,
    MAX_ERROR_FRAME, MAX_PANIC_MESSAGE,
};

use crate::flavor::Flavor;
use crate::global;
use crate::scheduler::{self, Request};
use crate::scope::ScopeState;
use crate::{Handle, JoinHandle, Run};

/// Runs `f` in a forked child process and returns a handle to its result;
/// the wait happens on the shared default executor's blocking lane.
///
/// See the [module docs](crate::process) for what `f` may safely do when
/// the parent has other threads.
///
/// # Examples
///
/// ```
/// let data = vec![3u64; 1000];
/// let sum = unirun::to_process(move || data.iter().sum::<u64>());
/// assert_eq!(unirun::block_on(sum).unwrap(), 3000);
///
/// let err = unirun::to_process(|| -> u8 { panic!("parser failed") }).join().unwrap_err();
/// assert_eq!(err.panic_message(), Some("parser failed"));
/// ```
pub fn to_process<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    to_process_with(ProcessOptions::default(), f)
}

/// [`to_process`] with limits: a timeout (the child is killed and reaped,
/// the handle resolves to "timed out"), memory and CPU-time limits, nice.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unirun::process::ProcessOptions;
///
/// let options = ProcessOptions::default().timeout(Duration::from_millis(200));
/// let stuck = unirun::to_process_with(options, || -> u8 { loop { std::hint::spin_loop() } });
/// let err = stuck.join().unwrap_err();
/// assert!(err.is_timeout());
/// assert!(err.to_string().contains("timed out"));
/// ```
pub fn to_process_with<F, T>(options: ProcessOptions, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    global::get_executor().to_process_with(options, f)
}

#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "process-backend"))))]
impl Handle {
    /// Runs `f` in a forked child process (see [`to_process`]); the wait
    /// happens on this executor's blocking lane and the call is one of its
    /// tasks (a scope's, for a scope's handle: its `shutdown_now` kills the
    /// child).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::process::ProcessOptions;
    ///
    /// let run = unirun::Run::builder().name("isolated").build()?;
    /// let pid = run.handle().to_process_with(ProcessOptions::default(), std::process::id);
    /// assert_ne!(pid.join().unwrap(), std::process::id());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn to_process_with<F, T>(&self, options: ProcessOptions, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        // A pool that could not start resolves it to its `not_started`.
        if forced_to_threads(self.scope()) || self.backend().is_refused() {
            return self.spawn_blocking(f);
        }
        let lane = self.backend().blocking_run_queue();
        let tasks = match self.scope() {
            Some(scope) => Some(scope.tasks.clone()),
            None => lane.task_set().cloned(),
        };
        unirun_process::spawn_on(lane, tasks, options, f)
    }
}

#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "process-backend"))))]
impl Handle {
    /// Calls `f(arg)` in one of the executor's pre-forked worker processes
    /// ([`ProcessPool`]): no fork per call, so this is the fast path for
    /// many small isolated calls. `f` must be a function (or a closure
    /// that captures nothing); argument and result travel serialized.
    ///
    /// A scope's handle uses the scope's own pool, with as many workers as
    /// the scope has (`max_workers` caps it) and the scope's
    /// [`process_options`](crate::RunBuilder::process_options) as its
    /// limits; a `Flavor::Processes` scope creates it when it is built (its
    /// trace says where the workers come from, see
    /// [`DecisionTrace::process_pool`](crate::DecisionTrace::process_pool)),
    /// other scopes on their first call. Workers start on demand;
    /// its `shutdown_now` kills busy workers (their calls resolve to
    /// cancelled) and the pool's workers end with the scope. Other handles
    /// share one process-wide pool sized from
    /// [`Capabilities::suggested_process_workers`](crate::Capabilities::suggested_process_workers).
    /// Crashed or timed-out workers are replaced. `f` must be in the
    /// program's image when the workers start (see [`ProcessPool`]): a
    /// function from a library loaded after `init` fails with a transport
    /// error on Linux.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// fn parse(line: String) -> usize {
    ///     line.split(',').count()
    /// }
    ///
    /// let run = Run::builder().flavor(Flavor::Processes).max_workers(2).build()?;
    /// let fields = run.handle().call(parse, "a,b,c".to_string());
    /// assert_eq!(fields.join().unwrap(), 3);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn call<A, R>(&self, f: fn(A) -> R, arg: A) -> JoinHandle<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        if let Some(client) = self.scope().and_then(|s| s.cluster.get()) {
            return crate::backend::cluster::call(self, client, f, arg);
        }
        // A pool that could not start resolves it to its `not_started`.
        if forced_to_threads(self.scope()) || self.backend().is_refused() {
            return self.spawn_blocking(move || f(arg));
        }
        let lane = self.backend().blocking_run_queue();
        match self.scope() {
            Some(scope) => {
                let pool = scope
                    .processes
                    .get_or_init(|| ProcessPool::new(self.num_workers(), scope.process_options));
                pool.spawn_call_on(lane, Some(scope.tasks.clone()), f, arg)
            }
            None => {
                let tasks = lane.task_set().cloned();
                shared_pool().spawn_call_on(lane, tasks, f, arg)
            }
        }
    }
}

#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "process-backend"))))]
impl Run {
    /// Calls `f(arg)` in one of the scope's pre-forked worker processes
    /// (see [`Handle::call`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::new(Flavor::Processes)?;
    /// let squares: Vec<_> = (0..4u64).map(|i| run.call(|x: u64| x * x, i)).collect();
    /// let squares: Vec<u64> = squares.into_iter().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(squares, [0, 1, 4, 9]);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn call<A, R>(&self, f: fn(A) -> R, arg: A) -> JoinHandle<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.handle().call(f, arg)
    }
}

#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "process-backend"))))]
impl Run {
    /// Runs `f` in a forked child process as one of the scope's tasks,
    /// under the scope's [`process_options`](crate::RunBuilder::process_options)
    /// (no limits unless set); see [`Handle::to_process_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::new(Flavor::Processes)?;
    /// let square = run.to_process(|| 12u32 * 12);
    /// assert_eq!(square.join().unwrap(), 144);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn to_process<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let options = self
            .handle()
            .scope()
            .map_or_else(ProcessOptions::default, |scope| scope.process_options);
        self.to_process_with(options, f)
    }

    /// [`Run::to_process`] with `options` for this call; they replace the
    /// scope's [`process_options`](crate::RunBuilder::process_options) as a
    /// whole (fields left unset here are unset for this call).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use unirun::{process::ProcessOptions, Flavor, Run};
    ///
    /// let run = Run::new(Flavor::Processes)?;
    /// let options = ProcessOptions::default().timeout(Duration::from_millis(100));
    /// let stuck = run.to_process_with(options, || -> u8 { loop { std::thread::park() } });
    /// assert!(stuck.join().unwrap_err().is_timeout());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn to_process_with<F, T>(&self, options: ProcessOptions, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        self.handle().to_process_with(options, f)
    }
}

// The builder's process setting lives here, with the feature's other items.
impl crate::RunBuilder {
    /// Default [`ProcessOptions`](crate::process::ProcessOptions) for the
    /// scope's process work (cargo feature `process-backend`, unix): the
    /// limits of [`Run::to_process`] and of every [`Run::call`] /
    /// [`Handle::call`] on the scope's pool (a timed-out pool worker is
    /// killed and replaced).
    ///
    /// Precedence: options given per call
    /// ([`Run::to_process_with`], [`Handle::to_process_with`]) replace the
    /// scope's options as a whole; they are not merged field by field.
    /// Without this method the scope's default is
    /// `ProcessOptions::default()` (no limits).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use unirun::{process::ProcessOptions, Flavor, Run};
    ///
    /// let run = Run::builder()
    ///     .flavor(Flavor::Processes)
    ///     .process_options(ProcessOptions::default().timeout(Duration::from_millis(100)))
    ///     .build()?;
    /// let stuck = run.to_process(|| -> u8 { loop { std::thread::park() } });
    /// assert!(stuck.join().unwrap_err().is_timeout());
    /// // Per-call options replace the scope's: no timeout for this one.
    /// let quick = run.to_process_with(ProcessOptions::default(), || 7u8);
    /// assert_eq!(quick.join().unwrap(), 7);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(all(unix, feature = "process-backend"))))]
    pub fn process_options(mut self, options: ProcessOptions) -> Self {
        self.process_options = Some(options);
        self
    }
}

/// The generation (see `global::processes::generation`) in which process work was
/// last found not forced to threads; 0 = not known. Read on every call, so
/// a call does not take the global lock and resolve the configuration.
static NOT_FORCED: AtomicU64 = AtomicU64::new(0);

/// Whether the operator's `UNIRUN_FORCE_THREADS` (or `force_threads` in
/// code: [`configure`](crate::configure)'s, or the config of `scope`, the
/// scope the work goes through) sends process work to threads; if so,
/// publishes the decision.
fn forced_to_threads(scope: Option<&Arc<ScopeState>>) -> bool {
    if let Some(scope) = scope.filter(|s| s.threads_only.load(Ordering::Relaxed)) {
        // The scope's own setting: said in a decision naming the scope.
        let snapshot = global::snapshot();
        publish_forced(
            &snapshot,
            crate::RuntimeConfig::default().force_threads(true),
            Some(scope.backend.name().to_string()),
        );
        return true;
    }
    let generation = global::processes::generation();
    if NOT_FORCED.load(Ordering::Acquire) == generation {
        return false;
    }
    let snapshot = global::snapshot();
    let forced = scheduler::resolve::forced_flavor(&snapshot.config, &snapshot.env.config)
        == Some(Flavor::Threads);
    if !forced {
        // Read before the snapshot: a `configure` meanwhile bumped it, and
        // the next call looks again.
        NOT_FORCED.store(generation, Ordering::Release);
        return false;
    }
    publish_forced(&snapshot, crate::RuntimeConfig::default(), None);
    true
}

/// Publishes the decision that sends process work to threads: requested
/// `Processes`, resolved `Threads` by `force_threads` (from `code`, the
/// global config or the environment), for the scope called `name`.
fn publish_forced(snapshot: &global::Snapshot, code: crate::RuntimeConfig, name: Option<String>) {
    let request = Request {
        requested: Flavor::Processes,
        code,
        configured: snapshot.config.clone(),
        name,
        provided: false,
        provided_flavor: Flavor::Threads,
        implicit: true,
        ambient_tokio: false,
    };
    if let Ok(decision) = scheduler::decide(request, &snapshot.env, &snapshot.caps, None) {
        scheduler::publish(&decision.trace, None);
    }
}

/// Kills the forked children and pool workers working for `scope` (a scope
/// shutting down without waiting).
pub(crate) fn cancel_children(scope: &ScopeState) {
    unirun_process::cancel_children(&scope.tasks);
    if let Some(pool) = scope.processes.get() {
        pool.shutdown_now();
    }
}

/// Kills the forked children started through `handle` (the shared default
/// being reset).
pub(crate) fn cancel_handle_children(handle: &Handle) {
    match handle.scope() {
        Some(scope) => cancel_children(scope),
        None => {
            if let Some(tasks) = handle.backend().blocking_run_queue().task_set() {
                unirun_process::cancel_children(tasks);
            }
        }
    }
}

/// The pool behind `call` on handles without a scope (the shared default),
/// owned by the global state so [`reset`](crate::reset) stops it.
fn shared_pool() -> ProcessPool {
    global::processes::shared_process_pool()
}

/// For [`reset`](crate::reset), after the shared pool was shut down: stops
/// the fork server and lets the `unirun-forker` thread end (it does once no
/// scope's pool holds it).
pub(crate) fn reset_processes() {
    unirun_process::shutdown();
}

/// For a scope about to wait for its tasks: calls whose handles nobody
/// joins yet have their replies read on the lane, so the wait ends.
pub(crate) fn start_pending_calls(scope: &ScopeState) {
    if let Some(pool) = scope.processes.get() {
        pool.start_pending();
    }
}

/// For a scope that has finished its tasks: its process pool's idle
/// workers are killed and reaped and the pool lets go of the forker thread.
pub(crate) fn close_scope_pool(scope: &ScopeState) {
    if let Some(pool) = scope.processes.get() {
        pool.shutdown_now();
    }
}
