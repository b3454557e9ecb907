//! [`Run`]: a scope that owns (or borrows) a backend, owns the tasks spawned
//! through it, and tears down what it owns.

mod builder;
mod shutdown;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

pub use self::builder::RunBuilder;
use self::shutdown::{Signal, SignalWait, Stop, Teardown};
use crate::backend::{self, Owned};
use crate::error::Error;
use crate::flavor::Flavor;
use crate::scope::ScopeState;
use crate::trace::DecisionTrace;
use crate::{Handle, JoinHandle};

/// A scope of work: a backend chosen by the scheduler (with the reasons in
/// its [`trace`](Self::trace)), the tasks spawned through it, and a
/// lifecycle.
///
/// # Backends
///
/// [`Run::builder`] decides, first match wins: an executor passed with
/// [`executor`](RunBuilder::executor) (`provided`); the force switches
/// (`force_threads`, then `force_process`, which falls back to threads when
/// the process backend is not compiled in); an explicit
/// [`flavor`](RunBuilder::flavor); `auto = false` (the shared pool); the
/// configured flavor; cpu-bound work in `Gil` mode (processes, falling back
/// to threads); otherwise a thread pool of its own, sized from
/// [`capabilities`](crate::capabilities).
///
/// A scope built inside another one (inside its `block_on` or one of its
/// tasks) that resolves to threads and sets no `name` or `max_workers` of
/// its own reuses the parent's pool instead of starting one (trace: "reused
/// parent scope"). It still owns only its own tasks, and must end before
/// its parent does.
///
/// # Tasks and lifecycle
///
/// Everything spawned through the scope (with [`spawn`](Self::spawn),
/// [`spawn_blocking`](Self::spawn_blocking), [`map`](Self::map) or its
/// [`handle`](Self::handle)) belongs to it:
///
/// - [`shutdown`](Self::shutdown), or dropping the scope, waits until all of
///   it finished, then shuts down and joins the pool if the scope owns one:
///   the thread count returns to what it was, no thread named after the
///   scope survives it;
/// - [`shutdown_now`](Self::shutdown_now) cancels what has not finished
///   (blocking closures already running complete) and
///   [`shutdown_timeout`](Self::shutdown_timeout) waits up to a limit first;
///   cancelled tasks' handles resolve to `Err(cancelled)`;
/// - [`shutdown_async`](Self::shutdown_async) waits without blocking;
/// - dropped on an async worker thread, or inside one of its own tasks, a
///   scope never blocks that thread: the wait moves to a helper thread named
///   `{name}-shutdown`;
/// - a borrowed backend (provided, shared, or a parent's) is never shut
///   down; afterwards, the scope's handles cancel what they spawn.
///
/// In [`ThreadMode::Gil`](crate::ThreadMode::Gil) the scope's tasks never run
/// at the same instant: each async poll and each poll of
/// [`block_on`](Self::block_on)'s future holds the scope's lock, and so does
/// each blocking closure when the program chose `Gil` in code (under the
/// `UNIRUN_THREAD_MODE` switch, blocking closures run outside it). Blocking
/// waits of unirun's own (`block_on`, `JoinHandle::join`, `map`, shutdown)
/// release it while they wait; [`allow_threads`](crate::allow_threads)
/// releases it around other blocking calls, and under the switch a task
/// asleep in one lends it to the next (see [`ThreadMode`](crate::ThreadMode)).
///
/// `Run` is `Send`: a scope can move into a task or to another thread.
///
/// # Examples
///
/// ```
/// use unirun::{Flavor, Run};
///
/// let run = Run::builder().flavor(Flavor::Threads).name("ingest").build()?;
/// let sum = run.spawn(async { 1 + 1 });
/// let file = run.spawn_blocking(|| std::fs::metadata(".").is_ok());
/// assert_eq!(run.block_on(sum).unwrap(), 2);
/// assert!(file.join().unwrap());
/// assert_eq!(run.map(1..=4, |i| i * i), [1, 4, 9, 16]);
/// println!("{}", run.trace());
/// run.shutdown();
/// # Ok::<(), unirun::Error>(())
/// ```
pub struct Run {
    scope: Arc<ScopeState>,
    handle: Handle,
    /// The pool this scope started; `None` when it borrows one.
    owned: Option<Owned>,
    trace: DecisionTrace,
    /// How many closures `map` runs at once on the blocking lane.
    parallelism: usize,
    /// Whether `map` runs its items on the workers (fork-join) rather than
    /// on the blocking lane; see `map`.
    map_on_workers: bool,
    /// The backend's name, for the shutdown helper thread.
    name: String,
    /// Set once a shutdown started; `Drop` then does nothing.
    finished: bool,
}

