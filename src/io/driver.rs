//! Who drives unirun's own tokio runtime (its I/O and timer drivers): an
//! idle pool worker when there is one, the `unirun-io` thread otherwise.
//!
//! The runtime is a current-thread one: whichever thread is inside its
//! `block_on` holding its core parks in the I/O driver (`epoll_wait`, with
//! the next timer's deadline) and runs the wakers of what became ready.
//!
//! - **Workers.** A pool worker with nothing to do parks inside
//!   `runtime.block_on` ([`Driver::park`]): the first one takes the core and
//!   waits for events; the others wait inside `block_on` for the core, like
//!   a plain park. A readiness event is handled on the driving worker's
//!   thread, and the task it wakes is queued on that worker
//!   (`unirun_core`'s parked-core wake), which runs it: no thread hop. When
//!   the worker is unparked (its park future completes), it leaves
//!   `block_on` and tokio hands the core to a worker waiting for it.
//! - **Tasks of the runtime** (plain `tokio::spawn`) run on whichever
//!   thread drives it, and may block it. While the runtime has any, a
//!   worker does not park here, and one inside leaves before running one:
//!   the runtime's `on_thread_unpark` hook ([`after_unpark`]) wakes its
//!   park future, which tokio polls before its tasks, and that future
//!   completes while tasks exist. They run on the fallback thread. One
//!   spawned just as a worker enters may still run on it; what it wakes or
//!   spawns for the worker's pool then goes to the other workers
//!   (`unirun_core`'s `Park::runs_foreign_code`, answered by tokio's
//!   `try_id`): the worker leaves the sleepers, so a wake-up is not spent
//!   on a thread that is busy.
//! - **The fallback thread** (`unirun-io`) drives only when no worker has
//!   parked for a whole quiet spell ([`QUIET`]) and none parks now: all
//!   workers busy (long polls, every worker of every pool at work), or no
//!   pool parking here (a forked child's pools). It leaves the core as
//!   soon as a worker parks (its turn future completes, waking it through
//!   tokio's own unpark), and sleeps without a timeout while a worker has
//!   held the driver for a whole spell (an idle program); the worker that
//!   leaves last then wakes it.
//!
//! # Liveness
//!
//! Every event is handled by the core's holder. While any worker parks,
//! one holds the core or is handed it by tokio when the holder leaves. When
//! none parks, within two spells the fallback sees no park and takes the
//! core (it sleeps without a timeout only while `parked > 0`, and the last
//! worker out wakes it: `parked` and `io_sleeping` are each written, then
//! a `SeqCst` fence, then the other read, so one of the two sees the
//! other). A worker that parks while the fallback drives makes its turn
//! future ready (the same pattern on `parked` and `io_driving`, and the
//! turn stores its waker and reads `parked` under the lock the worker
//! takes to wake it). The loom models `loom_reactor_*` in `unirun_core`
//! restate both hand-offs.
//!
//! A stop with a deadline, while the runtime has tasks of its own, waits
//! for the fallback thread only until then: such a task may block it; it
//! stops the runtime once that task returns.
//!
//! Stopping (the last lease released) sets the flag, wakes the fallback,
//! closes the slot so no worker enters again, and waits (until the
//! deadline, if any) for workers inside to leave. Every pool that used the
//! runtime has shut down by then (each held a lease), so its workers were
//! unparked and leave; one that does not by the deadline keeps the
//! runtime alive until it does, and the last holder drops it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use std::cell::RefCell;

use tokio::runtime::{Handle, Runtime};

/// How long no worker must park before the fallback thread drives.
const QUIET: Duration = Duration::from_millis(1);

thread_local! {
    /// While this thread is a worker driving the runtime: the runtime and
    /// the waker of its park, so that [`after_unpark`] can end the park.
    static DRIVING: RefCell<Option<(Handle, Option<Waker>)>> = const { RefCell::new(None) };
}

