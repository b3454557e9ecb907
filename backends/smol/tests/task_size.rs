//! What one spawn allocates: a unirun task on async-executor is exactly one
//! allocation, async-executor's own task, no bigger than the one the raw
//! executor makes for the same future plus a small, bounded wrapper.
//!
//! The size is the point: glibc serves chunks of up to 128 bytes from its
//! lock-free fastbins and bigger ones under the arena lock, and a task freed
//! by a worker but allocated by the spawner takes that path on every spawn.
//! A wrapper 24 bytes bigger than the raw task pushed the benches' small
//! tasks from 112 to 136 bytes and made spawn-heavy rows 1.3-2x slower than
//! raw async-executor; these tests keep such growth visible.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;

use async_executor::Executor;
use unirun_core::TaskSet;
use unirun_smol::Handle;

/// Bytes the core's member wrapper may add to a future today: `TaskFuture`
/// keeps the set (8) and the member's waker slot (8), and its
/// `Option<F>` needs a tag of its own (8) for a future without a niche,
/// such as an `async` block. Lower it when the wrapper shrinks.
const MEMBER_OVERHEAD: usize = 24;

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
fn record<R>(f: impl FnOnce() -> R) -> (R, Vec<usize>) {
    COUNT.set(0);
    ON.set(true);
    let out = f();
    ON.set(false);
    let n = COUNT.get();
    let sizes = SIZES.get();
    assert!(n <= MAX_RECORDED, "{n} allocations in one spawn");
    (out, sizes[..n].to_vec())
}

/// A small future like the benches' tasks: some state, an `Arc`.
fn small_future(n: usize, shared: &Arc<()>) -> impl Future<Output = usize> + Send + 'static {
    let shared = shared.clone();
    async move {
        black_box(&shared);
        black_box(n)
    }
}

/// The size of the one allocation the raw executor makes to spawn
/// `small_future` (after a first spawn sized its bookkeeping).
fn raw_task_size(shared: &Arc<()>) -> usize {
    let ex = Executor::new();
    drop(ex.spawn(small_future(0, shared)));
    let (task, sizes) = record(|| ex.spawn(small_future(1, shared)));
    drop(task);
    assert_eq!(
        sizes.len(),
        1,
        "raw async-executor spawn allocated {sizes:?}"
    );
    sizes[0]
}

/// A handle on an executor nobody drives (the tasks stay queued).
fn handle() -> (Arc<Executor<'static>>, Handle) {
    let ex = Arc::new(Executor::new());
    let handle = Handle::from_executor(ex.clone());
    (ex, handle)
}

#[test]
fn a_spawn_is_one_allocation_the_size_of_the_raw_task() {
    let shared = Arc::new(());
    let raw = raw_task_size(&shared);
    let (_ex, handle) = handle();
    // The first spawn installs the panic hook and sizes the bookkeeping.
    drop(handle.spawn(small_future(0, &shared)));
    let (task, sizes) = record(|| handle.spawn(small_future(1, &shared)));
    assert_eq!(
        sizes,
        [raw],
        "a plain spawn is the raw executor's task, with nothing added \
         (the join handle is stored inline)"
    );
    task.abort();
}

#[test]
fn a_member_spawn_is_one_allocation_with_a_bounded_wrapper() {
    let shared = Arc::new(());
    let raw = raw_task_size(&shared);
    let (_ex, handle) = handle();
    let set = Arc::new(TaskSet::new());
    drop(handle.spawn_in(&set, small_future(0, &shared)));
    let (task, sizes) = record(|| handle.spawn_in(&set, small_future(1, &shared)));
    assert_eq!(sizes.len(), 1, "a member spawn allocated {sizes:?}");
    assert!(
        sizes[0] <= raw + MEMBER_OVERHEAD,
        "a member task is {} bytes, the raw task {raw}: the wrapper grew past \
         {MEMBER_OVERHEAD} bytes",
        sizes[0]
    );
    task.abort();
    set.close();
}
