//! `Run::metrics` and `Handle::metrics`: exact counts after known workloads
//! on every backend. Each test owns its scope (never the shared default),
//! so the counts are its own under cargo's parallel test threads; waits
//! are on channels and gates, each test body under a watchdog.

mod common;

use std::sync::mpsc;

use unirun::{Flavor, Metrics, Run};
use unirun_test_support::watchdog;

fn threads(workers: usize) -> Run {
    Run::builder()
        .flavor(Flavor::Threads)
        .max_workers(workers)
        .max_blocking(4)
        .build()
        .unwrap()
}

/// The invariant every finished scope satisfies.
fn assert_settled(m: &Metrics) {
    assert_eq!(
        m.spawned(),
        m.completed() + m.panicked() + m.cancelled(),
        "{m:?}"
    );
    assert_eq!(m.live(), 0, "{m:?}");
}

/// A known mix on `run`: 50 tasks complete, 7 panic, 5 are aborted while
/// waiting, 4 blocking closures complete and 2 panic.
fn mixed_workload(run: &Run) {
    let ok: Vec<_> = (0..50u64).map(|i| run.spawn(async move { i })).collect();
    let boom: Vec<_> = (0..7)
        .map(|i| run.spawn(async move { panic!("task {i} failed") }))
        .collect();
    let stuck: Vec<_> = (0..5)
        .map(|_| run.spawn(std::future::pending::<()>()))
        .collect();
    let blocking: Vec<_> = (0..4).map(|i| run.spawn_blocking(move || i * 2)).collect();
    let blocking_boom: Vec<_> = (0..2)
        .map(|_| run.spawn_blocking(|| -> u8 { panic!("closure failed") }))
        .collect();
    for (i, task) in ok.into_iter().enumerate() {
        assert_eq!(task.join().unwrap(), i as u64);
    }
    for task in boom {
        assert!(task.join().unwrap_err().is_panic());
    }
    for task in stuck {
        task.abort();
        assert!(task.join().unwrap_err().is_cancelled());
    }
    for (i, task) in blocking.into_iter().enumerate() {
        assert_eq!(task.join().unwrap(), i * 2);
    }
    for task in blocking_boom {
        assert!(task.join().unwrap_err().is_panic());
    }
}

fn assert_mixed_counts(m: &Metrics) {
    assert_eq!(m.spawned(), 68, "{m:?}");
    assert_eq!(m.completed(), 54, "{m:?}");
    assert_eq!(m.panicked(), 9, "{m:?}");
    assert_eq!(m.cancelled(), 5, "{m:?}");
    assert_settled(m);
}

#[test]
fn threads_counts_completions_panics_aborts_and_blocking_exactly() {
    watchdog("threads mixed", || {
        let run = threads(2);
        mixed_workload(&run);
        let m = run.metrics();
        assert_mixed_counts(&m);
        assert_eq!(m.workers(), 2);
        assert_eq!(m.blocking_cap(), 4);
        assert!(m.blocking_threads() >= 1, "{m:?}");
        // The handle reports the same scope.
        let h = run.handle().metrics();
        assert_eq!((h.spawned(), h.completed()), (m.spawned(), m.completed()));
        run.shutdown();
    });
}

#[test]
fn tasks_spawned_from_inside_tasks_are_counted_on_their_worker() {
    watchdog("nested spawns", || {
        let run = threads(2);
        let handle = run.handle();
        // Spawned from a worker: counted on that worker's shard.
        let outer = run.spawn(async move {
            let inner: Vec<_> = (0..100u64)
                .map(|i| handle.spawn(async move { i }))
                .collect();
            let mut sum = 0;
            for task in inner {
                sum += task.await.unwrap();
            }
            sum
        });
        assert_eq!(outer.join().unwrap(), 4950);
        let m = run.metrics();
        assert_eq!((m.spawned(), m.completed()), (101, 101), "{m:?}");
        assert_settled(&m);
        run.shutdown();
    });
}

