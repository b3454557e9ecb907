//! [`Metrics`]: a snapshot of how a scope or executor is running, from
//! [`Run::metrics`](crate::Run::metrics) and
//! [`Handle::metrics`](crate::Handle::metrics).
//!
//! The task counts come from the scope's task set, whose counters are
//! sharded per worker (each worker writes its own cache-line pair with a
//! plain store; other threads use striped shards) and summed here; the
//! scheduler's counters (steals, parks) are per worker too. Reading them
//! costs a pass over the shards and the blocking lane's lock, so read
//! them when you want to look, not per task.

use serde::Serialize;

use crate::backend::{process, Backend};
use crate::scope::ScopeState;

/// A snapshot of a scope's (or executor's) tasks, workers and blocking
/// lane, and of a processes scope's worker processes.
///
/// **Exact counts.** Once every task of a scope has ended, `spawned() ==
/// completed() + panicked() + cancelled()` and `live() == 0`. The counts
/// are taken from the scope's own task set: a scope counts the tasks (async
/// and blocking, its process calls' waits included) spawned through its
/// [`Run`](crate::Run) or [`Handle`](crate::Handle), not those of a nested
/// scope or of others sharing its pool. A handle without a scope (the
/// shared default from [`get_executor`](crate::get_executor)) counts every
/// task spawned through the shared pool's handles. While tasks end, a
/// snapshot may miss the very latest outcome, or count a task ending at
/// that instant both as ended and as live.
///
/// **Per backend.** On the threads backend (and on a processes scope,
/// whose tasks run on threads) every field is filled. On tokio and smol,
/// unirun counts what it sees: its own tasks and, on smol, its blocking
/// lane; `busy_workers()`, `queued()`, `steals()` and `parks()` are 0 there (the runtime's
/// own scheduler is not unirun's), and on tokio the blocking fields other
/// than `blocking_cap()` are 0 (tokio runs blocking closures on its own
/// pool). `process_calls()`, `process_crashes()` and `process_timeouts()`
/// count the calls of the scope's pre-forked process pool
/// (`Handle::call`, feature `process-backend`); they are 0 for a scope that
/// made no such call, and always without the `process-backend` feature.
///
/// **In a forked child** (a `to_process` closure or
/// a process pool's worker) a snapshot is read without taking any lock a
/// thread of the parent may have held at the fork. The blocking lane's
/// threads were not copied by the fork: `blocking_threads()`,
/// `blocking_idle()` and `blocking_queued()` are 0 there and
/// `blocking_cap()` is the configured cap. The other counts are those the
/// child inherited, plus its own.
///
/// On tokio and smol, an aborted task's `JoinHandle` resolves at once and
/// the runtime drops its future a moment later: the task counts as live
/// until then (a graceful shutdown of the scope waits for it).
///
/// Serializes (with `serde`) as a flat object of these numbers, so a
/// dashboard or a log line can take it as it is.
///
/// # Examples
///
/// ```
/// use unirun::{Flavor, Run};
///
/// let run = Run::builder().flavor(Flavor::Threads).max_workers(2).build()?;
/// let tasks: Vec<_> = (0..10u64).map(|i| run.spawn(async move { i * 2 })).collect();
/// let crash = run.spawn(async { panic!("boom") });
/// let lines = run.spawn_blocking(|| "a\nb".lines().count());
/// for task in tasks {
///     task.join().unwrap();
/// }
/// assert!(crash.join().unwrap_err().is_panic());
/// assert_eq!(lines.join().unwrap(), 2);
///
/// let m = run.metrics();
/// assert_eq!(m.workers(), 2);
/// assert_eq!(m.spawned(), 12);
/// assert_eq!(m.completed(), 11);
/// assert_eq!(m.panicked(), 1);
/// assert_eq!(m.cancelled(), 0);
/// assert_eq!(m.live(), 0);
/// assert!(m.blocking_cap() >= 1);
/// println!("{m:?}");
/// run.shutdown();
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Metrics {
    workers: usize,
    busy_workers: usize,
    spawned: u64,
    completed: u64,
    panicked: u64,
    cancelled: u64,
    live: u64,
    queued: usize,
    steals: u64,
    parks: u64,
    joins: u64,
    stolen_joins: u64,
    blocking_threads: usize,
    blocking_idle: usize,
    blocking_cap: usize,
    blocking_queued: usize,
    process_calls: u64,
    process_crashes: u64,
    process_timeouts: u64,
    cluster_calls: u64,
    cluster_redeliveries: u64,
    cluster_crashes: u64,
    cluster_timeouts: u64,
    cluster_transport_errors: u64,
}

