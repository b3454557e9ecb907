//! `tokio::task`'s API; see the [parent module](super) for what managed
//! mode does.
//!
//! # Examples
//!
//! ```
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! use unirun::compat::tokio::task;
//!
//! let mut set = task::JoinSet::new();
//! set.spawn(async { task::id() });
//! let id = set.join_next().await.unwrap().unwrap();
//! assert_ne!(id, task::spawn(async { task::id() }).await.unwrap());
//! # });
//! ```

use std::future::Future;

use crate::join_set::task::{self as controlled, Outcome, Task};
use crate::JoinError as UnirunJoinError;

mod error;
mod handle;
mod hold;
mod join_set;
mod local;

pub use error::JoinError;
pub use handle::{AbortHandle, Id, JoinHandle};
pub use join_set::JoinSet;
pub use local::{spawn_local, LocalSet};

/// Runs `f` in a blocking-allowed way on the current worker thread of a
/// multi-thread runtime (tokio's own).
pub use tokio::task::block_in_place;
/// Consumes a unit of the task's coop budget (tokio's own).
pub use tokio::task::consume_budget;
/// Opts a future out of tokio's coop budget (tokio's own).
pub use tokio::task::unconstrained;
/// Yields to the runtime once (tokio's own).
pub use tokio::task::yield_now;
/// A task-local key (tokio's own); declare one with
/// [`task_local!`](crate::compat::tokio::task_local).
pub use tokio::task::LocalKey;
/// The future returned by [`unconstrained`] (tokio's own).
pub use tokio::task::Unconstrained;

/// Task-related futures (tokio's own).
pub mod futures {
    /// The future returned by `LocalKey::scope` (tokio's own).
    pub use tokio::task::futures::TaskLocalFuture;
}

/// Spawns a future "here", like `tokio::spawn`: in managed mode, inside a
/// unirun task, blocking closure or `block_on` (see
/// [`Handle::try_current`](crate::Handle::try_current)) it runs on that
/// executor's workers (a [`Run`](crate::Run) scope's, which then waits for
/// it, or the shared default's), with tokio's I/O and timers working
/// there; elsewhere on the current tokio runtime, as a unirun task.
///
/// Plain `tokio::spawn` (not this one) inside a unirun task is tokio's:
/// unirun cannot see it, and it goes to the tokio runtime whose context
/// the thread is in, on the threads backend unirun's reactor runtime
/// (see [`crate::io`]) rather than the scope's workers.
///
/// # Panics
///
/// Outside unirun and outside a tokio runtime, with tokio's message.
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task;
///
/// let handle = task::spawn(async { "done" });
/// assert_eq!(handle.await.unwrap(), "done");
/// # });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if crate::compat::passthrough() {
        return JoinHandle::tokio(tokio::task::spawn(future));
    }
    JoinHandle::managed(managed_spawn_here(future))
}

/// Runs a blocking closure where blocking is allowed, like
/// `tokio::task::spawn_blocking`. In managed mode, inside a
/// [`Run`](crate::Run) scope's task, blocking closure or `block_on`, it is
/// one of the scope's blocking closures (the scope's shutdown waits for
/// it, as for [`spawn`]), except while the tokio clock is paused (then
/// tokio's pool runs it, see the [parent module](super)).
///
/// # Panics
///
/// Outside a tokio runtime, with tokio's message.
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task;
///
/// let handle = task::spawn_blocking(|| 6 * 7);
/// assert_eq!(handle.await.unwrap(), 42);
/// # });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if crate::compat::passthrough() {
        return JoinHandle::tokio(tokio::task::spawn_blocking(f));
    }
    let runtime = tokio::runtime::Handle::current();
    JoinHandle::managed(managed_spawn_blocking(&runtime, f))
}

/// The id of the task running this code, like `tokio::task::id`.
///
/// # Panics
///
/// Outside a task, as tokio's does.
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task;
///
/// let handle = task::spawn(async { task::id() });
/// let id = handle.id();
/// assert_eq!(handle.await.unwrap(), id);
/// # });
/// ```
#[track_caller]
pub fn id() -> Id {
    try_id().expect("Can't get a task id when not inside a task")
}

