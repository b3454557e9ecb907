//! In a forked child, a task woken by a driver thread (the timer thread,
//! unirun's own tokio runtime thread) never runs on that thread: it may
//! block until something only that driver delivers. Each test re-runs this
//! binary as a fresh process (the tests fork), runs its body under a
//! watchdog, and gives the child a timeout as a safety net only: a child
//! whose driver is stuck is killed and its handle says "timed out".
#![cfg(all(unix, feature = "process-backend"))]

mod common;

use std::time::Duration;

use unirun::process::ProcessOptions;

use common::{in_child_process, watchdog_this_test};

/// Only a safety net against a hang; no test depends on its length.
fn safety_net() -> ProcessOptions {
    ProcessOptions::default().timeout(Duration::from_secs(30))
}

/// The name of the thread it runs on.
fn this_thread() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

/// A task woken by a timer joins another task that needs the same timer:
/// on the timer's own thread that join would wait forever. Returns 7 and
/// the name of the thread the woken task ran on.
fn join_after_a_timer_wake() -> (u32, String) {
    let outer = unirun::spawn(async {
        unirun::time::sleep(Duration::from_millis(1)).await;
        let ran_on = this_thread();
        let inner = unirun::spawn(async {
            unirun::time::sleep(Duration::from_millis(1)).await;
            7u32
        });
        (inner.join().expect("the inner task's sleep fired"), ran_on)
    });
    outer.join().expect("the outer task finished")
}

#[test]
fn a_task_woken_by_the_timer_in_a_forked_child_may_block_on_a_timed_task() {
    if !in_child_process("a_task_woken_by_the_timer_in_a_forked_child_may_block_on_a_timed_task") {
        return;
    }
    watchdog_this_test(|| {
        // The parent uses the same program: the driver serves it there.
        assert_eq!(join_after_a_timer_wake().0, 7);
        let (out, ran_on) = unirun::to_process_with(safety_net(), join_after_a_timer_wake)
            .join()
            .expect("the child's timer thread was free to fire the inner sleep");
        assert_eq!(out, 7);
        assert_ne!(ran_on, "unirun-timer", "the woken task ran on the driver");
    });
}

/// The same through tokio: a task woken by a tokio timer (driven by the
/// child's own unirun-io) joins a task that needs that timer again.
#[cfg(feature = "tokio-backend")]
fn join_after_a_tokio_wake(run: &unirun::Run) -> (u32, String) {
    run.block_on(async {
        let outer = unirun::spawn(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let ran_on = this_thread();
            // A tokio future made after the wake-up, on whatever thread
            // runs the task now: it finds a runtime to register with.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let inner = unirun::spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                7u32
            });
            (inner.join().expect("the inner task's sleep fired"), ran_on)
        });
        outer.await.expect("the outer task finished")
    })
}

#[cfg(feature = "tokio-backend")]
#[test]
fn a_task_woken_by_unirun_io_in_a_forked_child_may_block_on_a_timed_task() {
    if !in_child_process("a_task_woken_by_unirun_io_in_a_forked_child_may_block_on_a_timed_task") {
        return;
    }
    watchdog_this_test(|| {
        let run = std::sync::Arc::new(unirun::Run::builder().max_workers(2).build().unwrap());
        assert_eq!(join_after_a_tokio_wake(&run).0, 7);
        let scope = run.clone();
        let (out, ran_on) =
            unirun::to_process_with(safety_net(), move || join_after_a_tokio_wake(&scope))
                .join()
                .expect("the child's unirun-io was free to fire the inner sleep");
        assert_eq!(out, 7);
        assert_ne!(ran_on, "unirun-io", "the woken task ran on the driver");
    });
}
