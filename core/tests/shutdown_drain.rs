//! Stopping a pool while one of its tasks runs (issue 8, defect 4): a task
//! that then joins a task queued behind it on its own worker (in the LIFO
//! slot or the local queue) must see it cancelled, not wait forever, and the
//! worker must return from `run`.

use std::sync::mpsc;

use unirun_core::Pool;
use unirun_test_support::watchdog;

/// The running task spawns `queued` tasks on its own worker (the last lands
/// in the LIFO slot, the others in the local queue), lets the pool stop, then
/// joins the one at `join_index`.
fn stop_then_join_own_queue(queued: usize, join_index: usize, what: &'static str) {
    watchdog(what, move || {
        let (pool, workers) = Pool::with_workers(1);
        let threads: Vec<_> = workers
            .into_iter()
            .map(|w| std::thread::spawn(move || w.run()))
            .collect();
        let (ready, is_ready) = mpsc::channel();
        let (stopped, is_stopped) = mpsc::channel::<()>();
        let inner = pool.clone();
        let task = pool.spawn(async move {
            let mut children: Vec<_> = (0..queued).map(|i| inner.spawn(async move { i })).collect();
            ready.send(()).unwrap();
            // The pool stops while this task runs.
            is_stopped.recv().unwrap();
            let child = children.swap_remove(join_index);
            let joined = child.join();
            let rest: Vec<_> = children.into_iter().map(|c| c.join()).collect();
            (joined, rest)
        });
        is_ready.recv().unwrap();
        pool.shutdown();
        stopped.send(()).unwrap();

        let (joined, rest) = task.join().expect("the running task finishes");
        assert!(joined.unwrap_err().is_cancelled(), "{what}");
        assert!(rest.into_iter().all(|r| r.unwrap_err().is_cancelled()));
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
}

#[test]
fn stop_cancels_task_in_own_lifo_slot() {
    stop_then_join_own_queue(1, 0, "LIFO slot");
}

#[test]
fn stop_cancels_task_in_own_local_queue() {
    stop_then_join_own_queue(3, 0, "local queue");
}

#[test]
fn stop_cancels_own_queue_and_lifo_slot_together() {
    stop_then_join_own_queue(4, 3, "LIFO slot behind a local queue");
}
