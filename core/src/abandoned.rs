//! What a cancelled task's destructor said: a panic raised while a task's
//! future is dropped unfinished (after [`JoinHandle::abort`](crate::JoinHandle::abort),
//! or with its runnable dropped unrun) reaches the task's handle, which then
//! resolves to that panic instead of `cancelled`, as in tokio.
//!
//! The task's allocation has no room for it (the future is being dropped,
//! and the output slot is written only when a task completes), and a field
//! per task would cost every task memory for a rare event. So the panic goes
//! to a small process-wide table, keyed by the task's *identity*: the address
//! of its metadata, which both the [`Runnable`] and the handle's task expose
//! and which is unique among live tasks (it lies inside the task's
//! allocation).
//!
//! - **Who records.** The thread about to run or drop one of our runnables
//!   puts its key in a thread-local ([`run`], [`drop_runnable`]); the
//!   task's own future (`OwnTask`, in `task`) clears it for the duration of
//!   its poll (so a future dropped *inside* a poll is not taken for the
//!   task's own), and a [`TaskFuture`](crate::TaskFuture)'s destructor takes
//!   it: only the task's own, outermost one finds a key, and it records
//!   only when dropped unfinished. A foreign executor's task is never run
//!   or dropped inside one of our runnables without an `OwnTask` poll or
//!   drop between them, so it finds no key and its polls skip the
//!   thread-local altogether.
//! - **Who collects.** The handle, when its task resolves to cancelled,
//!   removes its key's entry, if any ([`take`]).
//! - **Stale entries.** A handle dropped first never collects. Its task's
//!   address can only be reused by a later task, and every spawn clears its
//!   own key ([`forget`]) before the new task can be cancelled, so a stale
//!   panic is never reported for another task. At most [`CAPACITY`] entries
//!   are kept (the oldest goes first); one pushed out resolves as
//!   `cancelled`.
//!
//! A runnable dropped by code other than unirun's (a custom schedule function
//! given to [`spawn_with`](crate::spawn_with)) records nothing: its handle
//! resolves to `cancelled`.

use crate::task::Runnable;
use crate::JoinError;

/// Entries kept at most.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) const CAPACITY: usize = 64;

/// A task's identity: its metadata's address (see the module docs).
pub(crate) type Key = usize;

/// The key of `metadata`, the `()` every one of our tasks carries.
#[inline]
pub(crate) fn key_of(metadata: &()) -> Key {
    metadata as *const () as Key
}

#[cfg(feature = "std")]
mod imp {
    use alloc::collections::VecDeque;
    use core::cell::Cell;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::{Key, CAPACITY};
    use crate::JoinError;

    #[cfg(not(loom))]
    std::thread_local! {
        /// The key of the task this thread runs or drops right now, or 0.
        static CURRENT: Cell<Key> = const { Cell::new(0) };
    }

    // Loom runs its threads on one OS thread: its own thread-locals keep
    // them apart.
    #[cfg(loom)]
    loom::thread_local! {
        static CURRENT: Cell<Key> = Cell::new(0);
    }

    /// Entries in `TABLE`, read without the lock on every spawn.
    static LEN: AtomicUsize = AtomicUsize::new(0);
    static TABLE: Mutex<VecDeque<(Key, JoinError)>> = Mutex::new(VecDeque::new());

    #[inline]
    pub(crate) fn set_current(key: Key) -> Key {
        CURRENT.try_with(|c| c.replace(key)).unwrap_or(0)
    }

    fn table() -> std::sync::MutexGuard<'static, VecDeque<(Key, JoinError)>> {
        // A poisoned table still holds whole entries.
        TABLE.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(key: Key, err: JoinError) {
        let pushed_out = {
            let mut table = table();
            let old = table.len() >= CAPACITY;
            let pushed_out = if old { table.pop_front() } else { None };
            table.push_back((key, err));
            LEN.store(table.len(), Ordering::Release);
            pushed_out
        };
        // Dropped outside the lock: a payload's destructor is user code.
        drop(pushed_out);
    }

    #[inline]
    pub(crate) fn take(key: Key) -> Option<JoinError> {
        if LEN.load(Ordering::Acquire) == 0 {
            return None;
        }
        take_slow(key)
    }

    #[cold]
    fn take_slow(key: Key) -> Option<JoinError> {
        let mut table = table();
        let at = table.iter().position(|(k, _)| *k == key)?;
        let (_, err) = table.remove(at)?;
        LEN.store(table.len(), Ordering::Release);
        Some(err)
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    use super::Key;
    use crate::JoinError;

    #[inline]
    pub(crate) fn set_current(_key: Key) -> Key {
        0
    }

    pub(crate) fn record(_key: Key, _err: JoinError) {}

    #[inline]
    pub(crate) fn take(_key: Key) -> Option<JoinError> {
        None
    }
}

/// Replaces the calling thread's current task key; returns the previous one.
#[inline]
pub(crate) fn set_current(key: Key) -> Key {
    imp::set_current(key)
}

/// Runs `runnable` with its key current, so a panic of its future's
/// destructor on cancellation is recorded for its handle.
#[inline]
pub(crate) fn run(runnable: Runnable) -> bool {
    let previous = set_current(key_of(runnable.metadata()));
    let rescheduled = runnable.run();
    set_current(previous);
    rescheduled
}

/// Drops `runnable` unrun (cancelling its task), recording a panic of its
/// future's destructor for its handle.
pub(crate) fn drop_runnable(runnable: Runnable) {
    let previous = set_current(key_of(runnable.metadata()));
    drop(runnable);
    set_current(previous);
}

/// Records `err`, raised while the task `key` was dropped unfinished.
pub(crate) fn record(key: Key, err: JoinError) {
    if key != 0 {
        imp::record(key, err);
    }
}

/// The panic recorded for the task `key`, removed from the table.
#[inline]
pub(crate) fn take(key: Key) -> Option<JoinError> {
    imp::take(key)
}

/// Clears a stale entry for `key`, left by an earlier task at the same
/// address whose handle was gone; called for every new task.
#[inline]
pub(crate) fn forget(key: Key) {
    drop(imp::take(key));
}
