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
//!   puts its key in a thread-local ([`run`], [`drop_runnable`]). The key
//!   is current only until the task's own code could run foreign code
//!   under it: the task's future (`OwnTask`, in `task`) takes it for its
//!   poll and puts it back only if the poll returned `Pending` (the task
//!   may then be dropped unfinished inside the same `run`); a finished
//!   poll leaves none, so whatever async-task drops next (the future's
//!   shell, an output nobody takes) finds none. A
//!   [`TaskFuture`](crate::TaskFuture)'s destructor takes the key for good
//!   before it does anything: only the task's own, outermost one finds a
//!   key, it records only when dropped unfinished, and the rest of its
//!   work (leaving its set, which drops and wakes wakers, user code) runs
//!   with none, so a future dropped there is never taken for this task's.
//!   A foreign executor's task is never run or dropped inside one of our
//!   runnables without an `OwnTask` poll or drop between them, so it
//!   finds no key and its polls skip the thread-local altogether.
//! - **Who collects.** The handle, when its task resolves to cancelled,
//!   removes its key's entry, if any ([`take`]).
//! - **Stale entries.** A handle dropped before its task was cancelled
//!   never collects. Its task's address can only be reused by a later
//!   task, and every spawn clears its own key ([`forget`]) before the new
//!   task can be cancelled, so a stale panic is never reported for another
//!   task, and the first reuse of the address removes it. Entries live in
//!   [`CAPACITY`] slots chosen by a hash of the key, each with its key in
//!   an atomic: a spawn or a collection looks at its own slot's key
//!   without locking and locks only when that key is its own (a stale
//!   entry costs the lock once, to the spawn that reuses its address and
//!   removes it; no other spawn). Two live entries in one slot: the later
//!   one stays, the earlier one's handle resolves as `cancelled`.
//!
//! A runnable dropped by code other than unirun's (a custom schedule function
//! given to [`spawn_with`](crate::spawn_with)) records nothing: its handle
//! resolves to `cancelled`.

use crate::task::Runnable;
use crate::JoinError;

/// Entries kept at most: one per slot (a power of two).
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

    /// The key each slot holds an entry for, or 0; read without the lock
    /// on every spawn (its own slot only), written under `PANICS`' lock.
    static KEYS: [AtomicUsize; CAPACITY] = [const { AtomicUsize::new(0) }; CAPACITY];
    /// The entries' panics, by slot.
    static PANICS: Mutex<[Option<JoinError>; CAPACITY]> = Mutex::new([const { None }; CAPACITY]);

    /// The slot of `key`: a multiplicative hash of the address (its low
    /// bits are alignment, its high ones shared by neighbours).
    #[inline(always)]
    pub(crate) fn slot(key: Key) -> usize {
        const SHIFT: u32 = usize::BITS - CAPACITY.trailing_zeros();
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> SHIFT) % CAPACITY
    }

    #[inline]
    pub(crate) fn set_current(key: Key) -> Key {
        CURRENT.try_with(|c| c.replace(key)).unwrap_or(0)
    }

    pub(crate) fn panics() -> std::sync::MutexGuard<'static, [Option<JoinError>; CAPACITY]> {
        // A poisoned table still holds whole entries.
        PANICS.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(key: Key, err: JoinError) {
        let at = slot(key);
        let replaced = {
            let mut panics = panics();
            let replaced = panics[at].replace(err);
            KEYS[at].store(key, Ordering::Release);
            replaced
        };
        // Dropped outside the lock: a payload's destructor is user code.
        drop(replaced);
    }

    /// Lock-free unless `key`'s own slot holds an entry for `key`. A record
    /// for this task happened before its handle learnt it was cancelled
    /// (async-task's state orders them), and a stale one for an earlier
    /// task at this address before that task's allocation was freed, so
    /// the load below sees either.
    #[inline]
    pub(crate) fn take(key: Key) -> Option<JoinError> {
        if KEYS[slot(key)].load(Ordering::Acquire) != key {
            return None;
        }
        take_slow(key)
    }

    #[cold]
    #[inline(never)]
    fn take_slow(key: Key) -> Option<JoinError> {
        let at = slot(key);
        let mut panics = panics();
        // Checked again under the lock: another thread may have taken it.
        if KEYS[at].load(Ordering::Relaxed) != key {
            return None;
        }
        KEYS[at].store(0, Ordering::Relaxed);
        panics[at].take()
    }

    /// Whether an entry for `key` is held.
    #[cfg(test)]
    pub(crate) fn holds(key: Key) -> bool {
        KEYS[slot(key)].load(Ordering::Acquire) == key
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

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Waker};

    use super::{imp, key_of, Key};
    use crate::{JoinError, TaskFuture, TaskSet};

    struct PanicOnDrop;

    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("a nested member's destructor");
        }
    }

    /// A foreign executor's kind of member, polled once (so it is live and
    /// its destructor panics when dropped).
    fn live_member(set: &Arc<TaskSet>) -> Pin<Box<TaskFuture<impl Future<Output = ()>>>> {
        let mut member = Box::pin(TaskFuture::for_task(
            async {
                let _guard = PanicOnDrop;
                core::future::pending::<()>().await;
            },
            Some(set),
        ));
        let poll = member
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        assert!(poll.is_pending());
        member
    }

    /// A task whose handle is gone returns a live member as its output;
    /// async-task drops that output where the task finishes, inside
    /// `run`: the member's panic is not recorded for the task (nobody
    /// would collect it: it would be a stale entry).
    #[test]
    fn an_output_dropped_where_its_task_finished_records_nothing_for_the_task() {
        let nested = Arc::new(TaskSet::new());
        let member = live_member(&nested);
        // Returned, not awaited: the output is the live member itself.
        #[allow(clippy::async_yields_async)]
        let output = async move { member };
        let (runnable, handle) = crate::spawn_with(output, None, |r, _| drop(r));
        let key = key_of(runnable.metadata());
        drop(handle);
        super::run(runnable);
        assert!(
            !imp::holds(key),
            "a stale entry was left for the finished task"
        );
        assert_eq!(nested.counts().cancelled(), 1);
    }

    /// A stale entry is removed by the next spawn at its address, and no
    /// other key's spawn or collection takes the table's lock for it: with
    /// the lock held here, another thread's `forget` of a different key in
    /// the same slot still returns (it would wait for the lock otherwise).
    #[test]
    fn a_stale_entry_costs_other_keys_no_lock_and_is_removed_by_its_addresss_next_spawn() {
        // Keys that no live task has (odd: metadata addresses are aligned).
        let stale: Key = 0x7000_0001;
        let other = (3..)
            .step_by(2)
            .map(|k: Key| 0x7100_0000 + k)
            .find(|&k| imp::slot(k) == imp::slot(stale))
            .expect("a key in the same slot");
        super::record(stale, JoinError::cancelled());
        assert!(imp::holds(stale));
        {
            let _locked = imp::panics();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                super::forget(other);
                tx.send(()).unwrap();
            });
            // A generous limit turns a wait for the lock into a failure.
            rx.recv_timeout(std::time::Duration::from_secs(60))
                .expect("forget of another key waited for the lock");
        }
        assert!(imp::holds(stale), "another key's spawn kept the entry");
        super::forget(stale); // the next spawn at this address
        assert!(!imp::holds(stale));
        assert!(super::take(stale).is_none());
    }
}
