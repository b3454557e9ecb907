//! The per-worker deque of join halves: a fixed-size Chase-Lev deque of
//! [`JobRef`]s. The owner pushes and pops at the bottom (newest first), thieves
//! take from the top (oldest first, the biggest halves of a recursion).
//!
//! `top` counts the entries ever taken from the top, `bottom` the position
//! after the newest entry; `bottom - top` entries are queued. Both only grow,
//! except that the owner's pop moves `bottom` down by one and back up when it
//! lost the last entry to a thief. The owner and a thief race only for the
//! last entry, and the `top` CAS settles it: the owner lowers `bottom`, fences,
//! then reads `top`; a thief reads `top`, fences, then reads `bottom`. Of the
//! two `SeqCst` fences one comes first, so either the thief sees the lowered
//! `bottom` (and backs off) or the owner sees the thief's `top` and both CAS
//! it; one wins. Slots are atomic pointers: a thief may read a slot the owner
//! is rewriting after a wrap-around, but then `top` moved and its CAS fails,
//! so a stale pointer is never used.
//!
//! The deque does not grow: a push onto a full deque is refused, and the
//! caller runs that half itself (a recursion 256 joins deep on one worker
//! has all the parallelism it can use in the entries it already shows).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::{self, NonNull};

use super::job::{Header, JobRef};
use crate::sync::{fence, Arc, AtomicPtr, AtomicUsize, Ordering};

/// Entries per deque (loom gets a tiny one, to cross the wrap-around).
#[cfg(not(loom))]
pub(crate) const CAPACITY: usize = 256;
#[cfg(loom)]
pub(crate) const CAPACITY: usize = 2;

const MASK: usize = CAPACITY - 1;

struct Inner {
    /// Entries taken from the top so far (thieves, and the owner's pop of the
    /// last entry). Only grows, by CAS.
    top: AtomicUsize,
    /// One past the newest entry. Only the owner stores it.
    bottom: AtomicUsize,
    /// Entry `i` is in `slots[i % CAPACITY]` while `top <= i < bottom`.
    slots: Box<[AtomicPtr<Header>]>,
}

/// The owner's end: push and pop at the bottom. `Send`, not `Sync`: it moves
/// with its worker's core.
pub(crate) struct JobDeque {
    inner: Arc<Inner>,
    _not_sync: core::marker::PhantomData<core::cell::Cell<()>>,
}

/// A thief's end: takes the oldest entry.
#[derive(Clone)]
pub(crate) struct JobStealer {
    inner: Arc<Inner>,
}

/// A new empty deque and its stealer.
pub(crate) fn deque() -> (JobDeque, JobStealer) {
    let slots = (0..CAPACITY)
        .map(|_| AtomicPtr::new(ptr::null_mut()))
        .collect::<Vec<_>>()
        .into_boxed_slice();
    let inner = Arc::new(Inner {
        top: AtomicUsize::new(0),
        bottom: AtomicUsize::new(0),
        slots,
    });
    (
        JobDeque {
            inner: inner.clone(),
            _not_sync: core::marker::PhantomData,
        },
        JobStealer { inner },
    )
}

impl JobDeque {
    /// Queues `job` at the bottom; gives it back when the deque is full.
    #[inline]
    pub(crate) fn push(&self, job: JobRef) -> Result<(), JobRef> {
        let inner = &*self.inner;
        let bottom = inner.bottom.load(Ordering::Relaxed);
        let top = inner.top.load(Ordering::Acquire);
        if bottom.wrapping_sub(top) >= CAPACITY {
            return Err(job);
        }
        inner.slots[bottom & MASK].store(job.as_ptr(), Ordering::Relaxed);
        // Publishes the slot to a thief that reads this `bottom`.
        inner
            .bottom
            .store(bottom.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Takes the newest entry, unless a thief took it first.
    #[inline]
    pub(crate) fn pop(&self) -> Option<JobRef> {
        let inner = &*self.inner;
        let bottom = inner.bottom.load(Ordering::Relaxed).wrapping_sub(1);
        inner.bottom.store(bottom, Ordering::Release);
        fence(Ordering::SeqCst);
        let top = inner.top.load(Ordering::Relaxed);
        let len = bottom.wrapping_sub(top) as isize;
        if len < 0 {
            // Empty: put `bottom` back where it was.
            inner
                .bottom
                .store(bottom.wrapping_add(1), Ordering::Release);
            return None;
        }
        let job = inner.slots[bottom & MASK].load(Ordering::Relaxed);
        if len > 0 {
            // More than one entry: no thief can reach this one.
            return JobRef::from_ptr(job);
        }
        // The last entry: a thief may be taking it too; `top` decides.
        let won = inner
            .top
            .compare_exchange(
                top,
                top.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok();
        inner
            .bottom
            .store(bottom.wrapping_add(1), Ordering::Release);
        if won {
            JobRef::from_ptr(job)
        } else {
            None
        }
    }
}

impl JobStealer {
    /// Takes the oldest entry; `None` when the deque is empty or another
    /// thread took that entry at the same time.
    pub(crate) fn steal(&self) -> Option<JobRef> {
        let inner = &*self.inner;
        let top = inner.top.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let bottom = inner.bottom.load(Ordering::Acquire);
        if (bottom.wrapping_sub(top) as isize) <= 0 {
            return None;
        }
        let job = inner.slots[top & MASK].load(Ordering::Relaxed);
        inner
            .top
            .compare_exchange(
                top,
                top.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .ok()?;
        JobRef::from_ptr(job)
    }

    /// Whether anything is queued (a snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        let top = self.inner.top.load(Ordering::Acquire);
        let bottom = self.inner.bottom.load(Ordering::Acquire);
        (bottom.wrapping_sub(top) as isize) <= 0
    }
}

impl JobRef {
    fn from_ptr(ptr: *mut Header) -> Option<JobRef> {
        NonNull::new(ptr).map(JobRef::from_non_null)
    }
}
