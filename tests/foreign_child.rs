//! Scopes on foreign executors (smol, tokio) at two seams: in a forked
//! child, whose copy of the parent's runtime has no threads, and where a
//! task's output has a destructor that panics after its handle was
//! dropped. Each test re-runs this binary as a fresh process (the tests
//! fork, or may abort the process when they fail), runs its body under the
//! watchdog, and gives every forked child a timeout as a safety net: a
//! child that hangs is killed and its handle says "timed out".
#![cfg(unix)]

mod common;

use common::{in_child_process, watchdog_this_test};

#[cfg(feature = "process-backend")]
mod forked {
    use std::time::Duration;

    use unirun::process::ProcessOptions;
    use unirun::{Flavor, Run};

    use super::{in_child_process, watchdog_this_test};

    /// Only a safety net against a hang; no test depends on its length.
    fn safety_net() -> ProcessOptions {
        ProcessOptions::default().timeout(Duration::from_secs(30))
    }

    /// A scope whose runtime threads have run work in the parent.
    fn warm_scope(flavor: Flavor) -> Run {
        let run = Run::builder()
            .flavor(flavor)
            .max_workers(1)
            .build()
            .unwrap();
        assert_eq!(run.spawn(async { 1 }).join().unwrap(), 1);
        assert_eq!(run.spawn_blocking(|| 2).join().unwrap(), 2);
        run
    }

    /// In the child: a task, a blocking closure and a task that sleeps on
    /// unirun's timer all finish, then the scope (the child's copy of the
    /// parent's runtime) is dropped there, which must neither hang nor
    /// panic.
    fn a_scope_runs_work_and_drops_in_a_forked_child(flavor: Flavor) {
        watchdog_this_test(move || {
            let run = warm_scope(flavor);
            let child = unirun::to_process_with(safety_net(), move || {
                let task = run.spawn(async { 6 * 7 });
                let blocking = run.spawn_blocking(|| 1);
                let sleeper = run.spawn(async {
                    unirun::time::sleep(Duration::from_millis(1)).await;
                    2
                });
                let sum = task.join().unwrap() + blocking.join().unwrap() + sleeper.join().unwrap();
                drop(run);
                sum
            });
            assert_eq!(
                child
                    .join()
                    .expect("the child ran its work and dropped the scope"),
                45
            );
        });
    }

    #[cfg(feature = "smol-backend")]
    #[test]
    fn a_smol_scope_runs_work_and_drops_cleanly_in_a_forked_child() {
        if in_child_process("forked::a_smol_scope_runs_work_and_drops_cleanly_in_a_forked_child") {
            a_scope_runs_work_and_drops_in_a_forked_child(Flavor::Smol);
        }
    }

    #[cfg(feature = "tokio-backend")]
    #[test]
    fn a_tokio_scope_runs_work_and_drops_cleanly_in_a_forked_child() {
        if in_child_process("forked::a_tokio_scope_runs_work_and_drops_cleanly_in_a_forked_child") {
            a_scope_runs_work_and_drops_in_a_forked_child(Flavor::Tokio);
        }
    }

    /// A tokio scope's task in the child uses tokio's own timer: it runs
    /// inside the child's own unirun-io, not the parent's runtime (whose
    /// driver thread the child does not have).
    #[cfg(feature = "tokio-backend")]
    #[test]
    fn a_tokio_scope_task_can_use_tokio_timers_in_a_forked_child() {
        if !in_child_process("forked::a_tokio_scope_task_can_use_tokio_timers_in_a_forked_child") {
            return;
        }
        watchdog_this_test(|| {
            let run = warm_scope(Flavor::Tokio);
            let child = unirun::to_process_with(safety_net(), move || {
                let task = run.spawn(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    7
                });
                let out = task.join().unwrap();
                // The parent still owns its runtime; the child's copy is
                // dropped here too.
                drop(run);
                out
            });
            assert_eq!(child.join().expect("tokio's timer fired in the child"), 7);
        });
    }

    /// The smol backend used directly: an inherited pool runs spawns
    /// inline and its shutdown returns at once instead of joining threads
    /// the child does not have.
    #[cfg(feature = "smol-backend")]
    #[test]
    fn an_inherited_smol_pool_spawns_inline_and_shuts_down_in_a_forked_child() {
        if !in_child_process(
            "forked::an_inherited_smol_pool_spawns_inline_and_shuts_down_in_a_forked_child",
        ) {
            return;
        }
        watchdog_this_test(|| {
            let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
            assert!(!pool.handle().is_inherited());
            assert_eq!(pool.handle().spawn(async { 1 }).join().unwrap(), 1);
            let child = unirun::to_process_with(safety_net(), move || {
                let handle = pool.handle();
                let inherited = handle.is_inherited();
                let task = handle.spawn(async { 3 });
                // Ran inline, in `spawn`: nothing else would run it.
                let finished = task.is_finished();
                // Through the object-safe trait too (a core-allocated task).
                let ex: &dyn unirun_core::Executor = &handle;
                let out = task.join().unwrap()
                    + ex.spawn(async { 4 }).join().unwrap()
                    + ex.spawn_blocking(|| 8).join().unwrap();
                let joined_all = pool.shutdown_timeout(Duration::from_secs(1));
                (inherited, finished, out, joined_all)
            });
            let (inherited, finished, out, joined_all) = child
                .join()
                .expect("the child's pool ran the task and shut down");
            assert!(inherited, "the child sees the pool as inherited");
            assert!(finished, "the task ran inline, in `spawn`");
            assert_eq!(out, 15);
            assert!(
                !joined_all,
                "an inherited pool's threads are not ours to join"
            );
        });
    }
}

