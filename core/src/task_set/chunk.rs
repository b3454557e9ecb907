//! The memory behind a set's waker slots: page-aligned [`Chunk`]s of
//! [`Slot`]s, allocated in [`Region`]s, and [`SlotRef`], the address of one
//! slot, from which a member finds its set and its slot's index.

use core::alloc::Layout;
use core::ptr::NonNull;
use core::task::Waker;

use super::TaskSet;

/// One slot: a member's waker, or a link in the free list. A slot whose
/// waker [`close`](TaskSet::close) took stays the member's (as
/// `Vacant(TAKEN)`) until the member leaves.
pub(super) enum Slot {
    Vacant(usize),
    Waiting(Waker),
}

// A slot costs what a waker does.
const _: () = assert!(core::mem::size_of::<Slot>() == core::mem::size_of::<Waker>());

/// End of the free list.
pub(super) const NONE: usize = usize::MAX;
/// A slot whose waker `close` took; still owned by its member.
pub(super) const TAKEN: usize = usize::MAX - 1;

/// Bytes of a [`Chunk`], and its alignment: a slot's address rounded down
/// to a multiple of it is its chunk's.
const CHUNK_BYTES: usize = 4096;
/// Slots per chunk: what fits beside the header (four words, so the slots
/// stay 16-aligned).
pub(super) const CHUNK: usize =
    (CHUNK_BYTES - 4 * core::mem::size_of::<usize>()) / core::mem::size_of::<AlignedSlot>();
/// Most chunks allocated at once (see [`Region`]).
pub(super) const MAX_REGION: usize = 16;

/// A [`Slot`] aligned to 16, so that a member keeps 4 flags beside a
/// slot's address (see [`Member`](crate::member::Member)); a waker is 16
/// bytes, so this costs nothing on 64-bit targets.
#[repr(C, align(16))]
struct AlignedSlot(Slot);

// Slot addresses leave 4 flag bits to a member.
const _: () = assert!(core::mem::align_of::<AlignedSlot>() >= 16);

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
/// its old address until [`Slots::insert`](super::slots::Slots::insert)
/// hands out the next slot, which first rewrites them (under the lock,
/// with no slot held, so no member reads them meanwhile): a member never
/// finds a set that moved away.
#[repr(C, align(4096))]
pub(super) struct Chunk {
    pub(super) set: *const TaskSet,
    /// The index of `slots[0]`.
    pub(super) first: usize,
    /// In the first chunk of a [`Region`], how many chunks it has (0 in
    /// the others): what `Slots`' drop frees.
    pub(super) region: usize,
    _pad: usize,
    slots: [AlignedSlot; CHUNK],
}

const _: () = assert!(core::mem::size_of::<Chunk>() == CHUNK_BYTES);

impl Chunk {
    /// The slot `index` of `chunk`.
    ///
    /// # Safety
    ///
    /// `chunk` is live and `index < CHUNK`.
    pub(super) unsafe fn slot(chunk: NonNull<Chunk>, index: usize) -> NonNull<Slot> {
        // SAFETY: `chunk` is live, as the caller guarantees; the projection
        // keeps the provenance of the whole chunk, as `SlotRef` needs.
        // (`AlignedSlot` is `repr(C)`: its slot is at offset 0.)
        unsafe {
            NonNull::new_unchecked(
                core::ptr::addr_of_mut!((*chunk.as_ptr()).slots)
                    .cast::<AlignedSlot>()
                    .add(index)
                    .cast::<Slot>(),
            )
        }
    }
}

/// Chunks allocated together, `len` of them, each initialised with empty
/// slots and its `set`. Page-aligned allocations cost glibc up to a page of
/// slack each when nothing else fills the gap (16 bytes per slot for chunks
/// allocated one by one on a worker thread), so chunks come in regions that
/// double up to [`MAX_REGION`]: the slack is paid per region.
///
/// Invariant: `first` points to `len` initialised chunks, allocated as one
/// block with [`Region::layout`]`(len)`; the first one's `region` is `len`.
pub(super) struct Region {
    pub(super) first: NonNull<Chunk>,
    pub(super) len: usize,
}

// SAFETY: a region is owned memory of empty slots plus the set's address
// (see `Slots`' `Send`).
unsafe impl Send for Region {}

impl Region {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len * CHUNK_BYTES, CHUNK_BYTES)
            .expect("a region of at most MAX_REGION pages")
    }

    /// Allocates and initialises `len` chunks for `set`.
    pub(super) fn new(set: *const TaskSet, len: usize) -> Region {
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

/// Where a waiting member's waker is kept: one slot of a set's chunk. The
/// address alone leads to the set and the index (see [`Chunk`]), so a
/// member keeps it in the word that held its set's address.
///
/// Invariant: points to a slot of a live chunk, derived from the pointer to
/// the whole chunk (so the header is in reach); aligned to 16.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SlotRef(NonNull<Slot>);

impl SlotRef {
    /// The slot `index` of `chunk`.
    ///
    /// # Safety
    ///
    /// `chunk` is live and `index < CHUNK`.
    pub(super) unsafe fn new(chunk: NonNull<Chunk>, index: usize) -> Self {
        // SAFETY: as the caller guarantees; `Chunk::slot` derives the
        // slot's pointer from the chunk's.
        SlotRef(unsafe { Chunk::slot(chunk, index) })
    }

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

    /// The slot's index in its set's `Slots`.
    pub(super) fn index(self) -> usize {
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
