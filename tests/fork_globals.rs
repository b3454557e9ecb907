//! Every global a forked child can reach is fork-aware: the timer driver,
//! the forker thread, metrics and the inline scheduler work in a
//! `to_process` child after the parent used them. Each test re-runs this
//! binary as a fresh process (the tests fork), runs its body under a
//! watchdog, and gives every child a timeout as a safety net: a child that
//! hangs is killed and the test fails with "timed out".
#![cfg(all(unix, feature = "process-backend"))]

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use unirun::process::ProcessOptions;
use unirun::time::{sleep, timeout};
use unirun::{Flavor, Run};

use common::{in_child_process, watchdog_this_test};

/// Only a safety net against a hang: a child stuck on an inherited global
/// is killed and its handle says "timed out". No test depends on its length.
fn safety_net() -> ProcessOptions {
    ProcessOptions::default().timeout(Duration::from_secs(30))
}

/// Makes the parent use the timer driver: its thread runs from here on.
fn use_time_in_the_parent() {
    unirun::block_on(sleep(Duration::from_millis(1)));
}

#[test]
fn a_sleep_fires_in_a_forked_child_after_the_parent_used_time() {
    if !in_child_process("a_sleep_fires_in_a_forked_child_after_the_parent_used_time") {
        return;
    }
    watchdog_this_test(|| {
        use_time_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            unirun::block_on(async {
                sleep(Duration::from_millis(10)).await;
                7
            })
        });
        assert_eq!(child.join().expect("the child's sleep fired"), 7);
        // The parent's driver still serves the parent.
        use_time_in_the_parent();
    });
}

/// A tokio or smol scope's sleeps use that runtime's timer, driven by
/// threads the fork did not copy: in a child they use unirun's driver.
fn a_sleep_in_a_scope_fires_in_a_forked_child(flavor: Flavor) {
    watchdog_this_test(move || {
        let run = Arc::new(
            Run::builder()
                .flavor(flavor)
                .max_workers(1)
                .build()
                .unwrap(),
        );
        // The parent's runtime timer runs (and, for async-io, its thread).
        run.block_on(sleep(Duration::from_millis(1)));
        // The parent keeps its reference: the child never drops the scope.
        let scope = run.clone();
        let child = unirun::to_process_with(safety_net(), move || {
            scope.block_on(async {
                sleep(Duration::from_millis(10)).await;
                7
            })
        });
        assert_eq!(child.join().expect("the child's sleep fired"), 7);
    });
}

#[cfg(feature = "smol-backend")]
#[test]
fn a_sleep_in_a_smol_scope_fires_in_a_forked_child() {
    if in_child_process("a_sleep_in_a_smol_scope_fires_in_a_forked_child") {
        a_sleep_in_a_scope_fires_in_a_forked_child(Flavor::Smol);
    }
}

#[cfg(feature = "tokio-backend")]
#[test]
fn a_sleep_in_a_tokio_scope_fires_in_a_forked_child() {
    if in_child_process("a_sleep_in_a_tokio_scope_fires_in_a_forked_child") {
        a_sleep_in_a_scope_fires_in_a_forked_child(Flavor::Tokio);
    }
}

#[test]
fn a_timeout_elapses_in_a_forked_child_after_the_parent_used_time() {
    if !in_child_process("a_timeout_elapses_in_a_forked_child_after_the_parent_used_time") {
        return;
    }
    watchdog_this_test(|| {
        use_time_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            unirun::block_on(async {
                let never = std::future::pending::<()>();
                timeout(Duration::from_millis(10), never).await.is_err()
            })
        });
        assert!(child.join().expect("the child's timeout elapsed"));
    });
}

/// A child forked while a parent thread holds the timer driver's lock
/// never needs that lock: it makes a driver of its own, so its sleep fires
/// while the parent's lock is still held (released only after the child
/// returned).
#[test]
fn a_child_forked_while_the_timer_lock_is_held_uses_a_driver_of_its_own() {
    if !in_child_process("a_child_forked_while_the_timer_lock_is_held_uses_a_driver_of_its_own") {
        return;
    }
    watchdog_this_test(|| {
        use_time_in_the_parent();
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let lock = unirun::time::test_hooks::hold_driver_lock();
            held_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            drop(lock);
        });
        held_rx.recv().unwrap();
        let options = ProcessOptions::default().timeout(Duration::from_secs(10));
        let child = unirun::to_process_with(options, || {
            unirun::block_on(sleep(Duration::from_millis(1)));
            7
        });
        let out = child.join();
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(out.expect("the child slept on a driver of its own"), 7);
    });
}

