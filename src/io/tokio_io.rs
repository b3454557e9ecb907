//! unirun's own tokio runtime (the `unirun-io` thread) that thread pools
//! run inside, and the contexts unirun enters on it (feature
//! `tokio-backend`; see the [`crate::io`] module docs).

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Poll, Waker};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use tokio::runtime::{EnterGuard, Handle, RuntimeFlavor};
use unirun_platform::fork_guard::ForkMutex;
use unirun_threads::WorkerContext;

use crate::error::Error;

/// The name of the thread that drives unirun's own runtime.
pub(crate) const THREAD_NAME: &str = "unirun-io";

thread_local! {
    /// Whether the innermost tokio context entered through unirun on
    /// this thread is a pool's reactor (not a tokio scope's runtime).
    static OURS: Cell<bool> = const { Cell::new(false) };
}

/// Whether the tokio context on this thread is one unirun entered as a
/// thread pool's reactor: it is then no "ambient runtime".
pub(crate) fn entered_by_unirun() -> bool {
    OURS.try_with(Cell::get).unwrap_or(false)
}

/// Where a thread pool's tokio futures get their reactor: always a lease
/// on unirun's own runtime. An ambient runtime is never borrowed: the
/// pool's workers enter the reactor once for their whole life, and a
/// runtime the program drops while the pool lives (the shared default
/// outlives every `#[tokio::test]`) would leave them a dead reactor.
pub(crate) struct Reactor {
    tokio: Handle,
    source: Source,
    /// The runtime behind `tokio`, for [`Reactor::lease`]: the pool's
    /// own lease keeps it up while the pool lives.
    own: Weak<OwnRuntime>,
}

#[derive(Clone, Copy)]
enum Source {
    Own,
    /// Own, though the pool started inside a multi-thread runtime.
    OwnBesideMultiThread,
    /// Own, though the pool started inside a current-thread runtime.
    OwnBesideCurrentThread,
}

impl Reactor {
    /// The reactor for a thread pool starting now on this thread: a
    /// lease on unirun's own runtime (started if no pool holds one).
    pub(crate) fn for_new_pool() -> Result<(Arc<Reactor>, Option<Lease>), Error> {
        let ambient = if entered_by_unirun() {
            None
        } else {
            Handle::try_current().ok()
        };
        let source = match ambient {
            Some(tokio) if tokio.runtime_flavor() == RuntimeFlavor::CurrentThread => {
                Source::OwnBesideCurrentThread
            }
            Some(_) => Source::OwnBesideMultiThread,
            None => Source::Own,
        };
        let lease = lease()?;
        let reactor = Reactor {
            tokio: lease.0.tokio.clone(),
            source,
            own: Arc::downgrade(&lease.0),
        };
        Ok((Arc::new(reactor), Some(lease)))
    }

    /// What the trace says about it.
    pub(crate) fn describe(&self) -> &'static str {
        match self.source {
            Source::Own => "tokio's I/O and timers on unirun-io (unirun's own runtime)",
            Source::OwnBesideMultiThread => {
                "tokio's I/O and timers on unirun-io (unirun's own runtime; \
                 the ambient one is not borrowed, it may be dropped while the pool lives)"
            }
            Source::OwnBesideCurrentThread => {
                "tokio's I/O and timers on unirun-io (unirun's own runtime; \
                 the ambient one is current-thread, its drivers turn only while its thread waits)"
            }
        }
    }

    /// Another lease on the runtime, for a caller that enters it beside
    /// the pool and must not see it stop while inside (`unirun::block_on`
    /// on the shared default, which `configure` or `reset` may shut down
    /// meanwhile). `None` once the pool's lease was the last and is gone
    /// (the pool shut down already), and in a forked child, whose
    /// reactor is its own and never stops (see [`child_runtime`]).
    pub(crate) fn lease(&self) -> Option<CallLease> {
        self.own
            .upgrade()
            .filter(|runtime| runtime.in_this_process())
            .map(|runtime| CallLease(Some(runtime)))
    }

    /// Enters the reactor's context on this thread until the guard drops.
    ///
    /// In a forked child the pool's runtime is the parent's, whose
    /// thread the child does not have (a timer registered there would
    /// never fire): the child's own unirun-io is entered instead.
    pub(crate) fn enter(&self) -> Context<'_> {
        if unirun_core::in_forked_child() {
            if let Some(tokio) = child_runtime() {
                return Context::new(tokio.enter(), true);
            }
        }
        Context::new(self.tokio.enter(), true)
    }
}