impl Metrics {
    /// Collects the metrics of `scope`, or of `backend`'s own tasks when
    /// there is no scope.
    pub(crate) fn collect(backend: &Backend, scope: Option<&ScopeState>) -> Metrics {
        let tasks = match scope {
            Some(scope) => scope.tasks.counts(),
            None => backend.task_counts(),
        };
        let sched = backend.pool_stats();
        let [blocking_threads, blocking_idle, blocking_cap, blocking_queued] = backend.lane();
        let [process_calls, process_crashes, process_timeouts] = scope
            .and_then(|scope| scope.processes.get())
            .map_or([0; 3], process::call_counts);
        let [cluster_calls, cluster_redeliveries, cluster_crashes, cluster_timeouts, cluster_transport_errors] =
            cluster_counts(scope);
        Metrics {
            workers: sched.map_or_else(|| backend.workers().cpu(), |s| s.workers()),
            busy_workers: sched.map_or(0, |s| s.busy_workers()),
            spawned: tasks.spawned(),
            completed: tasks.completed(),
            panicked: tasks.panicked(),
            cancelled: tasks.cancelled(),
            live: tasks.live(),
            queued: sched.map_or(0, |s| s.queued()),
            steals: sched.map_or(0, |s| s.steals()),
            parks: sched.map_or(0, |s| s.parks()),
            joins: sched.map_or(0, |s| s.joins()),
            stolen_joins: sched.map_or(0, |s| s.stolen_joins()),
            blocking_threads,
            blocking_idle,
            blocking_cap,
            blocking_queued,
            process_calls,
            process_crashes,
            process_timeouts,
            cluster_calls,
            cluster_redeliveries,
            cluster_crashes,
            cluster_timeouts,
            cluster_transport_errors,
        }
    }

