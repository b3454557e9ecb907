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
//!   puts its key in a thread-local ([`with_key`], around
//!   [`task::run`](crate::task::run) and [`task::cancel`](crate::task::cancel)). The key
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
//!   task, and the first reuse of the address removes it.
//! - **The table.** [`CAPACITY`] entries, each with its key in an atomic,
//!   and [`SLOTS`] counters, each counting the entries whose key hashes
//!   to it. A spawn or a collection loads its own key's counter without
//!   locking; only if it is not zero does it scan the keys (still without
//!   locking), and it locks only when it finds its own key. So a stale
//!   entry costs the lock once, to the spawn that reuses its address and
//!   removes it, and no other spawn; the few whose key shares its counter
//!   scan the keys. Any [`CAPACITY`] entries are kept, whatever their keys
//!   (two live tasks whose keys hash alike both keep theirs); with all
//!   taken, a new one pushes out the oldest, whose handle resolves as
//!   `cancelled`.
//!
//! A runnable dropped by code other than unirun's (a custom schedule function
//! given to [`spawn_with`](crate::spawn_with)) records nothing: its handle
//! resolves to `cancelled`.

use crate::task::Runnable;
use crate::JoinError;

/// Entries kept: any this many, whatever their keys; beyond, the oldest goes.
#[cfg(not(loom))]
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) const CAPACITY: usize = 64;
/// Loom-sized, so a model fills the table and scans it cheaply.
#[cfg(loom)]
pub(crate) const CAPACITY: usize = 4;

/// Counters that tell a spawn whether any entry's key hashes near its own
/// (a power of two).
#[cfg(not(loom))]
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) const SLOTS: usize = 256;
/// Loom-sized: two slots, so keys share one.
#[cfg(loom)]
pub(crate) const SLOTS: usize = 2;

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

    use super::{Key, CAPACITY, SLOTS};
    use crate::sync::{AtomicU16, AtomicUsize, Mutex, MutexGuard, Ordering};
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

    /// The process-wide table.
    #[cfg(not(loom))]
    static TABLE: Table = Table::new();

    // Loom's atomics are not `const`; its lazy statics are made afresh for
    // every execution of a model.
    #[cfg(loom)]
    loom::lazy_static! {
        static ref TABLE: Table = Table::new();
    }

    /// The panics recorded for tasks dropped unfinished, by key.
    ///
    /// Writes happen under `entries`' lock; `held` and `keys` are also read
    /// without it, by [`take`](Self::take)'s fast path. Every entry is in
    /// `keys` (any index: an entry never moves), and `held[slot(k)]`
    /// counts the entries whose key `k` hashes to that slot, so a key whose
    /// slot counts none has no entry, and one that finds its own key in
    /// `keys` has one: a spawn locks only for its own key's entry, whatever
    /// the other entries are.
    pub(crate) struct Table {
        held: [AtomicU16; SLOTS],
        /// Each entry's key, or 0 for a free entry.
        keys: [AtomicUsize; CAPACITY],
        entries: Mutex<Entries>,
    }

    /// What only the lock holder touches: the panics, by the index of
    /// their key in `Table::keys`, and their ages.
    pub(crate) struct Entries {
        panics: [Option<JoinError>; CAPACITY],
        /// The record count when each entry was recorded: the oldest goes
        /// first when every entry is taken.
        recorded: [u64; CAPACITY],
        records: u64,
    }

    /// The slot of `key`: a multiplicative hash of the address (its low
    /// bits are alignment, its high ones shared by neighbours).
    #[inline(always)]
    pub(crate) fn slot(key: Key) -> usize {
        const SHIFT: u32 = usize::BITS - SLOTS.trailing_zeros();
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> SHIFT) % SLOTS
    }

    impl Table {
        #[cfg(not(loom))]
        pub(crate) const fn new() -> Self {
            Self {
                held: [const { AtomicU16::new(0) }; SLOTS],
                keys: [const { AtomicUsize::new(0) }; CAPACITY],
                entries: Mutex::new(Entries {
                    panics: [const { None }; CAPACITY],
                    recorded: [0; CAPACITY],
                    records: 0,
                }),
            }
        }

        #[cfg(loom)]
        pub(crate) fn new() -> Self {
            Self {
                held: core::array::from_fn(|_| AtomicU16::new(0)),
                keys: core::array::from_fn(|_| AtomicUsize::new(0)),
                entries: Mutex::new(Entries {
                    panics: [const { None }; CAPACITY],
                    recorded: [0; CAPACITY],
                    records: 0,
                }),
            }
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, Entries> {
            // A poisoned table still holds whole entries: nothing in a
            // critical section below can unwind half-way.
            crate::sync::lock(&self.entries)
        }

        /// Where `key`'s entry is in `keys`, if it has one.
        #[inline]
        fn find(&self, key: Key, order: Ordering) -> Option<usize> {
            self.keys.iter().position(|k| k.load(order) == key)
        }

        /// Records `err` for `key`: in `key`'s own entry if it has one (it
        /// cannot: see `forget`; belt and braces), else in a free one,
        /// else in the oldest (whose handle then resolves `cancelled`).
        /// Returns the panic it replaced, to be dropped outside the lock.
        pub(crate) fn record(&self, key: Key, err: JoinError) -> Option<JoinError> {
            let mut entries = self.lock();
            let at = self
                .find(key, Ordering::Relaxed)
                .or_else(|| self.find(0, Ordering::Relaxed))
                .unwrap_or_else(|| {
                    (0..CAPACITY)
                        .min_by_key(|&i| entries.recorded[i])
                        .expect("CAPACITY > 0")
                });
            let replaced = entries.panics[at].replace(err);
            entries.records += 1;
            entries.recorded[at] = entries.records;
            let old = self.keys[at].load(Ordering::Relaxed);
            if old != key {
                // The key first, then its slot's count: a reader that
                // counts it finds it (and the lock orders the rest).
                self.keys[at].store(key, Ordering::Release);
                self.held[slot(key)].fetch_add(1, Ordering::Release);
                if old != 0 {
                    self.held[slot(old)].fetch_sub(1, Ordering::Relaxed);
                }
            }
            replaced
        }

        /// Removes and returns `key`'s entry. Lock-free unless `key` has
        /// one: a load of its slot's count (what nearly every spawn pays),
        /// and a scan of `keys` only when some entry's key shares that
        /// slot. A record for this task happened before its handle learnt
        /// it was cancelled (async-task's state orders them), and a stale
        /// one for an earlier task at this address before that task's
        /// allocation was freed; only taking it removes it (or pushing it
        /// out as the oldest), so the loads below see it.
        #[inline]
        pub(crate) fn take(&self, key: Key) -> Option<JoinError> {
            if self.held[slot(key)].load(Ordering::Acquire) == 0 {
                return None;
            }
            self.take_shared(key)
        }

        #[cold]
        #[inline(never)]
        fn take_shared(&self, key: Key) -> Option<JoinError> {
            self.find(key, Ordering::Acquire)?;
            let mut entries = self.lock();
            // Found again under the lock: another thread may have taken it.
            let at = self.find(key, Ordering::Relaxed)?;
            self.keys[at].store(0, Ordering::Relaxed);
            self.held[slot(key)].fetch_sub(1, Ordering::Relaxed);
            entries.panics[at].take()
        }

        /// Whether an entry for `key` is held.
        #[cfg(test)]
        pub(crate) fn holds(&self, key: Key) -> bool {
            self.find(key, Ordering::Acquire).is_some()
        }
    }

    #[inline]
    pub(crate) fn set_current(key: Key) -> Key {
        CURRENT.try_with(|c| c.replace(key)).unwrap_or(0)
    }

    pub(crate) fn record(key: Key, err: JoinError) {
        // Dropped outside the lock: a payload's destructor is user code.
        drop(TABLE.record(key, err));
    }

    #[inline]
    pub(crate) fn take(key: Key) -> Option<JoinError> {
        TABLE.take(key)
    }

    /// The process-wide table's lock.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn lock() -> MutexGuard<'static, Entries> {
        TABLE.lock()
    }

    /// Whether the process-wide table holds an entry for `key`.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn holds(key: Key) -> bool {
        TABLE.holds(key)
    }
}

