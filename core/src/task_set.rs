//! [`TaskSet`]: the live tasks of an executor or scope, so shutdown can wait
//! for them or cancel them.

use alloc::boxed::Box;
use alloc::sync::Weak;
use alloc::vec::Vec;
use core::any::TypeId;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};

use crate::cache_padded::CachePadded;
use crate::sync::{AtomicBool, AtomicUsize, Ordering, SpinLock};

/// Counts the live tasks spawned into it and remembers the wakers of those
/// that are waiting, so that an owner can [wait](Self::wait_empty) for all of
/// them to finish or [close](Self::close) the set to cancel them.
///
/// Membership costs a task one word and two counter updates (joining and
/// leaving) until it first returns `Pending`; then its waker is recorded (and kept current: a member polled by changing wakers
/// records the latest). A closed set cancels each member at its next poll
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
    /// What happened to the members (see [`crate::stats`]).
    pub(crate) stats: crate::stats::TaskStats,
    /// What holds this set, if [`owned_by`](Self::owned_by) said: members
    /// then keep the owner alive instead of the set (see
    /// [`Member`](crate::member::Member)).
    pub(crate) owner: Option<Owner>,
}

/// The owner of a set: a weak reference to the `Arc<T>` that holds the set,
/// and the functions that know `T`.
///
/// Invariant: `weak` came from `Weak::<T>::into_raw` for the `T` that
/// `vtable` was made for; the set drops it (once) when it is dropped.
pub(crate) struct Owner {
    pub(crate) weak: *const (),
    /// `T`'s, compared on every poll of a scope's task (a call through the
    /// vtable would cost more). Read only by `with_polled_owner` (`std`).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    type_id: TypeId,
    vtable: &'static OwnerVtable,
}

struct OwnerVtable {
    /// Takes a strong reference if the owner still lives.
    upgrade: unsafe fn(*const ()) -> bool,
    /// Gives back a strong reference that `upgrade` took.
    release: unsafe fn(*const ()),
    /// Drops the set's weak reference.
    drop_weak: unsafe fn(*const ()),
}

struct OwnerVtableOf<T>(core::marker::PhantomData<T>);

impl<T: Send + Sync + 'static> OwnerVtableOf<T> {
    const VTABLE: OwnerVtable = OwnerVtable {
        upgrade: upgrade::<T>,
        release: release::<T>,
        drop_weak: drop_weak::<T>,
    };
}

/// # Safety
///
/// `weak` came from `Weak::<T>::into_raw` and that weak reference is alive.
unsafe fn upgrade<T>(weak: *const ()) -> bool {
    // SAFETY: the caller guarantees `weak` is a live `Weak<T>`'s raw form;
    // `ManuallyDrop` leaves that reference to its owner.
    let weak = core::mem::ManuallyDrop::new(unsafe { Weak::from_raw(weak.cast::<T>()) });
    match weak.upgrade() {
        Some(strong) => {
            // Kept as the member's reference; `release` gives it back.
            let _ = alloc::sync::Arc::into_raw(strong);
            true
        }
        None => false,
    }
}

/// # Safety
///
/// The caller owns a strong reference that `upgrade::<T>(weak)` took.
unsafe fn release<T>(weak: *const ()) {
    // SAFETY: `Arc::into_raw` in `upgrade` returned this very pointer (a
    // weak and a strong reference to one allocation have the same raw
    // form), and the caller gives back the reference it owns.
    unsafe { drop(alloc::sync::Arc::from_raw(weak.cast::<T>())) }
}

/// # Safety
///
/// `weak` came from `Weak::<T>::into_raw` and is dropped this once.
unsafe fn drop_weak<T>(weak: *const ()) {
    // SAFETY: as the caller guarantees.
    unsafe { drop(Weak::from_raw(weak.cast::<T>())) }
}

// SAFETY: `Owner` is a weak reference to a `T: Send + Sync` (see `owned_by`)
// behind a raw pointer, plus static functions.
unsafe impl Send for Owner {}
// SAFETY: as for `Send`; `&Owner` only reads the two fields.
unsafe impl Sync for Owner {}

