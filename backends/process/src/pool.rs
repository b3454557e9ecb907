//! [`ProcessPool`]: pre-forked workers that run `fn(A) -> R` calls.
//!
//! The worker processes and their wire protocol are in `worker`; the fast
//! path of calls that return a [`JoinHandle`] (the caller sends, whoever
//! waits reads) and its liveness argument are in `call`.

mod call;
mod deadlines;
mod helper;
mod image;
mod relay;
mod replies;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use unirun_core::{Executor, JoinError, JoinHandle, RunQueue, TaskSet};
use unirun_platform::process::{self as sys, Pid};

use crate::fork::fork_call;
use crate::forker::Lease;
use crate::options::ProcessOptions;
use crate::server;

#[cfg(test)]
use self::call::INLINE_REQUEST;
use self::call::{all_readers, Call};
use self::deadlines::Deadlines;
use self::replies::Replies;
pub(crate) use self::worker::worker_main;
use self::worker::Worker;

/// A pool of pre-forked worker processes for `fn(A) -> R` calls with serde
/// payloads: the fast path for many small isolated calls (no fork per call).
///
/// At most `max_workers` calls run at once; more wait for a worker. Workers
/// start on demand and are reused. A worker that crashes (killed by a
/// signal) or runs past the timeout is killed, reaped and replaced by a new
/// one on the next call; its call fails with
/// [`JoinError::crashed`]/[`JoinError::timed_out`], as with
/// [`fork_call`](crate::fork_call). A panic inside the function is reported
/// with its message and location, and the worker keeps serving. Dropping the
/// pool kills and reaps its idle workers (workers busy with a call are
/// reaped when that call returns).
///
/// Workers are forked from a dedicated thread, `unirun-forker`
/// (`PR_SET_PDEATHSIG` fires when the forking thread ends, so workers must
/// not be forked from threads that retire). A pool holds that thread from
/// its first directly forked worker until [`shutdown_now`](Self::shutdown_now)
/// or its drop; the thread ends when no pool (and no fork server) holds it,
/// see [`shutdown`](crate::shutdown).
///
/// A function is sent to a worker by address, so it must be in the
/// worker's image: code the program had when the worker was forked (for
/// workers from the fork server, when [`init`](crate::init) ran). A
/// function from a library loaded later (`dlopen`) is not there; on Linux
/// such a call fails with a `"call"` transport error saying so (checked
/// against the worker's mappings, once per worker and function, for code
/// outside the main executable) and the worker keeps serving; elsewhere it
/// is not checked and the worker crashes.
///
/// In a forked child, a pool inherited from the parent (its workers are the
/// parent's, its lock may be held by a thread that is not there) is not
/// used: each call forks a fresh child instead, as [`fork_call`] does.
/// A child is told from its parent by the C library's fork handlers, so
/// this holds for children forked through the C library (`fork`, and what
/// calls it); a child made by a raw `fork`/`clone` system call that
/// bypasses them must not call pools inherited from its parent.
/// The parent may have other threads at that point: see the crate docs for
/// what that means; the functions called should be self-contained. The
/// [`ProcessOptions`] limits apply to every worker (the CPU-time limit to a
/// worker's whole life, the timeout to each call).
///
/// # Examples
///
/// ```
/// use unirun_process::{ProcessOptions, ProcessPool};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = ProcessPool::new(2, ProcessOptions::default());
/// assert_eq!(pool.call(square, 12).unwrap(), 144);
/// let err = pool.call(|s: String| -> usize { panic!("bad {s}") }, "row".into()).unwrap_err();
/// assert_eq!(err.panic_message(), Some("bad row"));
/// assert_eq!(pool.call(square, 3).unwrap(), 9); // the worker survived the panic
/// ```
#[derive(Clone)]
pub struct ProcessPool {
    inner: Arc<Inner>,
}