/// The tokio backend used directly: an inherited runtime runs spawns and
/// blocking closures inline, through its own handle and the object-safe
/// trait, and its shutdown returns at once instead of waiting for workers
/// the child does not have.
#[cfg(all(feature = "process-backend", feature = "tokio-backend"))]
#[test]
fn an_inherited_tokio_runtime_spawns_inline_and_shuts_down_in_a_forked_child() {
    use std::time::Duration;

    if !in_child_process(
        "an_inherited_tokio_runtime_spawns_inline_and_shuts_down_in_a_forked_child",
    ) {
        return;
    }
    watchdog_this_test(|| {
        let runtime = unirun_tokio::TokioRuntime::builder()
            .workers(1)
            .build()
            .unwrap();
        assert!(!runtime.handle().is_inherited());
        assert_eq!(runtime.handle().spawn(async { 1 }).join().unwrap(), 1);
        let options = unirun::process::ProcessOptions::default().timeout(Duration::from_secs(30));
        let child = unirun::to_process_with(options, move || {
            let handle = runtime.handle();
            let ex: &dyn unirun_core::Executor = &handle;
            let out = handle.spawn(async { 1 }).join().unwrap()
                + handle.spawn_blocking(|| 2).join().unwrap()
                + ex.spawn(async { 4 }).join().unwrap()
                + ex.spawn_blocking(|| 8).join().unwrap();
            let joined_all = runtime.shutdown_timeout(Duration::from_secs(1));
            (handle.is_inherited(), out, joined_all)
        });
        let (inherited, out, joined_all) = child
            .join()
            .expect("the child's runtime ran the work and shut down");
        assert!(inherited, "the child sees the runtime as inherited");
        assert_eq!(out, 15);
        assert!(
            !joined_all,
            "an inherited runtime's threads are not ours to join"
        );
    });
}

/// A task's output whose destructor panics, spawned with its handle dropped
/// before the task finishes: the runtime drops the output where the task
/// finishes. That must not abort the process (as it would inside
/// async-task's abort-on-panic guard): the panic is contained and the
/// runtime keeps serving.
mod output_drop {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    use unirun::{Flavor, Run};

    use super::common::wait_until;
    use super::{in_child_process, watchdog_this_test};

    static DROPPED: AtomicBool = AtomicBool::new(false);

    /// Panics when dropped (after saying so).
    struct PanicsOnDrop;

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            DROPPED.store(true, Ordering::SeqCst);
            panic!("the output's destructor panics");
        }
    }

    fn a_panicking_output_of_a_dropped_handle_is_contained(flavor: Flavor) {
        watchdog_this_test(move || {
            let run = Run::builder()
                .flavor(flavor)
                .max_workers(1)
                .build()
                .unwrap();
            let (release, gate) = mpsc::channel::<()>();
            let task = run.spawn_blocking(move || {
                let _ = gate.recv();
            });
            let detached = run.spawn(async move {
                // Finishes only after its handle is gone (below).
                task.await.unwrap();
                PanicsOnDrop
            });
            drop(detached);
            release.send(()).unwrap();
            // Ends: the task finishes once released, and its output is then
            // dropped (there is no handle to take it).
            wait_until(|| DROPPED.load(Ordering::SeqCst));
            // The process lives on, and so does the runtime.
            assert_eq!(run.spawn(async { 5 }).join().unwrap(), 5);
        });
    }

    #[cfg(feature = "smol-backend")]
    #[test]
    fn a_smol_task_output_whose_destructor_panics_never_aborts_the_process() {
        if in_child_process(
            "output_drop::a_smol_task_output_whose_destructor_panics_never_aborts_the_process",
        ) {
            a_panicking_output_of_a_dropped_handle_is_contained(Flavor::Smol);
        }
    }

    #[cfg(feature = "tokio-backend")]
    #[test]
    fn a_tokio_task_output_whose_destructor_panics_never_aborts_the_process() {
        if in_child_process(
            "output_drop::a_tokio_task_output_whose_destructor_panics_never_aborts_the_process",
        ) {
            a_panicking_output_of_a_dropped_handle_is_contained(Flavor::Tokio);
        }
    }

    #[test]
    fn a_threads_task_output_whose_destructor_panics_never_aborts_the_process() {
        if in_child_process(
            "output_drop::a_threads_task_output_whose_destructor_panics_never_aborts_the_process",
        ) {
            a_panicking_output_of_a_dropped_handle_is_contained(Flavor::Threads);
        }
    }
}