impl WorkerContext for Reactor {
    fn run(&self, body: &mut dyn FnMut()) {
        let _inside = self.enter();
        body();
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The reactor a thread pool's workers run inside, if unirun gave it one.
pub(crate) fn reactor_of(pool: &unirun_threads::Handle) -> Option<&Reactor> {
    pool.worker_context()?.as_any().downcast_ref::<Reactor>()
}

/// A tokio context entered on this thread, and whether it is a pool's
/// reactor; dropping it restores what was entered before.
pub(crate) struct Context<'a> {
    // Dropped first: tokio's context, then our flag, in reverse order
    // of entering.
    _tokio: EnterGuard<'a>,
    _flag: Flag,
}

impl<'a> Context<'a> {
    /// `ours`: whether this is a pool's reactor (not a tokio scope's).
    pub(crate) fn new(tokio: EnterGuard<'a>, ours: bool) -> Self {
        let previous = OURS.try_with(|f| f.replace(ours)).unwrap_or(false);
        Context {
            _tokio: tokio,
            _flag: Flag(previous),
        }
    }
}

/// Restores the flag's previous value on drop.
struct Flag(bool);

impl Drop for Flag {
    fn drop(&mut self) {
        let _ = OURS.try_with(|f| f.set(self.0));
    }
}

/// unirun's own runtime, shared by every pool that leases it.
/// Fork-guarded: unirun never forks while it is held, so a forked child
/// can always take it.
static SHARED: ForkMutex<Weak<OwnRuntime>> = ForkMutex::new(Weak::new());

/// A pool's hold on unirun's own runtime: the runtime stops when the
/// last lease is dropped (or [released](Lease::release_by)).
pub(crate) struct Lease(Arc<OwnRuntime>);

impl Lease {
    /// Gives the lease up, waiting no later than `deadline` if it was
    /// the last one (the runtime then stops, and blocking closures
    /// still running on it after `deadline` are left to finish on their
    /// threads). Returns whether nothing was left running.
    pub(crate) fn release_by(self, deadline: std::time::Instant) -> bool {
        let last = {
            // Under the lock `lease` upgrades under: no new lease can
            // take this runtime between the check and the stop.
            let _shared = SHARED.lock();
            Arc::into_inner(self.0)
        };
        // Not the last: the runtime serves other pools, nothing stops.
        last.is_none_or(|runtime| runtime.stop(Some(deadline)))
    }
}

impl Lease {
    /// Gives the lease up without waiting for tokio blocking closures:
    /// if it was the last one, the runtime stops with a deadline of
    /// now (tokio's shutdown then leaves running closures to finish on
    /// their threads), so this returns once unirun-io's own thread has
    /// left its loop.
    pub(crate) fn release_now(self) {
        let _ = self.release_by(std::time::Instant::now());
    }
}

/// A call's hold on unirun's own runtime (see [`Reactor::lease`]). When
/// it is the last, its drop stops the runtime "now", as
/// [`Lease::release_now`] does: the pools that held it were shut down
/// (by `reset`, which does not wait for tokio blocking closures either),
/// and the call ends without waiting for closures it did not start.
/// Only the last one takes the lock-free path `Arc::into_inner` gives:
/// once it returns the runtime, no `lease` can upgrade to it any more.
pub(crate) struct CallLease(Option<Arc<OwnRuntime>>);

impl Drop for CallLease {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take().and_then(Arc::into_inner) {
            runtime.stop(Some(Instant::now()));
        }
    }
}