/// A sleep's entry inherited from the parent belongs to a copy of the
/// parent's task: the child's driver must not wake it (that would run the
/// parent's task, side effects and all, a second time in the child).
#[test]
fn a_forked_child_never_wakes_the_parents_sleeps() {
    if !in_child_process("a_forked_child_never_wakes_the_parents_sleeps") {
        return;
    }
    static WOKEN: AtomicBool = AtomicBool::new(false);
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(1)
            .build()
            .unwrap();
        let (registered_tx, registered_rx) = mpsc::channel();
        let parents = run.spawn(async move {
            let mut nap = pin!(sleep(Duration::from_millis(200)));
            let mut told = false;
            std::future::poll_fn(|cx| {
                let poll = nap.as_mut().poll(cx);
                if !told {
                    // The first poll registered the entry with the driver.
                    told = true;
                    registered_tx.send(()).unwrap();
                }
                poll
            })
            .await;
            WOKEN.store(true, Ordering::SeqCst);
        });
        registered_rx.recv().unwrap();
        // The child's own sleep ends after the parent's deadline: its driver
        // passes that deadline while the child looks.
        // (Compared with what the child inherited: on a loaded machine the
        // parent's task may have finished before the fork.)
        let child = unirun::to_process_with(safety_net(), || {
            let inherited = WOKEN.load(Ordering::SeqCst);
            unirun::block_on(sleep(Duration::from_millis(400)));
            (inherited, WOKEN.load(Ordering::SeqCst))
        });
        let (inherited, after) = child.join().expect("the child's sleep fired");
        assert_eq!(after, inherited, "the child ran the parent's task");
        parents.join().unwrap();
        assert!(WOKEN.load(Ordering::SeqCst), "the parent's sleep fired");
    });
}

#[test]
fn reset_in_a_forked_child_returns_after_the_parent_used_time() {
    if !in_child_process("reset_in_a_forked_child_returns_after_the_parent_used_time") {
        return;
    }
    watchdog_this_test(|| {
        use_time_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            unirun::reset();
            unirun::block_on(async {
                sleep(Duration::from_millis(1)).await;
                true
            })
        });
        assert!(child.join().expect("reset returned in the child"));
    });
}

/// The lane's threads were not copied by `fork`: a child's metrics say so,
/// and reading them takes no lock a parent thread may have held.
#[test]
fn metrics_read_in_a_forked_child_count_no_blocking_threads() {
    if !in_child_process("metrics_read_in_a_forked_child_count_no_blocking_threads") {
        return;
    }
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_blocking(3)
            .build()
            .unwrap();
        // A lane thread is busy at the fork: the parent counts it.
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let busy = run.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().ok();
        });
        started_rx.recv().unwrap();
        run.spawn(async {}).join().unwrap();
        assert!(run.metrics().blocking_threads() >= 1);
        let handle = run.handle();
        let child = unirun::to_process_with(safety_net(), move || {
            let m = handle.metrics();
            (
                m.blocking_threads(),
                m.blocking_idle(),
                m.blocking_cap(),
                m.spawned(),
            )
        });
        let (threads, idle, cap, spawned) = child.join().expect("metrics read in the child");
        assert_eq!(
            (threads, idle),
            (0, 0),
            "no lane thread exists in the child"
        );
        assert_eq!(cap, 3);
        assert_eq!(spawned, 2, "the task counts are the parent's, as inherited");
        release_tx.send(()).unwrap();
        busy.join().unwrap();
    });
}

#[test]
fn to_process_works_inside_a_to_process_child() {
    if !in_child_process("to_process_works_inside_a_to_process_child") {
        return;
    }
    watchdog_this_test(|| {
        use_time_in_the_parent();
        let child = unirun::to_process_with(safety_net(), || {
            let grandchild = unirun::to_process_with(safety_net(), || {
                unirun::block_on(async {
                    sleep(Duration::from_millis(1)).await;
                    std::process::id()
                })
            });
            let pid = grandchild.join().expect("the grandchild replied");
            (std::process::id(), pid)
        });
        let (child, grandchild) = child.join().expect("the child replied");
        assert_ne!(child, std::process::id());
        assert_ne!(grandchild, child);
    });
}

fn triple(x: u32) -> u32 {
    x * 3
}

/// The parent's pool workers were forked from its `unirun-forker` thread;
/// a child's pool has to fork its own, without that thread.
#[test]
fn a_process_pool_works_inside_a_to_process_child() {
    if !in_child_process("a_process_pool_works_inside_a_to_process_child") {
        return;
    }
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(1)
            .build()
            .unwrap();
        assert_eq!(run.call(triple, 2).join().unwrap(), 6);
        let child = unirun::to_process_with(safety_net(), || {
            let inner = Run::builder()
                .flavor(Flavor::Processes)
                .max_workers(1)
                .build()
                .unwrap();
            let out = inner
                .call(triple, 5)
                .join()
                .expect("the child's pool replied");
            inner.shutdown();
            out
        });
        assert_eq!(child.join().expect("the child replied"), 15);
        assert_eq!(run.call(triple, 3).join().unwrap(), 9);
    });
}

fn nap(ms: u64) -> u64 {
    unirun::block_on(sleep(Duration::from_millis(ms)));
    ms
}

/// A process pool's workers are forked children too (from the forker
/// thread, after the parent's driver started).
#[test]
fn a_sleep_fires_in_a_process_pool_worker_after_the_parent_used_time() {
    if !in_child_process("a_sleep_fires_in_a_process_pool_worker_after_the_parent_used_time") {
        return;
    }
    watchdog_this_test(|| {
        use_time_in_the_parent();
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .max_workers(1)
            .build()
            .unwrap();
        assert_eq!(
            run.call(nap, 10).join().expect("the worker's sleep fired"),
            10
        );
        assert_eq!(run.call(nap, 1).join().expect("and again"), 1);
    });
}

/// In a child the pool's threads do not exist and tasks run inline on the
/// caller: a task that wakes itself must not take a stack frame per wake.
#[test]
fn a_task_that_yields_a_million_times_completes_in_a_forked_child() {
    if !in_child_process("a_task_that_yields_a_million_times_completes_in_a_forked_child") {
        return;
    }
    watchdog_this_test(|| {
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