#[test]
fn live_counts_tasks_until_they_end() {
    watchdog("live", || {
        let run = threads(2);
        let (tx, rx) = async_channel::bounded::<()>(1);
        let waiting: Vec<_> = (0..6)
            .map(|_| {
                let rx = rx.clone();
                run.spawn(async move { rx.recv().await.is_err() })
            })
            .collect();
        let m = run.metrics();
        assert_eq!((m.spawned(), m.live()), (6, 6), "{m:?}");
        drop((tx, rx)); // closes the channel: every waiter returns
        for task in waiting {
            assert!(task.join().unwrap());
        }
        let m = run.metrics();
        assert_eq!(m.completed(), 6);
        assert_settled(&m);
        run.shutdown();
    });
}

#[test]
fn shutdown_now_counts_every_unfinished_task_as_cancelled() {
    watchdog("shutdown_now", || {
        let run = threads(2);
        let done: Vec<_> = (0..10).map(|i| run.spawn(async move { i })).collect();
        for task in done {
            task.join().unwrap();
        }
        let stuck: Vec<_> = (0..8)
            .map(|_| run.spawn(std::future::pending::<()>()))
            .collect();
        let handle = run.handle();
        run.shutdown_now();
        for task in stuck {
            assert!(task.join().unwrap_err().is_cancelled());
        }
        let m = handle.metrics();
        assert_eq!(m.spawned(), 18, "{m:?}");
        assert_eq!(m.completed(), 10, "{m:?}");
        assert_eq!(m.cancelled(), 8, "{m:?}");
        assert_settled(&m);
        // Spawned after the shutdown: counted, and cancelled at once.
        assert!(handle.spawn(async {}).join().unwrap_err().is_cancelled());
        let m = handle.metrics();
        assert_eq!((m.spawned(), m.cancelled()), (19, 9), "{m:?}");
        assert_settled(&m);
    });
}

#[test]
fn queued_counts_tasks_behind_a_busy_worker() {
    watchdog("queued", || {
        let run = threads(1);
        let (started_tx, started) = mpsc::channel();
        let (gate, gate_rx) = mpsc::channel::<()>();
        // Holds the only worker (a plain blocking wait keeps its queues).
        let holder = run.spawn(async move {
            started_tx.send(()).unwrap();
            gate_rx.recv().unwrap();
        });
        started.recv().unwrap();
        let behind: Vec<_> = (0..5).map(|i| run.spawn(async move { i })).collect();
        let m = run.metrics();
        assert_eq!(m.queued(), 5, "{m:?}");
        assert_eq!(m.live(), 6, "{m:?}");
        gate.send(()).unwrap();
        holder.join().unwrap();
        for (i, task) in behind.into_iter().enumerate() {
            assert_eq!(task.join().unwrap(), i);
        }
        let m = run.metrics();
        assert_eq!(m.queued(), 0, "{m:?}");
        assert_settled(&m);
        run.shutdown();
    });
}

#[test]
fn an_idle_worker_steals_from_a_blocked_one_and_parks_are_counted() {
    watchdog("steals", || {
        let run = threads(2);
        let handle = run.handle();
        let (first_tx, first) = mpsc::channel::<()>();
        let outer = run.spawn(async move {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let tx = first_tx.clone();
                    handle.spawn(async move {
                        let _ = tx.send(());
                    })
                })
                .collect();
            // This worker stays blocked until one of its queued tasks ran:
            // only the other worker, stealing, can run it.
            first.recv().unwrap();
            tasks
        });
        for task in outer.join().unwrap() {
            task.join().unwrap();
        }
        let m = run.metrics();
        assert!(m.steals() >= 1, "{m:?}");
        // Idle workers go to sleep; each time is counted.
        common::wait_until(|| run.metrics().parks() >= 1);
        assert_settled(&run.metrics());
        run.shutdown();
    });
}

