//! Tearing a [`Run`](super::Run) down: waiting for its tasks as the
//! shutdown asks, cancelling the rest, and shutting the owned backend down,
//! here or on a helper thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Instant;

use unirun_core::TaskSet;

use crate::backend::{self, Owned};
use crate::gil;
use crate::scope::ScopeState;

/// How a shutdown treats tasks that have not finished.
#[derive(Clone, Copy)]
pub(super) enum Stop {
    Wait,
    Now,
    Until(Instant),
}

/// What a shutdown needs, detached from the `Run` so it can move to a
/// helper thread.
pub(super) struct Teardown {
    pub(super) scope: Arc<ScopeState>,
    pub(super) owned: Option<Owned>,
    /// The scope's name, for the `unirun::scope` events.
    pub(super) name: String,
}

impl Teardown {
    /// Waits as `stop` says, closes the scope (its handles cancel what they
    /// spawn from now on) and shuts down the owned pool. Returns whether the
    /// tasks finished without being cancelled.
    ///
    /// It counts as cancelled the tasks its close ended unfinished and,
    /// past a bounded shutdown's deadline, those still running when it
    /// returns (given up on); not a task whose poll was under way at the
    /// close and that finished.
    pub(super) fn run(self, stop: Stop) -> bool {
        let began = Instant::now();
        let tasks = &self.scope.tasks;
        // Process calls whose replies would be read by their joiners finish
        // on the lane instead, so waiting for the tasks cannot hang on them.
        backend::process::start_pending_calls(&self.scope);
        // Whether the close cancels tasks still live: not after a wait
        // that saw the set empty (a task that ended just at the deadline,
        // after the last look, was not left running).
        let cancelling = match stop {
            Stop::Wait => {
                wait_empty(tasks, None);
                false
            }
            Stop::Now => true,
            Stop::Until(deadline) => {
                let in_time = wait_empty(tasks, Some(deadline));
                if !in_time {
                    at_the_deadline(tasks);
                }
                !in_time
            }
        };
        tasks.close();
        if cancelling {
            // Nothing more is waited for in a bounded shutdown: blocking
            // closures still running are given up on below, at the same
            // deadline.
            if matches!(stop, Stop::Now) || !tasks.is_empty() {
                kill_children(&self.scope);
            }
            at_the_close(tasks);
        }
        let mut cancelled = 0;
        if let (true, Stop::Now) = (cancelling, stop) {
            wait_empty(tasks, None);
            // All gone: exactly those the close cancelled, not those whose
            // poll was under way at the close and finished.
            cancelled = tasks.unfinished_since_close();
        }
        // The scope's process pool: no call of it is left running.
        backend::process::close_scope_pool(&self.scope);
        // Waits for nothing (the pool's tasks are this scope's), then joins
        // the workers and the blocking lane; a worker might be waiting for a
        // lock this thread holds.
        // A bounded one stops the backend by the same deadline, and says
        // whether it left anything running (a blocking closure, a tokio
        // runtime's blocking closure).
        let backend_clean = gil::allow_threads(|| match (self.owned, stop) {
            (Some(owned), Stop::Until(deadline)) => {
                owned.shutdown_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            // "Now" waits for no closure, unirun-io's included.
            (Some(owned), Stop::Now) => {
                owned.shutdown_now();
                true
            }
            (Some(owned), _) => {
                owned.shutdown();
                true
            }
            (None, _) => true,
        });
        if let (true, Stop::Until(_)) = (cancelling, stop) {
            // Looked at once the backend stopped (by the same deadline):
            // the tasks the close cancelled, and those still running (past
            // the deadline, given up on), not those whose poll was under
            // way at the close and finished.
            cancelled = tasks.unfinished_since_close();
        }
        let in_time = cancelled == 0 && backend_clean;
        let how = match stop {
            Stop::Wait => "wait",
            Stop::Now => "now",
            Stop::Until(_) => "timeout",
        };
        crate::observe::scope_ended(&self.name, how, cancelled, began.elapsed());
        counted(cancelled);
        in_time
    }

    /// Runs the teardown on a helper thread. If the OS refuses one, it
    /// does not recurse into another shutdown here (dropping the pool on
    /// its own worker, or on an async worker, would need a helper thread
    /// again): the scope's tasks are cancelled and the backend is left to
    /// its threads, which stay parked; said on stderr.
    pub(super) fn off_thread(self, stop: Stop, name: &str) {
        let slot = Arc::new(Mutex::new(Some(self)));
        let theirs = slot.clone();
        let refused = helper_refused();
        let builder = thread::Builder::new().name(format!("{name}-shutdown"));
        let spawned = if refused {
            Err(std::io::Error::other("refused by the test"))
        } else {
            builder.spawn(move || {
                let teardown = theirs.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(teardown) = teardown {
                    teardown.run(stop);
                }
            })
        };
        if let Err(err) = spawned {
            // The failed spawn dropped its closure, so `slot` is ours alone.
            let teardown = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(teardown) = teardown {
                eprintln!(
                    "unirun: could not start a thread to shut scope {name:?} down ({err}); \
                     cancelling its tasks and leaving its threads parked"
                );
                teardown.scope.tasks.close();
                kill_children(&teardown.scope);
                std::mem::forget(teardown.owned);
            }
        }
    }
}

/// Kills the forked children and busy pool workers still working for the
/// scope, so waiting for its cancelled tasks does not wait for them
/// (process backend).
fn kill_children(scope: &ScopeState) {
    backend::process::cancel_children(scope);
}

/// Waits until `tasks` is empty (or `deadline` passes), with the calling
/// thread's serialized-scope locks released; returns whether it emptied.
/// Without a deadline, a worker thread keeps running its pool's tasks.
fn wait_empty(tasks: &TaskSet, deadline: Option<Instant>) -> bool {
    let Some(deadline) = deadline else {
        unirun_core::block_on(tasks.wait_empty());
        return true;
    };
    gil::allow_threads(|| {
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        loop {
            if tasks.notify_when_empty(&waker) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            thread::park_timeout(deadline - now);
        }
    })
}

struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A one-shot flag a future can wait on.
#[derive(Default)]
pub(super) struct Signal {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Signal {
    pub(super) fn set(&self) {
        let waker = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 = true;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

pub(super) struct SignalWait<'a>(pub(super) &'a Signal);

impl Future for SignalWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 {
            Poll::Ready(())
        } else {
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

thread_local! {
    /// Makes `Teardown::off_thread` see the OS refuse its thread (set by a
    /// unit test; read only in test builds).
    pub(super) static REFUSE_HELPER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };

    /// A step a bounded shutdown on this thread runs once its deadline
    /// passed with tasks left, before it closes the scope (set by a unit
    /// test; read only in test builds).
    pub(super) static AT_THE_DEADLINE: std::cell::Cell<Option<Step>> = const { std::cell::Cell::new(None) };

    /// A step a shutdown on this thread that cancels runs right after its
    /// close, before it stops the backend and counts what it cancelled
    /// (set by a unit test; read only in test builds).
    pub(super) static AT_THE_CLOSE: std::cell::Cell<Option<Step>> = const { std::cell::Cell::new(None) };

    /// How many tasks the last shutdown on this thread counted cancelled
    /// (for unit tests; written only in test builds).
    pub(super) static COUNTED: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// See [`AT_THE_DEADLINE`] and [`AT_THE_CLOSE`].
pub(super) type Step = Box<dyn FnOnce(&TaskSet)>;

/// Whether a test refuses the teardown helper thread (never, outside tests:
/// the read compiles away).
fn helper_refused() -> bool {
    cfg!(test) && REFUSE_HELPER.with(std::cell::Cell::get)
}

/// Runs the step a test put between a bounded shutdown's deadline and its
/// close (never, outside tests: the read compiles away).
fn at_the_deadline(tasks: &TaskSet) {
    if cfg!(test) {
        if let Some(step) = AT_THE_DEADLINE.with(std::cell::Cell::take) {
            step(tasks);
        }
    }
}

/// Runs the step a test put right after a cancelling shutdown's close
/// (never, outside tests: the read compiles away).
fn at_the_close(tasks: &TaskSet) {
    if cfg!(test) {
        if let Some(step) = AT_THE_CLOSE.with(std::cell::Cell::take) {
            step(tasks);
        }
    }
}

/// Records a shutdown's count for a test (never, outside tests).
fn counted(cancelled: usize) {
    if cfg!(test) {
        COUNTED.with(|counted| counted.set(Some(cancelled)));
    }
}