/// A lease on unirun's own runtime, starting it if no pool holds one.
fn lease() -> Result<Lease, Error> {
    let mut shared = SHARED.lock();
    // One inherited through `fork` has no thread here: start another.
    if let Some(runtime) = shared.upgrade().filter(|r| r.in_this_process()) {
        return Ok(Lease(runtime));
    }
    let runtime = Arc::new(OwnRuntime::start()?);
    *shared = Arc::downgrade(&runtime);
    Ok(Lease(runtime))
}

/// The forked child's own unirun-io, started on first use and kept
/// until the child exits (a child leaves with `_exit`, so nothing is
/// torn down); `None` if it cannot start (the caller then enters the
/// pool's, as before: its tokio futures fail or time out, the
/// process call's timeout being the safety net).
pub(crate) fn child_runtime() -> Option<&'static Handle> {
    /// The process that started it, and its handle (leaked: one per
    /// process, whose lease keeps the runtime up).
    static CHILD: ForkMutex<Option<(u32, &'static Handle)>> = ForkMutex::new(None);
    let pid = std::process::id();
    let mut child = CHILD.lock();
    if let Some((owner, tokio)) = *child {
        if owner == pid {
            return Some(tokio);
        }
    }
    let lease: &'static Lease = Box::leak(Box::new(lease().ok()?));
    let tokio = &lease.0.tokio;
    *child = Some((pid, tokio));
    // Tasks this runtime's thread wakes run on the child's runner
    // threads (see `unirun_core::mark_driver_thread`): there too
    // inside this runtime, as on its thread.
    unirun_core::set_runner_context(enter_child_runtime);
    Some(tokio)
}

/// Runs `body` inside the forked child's own unirun-io (a grandchild
/// inherits the setting, not the runtime: it starts its own).
fn enter_child_runtime(body: &mut dyn FnMut()) {
    if unirun_core::in_forked_child() {
        if let Some(tokio) = child_runtime() {
            let _inside = Context::new(tokio.enter(), true);
            return body();
        }
    }
    body()
}

/// Whether unirun's own runtime runs (some pool holds a lease).
#[cfg_attr(not(feature = "__test-hooks"), allow(dead_code))] // read by the test hooks only
pub(crate) fn own_running() -> bool {
    SHARED.lock().upgrade().is_some_and(|r| r.in_this_process())
}

/// A current-thread runtime with every driver tokio has compiled in,
/// and the `unirun-io` thread that blocks on it until stopped.
struct OwnRuntime {
    tokio: Handle,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<bool>>,
    /// The [`fork_generation`](unirun_core::fork_generation) of the
    /// process that started it: a forked child inherits the value but not
    /// the thread, and its generation is higher (every `fork` is counted:
    /// `start` makes sure the fork handler is installed). Read on every
    /// `block_on` that enters the runtime, so a plain load, not `getpid`
    /// (a system call).
    generation: usize,
}

