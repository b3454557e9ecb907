//! [`Slots`]: the wakers of a set's waiting members, in a slab of chunks
//! with a free list threaded through the vacant slots.

use alloc::vec::Vec;
use core::ptr::NonNull;
use core::task::Waker;

use super::chunk::{Chunk, Region, Slot, SlotRef, CHUNK, MAX_REGION, NONE, TAKEN};
use super::TaskSet;

/// Wakers `close` collects per lock hold (on its stack).
pub(super) const BATCH: usize = 32;

/// A slab of wakers in fixed-size chunks: growing never copies or doubles
/// the wakers, so a set with many waiting tasks wastes at most one chunk.
///
/// The lock around it is a spin lock, so nothing inside a critical section
/// allocates, frees or calls a waker: chunks (and room in the chunk list)
/// are allocated before the lock is taken, free slots form a list threaded
/// through the slots themselves, and wakers are moved in and out of the
/// slots and cloned, woken or dropped by the caller after unlocking.
pub(super) struct Slots {
    /// Carved from [`Region`]s, in order; freed by `Drop`. Raw, so that
    /// members may keep pointers into them (see [`SlotRef`]).
    chunks: Vec<NonNull<Chunk>>,
    /// Slots handed out so far (the high-water mark).
    used: usize,
    /// The set's address that every chunk's header names (null before the
    /// first chunk). A set is moved only while no member holds a slot (see
    /// [`Chunk`]), so [`insert`](Self::insert) compares it with the set's
    /// current address and, after a move, writes the new one into every
    /// header before it hands a slot out.
    stamped: *const TaskSet,
    /// First free slot below `used`, or `NONE`.
    free: usize,
}

// SAFETY: `Chunk`'s raw `set` pointer is only an address read to find the
// set; the slots are reached only under the set's lock.
unsafe impl Send for Slots {}

/// What [`Slots::insert`] needs allocated before it can go on.
pub(super) enum Grow {
    /// A new region of this many chunks.
    Region(usize),
    /// Room for one more chunk in the chunk list.
    List,
}

impl Slots {
    /// No slots and no chunks.
    pub(super) const fn new() -> Slots {
        Slots {
            chunks: Vec::new(),
            used: 0,
            free: NONE,
            stamped: core::ptr::null(),
        }
    }

    /// How many chunks the slab has.
    pub(super) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    fn slot(&mut self, slot: usize) -> &mut Slot {
        // SAFETY: a live slot of ours (the chunk is owned by `self`, and
        // `slot % CHUNK` is in it); `&mut self` (under the set's lock) makes
        // the access exclusive: members only keep its address.
        unsafe { Chunk::slot(self.chunks[slot / CHUNK], slot % CHUNK).as_mut() }
    }

    pub(super) fn slot_ref(&self, slot: usize) -> SlotRef {
        // SAFETY: the chunk is live (owned by `self`) and `slot % CHUNK`
        // is in it.
        unsafe { SlotRef::new(self.chunks[slot / CHUNK], slot % CHUNK) }
    }

    /// Stores `waker` (taking it from the option) in a free slot, using the
    /// spare allocations; says what to allocate when they do not suffice.
    pub(super) fn insert(
        &mut self,
        set: *const TaskSet,
        waker: &mut Option<Waker>,
        region: &mut Option<Region>,
        list: &mut Option<Vec<NonNull<Chunk>>>,
    ) -> Result<usize, Grow> {
        if self.stamped != set {
            // The first slot ever, or the set moved since the headers were
            // written (see `Chunk`).
            self.stamp(set);
        }
        let slot = if self.free != NONE {
            let slot = self.free;
            let Slot::Vacant(next) = *self.slot(slot) else {
                unreachable!("the free list links vacant slots")
            };
            self.free = next;
            slot
        } else {
            if self.used == self.chunks.len() * CHUNK {
                let Some(fresh) = region.as_ref() else {
                    return Err(Grow::Region(self.chunks.len().clamp(1, MAX_REGION)));
                };
                let len = self.chunks.len() + fresh.len;
                if self.chunks.capacity() < len {
                    // Checked before taking: a spare too small must not be
                    // freed here, under the lock.
                    if list.as_ref().is_none_or(|l| l.capacity() < len) {
                        return Err(Grow::List);
                    }
                    let mut bigger = list.take().expect("checked just above");
                    // Moves chunk pointers into room reserved outside the
                    // lock; the emptied list goes back to be freed after
                    // unlocking.
                    bigger.append(&mut self.chunks);
                    *list = Some(core::mem::replace(&mut self.chunks, bigger));
                }
                let fresh = core::mem::ManuallyDrop::new(region.take().expect("checked above"));
                for i in 0..fresh.len {
                    // From here `Slots` owns the region (its `Drop` frees it
                    // through the first chunk's `region`).
                    // SAFETY: chunk `i` of the region: initialised, unshared.
                    let chunk = unsafe { NonNull::new_unchecked(fresh.first.as_ptr().add(i)) };
                    // SAFETY: as above; the header, before the chunk is
                    // reachable (see `Chunk`).
                    unsafe { (*chunk.as_ptr()).first = self.chunks.len() * CHUNK };
                    self.chunks.push(chunk);
                }
            }
            self.used += 1;
            self.used - 1
        };
        *self.slot(slot) = Slot::Waiting(waker.take().expect("a waker to insert"));
        Ok(slot)
    }