/// The id of the task running this code, or `None` outside a task, like
/// `tokio::task::try_id`.
///
/// # Examples
///
/// ```
/// use unirun::compat::tokio::task;
///
/// assert!(task::try_id().is_none());
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// assert!(task::spawn_blocking(task::try_id).await.unwrap().is_some());
/// # });
/// ```
pub fn try_id() -> Option<Id> {
    controlled::current_id()
        .map(Id::unirun)
        .or_else(|| tokio::task::try_id().map(Id::tokio))
}

/// A managed async task "here": on the unirun executor the caller runs
/// in, else on the current tokio runtime.
#[track_caller]
fn managed_spawn_here<F>(future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match crate::Handle::try_current() {
        Some(here) => {
            let (future, control) = controlled::controlled(future);
            let handle = here.spawn(future);
            Task { handle, control }
        }
        // `current()` panics outside a runtime with tokio's own message.
        None => managed_spawn(&tokio::runtime::Handle::current(), future),
    }
}

/// A managed async task on `runtime`.
fn managed_spawn<F>(runtime: &tokio::runtime::Handle, future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (future, control) = controlled::controlled(future);
    let handle = unirun_tokio::spawn_on(runtime, future);
    Task { handle, control }
}

/// A managed blocking closure: on tokio's blocking pool while the
/// runtime's clock is paused (tokio does not auto-advance a paused clock
/// past its own blocking tasks); else inside a scope, on the scope's
/// blocking lane (its shutdown waits for it); else on unirun's lane. Each
/// runs inside `runtime`'s context. On the shared lane, the runtime's drop
/// (or `shutdown_timeout`) waits for it as for a blocking closure of its
/// own (see `hold`).
fn managed_spawn_blocking<F, R>(runtime: &tokio::runtime::Handle, f: F) -> Task<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (f, control) = controlled::controlled_blocking(f);
    // Only a current-thread runtime's clock can be paused (tokio's `pause`
    // and `start_paused` refuse the others): elsewhere no clock is read.
    let paused =
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread && clock_paused();
    let handle = if paused {
        crate::JoinHandle::from_foreign(TokioJoin(runtime.spawn_blocking(f)))
    } else if let Some(scope) = crate::scope::current() {
        // Called "here" in a scope (its task, blocking closure or
        // `block_on`): one of the scope's blocking closures (outside its
        // gil, as every compat thread), so its shutdown waits for it, as
        // for `spawn` above.
        let runtime = runtime.clone();
        scope.spawn_independent(move || {
            let _context = runtime.enter();
            f()
        })
    } else if crate::io::entered_by_unirun() {
        // unirun's own reactor (on a unirun worker): no program drops it.
        let runtime = runtime.clone();
        crate::get_executor().spawn_independent(move || {
            let _context = runtime.enter();
            f()
        })
    } else {
        // The runtime's drop waits for the closure, as tokio's own would.
        let (hold, armed) = hold::hold(runtime);
        let runtime = runtime.clone();
        let handle = crate::to_thread(move || {
            let _hold = hold;
            let _context = runtime.enter();
            f()
        });
        armed.arm();
        handle
    };
    Task { handle, control }
}

/// Whether tokio's clock is paused here. tokio offers no query, so this
/// watches it: a running clock follows the system's monotonic clock (with
/// or without tokio's `test-util`), so once that has ticked, a reading that
/// did not move means paused. A paused clock that another thread advances
/// during the two readings counts as running (the closure then goes to
/// unirun's lane); a running clock never counts as paused.
pub(crate) fn clock_paused() -> bool {
    let before = tokio::time::Instant::now();
    let real = std::time::Instant::now();
    while std::time::Instant::now() == real {
        std::hint::spin_loop();
    }
    tokio::time::Instant::now() == before
}

/// A tokio join handle of a controlled task, seen through unirun's.
struct TokioJoin<T>(tokio::task::JoinHandle<Outcome<T>>);

impl<T: Send + 'static> unirun_core::ForeignJoin<Outcome<T>> for TokioJoin<T> {
    fn poll_join(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Outcome<T>, UnirunJoinError>> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|outcome| match outcome {
                Ok(outcome) => Ok(outcome),
                Err(err) if err.is_panic() => {
                    Err(UnirunJoinError::panicked(err.into_panic(), None))
                }
                Err(_) => Err(UnirunJoinError::cancelled()),
            })
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    fn abort(&mut self) {
        self.0.abort();
    }
}
