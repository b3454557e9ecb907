//! A global allocator that records the sizes of the allocations the
//! calling thread makes inside [`record`], for tests of what a spawn
//! allocates. Shared with the facade's smol tests (by path).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, recording the sizes of the allocations the
/// calling thread makes while [`record`] runs (thread-local, so tests
/// running in parallel do not see each other's allocations).
struct Recording;

/// Most allocations one recording keeps.
const MAX_RECORDED: usize = 8;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
    static SIZES: Cell<[usize; MAX_RECORDED]> = const { Cell::new([0; MAX_RECORDED]) };
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds
// `GlobalAlloc`'s contract; the bookkeeping only touches const-initialised
// thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's `layout` contract is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller's `ptr`/`layout`/`new_size` contract is
        // `System::realloc`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout` (all allocations
        // above go to `System`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Recording = Recording;

/// Records one allocation of `size` bytes if this thread is recording.
fn note(size: usize) {
    // `try_with`: allocations during thread teardown are not recorded.
    let _ = ON.try_with(|on| {
        if on.get() {
            let n = COUNT.get();
            if n < MAX_RECORDED {
                let mut sizes = SIZES.get();
                sizes[n] = size;
                SIZES.set(sizes);
            }
            COUNT.set(n + 1);
        }
    });
}

/// Runs `f` and returns its result with the sizes of the allocations it
/// made on this thread.
pub(crate) fn record<R>(f: impl FnOnce() -> R) -> (R, Vec<usize>) {
    COUNT.set(0);
    ON.set(true);
    let out = f();
    ON.set(false);
    let n = COUNT.get();
    let sizes = SIZES.get();
    assert!(n <= MAX_RECORDED, "{n} allocations in one spawn");
    (out, sizes[..n].to_vec())
}
