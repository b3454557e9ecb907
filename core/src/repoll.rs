//! The in-place re-poll budget of a worker's turn, and the waker that lets a
//! task's own poll see that it woke itself.
//!
//! See [the fairness bound](crate::worker#self-wakes-and-the-fairness-bound):
//! in one turn a worker polls tasks that woke themselves again in place at
//! most [`MAX_SELF_REPOLLS`](crate::MAX_SELF_REPOLLS) times. The budget lives
//! in a thread-local cell, because two places spend it on the same thread:
//!
//! - the worker's [`schedule_local`](crate::worker), when a task's yield
//!   reaches the scheduler (the task then waits in the core's `yielded` slot
//!   and runs right after its poll returned);
//! - the poll of a task the worker runs from that slot (it is *armed*):
//!   such a task is known to wake itself, so its future polls the user's
//!   future with [`InPlace`]'s waker and, when that future woke the waker,
//!   polls it again at once, without going through the task's state
//!   machine and the scheduler.
//!
//! The armed flag is taken by the task's own future (`OwnTask`, in `task`),
//! the first one polled after the worker set it, so nothing nested inside
//! a task's future loops. A foreign executor's `TaskFuture` never reads it.
//!
//! # Why the waker is sound
//!
//! Only a borrowed `&Waker` with [`InPlace`]'s vtable ever exists: it lives
//! in the frame of one poll and borrows an `InPlace` on that frame. Cloning
//! it returns a clone of the task's real waker, so every waker that outlives
//! the poll is the task's own; waking the borrowed one sets a flag the poll
//! reads once the inner future returned (a thread that got the `&Waker`
//! through a scoped thread is joined before that). The price: during an
//! in-place re-poll, `will_wake` between a stored waker and the one in the
//! context is false, so a future that keeps a waker re-clones it. That costs
//! a clone per in-place re-poll, within the budget.

use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{RawWaker, RawWakerVTable, Waker};

/// The armed flag in [`STATE`]; the low bits are the budget.
#[cfg(feature = "std")]
const ARMED: u32 = 1 << 31;

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    /// `ARMED` | the in-place re-polls left in this thread's current turn.
    static STATE: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

#[cfg(all(feature = "std", loom))]
loom::thread_local! {
    static STATE: core::cell::Cell<u32> = core::cell::Cell::new(0);
}

/// A worker starts a turn: a fresh budget, nothing armed.
#[cfg(feature = "std")]
#[inline]
pub(crate) fn start_turn(budget: u32) {
    let _ = STATE.try_with(|s| s.set(budget & !ARMED));
}

/// Spends one re-poll of the current turn; `false` once it is spent.
#[cfg(feature = "std")]
#[inline]
pub(crate) fn charge() -> bool {
    STATE
        .try_with(|s| {
            let state = s.get();
            if state & !ARMED == 0 {
                return false;
            }
            s.set(state - 1);
            true
        })
        .unwrap_or(false)
}

/// The worker is about to run a task that woke itself: its `TaskFuture` may
/// loop in place.
#[cfg(feature = "std")]
#[inline]
pub(crate) fn arm() {
    let _ = STATE.try_with(|s| s.set(s.get() | ARMED));
}

/// Clears the armed flag; returns whether it was set.
#[cfg(feature = "std")]
#[inline]
pub(crate) fn take_armed() -> bool {
    STATE
        .try_with(|s| {
            let state = s.get();
            s.set(state & !ARMED);
            state & ARMED != 0
        })
        .unwrap_or(false)
}

#[cfg(not(feature = "std"))]
#[inline]
pub(crate) fn start_turn(_budget: u32) {}

/// Without thread-locals there is no budget: every yield queues.
#[cfg(not(feature = "std"))]
#[inline]
pub(crate) fn charge() -> bool {
    false
}

#[cfg(not(feature = "std"))]
#[inline]
pub(crate) fn arm() {}

#[cfg(not(feature = "std"))]
#[inline]
pub(crate) fn take_armed() -> bool {
    false
}

/// One in-place poll's waker: records a wake-up, hands out the real waker
/// to whoever keeps one.
pub(crate) struct InPlace<'a> {
    woke: AtomicBool,
    real: &'a Waker,
}

impl<'a> InPlace<'a> {
    pub(crate) fn new(real: &'a Waker) -> Self {
        Self {
            woke: AtomicBool::new(false),
            real,
        }
    }

    /// Whether the waker was woken since the last call; resets it.
    #[inline]
    pub(crate) fn take_woken(&self) -> bool {
        // Read after the poll returned, on the polling thread: any thread
        // that woke it through the borrowed `&Waker` was joined before that.
        // Only this thread resets it, so a load and a store (no RMW) do.
        let woke = self.woke.load(Ordering::Relaxed);
        if woke {
            self.woke.store(false, Ordering::Relaxed);
        }
        woke
    }

    /// Calls `f` with a waker that sets this flag when woken by reference.
    #[inline]
    pub(crate) fn with_waker<R>(&self, f: impl FnOnce(&Waker) -> R) -> R {
        let raw = RawWaker::new((self as *const Self).cast(), &VTABLE);
        // The waker is only lent to `f` (`ManuallyDrop`: never dropped or
        // moved out), and `self` outlives the call.
        // SAFETY: `VTABLE`'s functions uphold the `RawWaker` contract for a
        // data pointer to a live `InPlace` (see below).
        let waker = core::mem::ManuallyDrop::new(unsafe { Waker::from_raw(raw) });
        f(&waker)
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// Clones the task's real waker: nothing with our vtable outlives the poll.
unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` came from `InPlace::with_waker`, whose `InPlace` is live
    // while the borrowed waker is (this function is only reached through it).
    let place = unsafe { &*data.cast::<InPlace<'_>>() };
    let real = core::mem::ManuallyDrop::new(place.real.clone());
    RawWaker::new(real.data(), real.vtable())
}

/// Never reached: no owned waker with this vtable exists. Kept correct anyway.
unsafe fn wake(data: *const ()) {
    // SAFETY: as in `clone`.
    unsafe { wake_by_ref(data) }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: as in `clone`.
    let place = unsafe { &*data.cast::<InPlace<'_>>() };
    place.woke.store(true, Ordering::Relaxed);
}

/// The borrowed waker owns nothing.
unsafe fn drop_waker(_data: *const ()) {}
