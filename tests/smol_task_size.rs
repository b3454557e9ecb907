//! What `Run::spawn` allocates on a smol scope: one task, async-executor's
//! own, at most a bounded wrapper bigger than the raw executor's task for
//! the same future (see `backends/smol/tests/task_size.rs` for why the size
//! matters: glibc's 128-byte fastbin limit).
#![cfg(feature = "smol-backend")]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;

use unirun::{Flavor, Run};

#[path = "../backends/smol/tests/common/mod.rs"]
mod recording;
use recording::record;

/// Bytes a scope's task may add to a future: one word, its membership in
/// the scope's set, which also keeps the scope alive and makes it current
/// while the task is polled (no wrapper of the scope's own outside `Gil`
/// mode). At 8 the benches' detached tasks (112 bytes raw) fit glibc's
/// 128-byte fastbin chunks.
const SCOPE_OVERHEAD: usize = 8;

/// A future shaped like the benches' detached tasks: an inner future
/// awaited, then a shared counter touched.
fn bench_like(n: usize, shared: &Arc<()>) -> impl Future<Output = ()> + Send + 'static {
    let shared = shared.clone();
    let work = async move { black_box(n) };
    async move {
        black_box(work.await);
        black_box(&shared);
    }
}

/// The one allocation of a raw async-executor spawn of `bench_like`.
fn raw_task_size(shared: &Arc<()>) -> usize {
    let ex = unirun_smol::async_executor::Executor::new();
    drop(ex.spawn(bench_like(0, shared)));
    let (task, sizes) = record(|| ex.spawn(bench_like(1, shared)));
    drop(task);
    assert_eq!(
        sizes.len(),
        1,
        "raw async-executor spawn allocated {sizes:?}"
    );
    sizes[0]
}

#[test]
fn a_smol_scope_spawn_is_one_allocation_with_a_bounded_wrapper() {
    // Watchdog: the body joins tasks on a live pool.
    let (raw, sizes) = unirun_test_support::watchdog("spawning and joining two tasks", || {
        let shared = Arc::new(());
        let raw = raw_task_size(&shared);
        let run = Run::builder()
            .flavor(Flavor::Smol)
            .max_workers(1)
            .build()
            .expect("smol scope");
        // The first spawn installs the panic hook and sizes the bookkeeping.
        run.spawn(bench_like(0, &shared))
            .join()
            .expect("first task");
        let (task, sizes) = record(|| run.spawn(bench_like(1, &shared)));
        task.join().expect("measured task");
        (raw, sizes)
    });
    assert_eq!(sizes.len(), 1, "Run::spawn on smol allocated {sizes:?}");
    assert!(
        sizes[0] <= raw + SCOPE_OVERHEAD,
        "a scope's task is {} bytes, the raw task {raw}: the wrapper grew past \
         {SCOPE_OVERHEAD} bytes",
        sizes[0]
    );
}
