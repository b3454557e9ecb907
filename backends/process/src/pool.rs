//! [`ProcessPool`]: pre-forked workers that run `fn(A) -> R` calls.
//!
//! A worker is forked once and then serves calls in a loop: it reads a
//! request frame (the address of a monomorphized trampoline, the address
//! of the function, the postcard-encoded argument), runs the function
//! under `catch_unwind` and writes back a reply frame like
//! [`fork_call`](crate::fork_call)'s. Function pointers are valid in the
//! worker because it is a fork of this very image (same binary, same
//! address-space layout), so nothing is registered and nothing re-executed.
//!
//! Each side reads a whole frame before it writes one, and each worker has
//! its own pair of pipes, so payloads of any size flow without deadlock: the
//! parent writes the request while the worker reads it, then reads the
//! reply while the worker writes it.
//!
//! The parent closes its copy of a worker's reply-pipe write end right after
//! the fork (under the same lock as fork-per-call), so a crashed worker's
//! pipe reaches end of file even when later children inherited the rest.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use unirun_core::{Executor, JoinError, JoinHandle, Schedule, TaskSet};
use unirun_platform::process::{self as sys, ExitStatus, Forked, Pid};

use crate::fork::{fork_call, fork_quiesced, lock_stdio, setup, FORK_LOCK};
use crate::forker::{self, Lease};
use crate::options::ProcessOptions;
use crate::server::{self, Server};
use crate::wire::{self, Read, Reply, HEADER};

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
/// In a forked child, a pool inherited from the parent (its workers are the
/// parent's, its lock may be held by a thread that is not there) is not
/// used: each call forks a fresh child instead, as [`fork_call`] does.
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
    /// The process that created the pool: the only one that may use its
    /// workers and its lock.
    owner: Pid,
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
}

#[derive(Default)]
struct State {
    idle: Vec<Worker>,
    /// Workers alive, idle or busy.
    live: usize,
    /// Workers running a call. A pid stays listed until its worker is
    /// handed back or about to be reaped, so signalling it is safe.
    busy: Vec<Pid>,
    /// Set by [`ProcessPool::shutdown_now`].
    closed: bool,
}

struct Worker {
    pid: Pid,
    requests: OwnedFd,
    replies: OwnedFd,
    /// The fork server that forked it (its child, reaped through it).
    served: Option<Arc<Server>>,
}

impl Worker {
    fn kill_and_reap(self) -> Option<ExitStatus> {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        drop(self.requests);
        drop(self.replies);
        if let Some(server) = &self.served {
            return server::reap(server, self.pid);
        }
        sys::wait_pid(self.pid, true).ok().flatten()
    }
}

type Trampoline = fn(usize, &[u8]) -> Vec<u8>;

/// Decodes the argument, calls `f` (the address of a `fn(A) -> R`) and
/// encodes the reply frame. Runs in the worker.
fn invoke<A: DeserializeOwned, R: Serialize>(f: usize, body: &[u8]) -> Vec<u8> {
    // SAFETY: `f` is the address of a `fn(A) -> R` taken in this same image
    // (the worker is a fork of the caller), sent together with this very
    // monomorphization of `invoke`, so the types match.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<*const (), fn(A) -> R>(f as *const ()) };
    let reply = match postcard::from_bytes::<A>(body) {
        Ok(arg) => match unirun_core::catch_panic(|| f(arg)) {
            Ok(value) => Reply::Value(value),
            Err(err) => Reply::panic(&err),
        },
        Err(err) => Reply::Failed {
            what: "decoding the argument".into(),
            detail: err.to_string(),
        },
    };
    wire::encode(&reply).unwrap_or_else(|err| {
        wire::encode(&Reply::<()>::Failed {
            what: "encoding the result".into(),
            detail: err.to_string(),
        })
        .unwrap_or_default()
    })
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
                owner: sys::getpid(),
                started: AtomicUsize::new(0),
                calls: AtomicUsize::new(0),
                crashes: AtomicUsize::new(0),
                timeouts: AtomicUsize::new(0),
                forker: Mutex::new(None),
                state: Mutex::new(State::default()),
                freed: Condvar::new(),
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
        let mut request = vec![0u8; HEADER + 16];
        request[HEADER..HEADER + 8]
            .copy_from_slice(&(invoke::<A, R> as Trampoline as usize as u64).to_le_bytes());
        request[HEADER + 8..HEADER + 16].copy_from_slice(&(f as usize as u64).to_le_bytes());
        let mut request = postcard::to_extend(&arg, request)
            .map_err(|err| JoinError::transport("encode", err.to_string()))?;
        let len = (request.len() - HEADER) as u64;
        request[..HEADER].copy_from_slice(&len.to_le_bytes());
        let worker = self.inner.acquire()?;
        let deadline = self.inner.options.get_timeout().map(|t| Instant::now() + t);
        self.inner.exchange(worker, &request, deadline)
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
        let idle = {
            let mut state = self.inner.lock();
            state.closed = true;
            for &pid in &state.busy {
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            std::mem::take(&mut state.idle)
        };
        for worker in idle {
            worker.kill_and_reap();
            self.inner.retire();
        }
        self.inner.freed.notify_all();
        // Busy workers were killed and no new one starts: the forker thread
        // may go (it ends once no pool and no fork server holds it).
        let lease = self
            .inner
            .forker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(lease);
    }

    /// Runs `f(arg)` in a worker, waiting on `executor`'s blocking lane.
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
        let lane = executor.blocking_scheduler();
        let tasks = lane.task_set().cloned();
        self.spawn_call_on(lane, tasks, f, arg)
    }

    /// Like [`spawn_call`](Self::spawn_call), with the schedule hook of a
    /// blocking lane and the task set the call joins given separately.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::Executor;
    ///
    /// let threads = unirun_threads::ThreadPool::new().unwrap();
    /// let pool = unirun_process::ProcessPool::new(1, Default::default());
    /// let lane = threads.handle().blocking_scheduler();
    /// let handle = pool.spawn_call_on(lane, None, |x: u32| x * 3, 5);
    /// assert_eq!(handle.join().unwrap(), 15);
    /// ```
    pub fn spawn_call_on<A, R>(
        &self,
        schedule: Arc<dyn Schedule>,
        tasks: Option<Arc<TaskSet>>,
        f: fn(A) -> R,
        arg: A,
    ) -> JoinHandle<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
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
}