impl Run {
    /// A builder with the default settings (`Flavor::Auto`).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().name("jobs").build()?;
    /// assert_eq!(run.handle().name(), "jobs");
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn builder() -> RunBuilder {
        RunBuilder::default()
    }

    /// A scope on `flavor` with default settings: short for
    /// `Run::builder().flavor(flavor).build()`.
    ///
    /// # Errors
    ///
    /// As [`RunBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::new(Flavor::Threads)?;
    /// assert_eq!(run.trace().resolved(), Flavor::Threads);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn new(flavor: Flavor) -> Result<Run, Error> {
        Run::builder().flavor(flavor).build()
    }

    /// Spawns a future as one of the scope's tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let handle = run.spawn(async { "done" });
    /// assert_eq!(handle.join().unwrap(), "done");
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.scope.spawn(future)
    }

    /// Runs a blocking closure on the scope's blocking lane, as one of its
    /// tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let handle = run.spawn_blocking(|| std::fs::read_dir(".").is_ok());
    /// assert!(handle.join().unwrap());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.scope.spawn_blocking(f)
    }

    /// Drives `future` to completion on the calling thread, inside the
    /// scope: scopes built in it nest in this one, in `Gil` mode its polls
    /// hold the scope's lock, and on a tokio scope it runs in the runtime's
    /// context (tokio's timers and I/O work).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let a = run.spawn(async { 20 });
    /// let b = run.spawn_blocking(|| 22);
    /// let sum = run.block_on(async { a.await.unwrap() + b.await.unwrap() });
    /// assert_eq!(sum, 42);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        // On a tokio scope, tokio's timers and I/O work in `future` too.
        let _context = self.scope.backend.enter();
        // Each poll inside the scope, borrowing it: no reference count is
        // touched per call.
        let scope = &self.scope;
        let mut future = std::pin::pin!(future);
        unirun_core::block_on(std::future::poll_fn(move |cx| {
            let _enter = scope.enter();
            future.as_mut().poll(cx)
        }))
    }

    /// Runs `f` over `items` in parallel and returns the results in input
    /// order, on the path the scope's hints pick:
    ///
    /// - **on the blocking lane** by default: right for items that block
    ///   (on I/O, a lock, a channel fed by a task of the scope), which must
    ///   not take the workers the rest of the scope needs. At most as many
    ///   closures run at once as the scope has workers (as its blocking lane
    ///   has threads, for `io_bound` scopes), each item taken from a shared
    ///   queue;
    /// - **on the workers** (fork-join, like [`par_map`](crate::par_map):
    ///   adaptive chunks, no lock or allocation per item) when the scope is
    ///   `cpu_bound` ([`RuntimeConfig::cpu_bound`](crate::RuntimeConfig::cpu_bound),
    ///   or `UNIRUN_CPU_BOUND=1`): right for CPU items, even tiny ones. Not
    ///   when it is also `io_bound`, runs in `Gil` mode, or has no unirun
    ///   workers (tokio, smol).
    ///
    /// So `cpu_bound(true)` picks the workers, and
    /// [`par_map`](crate::par_map) is the CPU map whatever the hints;
    /// [`Run::trace`] says which path a scope took. Either way, if `f`
    /// panics the other items still run to the end, then the first panic (in
    /// input order) resumes on the caller.
    ///
    /// On a [`Flavor::Cluster`](crate::Flavor::Cluster) scope `map` too
    /// runs `f` in this process, on the blocking lane: `f` is any closure,
    /// and a closure cannot travel to another machine (its code has no name
    /// a worker can look up, its captures and `T`, `R` need not be serde
    /// values). To run the items on the cluster's workers, name a
    /// `#[unirun::remote]` function and call
    /// `Run::map_call(f, items)` (feature `cluster-backend`): the same map, with a
    /// `Result` per item because a remote item can fail in transport too.
    ///
    /// # Panics
    ///
    /// With `f`'s panic; or if the scope's backend was shut down under it
    /// (its tasks cancelled), with a message saying so.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let lengths = run.map(["a", "bb", "ccc"], |s| s.len());
    /// assert_eq!(lengths, [1, 2, 3]);
    ///
    /// let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     run.map(0..4, |i| if i == 2 { panic!("item {i} failed") } else { i })
    /// }));
    /// assert!(caught.is_err());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn map<I, T, R, F>(&self, items: I, f: F) -> Vec<R>
    where
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        if self.map_on_workers {
            let items: Vec<T> = items.into_iter().collect();
            return self.handle.par_map(items, f);
        }
        let items: Vec<(usize, T)> = items.into_iter().enumerate().collect();
        let len = items.len();
        if len == 0 {
            return Vec::new();
        }
        type Outcome<R> = Vec<(usize, thread::Result<R>)>;
        let queue = Arc::new(Mutex::new(items.into_iter()));
        let f = Arc::new(f);
        let runners: Vec<JoinHandle<Outcome<R>>> = (0..self.parallelism.min(len))
            .map(|_| {
                let (queue, f, scope) = (queue.clone(), f.clone(), self.scope.clone());
                // The scope is entered per item, so in `Gil` mode the runners
                // take turns instead of one holding the lock for the batch.
                self.scope.spawn_blocking_entering_itself(move || {
                    let mut out = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                        let Some((i, item)) = next else { break };
                        let _enter = scope.enter_blocking();
                        out.push((i, panic::catch_unwind(AssertUnwindSafe(|| f(item)))));
                    }
                    out
                })
            })
            .collect();
        let mut results: Vec<Option<R>> = std::iter::repeat_with(|| None).take(len).collect();
        let mut first_panic: Option<(usize, Box<dyn std::any::Any + Send>)> = None;
        for runner in runners {
            let outcome = runner.join().unwrap_or_else(|err| {
                panic!("unirun: Run::map could not finish: {err}");
            });
            for (i, result) in outcome {
                match result {
                    Ok(value) => results[i] = Some(value),
                    Err(payload) => {
                        if first_panic.as_ref().is_none_or(|(j, _)| i < *j) {
                            first_panic = Some((i, payload));
                        }
                    }
                }
            }
        }
        if let Some((_, payload)) = first_panic {
            panic::resume_unwind(payload);
        }
        results
            .into_iter()
            .map(|r| r.expect("every item ran: runners drain the queue"))
            .collect()
    }

    /// [`join`](crate::join) on the scope's workers: on a unirun worker
    /// thread it forks there, elsewhere it forks onto this scope's workers
    /// from the calling thread (see [`Handle::join`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// let data = [1u64, 2, 3, 4, 5, 6, 7, 8];
    /// let (low, high) = data.split_at(4);
    /// let (a, b) = run.join(|| low.iter().sum::<u64>(), || high.iter().sum::<u64>());
    /// assert_eq!(a + b, 36);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        self.handle.join(a, b)
    }

    /// [`scope`](crate::scope) on the scope's workers (see
    /// [`join`](Self::join) for where it runs).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// let mut counts = [0usize; 3];
    /// run.scope(|s| {
    ///     for (i, count) in counts.iter_mut().enumerate() {
    ///         s.spawn(move |_| *count = i * 2);
    ///     }
    /// });
    /// assert_eq!(counts, [0, 2, 4]);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&crate::Scope<'scope>) -> R + Send,
        R: Send,
    {
        self.handle.fork_scope(op)
    }

    /// A handle to the scope: `Clone + Send + Sync`, implements
    /// [`Executor`](crate::Executor), and what it spawns belongs to the
    /// scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::Executor;
    ///
    /// let run = unirun::Run::builder().build()?;
    /// let handle = run.handle();
    /// let ex: &dyn Executor = &handle;
    /// let task = ex.spawn(async { 5 });
    /// assert_eq!(task.join().unwrap(), 5);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// A snapshot of the scope's tasks, workers and blocking lane (see
    /// [`Metrics`](crate::Metrics)).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().name("batch").build()?;
    /// let done: Vec<_> = (0..4).map(|i| run.spawn(async move { i })).collect();
    /// done.into_iter().for_each(|t| drop(t.join()));
    /// let m = run.metrics();
    /// assert_eq!((m.spawned(), m.completed(), m.live()), (4, 4, 0));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn metrics(&self) -> crate::Metrics {
        crate::Metrics::collect(&self.scope.backend, Some(&self.scope))
    }

    /// Why the scope runs where it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, Flavor, Run};
    ///
    /// let run = Run::new(Flavor::Threads)?;
    /// let trace = run.trace();
    /// assert_eq!(trace.requested(), Flavor::Threads);
    /// assert!(trace.reasons().iter().any(|r| matches!(r, Reason::Explicit { .. } | Reason::ForcedThreads { .. })));
    /// println!("{trace}");
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn trace(&self) -> &DecisionTrace {
        &self.trace
    }

    /// Waits until every task of the scope has finished, then shuts down and
    /// joins the scope's own pool (a borrowed backend keeps running). The
    /// same as dropping the scope.
    ///
    /// Called inside one of the scope's own tasks it cannot wait for itself:
    /// the wait moves to a helper thread and this returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let run = unirun::Run::builder().build()?;
    /// let done = Arc::new(AtomicBool::new(false));
    /// let flag = done.clone();
    /// run.spawn_blocking(move || flag.store(true, Ordering::SeqCst)).detach();
    /// run.shutdown();
    /// assert!(done.load(Ordering::SeqCst));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn shutdown(mut self) {
        self.finish(Stop::Wait, false);
    }

    /// Cancels every task of the scope that has not finished (their handles
    /// resolve to `Err(cancelled)`; blocking closures already running
    /// complete, as threads cannot be interrupted), then shuts down and joins
    /// the scope's own pool. Closures of `tokio::task::spawn_blocking` are
    /// not the scope's and are not waited for: when the scope was the last
    /// user of `unirun-io`, that runtime stops without them.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let stuck = run.spawn(std::future::pending::<()>());
    /// run.shutdown_now();
    /// assert!(stuck.join().unwrap_err().is_cancelled());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn shutdown_now(mut self) {
        self.finish(Stop::Now, false);
    }

    /// Waits up to `timeout` for the scope's tasks, then cancels the rest as
    /// [`shutdown_now`](Self::shutdown_now) does. Returns whether everything
    /// finished in time (`false` also when called inside one of the scope's
    /// own tasks, where the wait moves to a helper thread): `false` when it
    /// cancelled a task or left one running, not for a task that was
    /// running at the deadline (a blocking closure, which the cancellation
    /// cannot stop) and finished before the shutdown returned.
    ///
    /// The call returns about `timeout` after it started even when blocking
    /// closures are stuck: a thread cannot be interrupted, so the threads
    /// of the scope's own pool still inside a closure are left behind and
    /// exit as soon as their closure returns. The same holds for a tokio
    /// runtime the shutdown stops (a `Flavor::Tokio` scope's own, or
    /// `unirun-io` when the scope was its last user): its blocking closures
    /// (`tokio::task::spawn_blocking`) are given up at the same deadline,
    /// and one left running makes the result `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let run = unirun::Run::builder().build()?;
    /// let stuck = run.spawn(std::future::pending::<()>());
    /// assert!(!run.shutdown_timeout(Duration::from_millis(10)));
    /// assert!(stuck.join().unwrap_err().is_cancelled());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        self.finish(Stop::Until(Instant::now() + timeout), false)
    }

    /// The async form of [`shutdown`](Self::shutdown): waits for the scope's
    /// tasks without blocking the thread, then shuts the scope's own pool
    /// down on a helper thread and waits for that without blocking either.
    ///
    /// Awaited inside one of the scope's own tasks, it hands the wait to a
    /// helper thread and completes at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let task = run.spawn(async { 7 });
    /// unirun::block_on(async move {
    ///     assert_eq!(task.await.unwrap(), 7);
    ///     run.shutdown_async().await;
    /// });
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub async fn shutdown_async(mut self) {
        let teardown = self.take_teardown();
        if teardown.scope.is_current() {
            teardown.off_thread(Stop::Wait, &self.name);
            return;
        }
        let began = std::time::Instant::now();
        teardown.scope.tasks.wait_empty().await;
        teardown.scope.tasks.close();
        if let Some(pool) = teardown.owned {
            let done = Arc::new(Signal::default());
            let signal = done.clone();
            let spawned = thread::Builder::new()
                .name(format!("{}-shutdown", self.name))
                .spawn(move || {
                    pool.shutdown();
                    signal.set();
                });
            // On failure the closure, and with it the pool, was dropped here.
            if spawned.is_ok() {
                SignalWait(&done).await;
            }
        }
        crate::observe::scope_ended(&teardown.name, "wait", 0, began.elapsed());
    }

    fn take_teardown(&mut self) -> Teardown {
        self.finished = true;
        Teardown {
            scope: self.scope.clone(),
            owned: self.owned.take(),
            name: self.name.clone(),
        }
    }

    /// Runs a shutdown here, or on a helper thread where waiting here would
    /// block an async worker or wait for the caller itself.
    fn finish(&mut self, stop: Stop, dropping: bool) -> bool {
        let teardown = self.take_teardown();
        let own_task = teardown.scope.is_current();
        // With nothing left to wait for, a drop on a worker is quick: an
        // owned pool moves its own teardown off the worker.
        let would_block =
            dropping && backend::on_async_thread() && !teardown.scope.tasks.is_empty();
        if own_task || would_block {
            teardown.off_thread(stop, &self.name);
            return false;
        }
        teardown.run(stop)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(Stop::Wait, true);
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("backend", &self.handle)
            .field("owned", &self.owned.is_some())
            .field("tasks", &self.scope.tasks.len())
            .field("trace", &self.trace.to_string())
            .finish()
    }
}

// `Run` and its builder move between threads.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<Run>();
    is_send::<RunBuilder>();
};