#[test]
fn blocking_lane_threads_idle_and_queue() {
    watchdog("blocking lane", || {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(1)
            .max_blocking(2)
            .build()
            .unwrap();
        let (started_tx, started) = mpsc::channel();
        let (gate_tx, gate) = async_channel::unbounded::<()>();
        let busy: Vec<_> = (0..3)
            .map(|_| {
                let (started_tx, gate) = (started_tx.clone(), gate.clone());
                run.spawn_blocking(move || {
                    started_tx.send(()).unwrap();
                    unirun::block_on(gate.recv()).unwrap();
                })
            })
            .collect();
        started.recv().unwrap();
        started.recv().unwrap();
        // Two closures hold both lane threads; the third waits its turn.
        let m = run.metrics();
        assert_eq!(m.blocking_cap(), 2, "{m:?}");
        assert_eq!(m.blocking_threads(), 2, "{m:?}");
        assert_eq!(m.blocking_idle(), 0, "{m:?}");
        assert_eq!(m.blocking_queued(), 1, "{m:?}");
        assert_eq!(m.live(), 3, "{m:?}");
        for _ in 0..3 {
            gate_tx.send_blocking(()).unwrap();
        }
        for task in busy {
            task.join().unwrap();
        }
        let m = run.metrics();
        assert_eq!((m.completed(), m.blocking_queued()), (3, 0), "{m:?}");
        assert_settled(&m);
        run.shutdown();
    });
}

#[test]
fn nested_scopes_count_their_own_tasks() {
    watchdog("nested", || {
        let run = threads(2);
        let (outer_m, inner_m) = run.block_on(async {
            let inner = Run::builder().name("inner").build().unwrap();
            for task in (0..3)
                .map(|i| inner.spawn(async move { i }))
                .collect::<Vec<_>>()
            {
                task.await.unwrap();
            }
            let inner_m = inner.metrics();
            inner.shutdown();
            (run.metrics(), inner_m)
        });
        assert_eq!(inner_m.spawned(), 3, "{inner_m:?}");
        assert_eq!(outer_m.spawned(), 0, "{outer_m:?}");
        run.shutdown();
    });
}

#[test]
fn metrics_serialize_as_a_flat_object() {
    let run = threads(1);
    run.spawn(async {}).join().unwrap();
    let json = serde_json::to_value(run.metrics()).unwrap();
    let object = json.as_object().expect("an object");
    for key in [
        "workers",
        "busy_workers",
        "spawned",
        "completed",
        "panicked",
        "cancelled",
        "live",
        "queued",
        "steals",
        "parks",
        "blocking_threads",
        "blocking_idle",
        "blocking_cap",
        "blocking_queued",
        "process_calls",
        "process_crashes",
        "process_timeouts",
    ] {
        assert!(object[key].is_u64(), "{key} in {json}");
    }
    assert_eq!(object["spawned"], 1);
    assert_eq!(object["workers"], 1);
    run.shutdown();
}

#[cfg(feature = "tokio-backend")]
#[test]
fn tokio_scope_counts_what_unirun_spawns() {
    watchdog("tokio", || {
        let run = Run::builder()
            .flavor(Flavor::Tokio)
            .max_workers(2)
            .max_blocking(4)
            .build()
            .unwrap();
        assert_eq!(run.trace().resolved(), Flavor::Tokio);
        mixed_workload(&run);
        let m = run.metrics();
        assert_eq!(m.workers(), 2);
        assert_eq!(m.blocking_cap(), 4);
        assert_eq!((m.queued(), m.steals(), m.parks()), (0, 0, 0));
        // An aborted task's handle resolves at once; tokio drops its future
        // later. The graceful shutdown waits until every task has ended.
        let handle = run.handle();
        run.shutdown();
        assert_mixed_counts(&handle.metrics());
    });
}