/// unirun's own runtime and the protocol of who drives it.
pub(crate) struct Driver {
    /// The runtime; `None` once stopping (workers then park without it).
    runtime: Mutex<Option<Arc<Runtime>>>,
    tokio: Handle,
    /// Workers inside [`park`](Self::park): holding the core or waiting.
    parked: AtomicUsize,
    /// Parks so far: the fallback drives only after a spell without one.
    parks: AtomicUsize,
    /// Whether the fallback is inside `block_on` (so a parking worker must
    /// wake its turn).
    io_driving: AtomicBool,
    /// Whether the fallback sleeps without a timeout (so the last worker
    /// leaving must wake it).
    io_sleeping: AtomicBool,
    /// Whether stopping waits for the workers inside to leave.
    stopping: AtomicBool,
    state: Mutex<State>,
    /// The fallback's sleep, and the stopper's wait for workers to leave.
    changed: Condvar,
    /// The fork generation it was made in: a forked child's workers never
    /// park here (a cheap check, unlike `getpid`).
    generation: usize,
}

#[derive(Default)]
struct State {
    stop: bool,
    /// How long stopping may wait for blocking closures (and workers).
    deadline: Option<Instant>,
    /// The fallback's turn, while it drives.
    turn: Option<Waker>,
}

impl Driver {
    pub(crate) fn new(runtime: Runtime) -> Self {
        Driver {
            tokio: runtime.handle().clone(),
            runtime: Mutex::new(Some(Arc::new(runtime))),
            parked: AtomicUsize::new(0),
            parks: AtomicUsize::new(0),
            io_driving: AtomicBool::new(false),
            io_sleeping: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            generation: unirun_core::fork_generation(),
        }
    }

    /// Parks the calling pool worker inside the runtime until `woken`
    /// completes; `false` (at once) if this thread cannot drive it: a
    /// forked child's, or stopping.
    pub(crate) fn park(&self, woken: Pin<&mut dyn Future<Output = ()>>) -> bool {
        if self.generation != unirun_core::fork_generation() {
            return false;
        }
        if has_tasks(&self.tokio) {
            // Tasks of the runtime (plain `tokio::spawn`) run on the thread
            // that drives it, and may block it: not on a worker.
            return false;
        }
        // One worker at a time: the others park on their own parkers, and
        // are not woken to take the core over when the driver leaves.
        if self
            .parked
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.parks.fetch_add(1, Ordering::Relaxed);
        let Some(runtime) = lock(&self.runtime).clone() else {
            self.parked.store(0, Ordering::SeqCst);
            return false;
        };
        // Pairs with the fallback's fence after it sets `io_driving`.
        fence(Ordering::SeqCst);
        if self.io_driving.load(Ordering::SeqCst) {
            // The fallback holds the core: its turn ends, tokio hands the
            // core to us.
            let turn = lock(&self.state).turn.take();
            if let Some(turn) = turn {
                turn.wake();
            }
        }
        DRIVING.with(|driving| *driving.borrow_mut() = Some((self.tokio.clone(), None)));
        runtime.block_on(Park { woken });
        DRIVING.with(|driving| driving.borrow_mut().take());
        drop(runtime);
        let was = self.parked.fetch_sub(1, Ordering::SeqCst);
        // Pairs with the stopper's fence (it sees our clone gone, or we
        // see it stopping) and the sleeping fallback's (it sees `parked`
        // at 0, or we see it asleep).
        fence(Ordering::SeqCst);
        let last_out = was == 1 && self.io_sleeping.load(Ordering::SeqCst);
        if last_out || self.stopping.load(Ordering::Relaxed) {
            // The fallback slept because we drove (now nobody does), or
            // stopping waits for us to leave.
            let _state = lock(&self.state);
            self.changed.notify_all();
        }
        true
    }

    /// Whether the runtime has tasks of its own (plain `tokio::spawn`),
    /// which run on the thread that drives it and may block it.
    pub(crate) fn runtime_has_tasks(&self) -> bool {
        has_tasks(&self.tokio)
    }

    /// Whether a worker is inside [`park`](Self::park) now.
    pub(crate) fn worker_drives(&self) -> bool {
        self.parked.load(Ordering::SeqCst) > 0
    }

    /// Asks the fallback thread to stop, allowing blocking closures until
    /// `deadline` (none: wait for them).
    pub(crate) fn stop(&self, deadline: Option<Instant>) {
        let turn = {
            let mut state = lock(&self.state);
            state.stop = true;
            state.deadline = deadline;
            self.changed.notify_all();
            state.turn.take()
        };
        if let Some(turn) = turn {
            turn.wake();
        }
    }

