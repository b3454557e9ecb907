//! [`TaskSet`]: the live tasks of an executor or scope, so shutdown can wait
//! for them or cancel them.
//!
//! The set itself (counting, closing, recording waiting members' wakers) is
//! here; the rest by concern:
//! - `chunk`: the page-aligned memory of the waker slots, and [`SlotRef`],
//!   a slot's address that leads back to its set;
//! - `slots`: the slab over those chunks, with its free list;
//! - `empty`: waiting for the set to empty ([`WaitEmpty`]);
//! - `owner`: the type-erased owner that members keep alive instead of the
//!   set ([`TaskSet::owned_by`]);
//! - `tracked`: membership for work that is not a task ([`Tracked`]).

mod chunk;
mod empty;
mod owner;
mod slots;
mod tracked;

use alloc::sync::Weak;
use alloc::vec::Vec;
use core::fmt;
use core::task::Waker;

use crate::cache_padded::CachePadded;
use crate::sync::{AtomicBool, AtomicUsize, Ordering, SpinLock};

use self::chunk::{Region, MAX_REGION};
use self::empty::EmptyList;
use self::slots::{Grow, Slots, BATCH};

pub(crate) use self::chunk::SlotRef;
pub use self::empty::WaitEmpty;
pub(crate) use self::owner::Owner;
pub use self::tracked::Tracked;

/// Counts the live tasks spawned into it and remembers the wakers of those
/// that are waiting, so that an owner can [wait](Self::wait_empty) for all of
/// them to finish or [close](Self::close) the set to cancel them.
///
/// Membership costs a task one word and two counter updates (joining and
/// leaving) until it first returns `Pending`; then its waker is recorded
/// (and kept current: a member polled by changing wakers records the
/// latest). A closed set cancels each member at its next poll
/// (it resolves to `Err(cancelled)` without polling the future again), and
/// closing wakes every waiting member so that poll comes promptly. Tasks
/// spawned into a closed set are cancelled before they start.
///
/// The recorded waker keeps its task alive: a member that waits for
/// something that can no longer happen (nothing else holds its waker)
/// stays live until the set is closed, so [`wait_empty`](Self::wait_empty)
/// alone does not end for it. Owners that wait gracefully should bound the
/// wait and then close. (A set cannot tell such a member from one whose
/// waker a reactor holds; and the task allocator unirun uses frees a
/// pending task without running its destructor once no reference to it
/// remains, which would leave the member counted forever, so the set must
/// hold one.)
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{TaskSet, TickExecutor};
///
/// let ex = TickExecutor::new();
/// let set = Arc::new(TaskSet::new());
/// let handle = ex.spawn_in(&set, std::future::pending::<()>());
/// ex.run_until_stalled();
/// assert_eq!(set.len(), 1);
/// set.close();
/// ex.run_until_stalled();
/// assert_eq!(set.len(), 0);
/// assert!(unirun_core::block_on(handle).unwrap_err().is_cancelled());
/// ```
pub struct TaskSet {
    /// Bumped on every spawn and completion: kept off the line that every
    /// poll reads (`closed`), so polls do not miss the cache on it.
    live: CachePadded<AtomicUsize>,
    closed: CachePadded<AtomicBool>,
    /// Wakers of members that returned `Pending`, by slot.
    waiting: SpinLock<Slots>,
    /// Wakers to call when `live` drops to zero.
    on_empty: SpinLock<EmptyList>,
    /// The members the close ended unfinished (see
    /// [`unfinished_since_close`](Self::unfinished_since_close)). Written
    /// only after the close, by members leaving cancelled: no other path
    /// touches it.
    closed_out: ClosedOut,
    /// What happened to the members (see [`crate::stats`]).
    pub(crate) stats: crate::stats::TaskStats,
    /// What holds this set, if [`owned_by`](Self::owned_by) said: members
    /// then keep the owner alive instead of the set (see
    /// [`Member`](crate::member::Member)).
    pub(crate) owner: Option<Owner>,
}

impl TaskSet {
    /// Creates an empty, open set.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = unirun_core::TaskSet::new();
    /// assert!(set.is_empty());
    /// assert!(!set.is_closed());
    /// ```
    pub fn new() -> Self {
        Self::with_stats(crate::stats::TaskStats::new(0, 0))
    }

    pub(crate) fn with_stats(stats: crate::stats::TaskStats) -> Self {
        Self {
            live: CachePadded(AtomicUsize::new(0)),
            closed: CachePadded(AtomicBool::new(false)),
            waiting: SpinLock::new(Slots::new()),
            on_empty: SpinLock::new(EmptyList::new()),
            closed_out: ClosedOut {
                began: AtomicUsize::new(0),
                ended: AtomicUsize::new(0),
            },
            stats,
            owner: None,
        }
    }

