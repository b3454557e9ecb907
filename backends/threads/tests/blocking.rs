//! The pool's blocking lane at its default size.

use std::sync::{Arc, Barrier};

use unirun_test_support::watchdog;
use unirun_threads::ThreadPool;

#[test]
fn the_default_blocking_cap_is_at_least_512() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    assert!(pool.handle().max_blocking_threads() >= 512);
    assert!(pool.handle().blocking_stats().cap >= 512);
}

#[test]
fn a_hundred_spawn_blocking_closures_at_one_barrier_complete() {
    // Deadlocked at the old default cap of 64 on a 2-CPU machine.
    let leaders = watchdog("100 closures at a barrier", || {
        let pool = ThreadPool::builder()
            .workers(1)
            .name("barrier")
            .build()
            .unwrap();
        let barrier = Arc::new(Barrier::new(100));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let barrier = barrier.clone();
                pool.spawn_blocking(move || barrier.wait().is_leader())
            })
            .collect();
        tasks
            .into_iter()
            .filter_map(|t| t.join().unwrap().then_some(()))
            .count()
    });
    assert_eq!(leaders, 1);
}