/// For the loom model of the table.
#[cfg(all(test, loom))]
pub(crate) use imp::{slot, Table};

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

/// Runs `f` with `runnable`'s key current, so a panic of its future's
/// destructor on cancellation is recorded for its handle (see
/// [`task::run`](crate::task::run) and [`task::cancel`](crate::task::cancel)).
#[inline]
pub(crate) fn with_key<R>(runnable: Runnable, f: impl FnOnce(Runnable) -> R) -> R {
    let previous = set_current(key_of(runnable.metadata()));
    let result = f(runnable);
    set_current(previous);
    result
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
    use alloc::vec::Vec;
    use core::future::Future;
    use core::pin::Pin;
    use core::sync::atomic::{AtomicBool, Ordering};
    use core::task::{Context, Poll, Waker};

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
        crate::task::run(runnable);
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
            let _locked = imp::lock();
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

    /// A future that panics when dropped if its flag is set, and never
    /// finishes.
    struct Armed(Arc<AtomicBool>);

    impl Future for Armed {
        type Output = ();

        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    impl Drop for Armed {
        fn drop(&mut self) {
            if self.0.load(Ordering::SeqCst) {
                panic!("an armed destructor");
            }
        }
    }

    /// Two live tasks whose keys hash to the same slot are both cancelled
    /// with a panicking destructor before either handle looks: each handle
    /// resolves to its own task's panic (an entry per slot lost the first).
    /// Tasks are spawned and kept alive (distinct addresses) until two keys
    /// share a slot, which the pigeonhole principle guarantees within
    /// `SLOTS + 1` of them; only those two are armed.
    #[test]
    fn two_live_tasks_whose_keys_share_a_slot_each_get_their_own_destructor_panic() {
        let mut spawned = Vec::new();
        let pair = loop {
            let armed = Arc::new(AtomicBool::new(false));
            let (runnable, handle) = crate::spawn_with(Armed(armed.clone()), None, |r, _| drop(r));
            let key = key_of(runnable.metadata());
            let twin = spawned
                .iter()
                .position(|(_, _, k, _)| imp::slot(*k) == imp::slot(key));
            spawned.push((runnable, handle, key, armed));
            if let Some(twin) = twin {
                break (twin, spawned.len() - 1);
            }
        };
        spawned[pair.0].3.store(true, Ordering::SeqCst);
        spawned[pair.1].3.store(true, Ordering::SeqCst);
        let mut handles = Vec::new();
        for (runnable, handle, key, _) in spawned {
            // Dropped unrun: the two armed futures' panics are recorded.
            crate::task::cancel(runnable);
            handles.push((handle, key));
        }
        for (index, (handle, key)) in handles.into_iter().enumerate() {
            let outcome = crate::block_on(handle).unwrap_err();
            if index == pair.0 || index == pair.1 {
                assert_eq!(
                    outcome.panic_message(),
                    Some("an armed destructor"),
                    "the task with key {key:#x} lost its destructor's panic"
                );
            } else {
                assert!(outcome.is_cancelled());
            }
            assert!(!imp::holds(key), "its entry was left behind");
        }
    }
}