    /// Makes `owner` the owner of this set: from now on each member keeps
    /// the owner alive (one reference count per member) instead of the set,
    /// and the code a member runs can reach the owner (unirun's scopes use
    /// it to enter themselves around each poll of their tasks). A member
    /// that joins after the owner is gone keeps the set alive instead.
    ///
    /// # Safety
    ///
    /// The owner holds an `Arc` of this very set for as long as it lives
    /// (so a member that keeps the owner alive keeps the set alive), and
    /// never moves the set out of it (no `Arc::get_mut` or
    /// `Arc::into_inner` on it) while the owner lives: members it keeps
    /// alive hold the set's address.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// struct Scope {
    ///     tasks: Arc<TaskSet>,
    /// }
    ///
    /// let scope = Arc::new_cyclic(|owner| Scope {
    ///     // SAFETY: the scope holds the set for as long as it lives.
    ///     tasks: Arc::new(unsafe { TaskSet::new().owned_by(owner.clone()) }),
    /// });
    /// let ex = TickExecutor::new();
    /// let handle = ex.spawn_in(&scope.tasks, async { 1 });
    /// assert_eq!(Arc::strong_count(&scope), 2); // the member keeps the scope
    /// ex.run_until_stalled();
    /// assert_eq!(Arc::strong_count(&scope), 1);
    /// assert_eq!(handle.join().unwrap(), 1);
    /// ```
    pub unsafe fn owned_by<T: Send + Sync + 'static>(mut self, owner: Weak<T>) -> Self {
        self.owner = Some(Owner::new(owner));
        self
    }

    /// Number of live tasks: spawned and not yet finished or cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// let a = ex.spawn_in(&set, async { 1 });
    /// let b = ex.spawn_in(&set, async { 2 });
    /// assert_eq!(set.len(), 2); // members from the moment they are spawned
    /// ex.run_until_stalled();
    /// assert_eq!(set.len(), 0);
    /// # drop((a, b));
    /// ```
    pub fn len(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Whether no task is live.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// assert!(set.is_empty());
    /// let task = ex.spawn_in(&set, async {});
    /// assert!(!set.is_empty());
    /// ex.run_until_stalled();
    /// assert!(set.is_empty());
    /// # drop(task);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = unirun_core::TaskSet::new();
    /// assert!(!set.is_closed());
    /// set.close();
    /// assert!(set.is_closed());
    /// ```
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Cancels every member at its next poll and wakes those that wait, so
    /// their handles resolve to `Err(cancelled)` as soon as their executor
    /// polls them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// let waiting = ex.spawn_in(&set, std::future::pending::<()>());
    /// ex.run_until_stalled(); // the member is now waiting
    /// set.close();
    /// ex.run_until_stalled(); // closing woke it: its next poll cancels it
    /// assert!(waiting.join().unwrap_err().is_cancelled());
    ///
    /// // Tasks spawned into a closed set never start.
    /// let late = ex.spawn_in(&set, async { unreachable!() });
    /// ex.run_until_stalled();
    /// assert!(late.join().unwrap_err().is_cancelled());
    /// ```
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // Collected in batches on the stack and woken outside the lock: a
        // wake may run a schedule function. A member that registers after
        // the scan passed its slot sees `closed` and wakes itself.
        let mut from = 0;
        loop {
            let mut batch = [const { None }; BATCH];
            let done = self
                .waiting
                .with(|slots| slots.take_batch(&mut from, &mut batch));
            for waker in batch.into_iter().flatten() {
                waker.wake();
            }
            if done {
                break;
            }
        }
    }

    /// After [`close`](Self::close): how many members did not finish. Those
    /// the close ended unfinished (cancelled at their next poll, dropped
    /// unpolled, or a blocking closure that reported it was cancelled) and
    /// those still live, as one snapshot: a member that is leaving at that
    /// moment counts once. A member whose poll was under way when the set
    /// closed and that then finished is not among them. Once the members
    /// have left it is exactly the number the close cancelled; a member
    /// still live counts as not finished.
    ///
    /// Members that left before the close, finished or not, never count;
    /// on a set that was never closed this is [`len`](Self::len).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// let done = ex.spawn_in(&set, async { 1 });
    /// let stuck = ex.spawn_in(&set, std::future::pending::<()>());
    /// ex.run_until_stalled(); // one finished, one waits
    /// set.close();
    /// assert_eq!(set.unfinished_since_close(), 1); // still live
    /// ex.run_until_stalled(); // the close cancels it at its next poll
    /// assert_eq!(set.unfinished_since_close(), 1); // now counted cancelled
    /// assert!(stuck.join().unwrap_err().is_cancelled());
    /// assert_eq!(done.join().unwrap(), 1);
    /// ```
    pub fn unfinished_since_close(&self) -> usize {
        // A member leaving cancelled bumps `began`, leaves `live`, then
        // bumps `ended` (`leave_closed_out`). Read in the other order
        // (`ended`, `live`, `began`, all `SeqCst`), equal counts mean the
        // members that began by the last read had all ended by the first:
        // none was between its two bumps meanwhile, so each such member
        // is in `ended` (it left before `live` was read) or in `live` (it
        // began after), never in both or neither.
        loop {
            let ended = self.closed_out.ended.load(Ordering::SeqCst);
            let live = self.len();
            let began = self.closed_out.began.load(Ordering::SeqCst);
            if began == ended {
                return ended.wrapping_add(live);
            }
            // A member is between its two bumps (a few instructions).
            crate::sync::spin_loop();
        }
    }

    /// A member joins: it counts as live until it [leaves](Self::leave).
    #[inline]
    pub(crate) fn enter(&self) {
        self.live.fetch_add(1, Ordering::SeqCst);
    }

    /// A member leaves: frees its slot (if it waited) and, if it was the
    /// last one, wakes those waiting for the set to empty.
    #[inline]
    pub(crate) fn leave(&self, slot: Option<SlotRef>) {
        if let Some(slot) = slot {
            self.free(slot);
        }
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.emptied();
        }
    }

    /// A member the close ended unfinished leaves (it holds no waker slot
    /// any more): counted in `closed_out` around its leaving `live`, as
    /// [`unfinished_since_close`](Self::unfinished_since_close) reads them,
    /// and only then, if it was the last one, wakes those waiting for the
    /// set to empty (who then see it counted).
    #[cold]
    #[inline(never)]
    pub(crate) fn leave_closed_out(&self) {
        self.closed_out.began.fetch_add(1, Ordering::SeqCst);
        let last = self.live.fetch_sub(1, Ordering::SeqCst) == 1;
        self.closed_out.ended.fetch_add(1, Ordering::SeqCst);
        if last {
            self.emptied();
        }
    }

    /// Frees a leaving member's waker slot (or the slot of a member that
    /// will wait no more).
    #[inline(never)]
    pub(crate) fn free(&self, slot: SlotRef) {
        // Dropped after unlocking: dropping a waker may schedule a task.
        drop(self.waiting.with(|slots| slots.remove(slot.index())));
    }

    /// Records a waiting member's waker; returns its slot.
    pub(crate) fn register(&self, waker: &Waker) -> SlotRef {
        let mut held = Some(waker.clone());
        let mut region = None;
        let mut list = None;
        let slot = loop {
            match self.waiting.with(|slots| {
                slots
                    .insert(self, &mut held, &mut region, &mut list)
                    .map(|slot| slots.slot_ref(slot))
            }) {
                Ok(slot) => break slot,
                // Allocated outside the lock, then retried.
                Err(Grow::Region(len)) => region = Some(Region::new(self, len)),
                Err(Grow::List) => {
                    let len = self.waiting.with(|slots| slots.chunk_count());
                    list = Some(Vec::with_capacity((len * 2).max(4 * MAX_REGION)));
                }
            }
        };
        // Spare allocations (another member grew the slab first) go here.
        drop((region, list));
        // `close` may have scanned past our slot before we registered.
        if self.is_closed() {
            waker.wake_by_ref();
        }
        slot
    }

    /// Keeps `waker` as a waiting member's latest waker, unless its slot
    /// holds one that wakes the same task already.
    pub(crate) fn update(&self, slot: SlotRef, waker: &Waker) {
        let slot = slot.index();
        if self.waiting.with(|slots| slots.holds(slot, waker)) {
            return;
        }
        let mut held = Some(waker.clone());
        // The replaced waker is dropped after unlocking.
        drop(self.waiting.with(|slots| slots.replace(slot, &mut held)));
        if self.is_closed() {
            waker.wake_by_ref();
        }
    }
}

/// The two counts of [`TaskSet::leave_closed_out`]: members that began to
/// leave cancelled since the close, and those that are done leaving.
struct ClosedOut {
    began: AtomicUsize,
    ended: AtomicUsize,
}

impl Default for TaskSet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSet")
            .field("live", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}