impl Owner {
    /// Takes a strong reference to the owner, if it still lives.
    pub(crate) fn retain(&self) -> bool {
        // SAFETY: by the invariant `weak` is the set's live weak reference.
        unsafe { (self.vtable.upgrade)(self.weak) }
    }

    /// What gives back a strong reference [`retain`](Self::retain) took,
    /// copied out of the owner: giving it back may drop the owner, and
    /// with it the set and this `Owner`.
    pub(crate) fn releaser(&self) -> Release {
        Release {
            release: self.vtable.release,
            weak: self.weak,
        }
    }

    /// The owner, if it is a `T`.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn get<T: 'static>(&self) -> Option<*const T> {
        (self.type_id == TypeId::of::<T>()).then_some(self.weak.cast::<T>())
    }
}

/// See [`Owner::releaser`].
pub(crate) struct Release {
    release: unsafe fn(*const ()),
    weak: *const (),
}

impl Release {
    /// Gives the reference back.
    ///
    /// # Safety
    ///
    /// The caller owns a reference that [`Owner::retain`] took on the owner
    /// this came from, and gives it back this once.
    pub(crate) unsafe fn run(self) {
        // SAFETY: as the caller guarantees.
        unsafe { (self.release)(self.weak) }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // SAFETY: by the invariant, the set's weak reference, dropped once.
        unsafe { (self.vtable.drop_weak)(self.weak) }
    }
}

/// Who waits for a set to empty: a list whose nodes are allocated before
/// the lock is taken (and freed after it is released), each with an id by
/// which a [`WaitEmpty`] finds its own entry again, to keep its latest
/// waker there and to remove it when it is dropped.
struct EmptyList {
    head: Option<Box<EmptyNode>>,
    /// The id of the next node linked (never reused: 2^64 links).
    next_id: u64,
}

/// One entry of [`EmptyList`].
struct EmptyNode {
    waker: Waker,
    id: u64,
    next: Option<Box<EmptyNode>>,
}

impl EmptyList {
    /// Links `node` first; returns the id it got.
    fn link(&mut self, mut node: Box<EmptyNode>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        node.id = id;
        node.next = self.head.take();
        self.head = Some(node);
        id
    }

    fn find(&mut self, id: u64) -> Option<&mut EmptyNode> {
        let mut node = self.head.as_deref_mut();
        while let Some(entry) = node {
            if entry.id == id {
                return Some(entry);
            }
            node = entry.next.as_deref_mut();
        }
        None
    }

    /// Takes the node `id` out of the list (alone: its `next` is cleared),
    /// for the caller to drop after unlocking.
    fn unlink(&mut self, id: u64) -> Option<Box<EmptyNode>> {
        let mut cursor = &mut self.head;
        while cursor.as_ref().is_some_and(|node| node.id != id) {
            cursor = &mut cursor.as_mut().expect("checked just above").next;
        }
        let mut node = cursor.take()?;
        *cursor = node.next.take();
        Some(node)
    }

    /// How many wakers wait.
    #[cfg(all(test, not(loom)))]
    fn len(&self) -> usize {
        core::iter::successors(self.head.as_deref(), |node| node.next.as_deref()).count()
    }
}

impl Drop for EmptyList {
    fn drop(&mut self) {
        // One node at a time: a long list must not recurse as deep.
        let mut list = self.head.take();
        while let Some(mut node) = list {
            list = node.next.take();
        }
    }
}