struct Inner {
    max_workers: usize,
    origin: String,
    options: ProcessOptions,
    /// The fork generation ([`unirun_core::fork_generation`]) of the
    /// process that created the pool, the only one that may use its
    /// workers and its lock: every fork after the pool's creation marks
    /// its child (see [`watch_forks`]), so a child sees another generation.
    /// A comparison of two numbers, where asking for the pid is a system
    /// call on every call.
    generation: usize,
    /// Workers started, for [`ProcessPool::started`]; outside the lock so a
    /// forked child can read it.
    started: AtomicUsize,
    /// Calls sent to a worker, and those that crashed or timed out.
    calls: AtomicUsize,
    crashes: AtomicUsize,
    timeouts: AtomicUsize,
    /// The forker thread, held from the first worker forked from it until
    /// shutdown or drop.
    forker: Mutex<Option<Lease>>,
    state: Mutex<State>,
    freed: Condvar,
    /// Keeps the timeout of calls in flight; with a timeout only.
    deadlines: Option<Deadlines>,
    /// Waits for the replies of calls nobody joins (see `call`).
    replies: Arc<Replies>,
    /// Whether a call's code is in its worker (see `image`).
    images: image::Images,
    /// Run by the fast path between its first look at the state and the
    /// placing of the call, once (tests make the race in between).
    #[cfg(test)]
    before_place: Mutex<Option<tests::Hook>>,
}

#[derive(Default)]
struct State {
    idle: Vec<Worker>,
    /// Workers alive, idle or busy.
    live: usize,
    /// Workers running a call. A pid stays listed until its worker is
    /// handed back or about to be reaped, so signalling it is safe.
    busy: Vec<Pid>,
    /// Busy workers whose reply nobody reads yet (see `call`), by pid;
    /// an entry whose reader was taken stays until the reader hands the
    /// worker back.
    pending: Vec<(Pid, Arc<Call>)>,
    /// Calls waiting for a worker (see `call`); not empty only while every
    /// worker is busy.
    queue: std::collections::VecDeque<Arc<Call>>,
    /// Threads waiting on `freed` for a worker.
    waiting: usize,
    /// Set by [`ProcessPool::start_pending`]: readers go to their lane at
    /// once from then on.
    draining: bool,
    /// Set by [`ProcessPool::shutdown_now`].
    closed: bool,
    /// Every fast-path call sent and not handed back yet, by its worker's
    /// pid (for [`ProcessPool::retire`]).
    sent: Vec<(Pid, Arc<Call>)>,
    /// Set by [`ProcessPool::retire`]: no call is taken any more, and a
    /// worker handed back is killed and reaped.
    retired: bool,
    /// Calls let go of by [`ProcessPool::retire`] whose readers have not
    /// ended yet (see `call`).
    detached: usize,
}