    /// Fork-join joins forked on the workers (each `join` there), all
    /// workers together; counted per pool, so a scope sharing a pool sees
    /// the pool's count. 0 on tokio and smol.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// run.join(|| 1, || 2);
    /// assert!(run.metrics().joins() >= 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn joins(&self) -> u64 {
        self.joins
    }

    /// Join halves (and scope closures) another worker stole and ran; the
    /// rest ran on the thread that forked them. 0 on tokio and smol.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// let m = run.metrics();
    /// assert!(m.stolen_joins() <= m.joins());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn stolen_joins(&self) -> u64 {
        self.stolen_joins
    }

    /// Threads running async tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(1).build()?;
    /// assert_eq!(run.metrics().workers(), 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Workers awake and not looking for work: running tasks, or just
    /// between two (a moment's view); 0 on tokio and smol.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// assert!(run.metrics().busy_workers() <= 2);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn busy_workers(&self) -> usize {
        self.busy_workers
    }

    /// Tasks spawned (async and blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// run.spawn(async {}).join().unwrap();
    /// assert_eq!(run.metrics().spawned(), 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn spawned(&self) -> u64 {
        self.spawned
    }

    /// Tasks that returned a value.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// run.spawn_blocking(|| 1).join().unwrap();
    /// assert_eq!(run.metrics().completed(), 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Tasks that panicked (their `JoinHandle` gave the panic back), and
    /// process calls that failed on their own (the child crashed or could
    /// not be reached).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert!(run.spawn(async { panic!("boom") }).join().is_err());
    /// assert_eq!(run.metrics().panicked(), 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn panicked(&self) -> u64 {
        self.panicked
    }

    /// Tasks cancelled before they finished: aborted, or by a shutdown;
    /// and process calls killed at their timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let stuck = run.spawn(std::future::pending::<()>());
    /// stuck.abort();
    /// assert!(stuck.join().unwrap_err().is_cancelled());
    /// assert_eq!(run.metrics().cancelled(), 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn cancelled(&self) -> u64 {
        self.cancelled
    }

    /// Tasks spawned and not ended yet (running, queued or waiting).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let waiting = run.spawn_blocking(move || rx.recv().ok());
    /// assert_eq!(run.metrics().live(), 1);
    /// drop(tx);
    /// waiting.join().unwrap();
    /// assert_eq!(run.metrics().live(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn live(&self) -> u64 {
        self.live
    }

    /// Tasks waiting to run in the pool's injector and local queues (each
    /// worker's one LIFO slot not included); 0 on tokio and smol.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let _ = run.metrics().queued(); // a moment's view; 0 when idle
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Batches of tasks workers stole from each other; 0 on tokio and smol.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(1).build()?;
    /// run.spawn(async {}).join().unwrap();
    /// assert_eq!(run.metrics().steals(), 0); // one worker: nobody to steal from
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn steals(&self) -> u64 {
        self.steals
    }

    /// Times a worker ran out of work and went to sleep; 0 on tokio and smol.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(1).build()?;
    /// run.spawn(async {}).join().unwrap();
    /// let _ = run.metrics().parks(); // grows as the workers go idle
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn parks(&self) -> u64 {
        self.parks
    }

    /// Threads of the blocking lane alive now (busy or idle).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().flavor(unirun::Flavor::Threads).build()?;
    /// run.spawn_blocking(|| ()).join().unwrap();
    /// assert!(run.metrics().blocking_threads() >= 1); // kept for the keep-alive
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn blocking_threads(&self) -> usize {
        self.blocking_threads
    }

    /// Blocking-lane threads waiting for work now; `blocking_threads() -
    /// blocking_idle()` are busy.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// let m = run.metrics();
    /// assert!(m.blocking_idle() <= m.blocking_threads());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn blocking_idle(&self) -> usize {
        self.blocking_idle
    }

    /// The most threads the blocking lane may run (lower than configured
    /// after the OS refused a thread).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_blocking(3).build()?;
    /// assert_eq!(run.metrics().blocking_cap(), 3);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn blocking_cap(&self) -> usize {
        self.blocking_cap
    }

    /// Blocking closures queued and not started (all lane threads busy).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().blocking_queued(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn blocking_queued(&self) -> usize {
        self.blocking_queued
    }

    /// Calls sent to the scope's pre-forked worker processes
    /// (`Run::call`, feature `process-backend`); 0 without such calls.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().process_calls(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn process_calls(&self) -> u64 {
        self.process_calls
    }

    /// Process calls whose worker died of a signal (their handles report
    /// a crash; the worker is replaced).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().process_crashes(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn process_crashes(&self) -> u64 {
        self.process_crashes
    }

    /// Process calls killed for running past the scope's timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().process_timeouts(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn process_timeouts(&self) -> u64 {
        self.process_timeouts
    }

    /// Calls a [`Flavor::Cluster`](crate::Flavor::Cluster) scope published
    /// to its workers; 0 for other scopes and without `cluster-backend`.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().cluster_calls(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn cluster_calls(&self) -> u64 {
        self.cluster_calls
    }

    /// Deliveries of answered cluster jobs beyond their first (a worker
    /// host was lost while it held the job).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().cluster_redeliveries(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn cluster_redeliveries(&self) -> u64 {
        self.cluster_redeliveries
    }

    /// Cluster calls whose remote pool process was killed by a signal.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().cluster_crashes(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn cluster_crashes(&self) -> u64 {
        self.cluster_crashes
    }

    /// Cluster calls that passed their deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().cluster_timeouts(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn cluster_timeouts(&self) -> u64 {
        self.cluster_timeouts
    }

    /// Cluster calls lost in transport: the server unreachable, a job
    /// past `max_deliver`, a payload that did not decode.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// assert_eq!(run.metrics().cluster_transport_errors(), 0);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn cluster_transport_errors(&self) -> u64 {
        self.cluster_transport_errors
    }
}

/// A cluster scope's calls, redeliveries, crashes, timeouts and transport
/// failures.
fn cluster_counts(scope: Option<&ScopeState>) -> [u64; 5] {
    scope
        .and_then(|s| s.cluster.get())
        .map_or([0; 5], crate::backend::cluster::counts)
}

impl Backend {
    /// The blocking lane's threads, idle threads, cap and queue: unirun's
    /// lane on threads and smol; on tokio only the cap (its blocking pool
    /// is tokio's).
    ///
    /// In a forked child the lane's threads do not exist (closures run
    /// inline on the caller), and its lock may have been held by one of
    /// them at the fork: the lane is not read, and reports no threads, no
    /// queue and its configured cap.
    fn lane(&self) -> [usize; 4] {
        if unirun_core::in_forked_child() {
            return [0, 0, self.workers().blocking_cap(), 0];
        }
        match self.lane_stats() {
            Some(stats) => [stats.threads, stats.idle, stats.cap, stats.queued],
            None => [0, 0, self.workers().blocking_cap(), 0],
        }
    }
}