/// A slab of wakers in fixed-size chunks: growing never copies or doubles
/// the wakers, so a set with many waiting tasks wastes at most one chunk.
///
/// The lock around it is a spin lock, so nothing inside a critical section
/// allocates, frees or calls a waker: chunks (and room in the chunk list)
/// are allocated before the lock is taken, free slots form a list threaded
/// through the slots themselves, and wakers are moved in and out of the
/// slots and cloned, woken or dropped by the caller after unlocking.
struct Slots {
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

/// One slot: a member's waker, or a link in the free list. A slot whose
/// waker [`close`](TaskSet::close) took stays the member's (as
/// `Vacant(TAKEN)`) until the member leaves.
enum Slot {
    Vacant(usize),
    Waiting(Waker),
}

// A slot costs what a waker does.
const _: () = assert!(core::mem::size_of::<Slot>() == core::mem::size_of::<Waker>());

/// Bytes of a [`Chunk`], and its alignment: a slot's address rounded down
/// to a multiple of it is its chunk's.
const CHUNK_BYTES: usize = 4096;
/// Slots per chunk: what fits beside the header (four words, so the slots
/// stay 16-aligned).
const CHUNK: usize =
    (CHUNK_BYTES - 4 * core::mem::size_of::<usize>()) / core::mem::size_of::<AlignedSlot>();
/// Most chunks allocated at once (see [`Region`]).
const MAX_REGION: usize = 16;

/// A [`Slot`] aligned to 16, so that a member keeps 4 flags beside a
/// slot's address (see [`Member`](crate::member::Member)); a waker is 16
/// bytes, so this costs nothing on 64-bit targets.
#[repr(C, align(16))]
struct AlignedSlot(Slot);

/// A page of slots, with a header that lets a member that holds only its
/// slot's address find its set and its slot's index.
///
/// Invariant: `first` is written before the chunk is published (under the
/// set's lock) and never changes. `set` is written then too, and whenever a
/// member holds a slot it is the current address of the `TaskSet` whose
/// `Slots` holds the chunk. A set can move (safe code can take it out of
/// its `Arc` with `Arc::into_inner` or `Arc::get_mut` and wrap it in a new
/// one) only while nothing else refers to it, so while no member holds a
/// slot: a member keeps its set in its `Arc` (or keeps the owner that
/// holds that `Arc`, see [`TaskSet::owned_by`]). A moved set's headers name
/// its old address until [`Slots::insert`] hands out the next slot, which
/// first rewrites them (under the lock, with no slot held, so no member
/// reads them meanwhile): a member never finds a set that moved away.
#[repr(C, align(4096))]
struct Chunk {
    set: *const TaskSet,
    /// The index of `slots[0]`.
    first: usize,
    /// In the first chunk of a [`Region`], how many chunks it has (0 in
    /// the others): what `Slots`' drop frees.
    region: usize,
    _pad: usize,
    slots: [AlignedSlot; CHUNK],
}

/// Chunks allocated together, `len` of them, each initialised with empty
/// slots and its `set`. Page-aligned allocations cost glibc up to a page of
/// slack each when nothing else fills the gap (measured: 16 bytes per slot
/// for chunks allocated one by one on a worker thread), so chunks come in
/// regions that double up to [`MAX_REGION`]: the slack is paid per region.
///
/// Invariant: `first` points to `len` initialised chunks, allocated as one
/// block with [`Region::layout`]`(len)`; the first one's `region` is `len`.
struct Region {
    first: NonNull<Chunk>,
    len: usize,
}

// SAFETY: a region is owned memory of empty slots plus the set's address
// (see `Slots`' `Send`).
unsafe impl Send for Region {}

impl Region {
    fn layout(len: usize) -> core::alloc::Layout {
        core::alloc::Layout::from_size_align(len * CHUNK_BYTES, CHUNK_BYTES)
            .expect("a region of at most MAX_REGION pages")
    }

    /// Allocates and initialises `len` chunks for `set`.
    fn new(set: *const TaskSet, len: usize) -> Region {
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc::alloc(layout) }.cast::<Chunk>();
        let Some(first) = NonNull::new(raw) else {
            alloc::alloc::handle_alloc_error(layout)
        };
        for i in 0..len {
            // SAFETY: chunk `i` of the `len` the block holds; written once.
            unsafe {
                first.as_ptr().add(i).write(Chunk {
                    set,
                    first: 0,
                    region: if i == 0 { len } else { 0 },
                    _pad: 0,
                    slots: [const { AlignedSlot(Slot::Vacant(NONE)) }; CHUNK],
                })
            };
        }
        Region { first, len }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: by the invariant the region owns `len` initialised chunks
        // in one block of `layout(len)`: dropped in place (their slots may
        // hold wakers), then freed, once.
        unsafe {
            for i in 0..self.len {
                self.first.as_ptr().add(i).drop_in_place();
            }
            alloc::alloc::dealloc(self.first.as_ptr().cast(), Self::layout(self.len));
        }
    }
}