impl ProcessPool {
    /// A pool of at most `max_workers` workers (at least one), started on
    /// demand.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_process::ProcessPool::new(4, Default::default());
    /// assert_eq!(pool.max_workers(), 4);
    /// assert_eq!(pool.started(), 0);
    /// ```
    pub fn new(max_workers: usize, options: ProcessOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_workers: max_workers.max(1),
                origin: server::origin(),
                options,
                generation: {
                    watch_forks();
                    unirun_core::fork_generation()
                },
                started: AtomicUsize::new(0),
                calls: AtomicUsize::new(0),
                crashes: AtomicUsize::new(0),
                timeouts: AtomicUsize::new(0),
                forker: Mutex::new(None),
                state: Mutex::new(State::default()),
                freed: Condvar::new(),
                deadlines: options.get_timeout().map(Deadlines::new),
                replies: Arc::new(Replies::new()),
                images: image::Images::default(),
                #[cfg(test)]
                before_place: Mutex::new(None),
            }),
        }
    }

    /// How this pool's workers are forked: from the fork server started by
    /// [`init`](crate::init) (and whether the parent was single-threaded
    /// then), or directly from a thread of the parent when `init` was not
    /// called. In plain words, fixed when the pool is created:
    /// `fork server (unirun::process::init, while the parent was
    /// single-threaded)`, `fork server (unirun::process::init, when the
    /// parent had N threads)` or `forked directly (no
    /// unirun::process::init; the parent had N threads)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// let origin = pool.origin();
    /// assert!(origin.starts_with("fork server") || origin.starts_with("forked directly"));
    /// ```
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// Most calls that run at once.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_process::ProcessPool::new(0, Default::default()).max_workers(), 1);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.inner.max_workers
    }

    /// How many workers were forked so far (replacements included).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// pool.call(|x: u8| x, 1).unwrap();
    /// pool.call(|x: u8| x, 2).unwrap();
    /// assert_eq!(pool.started(), 1); // reused
    /// ```
    pub fn started(&self) -> usize {
        self.inner.started.load(Ordering::Relaxed)
    }

    /// Calls sent to a worker so far (each `call` that reached one).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// pool.call(|x: u8| x, 1).unwrap();
    /// assert_eq!(pool.calls(), 1);
    /// ```
    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::Acquire)
    }

    /// Calls whose worker was killed by a signal (they resolved to
    /// [`JoinError::crashed`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// assert!(pool.call(|_: u8| -> u8 { std::process::abort() }, 1).unwrap_err().is_crash());
    /// assert_eq!(pool.crashes(), 1);
    /// ```
    pub fn crashes(&self) -> usize {
        self.inner.crashes.load(Ordering::Acquire)
    }

    /// Calls that ran past the timeout (they resolved to
    /// [`JoinError::timed_out`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// assert_eq!(pool.timeouts(), 0);
    /// ```
    pub fn timeouts(&self) -> usize {
        self.inner.timeouts.load(Ordering::Acquire)
    }

    /// Runs `f(arg)` in a worker process and blocks until its result is
    /// back. Errors as [`fork_call`](crate::fork_call)'s.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// let words = pool.call(|s: String| s.split(' ').count(), "a b c".to_string());
    /// assert_eq!(words.unwrap(), 3);
    /// ```
    pub fn call<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, JoinError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        if !self.inner.owned_here() {
            // Inherited through a fork: fork a fresh child for this call.
            return fork_call(&self.inner.options, move || f(arg));
        }
        let request = worker::request(f, &arg)?;
        let worker = self.inner.acquire()?;
        let (sent, deadline) = self.inner.send(&worker, &request);
        self.inner.receive(worker, sent, deadline)
    }

    /// Stops the pool: calls running now are killed with their workers and
    /// resolve to `Err(cancelled)`, idle workers are killed and reaped, and
    /// later calls fail with `cancelled` at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// assert_eq!(pool.call(|x: u8| x, 1).unwrap(), 1);
    /// pool.shutdown_now();
    /// assert!(pool.call(|x: u8| x, 1).unwrap_err().is_cancelled());
    /// ```
    pub fn shutdown_now(&self) {
        if !self.inner.owned_here() {
            return;
        }
        let (idle, readers, detached) = {
            let mut state = self.inner.lock();
            state.closed = true;
            // Calls let go of by `retire` are not listed here: they go on.
            for &pid in &state.busy {
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            (
                std::mem::take(&mut state.idle),
                all_readers(&mut state),
                state.detached,
            )
        };
        // Their workers are dead (or none will be given): the readers
        // resolve their calls to cancelled at once.
        for reader in readers {
            reader.schedule_now();
        }
        // Its readers' workers were killed: they end at once.
        self.inner.replies.stop();
        for worker in idle {
            worker.kill_and_reap();
            self.inner.retire();
        }
        self.inner.freed.notify_all();
        // With calls let go of still running, the last of them does this
        // (see `Inner::detached_ended`): their workers need the forker
        // thread and their timeouts the deadline watcher.
        if detached == 0 {
            self.inner.stop_helpers();
        }
    }

    /// Retires the pool without waiting for its calls and without losing
    /// them; returns at once. For a teardown that replaces a pool whose
    /// calls others still wait for: unirun's `configure` and `reset` do
    /// this to the shared default's pools.
    ///
    /// - A call already sent to a worker keeps that worker: the pool lets
    ///   go of it. It leaves its reader task (and so the task set it was
    ///   spawned in: a shutdown that waits for that set's tasks does not
    ///   wait for it), a thread of its own (`unirun-call-reader`) reads its
    ///   reply, and its handle resolves to its result as before (or to the
    ///   worker's crash, or the pool's timeout, which still applies). The
    ///   worker is then killed and reaped, and the thread ends.
    /// - A call whose reply a thread is reading at this moment (a `join`
    ///   in progress, or a call on the blocking lane: one that started a
    ///   worker, or a request larger than a pipe's atomic write) stays with
    ///   that thread: it is a running task, which a shutdown that waits
    ///   for its tasks waits for, and [`shutdown_now`](Self::shutdown_now)
    ///   cancels (its worker killed).
    /// - A call still waiting for a worker (queued: every worker was busy)
    ///   resolves to [`JoinError::cancelled`].
    /// - Idle workers are killed and reaped, and later calls fail with
    ///   `cancelled` at once.
    ///
    /// [`shutdown_now`](Self::shutdown_now) afterwards stops what is still
    /// the pool's, not the calls it let go of; the deadline watcher and the
    /// `unirun-forker` thread (see [`shutdown`](crate::shutdown)) are held
    /// until the last of those ends.
    ///
    /// # Examples
    ///
    /// ```
    /// let threads = unirun_threads::ThreadPool::new().unwrap();
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// assert_eq!(pool.call(|x: u32| x, 0).unwrap(), 0); // a worker is idle
    /// let handle = pool.spawn_call(&threads.handle(), |x: u32| x + 1, 1);
    /// pool.retire(); // nobody joined the call yet: the pool lets go of it
    /// threads.shutdown(); // waits for nothing of the call's
    /// assert_eq!(handle.join().unwrap(), 2);
    /// assert!(pool.call(|x: u32| x, 0).unwrap_err().is_cancelled());
    /// ```
    pub fn retire(&self) {
        if !self.inner.owned_here() {
            return;
        }
        let (idle, queued, sent, pending) = {
            let mut state = self.inner.lock();
            state.retired = true;
            (
                std::mem::take(&mut state.idle),
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.sent),
                std::mem::take(&mut state.pending),
            )
        };
        // Callers waiting for a worker: none will be given.
        self.inner.freed.notify_all();
        for (pid, call) in &sent {
            self.inner.detach(*pid, call);
        }
        // The readers the reply watcher held were those of calls sent and
        // not read yet, let go of above: dropped unrun, they leave their
        // task sets. Calls sent from now on are let go of as they are
        // registered, so the watcher gets no more.
        drop(self.inner.replies.release());
        self.inner.replies.stop();
        // Dropped unrun, a queued call's reader resolves it to cancelled
        // (one already on its lane finds the pool retired: the same).
        for call in queued {
            drop(call.take());
        }
        drop((sent, pending));
        for worker in idle {
            worker.kill_and_reap();
            self.inner.retire();
        }
    }

    /// Runs `f(arg)` in a worker; returns a handle to its result.
    ///
    /// A small request is written at once by the calling thread when a
    /// worker is idle (queued otherwise). Joining the handle from a thread
    /// reads the reply on that thread; awaiting (or detaching) it has the
    /// pool's reply watcher thread read it; what needs a worker started,
    /// or a large request, waits on `executor`'s blocking lane.
    ///
    /// # Examples
    ///
    /// ```
    /// let threads = unirun_threads::ThreadPool::new().unwrap();
    /// let pool = unirun_process::ProcessPool::new(2, Default::default());
    /// let handle = pool.spawn_call(&threads.handle(), |x: u32| x + 1, 41);
    /// assert_eq!(handle.join().unwrap(), 42);
    /// ```
    pub fn spawn_call<A, R>(&self, executor: &dyn Executor, f: fn(A) -> R, arg: A) -> JoinHandle<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let lane = executor.blocking_run_queue();
        let tasks = lane.task_set().cloned();
        self.spawn_call_on(lane, tasks, f, arg)
    }

    /// Like [`spawn_call`](Self::spawn_call), with the run queue of a
    /// blocking lane and the task set the call joins given separately.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::Executor;
    ///
    /// let threads = unirun_threads::ThreadPool::new().unwrap();
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// let lane = threads.handle().blocking_run_queue();
    /// let handle = pool.spawn_call_on(lane, None, |x: u32| x * 3, 5);
    /// assert_eq!(handle.join().unwrap(), 15);
    /// ```
    pub fn spawn_call_on<A, R>(
        &self,
        schedule: Arc<dyn RunQueue>,
        tasks: Option<Arc<TaskSet>>,
        f: fn(A) -> R,
        arg: A,
    ) -> JoinHandle<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        if let Some(fast) = self.try_send(&schedule, tasks.as_ref(), f, &arg) {
            return fast;
        }
        let pool = self.clone();
        let lane = schedule;
        let (runnable, handle) = unirun_core::spawn_blocking_fallible_with(
            move || pool.call(f, arg),
            tasks.as_ref(),
            move |r, info| lane.schedule(r, info),
        );
        runnable.schedule();
        handle
    }

    /// Starts the reader of every call whose reply nobody reads yet (on
    /// the reply watcher, or the lane for a call still queued), and of
    /// every later call as soon as it is sent, so each call finishes
    /// without waiting for its handle to be joined (a scope about to wait
    /// for its tasks calls this). Joining a call then waits for that
    /// reader instead of reading the reply itself.
    ///
    /// # Examples
    ///
    /// ```
    /// let threads = unirun_threads::ThreadPool::new().unwrap();
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// let handle = pool.spawn_call(&threads.handle(), |x: u32| x + 1, 1);
    /// pool.start_pending();
    /// assert_eq!(handle.join().unwrap(), 2);
    /// ```
    pub fn start_pending(&self) {
        if !self.inner.owned_here() {
            return;
        }
        let readers = {
            let mut state = self.inner.lock();
            state.draining = true;
            all_readers(&mut state)
        };
        for reader in readers {
            reader.schedule_now();
        }
    }
}