impl OwnRuntime {
    fn start() -> Result<Self, Error> {
        // Every fork from now on raises the generation `in_this_process`
        // compares (the threads backend's pools install the same handler).
        unirun_threads::watch_forks();
        // Threads of its blocking pool (`tokio::task::spawn_blocking`
        // in unirun's tasks) alive now: the only threads the runtime
        // starts, a current-thread one runs on `unirun-io` itself.
        let live = Arc::new(AtomicUsize::new(0));
        let (started, stopped) = (live.clone(), live.clone());
        // `enable_all`: I/O too whenever tokio's `net` is compiled in
        // (by whoever uses `tokio::net`); timers always.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name(format!("{THREAD_NAME}-blocking"))
            .on_thread_start(move || {
                started.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move || {
                stopped.fetch_sub(1, Ordering::SeqCst);
            })
            .build()?;
        let tokio = runtime.handle().clone();
        let stop = Arc::new(Stop::default());
        let stopping = stop.clone();
        // The runtime moves to its thread and is shut down there,
        // outside any async context (tokio forbids dropping it inside
        // one). The thread returns whether no blocking closure was
        // left running.
        // Handed over through a cell: a refused spawn drops its
        // closure on this thread, which may be inside an async context
        // (a compat call in a tokio task), where dropping a runtime
        // panics; the runtime is then taken back and shut down without
        // blocking.
        let cell = Arc::new(std::sync::Mutex::new(Some(runtime)));
        let theirs = cell.clone();
        let spawned = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                // In a forked child, tasks its timers and sockets wake
                // go to runner threads: it must never block inside one.
                unirun_core::mark_driver_thread();
                let runtime = theirs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .expect("the runtime is in the cell until its thread takes it");
                runtime.block_on(StopWait(&stopping));
                let deadline = stopping.0.lock().unwrap_or_else(PoisonError::into_inner).2;
                match deadline {
                    // Waits for the blocking threads (tokio's drop
                    // does), as a graceful shutdown does.
                    None => drop(runtime),
                    // Gives up on them at the deadline.
                    Some(deadline) => {
                        runtime.shutdown_timeout(deadline.saturating_duration_since(Instant::now()))
                    }
                }
                // tokio's hook runs before a blocking thread signs off
                // from the shutdown: a thread tokio waited for is no
                // longer counted here.
                live.load(Ordering::SeqCst) == 0
            });
        let thread = match spawned {
            Ok(thread) => thread,
            Err(err) => {
                let runtime = cell.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(runtime) = runtime {
                    runtime.shutdown_background();
                }
                return Err(err.into());
            }
        };
        Ok(OwnRuntime {
            tokio,
            stop,
            thread: Some(thread),
            generation: unirun_core::fork_generation(),
        })
    }

    /// Whether its thread runs in this process (not in the parent of a
    /// forked child).
    fn in_this_process(&self) -> bool {
        self.generation == unirun_core::fork_generation()
    }

    /// Stops the thread and joins it; with a deadline, blocking
    /// closures still running then are left behind. Returns whether
    /// none was left running.
    ///
    /// The join ends: `set` wakes the waker `block_on` parked with
    /// (tokio's driver unparks), the poll sees the flag and returns,
    /// and the runtime's shutdown then waits only for blocking
    /// closures already running on it, at most until the deadline
    /// when there is one.
    fn stop(mut self, deadline: Option<Instant>) -> bool {
        self.stop_thread(deadline)
    }

    fn stop_thread(&mut self, deadline: Option<Instant>) -> bool {
        // Already stopped (by `stop`, before its drop).
        let Some(thread) = self.thread.take() else {
            return true;
        };
        if !self.in_this_process() {
            // Inherited through `fork`: its thread is the parent's, and
            // its stop flag's lock and waker may be too. Touch nothing
            // (joining would fail); the memory stays, as the pools'.
            std::mem::forget(thread);
            return true;
        }
        self.stop.set(deadline);
        if thread.thread().id() == thread::current().id() {
            return true;
        }
        thread.join().unwrap_or(false)
    }
}

impl Drop for OwnRuntime {
    /// Stops the thread and joins it, waiting for blocking closures
    /// (see [`OwnRuntime::stop`]).
    fn drop(&mut self) {
        self.stop_thread(None);
    }
}

/// A one-shot stop flag the driver thread awaits, with the deadline
/// its shutdown may wait until.
#[derive(Default)]
struct Stop(Mutex<(bool, Option<Waker>, Option<Instant>)>);

impl Stop {
    fn set(&self, deadline: Option<Instant>) {
        let waker = {
            let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 = true;
            state.2 = deadline;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Completes once the flag is set. The flag and the waker share one
/// lock, so a `set` either sees the stored waker or happens before the
/// poll that then sees the flag: no wake-up is lost.
struct StopWait<'a>(&'a Stop);

impl Future for StopWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut state = self.0 .0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 {
            Poll::Ready(())
        } else {
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}