const _: () = assert!(core::mem::size_of::<Chunk>() == CHUNK_BYTES);

/// Where a waiting member's waker is kept: one slot of a set's chunk. The
/// address alone leads to the set and the index (see [`Chunk`]), so a
/// member keeps it in the word that held its set's address.
///
/// Invariant: points to a slot of a live chunk, derived from the pointer to
/// the whole chunk (so the header is in reach); aligned to 16.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SlotRef(NonNull<Slot>);

impl SlotRef {
    fn chunk(self) -> *const Chunk {
        self.0
            .as_ptr()
            .map_addr(|addr| addr & !(CHUNK_BYTES - 1))
            .cast::<Chunk>()
            .cast_const()
    }

    /// The set that holds the slot.
    pub(crate) fn set(self) -> *const TaskSet {
        // SAFETY: by the invariant the slot is in a live chunk, found by
        // rounding down (chunks are `CHUNK_BYTES`-aligned and that long);
        // `set` does not change while a member holds a slot (see `Chunk`).
        unsafe { (*self.chunk()).set }
    }

    fn index(self) -> usize {
        let chunk = self.chunk();
        // SAFETY: as in `set`; `first` never changes once published.
        let first = unsafe { (*chunk).first };
        // SAFETY: as in `set`: the header and the slot are in one chunk.
        let base = unsafe { core::ptr::addr_of!((*chunk).slots) }.cast::<AlignedSlot>();
        first + (self.0.as_ptr().addr() - base.addr()) / core::mem::size_of::<AlignedSlot>()
    }

    /// The word a member keeps: the slot's address (its low 4 bits are 0).
    pub(crate) fn addr(self) -> *mut () {
        self.0.as_ptr().cast()
    }

    /// # Safety
    ///
    /// `ptr` came from [`addr`](Self::addr) of a slot still held.
    pub(crate) unsafe fn from_addr(ptr: *mut ()) -> Self {
        // SAFETY: `addr` of a `SlotRef` is never null.
        SlotRef(unsafe { NonNull::new_unchecked(ptr.cast()) })
    }
}

// Slot addresses leave 4 flag bits to a member.
const _: () = assert!(core::mem::align_of::<AlignedSlot>() >= 16);

// SAFETY: `Chunk`'s raw `set` pointer is only an address read to find the
// set; the slots are reached only under the set's lock.
unsafe impl Send for Slots {}
/// End of the free list.
const NONE: usize = usize::MAX;
/// A slot whose waker `close` took; still owned by its member.
const TAKEN: usize = usize::MAX - 1;
/// Wakers `close` collects per lock hold (on its stack).
const BATCH: usize = 32;

/// What [`Slots::insert`] needs allocated before it can go on.
enum Grow {
    /// A new region of this many chunks.
    Region(usize),
    /// Room for one more chunk in the chunk list.
    List,
}

impl Slots {
    fn slot_ptr(&self, slot: usize) -> *mut Slot {
        let chunk = self.chunks[slot / CHUNK].as_ptr();
        // SAFETY: `chunk` is live (owned by `self`); the projection keeps
        // the provenance of the whole chunk, as `SlotRef` needs.
        // (`AlignedSlot` is `repr(C)`: its slot is at offset 0.)
        unsafe {
            core::ptr::addr_of_mut!((*chunk).slots)
                .cast::<AlignedSlot>()
                .add(slot % CHUNK)
                .cast::<Slot>()
        }
    }

