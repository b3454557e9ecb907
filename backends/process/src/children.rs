//! The live children of this process, so a scope's shutdown can kill the
//! ones working for it.
//!
//! Each entry is removed (under the lock) before its child is reaped, so a
//! pid found here still names our child, not a recycled pid.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use unirun_core::TaskSet;
use unirun_platform::fork_guard::{ForkMutex, ForkMutexGuard};
use unirun_platform::process::{self as sys, Pid};

struct Entry {
    pid: Pid,
    /// The task set the call belongs to, by address (0 for none); the call
    /// keeps the set alive, so the address is not reused meanwhile.
    group: usize,
    cancelled: Arc<AtomicBool>,
}

/// Guarded: a forked child that forks again registers its own children.
static CHILDREN: ForkMutex<Vec<Entry>> = ForkMutex::new(Vec::new());

fn children() -> ForkMutexGuard<'static, Vec<Entry>> {
    CHILDREN.lock()
}

pub(crate) fn group_of(tasks: Option<&Arc<TaskSet>>) -> usize {
    tasks.map_or(0, |t| Arc::as_ptr(t) as usize)
}

/// A registered child; unregister before reaping.
pub(crate) struct Registered {
    pid: Pid,
    pub(crate) cancelled: Arc<AtomicBool>,
}

pub(crate) fn register(pid: Pid, tasks: Option<&Arc<TaskSet>>) -> Registered {
    let cancelled = Arc::new(AtomicBool::new(false));
    children().push(Entry {
        pid,
        group: group_of(tasks),
        cancelled: cancelled.clone(),
    });
    // A shutdown that closed the set before we were listed did not see us.
    if tasks.is_some_and(|t| t.is_closed()) {
        cancel(pid, &cancelled);
    }
    Registered { pid, cancelled }
}

impl Registered {
    /// Takes the child off the list; from now on nobody else signals it.
    pub(crate) fn unregister(&self) {
        children().retain(|e| e.pid != self.pid);
    }

    pub(crate) fn was_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

fn cancel(pid: Pid, cancelled: &AtomicBool) {
    cancelled.store(true, Ordering::SeqCst);
    let _ = sys::kill(pid, libc::SIGKILL);
}

/// Kills (`SIGKILL`) every running child started by a call that belongs to
/// `tasks`; their handles resolve to `Err(cancelled)` once the waiting
/// threads have reaped them. Returns how many were killed.
///
/// A scope calls this when it shuts down without waiting; a call started
/// after `tasks` was closed kills its own child as soon as it is forked.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::TaskSet;
///
/// let tasks = Arc::new(TaskSet::new());
/// tasks.close();
/// assert_eq!(unirun_process::cancel_children(&tasks), 0);
/// ```
pub fn cancel_children(tasks: &Arc<TaskSet>) -> usize {
    let group = group_of(Some(tasks));
    let list = children();
    let mut killed = 0;
    for entry in list.iter().filter(|e| e.group == group) {
        cancel(entry.pid, &entry.cancelled);
        killed += 1;
    }
    killed
}

/// How many forked children are running right now (all calls, all scopes).
///
/// # Examples
///
/// ```
/// // Nothing forked yet in this doctest.
/// assert_eq!(unirun_process::running_children(), 0);
/// ```
pub fn running_children() -> usize {
    children().len()
}
