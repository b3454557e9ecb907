//! Shutdown of a ThreadPool: waiting, cancelling, timing out, and being
//! dropped from its own threads. No handle may hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use unirun_threads::ThreadPool;

mod common;

use common::{threads_named, wait_until, watchdog, Gate};

#[test]
fn shutdown_waits_for_tasks_that_are_still_waiting() {
    let pool = ThreadPool::builder()
        .workers(2)
        .name("waits")
        .build()
        .unwrap();
    let gate = Gate::default();
    let finished = Arc::new(AtomicBool::new(false));
    let task = {
        let (gate, finished) = (gate.clone(), finished.clone());
        pool.spawn(async move {
            gate.wait().await;
            finished.store(true, Ordering::SeqCst);
        })
    };
    let (tx, rx) = mpsc::channel();
    let finished_seen = finished.clone();
    let closer = std::thread::spawn(move || {
        pool.shutdown();
        tx.send(finished_seen.load(Ordering::SeqCst)).unwrap();
    });
    // The task cannot have finished: the gate is closed, so shutdown is still waiting.
    assert!(rx.try_recv().is_err());
    gate.open();
    assert!(
        rx.recv().unwrap(),
        "shutdown returned before the task finished"
    );
    closer.join().unwrap();
    assert!(unirun_core::block_on(task).is_ok());
}

#[test]
fn shutdown_now_cancels_waiting_and_queued_tasks() {
    let pool = ThreadPool::builder()
        .workers(1)
        .max_blocking_threads(1)
        .name("now")
        .build()
        .unwrap();
    let gate = Gate::default();
    let waiting: Vec<_> = (0..100).map(|_| pool.spawn(gate.clone().wait())).collect();
    // One blocking closure occupies the single lane thread; the rest queue behind it.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    let running = pool.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        "ran"
    });
    started_rx.recv().unwrap();
    let queued: Vec<_> = (0..50).map(|i| pool.spawn_blocking(move || i)).collect();
    let handle = pool.handle();
    let closer = std::thread::spawn(move || pool.shutdown_now());
    wait_until(|| handle.is_shutdown());
    release_tx.send(()).unwrap();
    closer.join().unwrap();
    for task in waiting {
        assert!(unirun_core::block_on(task).unwrap_err().is_cancelled());
    }
    for task in queued {
        assert!(unirun_core::block_on(task).unwrap_err().is_cancelled());
    }
    // A closure that had started ran to completion; its output is kept.
    assert_eq!(unirun_core::block_on(running).unwrap(), "ran");
}

#[test]
fn shutdown_timeout_cancels_what_did_not_finish_in_time() {
    let pool = ThreadPool::builder()
        .workers(1)
        .name("timeout")
        .build()
        .unwrap();
    let never = pool.spawn(std::future::pending::<()>());
    let quick = pool.spawn(async { 1 });
    assert_eq!(unirun_core::block_on(quick).unwrap(), 1);
    assert!(!pool.shutdown_timeout(Duration::from_millis(10)));
    assert!(unirun_core::block_on(never).unwrap_err().is_cancelled());
}

#[test]
fn shutdown_timeout_reports_success_when_everything_finished() {
    let pool = ThreadPool::builder()
        .workers(1)
        .name("intime")
        .build()
        .unwrap();
    let task = pool.spawn(async { 2 });
    assert!(pool.shutdown_timeout(Duration::from_secs(3600)));
    assert_eq!(unirun_core::block_on(task).unwrap(), 2);
}