    fn slot(&mut self, slot: usize) -> &mut Slot {
        // SAFETY: a live slot of ours; `&mut self` (under the set's lock)
        // makes the access exclusive: members only keep its address.
        unsafe { &mut *self.slot_ptr(slot) }
    }

    fn slot_ref(&self, slot: usize) -> SlotRef {
        // SAFETY: `slot_ptr` never returns null.
        SlotRef(unsafe { NonNull::new_unchecked(self.slot_ptr(slot)) })
    }

    /// Stores `waker` (taking it from the option) in a free slot, using the
    /// spare allocations; says what to allocate when they do not suffice.
    fn insert(
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
    fn remove(&mut self, slot: usize) -> Option<Waker> {
        let free = self.free;
        self.free = slot;
        match core::mem::replace(self.slot(slot), Slot::Vacant(free)) {
            Slot::Waiting(waker) => Some(waker),
            Slot::Vacant(_) => None,
        }
    }

    /// Whether `slot` holds a waker that wakes the same task as `waker`
    /// (compares pointers; calls nothing).
    fn holds(&mut self, slot: usize, waker: &Waker) -> bool {
        matches!(self.slot(slot), Slot::Waiting(held) if held.will_wake(waker))
    }

    /// Puts `waker` in `slot` (taking it from the option); returns the
    /// waker it replaces, for the caller to drop after unlocking.
    fn replace(&mut self, slot: usize, waker: &mut Option<Waker>) -> Option<Waker> {
        let waker = waker.take().expect("a waker to store");
        match core::mem::replace(self.slot(slot), Slot::Waiting(waker)) {
            Slot::Waiting(old) => Some(old),
            Slot::Vacant(_) => None,
        }
    }

    /// Moves up to `BATCH` wakers from slots at or after `*from` into
    /// `batch`; advances `*from`. Returns whether the scan reached the end.
    fn take_batch(&mut self, from: &mut usize, batch: &mut [Option<Waker>; BATCH]) -> bool {
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
            waiting: SpinLock::new(Slots {
                chunks: Vec::new(),
                used: 0,
                free: NONE,
                stamped: core::ptr::null(),
            }),
            on_empty: SpinLock::new(EmptyList {
                head: None,
                next_id: 0,
            }),
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
        self.owner = Some(Owner {
            weak: Weak::into_raw(owner).cast(),
            type_id: TypeId::of::<T>(),
            vtable: &OwnerVtableOf::<T>::VTABLE,
        });
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

    /// Resolves when no task is live.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// for i in 0..3 {
    ///     ex.spawn_in(&set, async move { i * 2 }).detach();
    /// }
    /// let watched = set.clone();
    /// let waiter = ex.spawn(async move {
    ///     watched.wait_empty().await;
    ///     watched.len()
    /// });
    /// ex.run_until_stalled();
    /// assert_eq!(waiter.join().unwrap(), 0);
    /// ```
    pub fn wait_empty(&self) -> WaitEmpty<'_> {
        WaitEmpty {
            set: self,
            entry: None,
        }
    }

    /// Registers `waker` to be woken when the set becomes empty; returns
    /// whether it is empty already. For callers that cannot await.
    ///
    /// The waker is kept until the set empties; calling again with a waker
    /// that wakes the same task keeps one entry. A caller that may give up
    /// waiting before then (or waits with changing wakers) should poll
    /// [`wait_empty`](Self::wait_empty) instead, whose future keeps one
    /// entry, its latest waker, and removes it when dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::task::{Wake, Waker};
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// struct Flag(AtomicBool);
    ///
    /// impl Wake for Flag {
    ///     fn wake(self: Arc<Self>) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// ex.spawn_in(&set, async {}).detach();
    ///
    /// let flag = Arc::new(Flag(AtomicBool::new(false)));
    /// let waker = Waker::from(flag.clone());
    /// assert!(!set.notify_when_empty(&waker)); // one member is still live
    /// ex.run_until_stalled();
    /// assert!(flag.0.load(Ordering::SeqCst)); // woken when it finished
    /// assert!(set.notify_when_empty(&waker));
    /// ```
    pub fn notify_when_empty(&self, waker: &Waker) -> bool {
        let known = self.on_empty.with(|list| {
            let mut node = list.head.as_deref();
            while let Some(entry) = node {
                if entry.waker.will_wake(waker) {
                    return true;
                }
                node = entry.next.as_deref();
            }
            false
        });
        if !known {
            // Cloned and allocated before locking; linked under the lock.
            let node = Box::new(EmptyNode {
                waker: waker.clone(),
                id: 0,
                next: None,
            });
            self.on_empty.with(|list| list.link(node));
        }
        self.is_empty()
    }

    /// Keeps `waker` as the latest waker of a [`WaitEmpty`]'s entry `entry`
    /// (linking a new entry if it has none, or if the set emptied and took
    /// it since); returns the entry's id.
    fn wait_for_empty(&self, entry: Option<u64>, waker: &Waker) -> u64 {
        let mut spare = None;
        if let Some(id) = entry {
            // Compares pointers only: nothing is called under the lock.
            let held = self
                .on_empty
                .with(|list| list.find(id).map(|node| node.waker.will_wake(waker)));
            match held {
                Some(true) => return id,
                Some(false) => {
                    let mut fresh = Some(waker.clone());
                    // The replaced waker is dropped after unlocking.
                    let replaced = self.on_empty.with(|list| {
                        list.find(id).map(|node| {
                            core::mem::replace(&mut node.waker, fresh.take().expect("one waker"))
                        })
                    });
                    if let Some(replaced) = replaced {
                        drop(replaced);
                        return id;
                    }
                    // The set emptied meanwhile and took the entry: link
                    // a new one below (the caller checks for empty after).
                    spare = fresh;
                }
                None => {}
            }
        }
        let node = Box::new(EmptyNode {
            waker: spare.unwrap_or_else(|| waker.clone()),
            id: 0,
            next: None,
        });
        self.on_empty.with(|list| list.link(node))
    }

    /// Removes a dropped [`WaitEmpty`]'s entry, if the set did not take it.
    fn forget_empty_waiter(&self, id: u64) {
        // Dropped (with its waker) after unlocking.
        drop(self.on_empty.with(|list| list.unlink(id)));
    }

    /// How many wakers wait for the set to empty.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn empty_waiters(&self) -> usize {
        self.on_empty.with(|list| list.len())
    }

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

