//! Every global a forked child can reach is fork-aware: the timer driver,
//! the forker thread, metrics and the inline scheduler work in a
//! `to_process` child after the parent used them. Each test re-runs this
//! binary as a fresh process (the tests fork), runs its body under a
//! watchdog, and gives every child a timeout as a safety net: a child that
//! hangs is killed and the test fails with "timed out".
#![cfg(all(unix, feature = "process-backend"))]

mod common;
mod watchdog;

use std::time::Duration;

use unirun::process::ProcessOptions;
use unirun::{Flavor, Run};

use common::in_child_process;
use watchdog::watchdog;

/// Only a safety net against a hang: a child stuck on an inherited global
/// is killed and its handle says "timed out". No test depends on its length.
fn safety_net() -> ProcessOptions {
    ProcessOptions::default().timeout(Duration::from_secs(30))
}

/// In a child the pool's threads do not exist and tasks run inline on the
/// caller: a task that wakes itself must not take a stack frame per wake.
#[test]
fn a_task_that_yields_a_million_times_completes_in_a_forked_child() {
    if !in_child_process("a_task_that_yields_a_million_times_completes_in_a_forked_child") {
        return;
    }
    watchdog(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(1)
            .build()
            .unwrap();
        let handle = run.handle();
        let child = unirun::to_process_with(safety_net(), move || {
            let task = handle.spawn(async {
                for _ in 0..1_000_000u32 {
                    futures_lite::future::yield_now().await;
                }
                42u32
            });
            task.join().unwrap()
        });
        assert_eq!(child.join().expect("the child's task completed"), 42);
    });
}
