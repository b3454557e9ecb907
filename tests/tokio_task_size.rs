//! What `Run::spawn` allocates on a tokio scope: tokio's own task, of the
//! same size as raw tokio's for a small future. tokio allocates tasks in
//! 128-byte steps; a unirun task adds one word to the future, so only a
//! future within a word of a step's end moves to the next step (up to
//! 24-byte futures fit the first step raw, up to 16-byte ones with us).
//! Three words, as before, moved every future up to 24 bytes, the benches'
//! included: twice the memory, and measurably slower spawns.
#![cfg(feature = "tokio-backend")]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;

use unirun::{Flavor, Run};

#[path = "../backends/smol/tests/common/mod.rs"]
mod recording;
use recording::record;

/// A future shaped like the benches' tasks: an `Arc` and a state (16 bytes).
fn small(shared: &Arc<()>) -> impl Future<Output = usize> + Send + 'static {
    let shared = shared.clone();
    async move { black_box(Arc::strong_count(&shared)) }
}

#[test]
fn a_tokio_scope_task_is_the_size_of_raw_tokios_for_a_small_future() {
    // Watchdog: the body joins tasks on a live runtime.
    let (raw, ours) = unirun_test_support::watchdog("spawning and joining tasks", || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("tokio runtime");
        let shared = Arc::new(());
        // Warm-ups first: the first spawns install hooks and grow tables.
        for _ in 0..4 {
            runtime.block_on(runtime.spawn(small(&shared))).unwrap();
        }
        let (task, raw) = record(|| runtime.spawn(small(&shared)));
        runtime.block_on(task).unwrap();
        let run = {
            let _inside = runtime.enter();
            Run::builder()
                .flavor(Flavor::Tokio)
                .build()
                .expect("tokio scope")
        };
        for _ in 0..4 {
            run.spawn(small(&shared)).join().expect("warm-up task");
        }
        let (task, ours) = record(|| run.spawn(small(&shared)));
        task.join().expect("measured task");
        (raw, ours)
    });
    assert_eq!(raw.len(), 1, "raw tokio spawn allocated {raw:?}");
    assert_eq!(std::mem::size_of_val(&small(&Arc::new(()))), 16);
    assert_eq!(
        ours, raw,
        "Run::spawn on tokio allocated {ours:?}, raw tokio {raw:?}"
    );
}