    /// Frees a leaving member's waker slot.
    #[inline(never)]
    fn free(&self, slot: SlotRef) {
        // Dropped after unlocking: dropping a waker may schedule a task.
        drop(self.waiting.with(|slots| slots.remove(slot.index())));
    }

    /// The last member left: wakes those waiting for the set to empty.
    #[inline(never)]
    fn emptied(&self) {
        let mut list = self.on_empty.with(|list| list.head.take());
        while let Some(node) = list {
            let EmptyNode { waker, next, .. } = *node;
            waker.wake();
            list = next;
        }
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
                    let len = self.waiting.with(|slots| slots.chunks.len());
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

/// Future returned by [`TaskSet::wait_empty`].
///
/// The future keeps one entry in the set's list of waiters, with the waker
/// of its latest poll, and removes it when it is dropped: a loop that gives
/// up waiting again and again (a `timeout` around `wait_empty`) or polls it
/// with changing wakers keeps the list as short as the number of live
/// `WaitEmpty` futures.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{TaskSet, TickExecutor};
///
/// let ex = TickExecutor::new();
/// let set = Arc::new(TaskSet::new());
/// let watched = set.clone();
/// let waiter = ex.spawn(async move { watched.wait_empty().await });
/// let member = ex.spawn_in(&set, async {});
///
/// assert!(ex.try_tick()); // the waiter runs first and finds a live member
/// assert!(!waiter.is_finished());
/// ex.run_until_stalled(); // the member finishes and wakes the waiter
/// assert!(waiter.is_finished());
/// # drop(member);
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WaitEmpty<'a> {
    set: &'a TaskSet,
    /// Its entry's id, once it registered.
    entry: Option<u64>,
}

impl Future for WaitEmpty<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.is_empty() {
            return Poll::Ready(());
        }
        let entry = self.set.wait_for_empty(self.entry, cx.waker());
        self.entry = Some(entry);
        // Checked after linking: the last member leaves first and then
        // takes the list, so either this sees it empty or the list it
        // takes holds this waker.
        if self.set.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for WaitEmpty<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.entry.take() {
            self.set.forget_empty_waiter(id);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;

    use alloc::sync::Arc;
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Waker};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::TaskSet;