impl Inner {
    /// Whether this process created the pool (not a forked child of it).
    fn owned_here(&self) -> bool {
        self.owner == sys::getpid()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle worker, a new one if there is room, or waits for one.
    fn acquire(&self) -> Result<Worker, JoinError> {
        let mut state = self.lock();
        loop {
            if state.closed {
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
                if state.closed {
                    drop(state);
                    worker.kill_and_reap();
                    self.retire();
                    return Err(JoinError::cancelled());
                }
                state.busy.push(worker.pid);
                return Ok(worker);
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn release(&self, worker: Worker) {
        if self.unbusy(worker.pid) {
            worker.kill_and_reap();
            self.retire();
            return;
        }
        self.lock().idle.push(worker);
        self.freed.notify_one();
    }

    /// Takes `pid` off the busy list; returns whether the pool was shut down.
    fn unbusy(&self, pid: Pid) -> bool {
        let mut state = self.lock();
        state.busy.retain(|&p| p != pid);
        state.closed
    }

    /// A worker is gone: its slot is free for a replacement.
    fn retire(&self) {
        self.lock().live -= 1;
        self.freed.notify_one();
    }

    fn start(&self) -> Result<Worker, JoinError> {
        if let Some(spawned) = server::spawn(&self.options) {
            return spawned.map(|s| Worker {
                pid: s.pid,
                requests: s.requests,
                replies: s.replies,
                served: Some(s.server),
            });
        }
        let lease = {
            let mut held = self.forker.lock().unwrap_or_else(PoisonError::into_inner);
            held.get_or_insert_with(forker::lease).clone()
        };
        let options = self.options;
        let worker = lease.run(move || start(&options));
        // A shutdown that released the pool's lease meanwhile kills this
        // worker in `acquire`; our clone kept the thread up until then.
        drop(lease);
        worker
    }
}

/// Forks a worker from the calling thread.
fn start(options: &ProcessOptions) -> Result<Worker, JoinError> {
    unirun_core::install_panic_hook();
    let parent = sys::getpid();
    let stdio = lock_stdio();
    let guard = FORK_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let pipes = sys::pipe().and_then(|a| sys::pipe().map(|b| (a, b)));
    let ((req_read, req_write), (rep_read, rep_write)) =
        pipes.map_err(|err| JoinError::transport("pipe", err.to_string()))?;
    // SAFETY: the worker runs only its loop over its own pipes, the
    // trampolines and functions sent to it, and async-signal-safe calls
    // until then; it leaves with `_exit`. We hold `stdio` and `FORK_LOCK`.
    match unsafe { fork_quiesced() } {
        Ok(Forked::Child) => {
            drop(guard);
            drop(stdio);
            drop(req_write);
            drop(rep_read);
            worker_main(parent, options, req_read, rep_write)
        }
        Ok(Forked::Parent(pid)) => {
            drop(req_read);
            drop(rep_write);
            drop(guard);
            drop(stdio);
            Ok(Worker {
                pid,
                requests: req_write,
                replies: rep_read,
                served: None,
            })
        }
        Err(err) => Err(JoinError::transport("fork", err.to_string())),
    }
}

impl Inner {
    /// Sends one request and reads its reply; a worker that fails is
    /// killed, reaped and retired.
    fn exchange<R: DeserializeOwned>(
        &self,
        worker: Worker,
        request: &[u8],
        deadline: Option<Instant>,
    ) -> Result<R, JoinError> {
        self.calls.fetch_add(1, Ordering::Release);
        let sent = sys::write_all(worker.requests.as_fd(), request);
        let read = match sent {
            Ok(()) => wire::read_frame(worker.replies.as_fd(), deadline),
            Err(err) => Err(err),
        };
        match read {
            Ok(Read::Frame(body)) => {
                self.release(worker);
                wire::decode::<R>(&body)?.into_result()
            }
            Ok(Read::TimedOut) => {
                let closed = self.unbusy(worker.pid);
                worker.kill_and_reap();
                self.retire();
                if closed {
                    return Err(JoinError::cancelled());
                }
                self.timeouts.fetch_add(1, Ordering::Release);
                Err(JoinError::timed_out())
            }
            other => {
                let closed = self.unbusy(worker.pid);
                let status = worker.kill_and_reap();
                self.retire();
                if closed {
                    return Err(JoinError::cancelled());
                }
                match status {
                    Some(ExitStatus::Signaled(sig)) if sig != libc::SIGKILL || other.is_ok() => {
                        self.crashes.fetch_add(1, Ordering::Release);
                        Err(JoinError::crashed(sig, sys::signal_name(sig)))
                    }
                    _ => Err(JoinError::transport(
                        "read",
                        match other {
                            Err(err) => err.to_string(),
                            _ => "the worker exited without replying".to_string(),
                        },
                    )),
                }
            }
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
            return;
        }
        for worker in idle {
            worker.kill_and_reap();
        }
        // The lease field drops after this: the forker thread may then end
        // (after the workers it forked are gone, as `PR_SET_PDEATHSIG` needs).
    }
}

/// The worker's loop: read a request, run it, reply; until end of file.
pub(crate) fn worker_main(
    parent: Pid,
    options: &ProcessOptions,
    requests: OwnedFd,
    replies: OwnedFd,
) -> ! {
    unirun_core::mark_forked_child();
    if !sys::die_with_parent(parent) || setup(options).is_err() {
        sys::exit_now(111);
    }
    loop {
        let body = match wire::read_frame(requests.as_fd(), None) {
            Ok(Read::Frame(body)) if body.len() >= 16 => body,
            _ => sys::exit_now(0),
        };
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(bytes) as usize
        };
        // SAFETY: the parent sent the address of `invoke::<A, R>` from this
        // same image (see `ProcessPool::call`).
        let trampoline: Trampoline =
            unsafe { std::mem::transmute::<*const (), Trampoline>(word(0) as *const ()) };
        let reply = trampoline(word(8), &body[16..]);
        if sys::write_all(replies.as_fd(), &reply).is_err() {
            sys::exit_now(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn crash(signal: i32) -> u8 {
        // SAFETY: SIG_DFL is valid for these signals; raising one at
        // ourselves has no memory-safety preconditions.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        unreachable!()
    }

    #[test]
    fn crashed_and_timed_out_workers_are_replaced() {
        let pool = ProcessPool::new(
            1,
            ProcessOptions::default().timeout(Duration::from_millis(100)),
        );
        assert_eq!(pool.call(|x: u8| x + 1, 1).unwrap(), 2);
        let err = pool.call(crash, libc::SIGSEGV).unwrap_err();
        assert_eq!(err.signal_name(), Some("SIGSEGV"), "{err}");
        assert_eq!(pool.call(|x: u8| x + 1, 2).unwrap(), 3);
        let err = pool
            .call(
                |()| -> u8 {
                    loop {
                        std::thread::park()
                    }
                },
                (),
            )
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert_eq!(pool.call(|x: u8| x + 1, 3).unwrap(), 4);
        assert_eq!(pool.started(), 3);
    }

    #[test]
    fn large_payloads_both_ways() {
        let pool = ProcessPool::new(1, ProcessOptions::default());
        let data: Vec<u32> = (0..4_000_000).collect();
        let back = pool
            .call(
                |v: Vec<u32>| v.into_iter().map(|x| x ^ 1).collect::<Vec<u32>>(),
                data,
            )
            .unwrap();
        assert_eq!(back.len(), 4_000_000);
        assert_eq!(back[10], 11);
    }

    #[test]
    fn concurrency_is_capped() {
        let pool = ProcessPool::new(2, ProcessOptions::default());
        let threads: Vec<_> = (0..6u32)
            .map(|i| {
                let pool = pool.clone();
                std::thread::spawn(move || pool.call(|x: u32| x * 2, i).unwrap())
            })
            .collect();
        let mut out: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        out.sort_unstable();
        assert_eq!(out, [0, 2, 4, 6, 8, 10]);
        assert!(pool.started() <= 2);
    }
}