#[cfg(feature = "tokio-backend")]
#[test]
fn tokio_scope_shutdown_now_cancels_and_counts() {
    watchdog("tokio shutdown_now", || {
        let run = Run::builder()
            .flavor(Flavor::Tokio)
            .max_workers(1)
            .build()
            .unwrap();
        let stuck: Vec<_> = (0..4)
            .map(|_| run.spawn(std::future::pending::<()>()))
            .collect();
        let handle = run.handle();
        run.shutdown_now();
        for task in stuck {
            assert!(task.join().unwrap_err().is_cancelled());
        }
        let m = handle.metrics();
        assert_eq!((m.spawned(), m.cancelled()), (4, 4), "{m:?}");
        assert_settled(&m);
    });
}

#[cfg(feature = "smol-backend")]
#[test]
fn smol_scope_counts_tasks_and_its_blocking_lane() {
    watchdog("smol", || {
        let run = Run::builder()
            .flavor(Flavor::Smol)
            .max_workers(2)
            .max_blocking(4)
            .build()
            .unwrap();
        assert_eq!(run.trace().resolved(), Flavor::Smol);
        mixed_workload(&run);
        let m = run.metrics();
        assert_eq!(m.workers(), 2);
        assert_eq!(m.blocking_cap(), 4);
        assert!(m.blocking_threads() >= 1, "{m:?}");
        // An aborted task's handle resolves at once; smol drops its future
        // later. The graceful shutdown waits until every task has ended.
        let handle = run.handle();
        run.shutdown();
        assert_mixed_counts(&handle.metrics());
    });
}

#[cfg(all(unix, feature = "process-backend"))]
mod processes {
    use super::*;
    use unirun::process::ProcessOptions;

    fn double(x: u64) -> u64 {
        x * 2
    }

    fn park_forever(_: ()) -> u64 {
        loop {
            std::thread::park();
        }
    }

    #[test]
    fn process_calls_and_crashes_are_counted() {
        watchdog("process calls", || {
            let run = Run::builder()
                .flavor(Flavor::Processes)
                .max_workers(2)
                .build()
                .unwrap();
            assert_eq!(run.call(double, 21).join().unwrap(), 42);
            let err = run.call(common::segfault, ()).join().unwrap_err();
            assert!(err.is_crash(), "{err}");
            let err = run
                .call(|x: u8| -> u8 { panic!("bad {x}") }, 7)
                .join()
                .unwrap_err();
            assert!(err.is_panic(), "{err}");
            let m = run.metrics();
            assert_eq!(m.process_calls(), 3, "{m:?}");
            assert_eq!(m.process_crashes(), 1, "{m:?}");
            assert_eq!(m.process_timeouts(), 0, "{m:?}");
            // Each call is one of the scope's tasks; both failures count
            // with the panics.
            assert_eq!(
                (m.spawned(), m.completed(), m.panicked()),
                (3, 1, 2),
                "{m:?}"
            );
            assert_settled(&m);
            run.shutdown();
        });
    }

    #[test]
    fn process_timeouts_are_counted_as_cancelled_calls() {
        watchdog("process timeouts", || {
            let run = Run::builder()
                .flavor(Flavor::Processes)
                .max_workers(1)
                .process_options(
                    ProcessOptions::default().timeout(std::time::Duration::from_millis(200)),
                )
                .build()
                .unwrap();
            let err = run.call(park_forever, ()).join().unwrap_err();
            assert!(err.is_timeout(), "{err}");
            let m = run.metrics();
            assert_eq!((m.process_calls(), m.process_timeouts()), (1, 1), "{m:?}");
            assert_eq!(m.process_crashes(), 0, "{m:?}");
            assert_eq!((m.spawned(), m.cancelled()), (1, 1), "{m:?}");
            assert_settled(&m);
            run.shutdown();
        });
    }

    #[test]
    fn a_threads_scope_reports_no_process_calls() {
        let run = threads(1);
        let m = run.metrics();
        assert_eq!(
            (m.process_calls(), m.process_crashes(), m.process_timeouts()),
            (0, 0, 0)
        );
        run.shutdown();
    }
}