    struct Flag(AtomicBool);

    impl alloc::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flag() -> (Waker, Arc<Flag>) {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        (Waker::from(flag.clone()), flag)
    }

    #[test]
    fn a_hundred_thousand_abandoned_waits_leave_the_waiter_list_empty() {
        let set = TaskSet::new();
        set.enter();
        for _ in 0..100_000 {
            // A distinct task's waker each time, as a loop of timed-out
            // waits in fresh tasks (or `block_on`s) has.
            let (waker, _flag) = flag();
            let mut wait = set.wait_empty();
            assert!(Pin::new(&mut wait)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            assert_eq!(set.empty_waiters(), 1);
            drop(wait);
            assert_eq!(set.empty_waiters(), 0);
        }
        set.leave(None);
    }

    #[test]
    fn a_wait_polled_with_changing_wakers_keeps_one_entry_and_wakes_the_latest() {
        let set = TaskSet::new();
        set.enter();
        let mut wait = set.wait_empty();
        let mut flags = alloc::vec::Vec::new();
        for _ in 0..1000 {
            let (waker, flag) = flag();
            assert!(Pin::new(&mut wait)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            assert_eq!(set.empty_waiters(), 1);
            flags.push(flag);
        }
        set.leave(None);
        let (latest, older) = flags.split_last().unwrap();
        assert!(latest.0.load(Ordering::SeqCst), "the latest waker is woken");
        assert!(older.iter().all(|flag| Arc::strong_count(flag) == 1));
        assert!(Pin::new(&mut wait)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready());
        drop(wait);
        assert_eq!(set.empty_waiters(), 0);
    }

    #[test]
    fn notify_when_empty_keeps_one_entry_per_task_until_the_set_empties() {
        let set = TaskSet::new();
        set.enter();
        let (waker, woken) = flag();
        for _ in 0..10 {
            assert!(!set.notify_when_empty(&waker.clone()));
        }
        assert_eq!(set.empty_waiters(), 1);
        set.leave(None);
        assert!(woken.0.load(Ordering::SeqCst));
        assert_eq!(set.empty_waiters(), 0);
        assert!(set.notify_when_empty(&waker));
    }

    #[test]
    fn a_wait_whose_entry_the_emptying_set_took_registers_again() {
        let set = TaskSet::new();
        set.enter();
        let (first, woken) = flag();
        let mut wait = set.wait_empty();
        let mut other = set.wait_empty();
        assert!(Pin::new(&mut wait)
            .poll(&mut Context::from_waker(&first))
            .is_pending());
        // The set empties (taking both entries) and fills again.
        let (second, _) = flag();
        assert!(Pin::new(&mut other)
            .poll(&mut Context::from_waker(&second))
            .is_pending());
        set.leave(None);
        set.enter();
        assert!(woken.0.load(Ordering::SeqCst));
        assert_eq!(set.empty_waiters(), 0);
        // Polled again with another waker: a new entry, woken next time.
        let (third, woken_again) = flag();
        assert!(Pin::new(&mut wait)
            .poll(&mut Context::from_waker(&third))
            .is_pending());
        assert_eq!(set.empty_waiters(), 1);
        // Dropping the other future (its entry is gone) removes nothing else.
        drop(other);
        assert_eq!(set.empty_waiters(), 1);
        set.leave(None);
        assert!(woken_again.0.load(Ordering::SeqCst));
        drop(wait);
        assert_eq!(set.empty_waiters(), 0);
    }
}
