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

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;

use async_executor::Executor;
use unirun_core::TaskSet;
use unirun_smol::Handle;

mod common;
use common::record;

/// Bytes the core's member wrapper may add to a future: one word, the
/// membership (the set, or the member's waker slot once it waited, and
/// whether the future is gone; see `unirun_core`'s `member` module).
const MEMBER_OVERHEAD: usize = 8;

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
