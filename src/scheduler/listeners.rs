//! The decision listeners and the last decision: process-wide state that
//! [`reset`](crate::reset) clears entirely.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use unirun_platform::fork_guard::{ForkMutex, ForkMutexGuard};

use crate::trace::DecisionTrace;

type Listener = Arc<dyn Fn(&DecisionTrace) + Send + Sync>;

/// Identifies a listener added with [`add_decision_listener`], for
/// [`remove_decision_listener`].
///
/// # Examples
///
/// ```
/// let id = unirun::add_decision_listener(|_| {});
/// assert!(unirun::remove_decision_listener(id));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

// Fork-guarded (see `unirun_platform::fork_guard`): a forked child that
// builds a scope publishes a decision.
static LISTENERS: ForkMutex<Vec<(ListenerId, Listener)>> = ForkMutex::new(Vec::new());
static NEXT_LISTENER: AtomicU64 = AtomicU64::new(1);
static LAST: ForkMutex<Option<DecisionTrace>> = ForkMutex::new(None);

/// Calls `listener` with every scheduling decision from now on: each
/// [`Run`](crate::Run) built and each time the shared default executor is
/// (re)created.
///
/// Listeners run synchronously on the thread that decided, before the scope
/// starts. A listener that panics is isolated: the panic is caught, the
/// other listeners still run and the decision stands.
///
/// The listener stays until [`remove_decision_listener`] or
/// [`reset`](crate::reset), which removes every listener with the rest of
/// unirun's global state. To hear one scope's decision regardless of what
/// other threads reset, give it to that scope instead:
/// [`RunBuilder::on_decision`](crate::RunBuilder::on_decision).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// let id = unirun::add_decision_listener(move |trace| {
///     sink.lock().unwrap().push(trace.resolved());
/// });
/// let run = unirun::Run::new(unirun::Flavor::Threads)?;
/// unirun::remove_decision_listener(id);
/// assert!(seen.lock().unwrap().contains(&unirun::Flavor::Threads));
/// # drop(run);
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn add_decision_listener(
    listener: impl Fn(&DecisionTrace) + Send + Sync + 'static,
) -> ListenerId {
    let id = ListenerId(NEXT_LISTENER.fetch_add(1, Ordering::Relaxed));
    listeners().push((id, Arc::new(listener)));
    id
}

/// Removes a listener; returns whether it was there (`false` once removed,
/// also by [`reset`](crate::reset)).
///
/// # Examples
///
/// ```
/// let id = unirun::add_decision_listener(|trace| println!("{trace}"));
/// assert!(unirun::remove_decision_listener(id));
/// assert!(!unirun::remove_decision_listener(id));
/// ```
pub fn remove_decision_listener(id: ListenerId) -> bool {
    let mut listeners = listeners();
    let before = listeners.len();
    listeners.retain(|(other, _)| *other != id);
    listeners.len() != before
}

/// The most recent scheduling decision in this process, if any since start
/// or the last [`reset`](crate::reset).
///
/// # Examples
///
/// ```
/// let run = unirun::Run::new(unirun::Flavor::Threads)?;
/// let last = unirun::last_decision().expect("a decision was made");
/// // Other threads may have decided since; this one is at least a trace.
/// assert!(!last.reasons().is_empty());
/// # drop(run);
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn last_decision() -> Option<DecisionTrace> {
    LAST.lock().clone()
}

/// Logs every scheduling decision to stderr, one line each, while the
/// returned guard lives (and no [`reset`](crate::reset) removed it).
///
/// # Examples
///
/// ```
/// let _logging = unirun::observe_decisions();
/// let run = unirun::Run::new(unirun::Flavor::Threads)?; // prints "unirun: threads ..."
/// # drop(run);
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn observe_decisions() -> ObserveDecisions {
    ObserveDecisions {
        id: add_decision_listener(|trace| eprintln!("{trace}")),
    }
}

/// Guard returned by [`observe_decisions`]: logging stops when it drops.
///
/// # Examples
///
/// ```
/// let guard = unirun::observe_decisions();
/// drop(guard); // stops logging
/// ```
#[derive(Debug)]
#[must_use = "decisions are logged only while the guard lives"]
pub struct ObserveDecisions {
    id: ListenerId,
}

impl Drop for ObserveDecisions {
    fn drop(&mut self) {
        remove_decision_listener(self.id);
    }
}

fn listeners() -> ForkMutexGuard<'static, Vec<(ListenerId, Listener)>> {
    LISTENERS.lock()
}

/// Records `trace` as the last decision and tells the scope's own listener
/// and every global one. Call with no unirun lock held: listeners may call
/// back into unirun.
pub(crate) fn publish(trace: &DecisionTrace, own: Option<&Listener>) {
    *LAST.lock() = Some(trace.clone());
    crate::observe::decision(trace);
    let global: Vec<Listener> = listeners().iter().map(|(_, l)| l.clone()).collect();
    for listener in own.into_iter().chain(global.iter()) {
        // Isolated: the panic message still prints through the panic hook.
        let _ = catch_unwind(AssertUnwindSafe(|| listener(trace)));
    }
}

/// Forgets the last decision and removes every listener, for
/// [`reset`](crate::reset). The listeners are dropped after the lock is
/// released: a listener's destructor may call back into unirun.
pub(crate) fn reset() {
    *LAST.lock() = None;
    let removed = std::mem::take(&mut *listeners());
    drop(removed);
}