    /// The fallback thread's loop, until [`stop`](Self::stop); then stops
    /// the runtime. Returns whether no blocking closure was left running.
    pub(crate) fn run_fallback(&self, live_blocking: &AtomicUsize) -> bool {
        let runtime = lock(&self.runtime)
            .clone()
            .expect("a new driver has its runtime");
        let mut seen = usize::MAX;
        let mut state = lock(&self.state);
        let deadline = loop {
            if state.stop {
                break state.deadline;
            }
            let parks = self.parks.load(Ordering::Relaxed);
            if parks != seen {
                // Workers parked lately: look again after a quiet spell.
                seen = parks;
                state = wait_timeout(&self.changed, state, QUIET);
                continue;
            }
            if self.parked.load(Ordering::SeqCst) > 0 {
                // A worker has driven for a whole spell: sleep until the
                // last one leaves.
                self.io_sleeping.store(true, Ordering::SeqCst);
                // Pairs with the leaving worker's fence.
                fence(Ordering::SeqCst);
                if self.parked.load(Ordering::SeqCst) > 0 {
                    state = wait(&self.changed, state);
                }
                self.io_sleeping.store(false, Ordering::SeqCst);
                seen = usize::MAX;
                continue;
            }
            drop(state);
            self.io_driving.store(true, Ordering::SeqCst);
            // Pairs with a parking worker's fence.
            fence(Ordering::SeqCst);
            runtime.block_on(Turn(self));
            self.io_driving.store(false, Ordering::SeqCst);
            state = lock(&self.state);
            seen = usize::MAX;
        };
        drop(state);
        // No worker enters again; wait for those inside to leave.
        let slot = lock(&self.runtime).take();
        drop(slot);
        self.stopping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let mut state = lock(&self.state);
        while Arc::strong_count(&runtime) > 1 {
            state = match deadline {
                None => wait(&self.changed, state),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    wait_timeout(&self.changed, state, left)
                }
            };
        }
        drop(state);
        match Arc::into_inner(runtime) {
            // Waits for the blocking threads (tokio's drop does), as a
            // graceful shutdown does.
            Some(runtime) if deadline.is_none() => drop(runtime),
            // Gives up on them at the deadline.
            Some(runtime) => runtime.shutdown_timeout(deadline.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            })),
            // A worker still inside past the deadline drops it when it
            // leaves.
            None => return false,
        }
        // tokio's hook runs before a blocking thread signs off from the
        // shutdown: a thread tokio waited for is no longer counted.
        live_blocking.load(Ordering::SeqCst) == 0
    }
}

/// Whether the runtime has tasks of its own (spawned with `tokio::spawn`).
fn has_tasks(tokio: &Handle) -> bool {
    tokio.metrics().num_alive_tasks() > 0
}

/// The runtime's `on_thread_unpark` hook: a worker driving the runtime
/// leaves its park (through its future, which the runtime polls before any
/// task) once the runtime has tasks of its own, so that they run on the
/// fallback thread rather than keep the worker's core from the pool.
pub(crate) fn after_unpark() {
    DRIVING.with(|driving| {
        if let Some((tokio, Some(waker))) = driving.borrow().as_ref() {
            if has_tasks(tokio) {
                waker.wake_by_ref();
            }
        }
    });
}

/// A worker's park inside the runtime: ends when the worker is woken, or
/// when the runtime has tasks of its own (see [`after_unpark`]).
struct Park<'a> {
    woken: Pin<&'a mut dyn Future<Output = ()>>,
}

impl Future for Park<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let leave = DRIVING.with(|driving| match driving.borrow_mut().as_mut() {
            Some((tokio, waker)) => {
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                has_tasks(tokio)
            }
            None => false,
        });
        if leave {
            return Poll::Ready(());
        }
        self.woken.as_mut().poll(cx)
    }
}

/// The fallback's turn at the wheel: ends when a worker parks (it takes
/// the core over) or on stop.
struct Turn<'a>(&'a Driver);

impl Future for Turn<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let driver = self.0;
        let mut state = lock(&driver.state);
        if state.stop || driver.parked.load(Ordering::SeqCst) > 0 {
            state.turn = None;
            return Poll::Ready(());
        }
        state.turn = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    condvar
        .wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}