#[test]
fn spawning_after_shutdown_is_cancelled_not_lost() {
    let pool = ThreadPool::builder()
        .workers(1)
        .name("after")
        .build()
        .unwrap();
    let handle = pool.handle();
    pool.shutdown();
    assert!(handle.is_shutdown());
    assert!(unirun_core::block_on(handle.spawn(async { 1 }))
        .unwrap_err()
        .is_cancelled());
    assert!(unirun_core::block_on(handle.spawn_blocking(|| 1))
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn a_pool_dropped_by_its_own_task_tears_down_off_the_worker() {
    let pool = ThreadPool::builder()
        .workers(1)
        .name("selfdrop")
        .build()
        .unwrap();
    let slot = Arc::new(Mutex::new(None::<ThreadPool>));
    let parked = Gate::default();
    let (tx, rx) = mpsc::channel();
    let task = {
        let (slot, parked) = (slot.clone(), parked.clone());
        pool.spawn(async move {
            parked.wait().await;
            let pool = slot
                .lock()
                .unwrap()
                .take()
                .expect("pool parked in the slot");
            drop(pool); // must neither block this worker nor panic
            tx.send("dropped").unwrap();
        })
    };
    *slot.lock().unwrap() = Some(pool);
    drop(slot);
    parked.open();
    assert_eq!(rx.recv().unwrap(), "dropped");
    assert!(unirun_core::block_on(task).is_ok());
    wait_until(|| threads_named("selfdrop") == 0);
}

#[test]
fn a_pool_dropped_on_its_blocking_lane_tears_down_too() {
    let pool = ThreadPool::builder()
        .workers(1)
        .name("lanedrop")
        .build()
        .unwrap();
    let slot = Arc::new(Mutex::new(None::<ThreadPool>));
    let inner = slot.clone();
    let task = pool.spawn_blocking(move || loop {
        if let Some(pool) = inner.lock().unwrap().take() {
            drop(pool);
            return "dropped";
        }
        std::thread::yield_now();
    });
    *slot.lock().unwrap() = Some(pool);
    assert_eq!(unirun_core::block_on(task).unwrap(), "dropped");
    wait_until(|| threads_named("lanedrop") == 0);
}

#[test]
fn every_handle_resolves_when_the_pool_goes_away() {
    let pool = ThreadPool::builder()
        .workers(2)
        .name("resolve")
        .build()
        .unwrap();
    let gate = Gate::default();
    let pending: Vec<_> = (0..1_000)
        .map(|_| pool.spawn(gate.clone().wait()))
        .collect();
    let done: Vec<_> = (0..1_000).map(|i| pool.spawn(async move { i })).collect();
    let expected: i32 = (0..1_000).sum();
    let got: i32 = done.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(got, expected);
    pool.shutdown_now();
    for handle in pending {
        assert!(handle.join().unwrap_err().is_cancelled());
    }
}

#[test]
fn shutdown_timeout_inside_its_own_task_returns_false_at_once() {
    // The calling task is a member of the pool's set: waiting for the set
    // here would wait the whole hour. It returns at once, and a helper
    // thread finishes the shutdown once the task has returned.
    watchdog("shutdown_timeout from the pool's own task", || {
        let pool = ThreadPool::builder()
            .workers(1)
            .name("owntimeout")
            .build()
            .unwrap();
        let (hand_over, slot) = mpsc::channel::<ThreadPool>();
        let task = pool.spawn(async move {
            let pool = slot.recv().unwrap();
            pool.shutdown_timeout(Duration::from_secs(3600))
        });
        hand_over.send(pool).unwrap();
        assert!(!unirun_core::block_on(task).unwrap());
        wait_until(|| threads_named("owntimeout") == 0);
    });
}

#[test]
fn shutdown_timeout_inside_its_own_blocking_closure_returns_false_at_once() {
    watchdog(
        "shutdown_timeout from the pool's own blocking closure",
        || {
            let pool = ThreadPool::builder()
                .workers(1)
                .name("lanetimeout")
                .build()
                .unwrap();
            let (hand_over, slot) = mpsc::channel::<ThreadPool>();
            let closure = pool.spawn_blocking(move || {
                let pool = slot.recv().unwrap();
                pool.shutdown_timeout(Duration::from_secs(3600))
            });
            hand_over.send(pool).unwrap();
            assert!(!unirun_core::block_on(closure).unwrap());
            wait_until(|| threads_named("lanetimeout") == 0);
        },
    );
}

#[test]
fn shutdown_timeout_does_not_wait_for_a_task_stuck_in_its_poll() {
    // A task whose poll blocks holds its worker: the worker cannot be
    // joined, so it is left to exit when the poll returns.
    watchdog("shutdown_timeout with a worker stuck in a poll", || {
        let pool = ThreadPool::builder()
            .workers(1)
            .name("stuckpoll")
            .build()
            .unwrap();
        let (release, gate) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel();
        let stuck = pool.spawn(async move {
            started_tx.send(()).unwrap();
            gate.recv().unwrap(); // blocks the worker, as sync code in async does
            "done"
        });
        started.recv().unwrap();
        assert!(!pool.shutdown_timeout(Duration::from_millis(50)));
        release.send(()).unwrap();
        // It was already running: its output is kept.
        assert_eq!(unirun_core::block_on(stuck).unwrap(), "done");
        wait_until(|| threads_named("stuckpoll") == 0);
    });
}