impl Inner {
    /// A call let go of by [`ProcessPool::retire`] has ended: the last one
    /// of a pool shut down meanwhile stops the helpers its shutdown kept.
    fn detached_ended(&self) {
        let last = {
            let mut state = self.lock();
            state.detached -= 1;
            state.detached == 0 && state.closed
        };
        if last {
            self.stop_helpers();
        }
    }

    /// Stops the deadline watcher and lets go of the forker thread (it
    /// ends once no pool and no fork server holds it): no call of the pool
    /// runs any more.
    fn stop_helpers(&self) {
        if let Some(deadlines) = &self.deadlines {
            deadlines.stop();
        }
        let lease = self
            .forker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(lease);
    }

    /// Whether this process created the pool (not a forked child of it).
    fn owned_here(&self) -> bool {
        self.generation == unirun_core::fork_generation()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `request` to busy `worker`, its call watched for the pool's
    /// timeout (see `deadlines`); returns how the write went and the
    /// deadline its reader must keep itself: `None` when the watcher keeps
    /// it (or there is no timeout).
    /// Code that is not in the worker is not sent: the write fails with an
    /// error `receive` turns into a typed one (see `image`).
    fn send(&self, worker: &Worker, request: &[u8]) -> (std::io::Result<()>, Option<Instant>) {
        if let Err(err) = self.images.check(worker.pid, request) {
            return (Err(err), None);
        }
        self.calls.fetch_add(1, Ordering::Release);
        let deadline = match (&self.deadlines, self.options.get_timeout()) {
            (Some(deadlines), Some(timeout)) => match deadlines.watch(worker.pid) {
                Some(_) => None,
                None => Some(Instant::now() + timeout),
            },
            _ => None,
        };
        (worker.send_request(request), deadline)
    }

    /// Unregisters `pid`'s call from the watcher; whether it expired.
    fn forget_deadline(&self, pid: Pid) -> bool {
        self.deadlines.as_ref().is_some_and(|d| d.forget(pid))
    }

    /// An idle worker, a new one if there is room, or waits for one
    /// (running pending readers first, see `call`).
    fn acquire(&self) -> Result<Worker, JoinError> {
        let mut state = self.lock();
        loop {
            if state.closed || state.retired {
                return Err(JoinError::cancelled());
            }
            if let Some(worker) = state.idle.pop() {
                state.busy.push(worker.pid);
                return Ok(worker);
            }
            if state.live < self.max_workers {
                state.live += 1;
                self.started.fetch_add(1, Ordering::Relaxed);
                drop(state);
                let worker = self.start().inspect_err(|_| self.retire())?;
                let mut state = self.lock();
                if state.closed || state.retired {
                    drop(state);
                    worker.kill_and_reap();
                    self.retire();
                    return Err(JoinError::cancelled());
                }
                state.busy.push(worker.pid);
                return Ok(worker);
            }
            // All busy: a reply nobody reads yet, we read (its handle gets
            // the result), which frees that worker for someone.
            let reader = state.pending.iter().find_map(|(_, call)| call.take());
            if let Some(reader) = reader {
                drop(state);
                reader.run();
                state = self.lock();
                continue;
            }
            state.waiting += 1;
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
    }

    fn release(self: &Arc<Self>, worker: Worker) {
        let mut state = self.lock();
        let listed = forget_busy(&mut state, worker.pid);
        if state.closed || state.retired {
            drop(state);
            drop(listed);
            worker.kill_and_reap();
            self.retire();
            return;
        }
        let waiting = state.waiting > 0;
        if !waiting {
            // No thread waits in `acquire`: the worker serves the queue.
            if let Some(call) = state.queue.pop_front() {
                state.busy.push(worker.pid);
                self.send_queued(state, call, worker);
                drop(listed);
                return;
            }
        }
        state.idle.push(worker);
        drop(state);
        drop(listed);
        if waiting {
            self.freed.notify_one();
        }
    }

    /// Takes `pid` off the busy list; returns whether the pool's shutdown
    /// killed it (it was busy then; a call let go of by
    /// [`ProcessPool::retire`] is not listed, and keeps its own outcome).
    fn unbusy(&self, pid: Pid) -> bool {
        let mut state = self.lock();
        let busy = state.busy.contains(&pid);
        let listed = forget_busy(&mut state, pid);
        let closed = state.closed && busy;
        drop(state);
        drop(listed);
        closed
    }

    /// A worker is gone: its slot is free for a replacement.
    fn retire(&self) {
        let mut state = self.lock();
        state.live -= 1;
        let waiting = state.waiting > 0;
        // With nobody waiting to start a replacement, the queue's head does.
        let head = if waiting {
            None
        } else {
            state.queue.pop_front()
        };
        drop(state);
        if waiting {
            self.freed.notify_one();
        }
        if let Some(call) = head {
            call.schedule_now();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // `get_mut`, not `lock`: in a forked child the lock may be held by
        // a thread that does not exist there.
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let idle = std::mem::take(&mut state.idle);
        if !self.owned_here() {
            // Not our children: the pool was inherited through a fork.
            std::mem::forget(idle);
            if let Some(deadlines) = &mut self.deadlines {
                deadlines.forget_thread();
            }
            // Its thread does not exist here and its lock may be held:
            // never dropped (neither joined nor detached).
            std::mem::forget(self.replies.clone());
            return;
        }
        if let Some(deadlines) = &self.deadlines {
            deadlines.stop();
        }
        // Holds no reader (each holds the pool): the thread just ends.
        self.replies.stop();
        for worker in idle {
            worker.kill_and_reap();
        }
        // The lease field drops after this: the forker thread may then end
        // (after the workers it forked are gone, as `PR_SET_PDEATHSIG` needs).
    }
}

/// Has every child forked from now on, by any code that forks through
/// the C library, marked as a forked child ([`unirun_core::mark_forked_child`]),
/// once per process: a pool then tells a child from its creator by the
/// fork generation alone. (A child forked by a raw `fork` system call that
/// bypasses the C library is not marked, and must not use the parent's
/// pools.)
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    /// Runs in the child right after `fork`: one atomic add (and the
    /// facade's hook, which only marks state), async-signal-safe.
    extern "C" fn in_child() {
        unirun_core::mark_forked_child();
    }
    ONCE.call_once(|| {
        // A failure (ENOMEM) leaves forks by other code unmarked; unirun's
        // own fork paths mark their children themselves.
        // SAFETY: `in_child` is a plain `extern "C" fn` that lives for the
        // whole program and only marks the child (see above).
        let _ = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
}

/// Takes `pid` off the busy, sent and pending lists; the caller drops what
/// it returns after unlocking (the last reference to a reader that never
/// ran would run its destructor, which takes the lock).
#[must_use]
fn forget_busy(state: &mut State, pid: Pid) -> [Option<Arc<Call>>; 2] {
    state.busy.retain(|&p| p != pid);
    let sent = state
        .sent
        .iter()
        .position(|(p, _)| *p == pid)
        .map(|at| state.sent.swap_remove(at).1);
    let pending = state
        .pending
        .iter()
        .position(|(p, _)| *p == pid)
        .map(|at| state.pending.swap_remove(at).1);
    [sent, pending]
}
