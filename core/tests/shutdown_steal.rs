//! `Pool::shutdown` racing a steal: a batch that one worker is moving out of
//! another's queue is neither in the victim's queue nor in the thief's
//! when shutdown looks, and the rest of the victim's queue is locked by the
//! thief's claim. Every task queued at shutdown must still be cancelled (or
//! run) without waiting for a busy worker to come back.
//!
//! The loom model `shutdown_vs_steal_in_transit` (core/src/loom_tests.rs)
//! proves the protocol; this test runs it on real threads many times.

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use unirun_core::{JoinHandle, Pool};
use unirun_test_support::watchdog_for;

/// The shared watchdog's limit for these bodies: each sweeps many shutdowns.
const LIMIT: Duration = Duration::from_secs(120);

/// Tasks queued on the busy worker: more than a steal takes at once, fewer
/// than its queue holds (so none overflow to the injector).
const QUEUED: usize = 200;

/// One round: a task fills its own worker's queue and then blocks that
/// worker's thread (synchronously, so its queue is not handed on) until the
/// test releases it; the other worker steals from that queue while the pool
/// shuts down. Every queued task's handle must resolve while the busy
/// worker is still blocked.
fn round() {
    let (pool, workers) = Pool::with_workers(2);
    let threads: Vec<_> = workers
        .into_iter()
        .map(|worker| thread::spawn(move || worker.run()))
        .collect();

    let (queued_tx, queued_rx) = mpsc::channel::<(Vec<JoinHandle<()>>, JoinHandle<()>)>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let inner = pool.clone();
    let busy = pool.spawn(async move {
        let queued: Vec<_> = (0..QUEUED).map(|_| inner.spawn(async {})).collect();
        // The last spawn sits in this worker's LIFO slot, which only this
        // worker drops: it is not one of the tasks checked before release.
        let in_lifo = inner.spawn(async {});
        queued_tx.send((queued, in_lifo)).unwrap();
        // Blocks this worker's thread until the test is done checking.
        release_rx.recv().unwrap();
    });

    let (queued, in_lifo) = queued_rx.recv().unwrap();
    // The other worker is stealing from the busy one's queue right now.
    pool.shutdown();
    for handle in queued {
        // Run before the shutdown, or cancelled by it: either way resolved
        // while the busy worker is still blocked (it is released below).
        match handle.join() {
            Ok(()) => {}
            Err(err) => assert!(err.is_cancelled(), "{err:?}"),
        }
    }
    release_tx.send(()).unwrap();
    busy.join().unwrap();
    let _ = in_lifo.join();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn shutdown_resolves_every_queued_task_while_another_worker_steals_them() {
    watchdog_for("shutdown vs steal", LIMIT, || {
        for _ in 0..300 {
            round();
        }
    });
}

/// A gate that blocks threads (not tasks) until it is opened.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
    }

    fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }
}

/// Tasks queued on the busy worker in the second scenario: a steal takes
/// half of them.
const BLOCKING: usize = 16;

/// One round of the thief's side: the queued tasks block their thread on a
/// gate when they run, so the other worker, once it runs one task of the
/// batch it stole, is busy too and never drains its own queue. The busy
/// task stops the pool after a varying head start (spin iterations, only
/// to spread where the stop lands relative to the steal; nothing waits on
/// it). While the gate is still shut every queued task but the one the
/// other worker may be running must resolve, cancelled.
fn round_with_busy_thief(head_start: u32) {
    let (pool, workers) = Pool::with_workers(2);
    let threads: Vec<_> = workers
        .into_iter()
        .map(|worker| thread::spawn(move || worker.run()))
        .collect();

    let gate = Gate::default();
    let (queued_tx, queued_rx) = mpsc::channel::<(Vec<JoinHandle<()>>, JoinHandle<()>)>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (inner, tasks_gate) = (pool.clone(), gate.clone());
    let busy = pool.spawn(async move {
        let queued: Vec<_> = (0..BLOCKING)
            .map(|_| {
                let gate = tasks_gate.clone();
                inner.spawn(async move { gate.wait() })
            })
            .collect();
        let in_lifo = inner.spawn(async {});
        for _ in 0..head_start {
            std::hint::spin_loop();
        }
        inner.shutdown();
        queued_tx.send((queued, in_lifo)).unwrap();
        release_rx.recv().unwrap();
    });

    let (queued, in_lifo) = queued_rx.recv().unwrap();
    let mut open: Vec<Option<JoinHandle<()>>> = queued.into_iter().map(Some).collect();
    // Ends once all but one resolved: each resolves when shutdown or the
    // thief cancels it, and only a task that runs (at most one, on the
    // thief) waits for the gate.
    unirun_core::block_on(std::future::poll_fn(|cx| {
        for slot in open.iter_mut() {
            if let Some(handle) = slot {
                if let Poll::Ready(result) = Pin::new(handle).poll(cx) {
                    let err = result.expect_err("no queued task finishes before the gate opens");
                    assert!(err.is_cancelled(), "{err:?}");
                    *slot = None;
                }
            }
        }
        if open.iter().flatten().count() <= 1 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    gate.open();
    release_tx.send(()).unwrap();
    busy.join().unwrap();
    for handle in open.into_iter().flatten() {
        let _ = handle.join();
    }
    let _ = in_lifo.join();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn shutdown_resolves_a_stolen_batch_while_its_thief_is_busy_with_one_of_it() {
    watchdog_for("shutdown vs busy thief", LIMIT, || {
        for round in 0..2000 {
            round_with_busy_thief(round % 4000);
        }
    });
}