    /// Writes `set` into every chunk's header (see [`Chunk`]): before the
    /// first slot, and before the first slot after the set moved, so while
    /// no member holds a slot.
    #[cold]
    #[inline(never)]
    fn stamp(&mut self, set: *const TaskSet) {
        for chunk in &self.chunks {
            // SAFETY: a live chunk of ours; `&mut self` (under the set's
            // lock) and no member holding a slot (see `Chunk`) make the
            // write exclusive.
            unsafe { (*chunk.as_ptr()).set = set };
        }
        self.stamped = set;
    }

    /// Frees `slot`; returns the waker it held, for the caller to drop
    /// after unlocking.
    pub(super) fn remove(&mut self, slot: usize) -> Option<Waker> {
        let free = self.free;
        self.free = slot;
        match core::mem::replace(self.slot(slot), Slot::Vacant(free)) {
            Slot::Waiting(waker) => Some(waker),
            Slot::Vacant(_) => None,
        }
    }

    /// Whether `slot` holds a waker that wakes the same task as `waker`
    /// (compares pointers; calls nothing).
    pub(super) fn holds(&mut self, slot: usize, waker: &Waker) -> bool {
        matches!(self.slot(slot), Slot::Waiting(held) if held.will_wake(waker))
    }

    /// Puts `waker` in `slot` (taking it from the option); returns the
    /// waker it replaces, for the caller to drop after unlocking.
    pub(super) fn replace(&mut self, slot: usize, waker: &mut Option<Waker>) -> Option<Waker> {
        let waker = waker.take().expect("a waker to store");
        match core::mem::replace(self.slot(slot), Slot::Waiting(waker)) {
            Slot::Waiting(old) => Some(old),
            Slot::Vacant(_) => None,
        }
    }

    /// Moves up to `BATCH` wakers from slots at or after `*from` into
    /// `batch`; advances `*from`. Returns whether the scan reached the end.
    pub(super) fn take_batch(
        &mut self,
        from: &mut usize,
        batch: &mut [Option<Waker>; BATCH],
    ) -> bool {
        let mut taken = 0;
        while *from < self.used {
            let slot = *from;
            *from += 1;
            if let Slot::Waiting(_) = self.slot(slot) {
                let Slot::Waiting(waker) = core::mem::replace(self.slot(slot), Slot::Vacant(TAKEN))
                else {
                    unreachable!("matched just above")
                };
                batch[taken] = Some(waker);
                taken += 1;
                if taken == BATCH {
                    return *from >= self.used;
                }
            }
        }
        true
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        // A region's chunks were pushed together, in order, its first
        // chunk first: each region is freed at its first chunk, and its
        // other chunks are skipped, never read after.
        let mut at = 0;
        while at < self.chunks.len() {
            let first = self.chunks[at];
            // SAFETY: `first` starts a live region (the chunks before it
            // were whole regions, skipped as a whole).
            let len = unsafe { (*first.as_ptr()).region };
            assert!(len > 0, "a region starts at each region's first chunk");
            // No member holds a slot once the set is dropped (a member
            // keeps its set alive).
            drop(Region { first, len });
            at += len;
        }
        self.chunks.clear();
    }
}
