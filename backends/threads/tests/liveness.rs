//! Liveness of blocking inside tasks: a task that blocks its worker in
//! `block_on`/`join` hands the worker's queues to a new thread, so it never
//! buries other waiters under its frame (issue 8, defect 1) and never grows
//! one thread's stack per waiter. Each test runs its body under a watchdog:
//! a hang becomes a failure naming the scenario.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use unirun_threads::ThreadPool;

mod common;

use common::{threads_named, wait_until, watchdog, Gate};

/// Task A blocks on gate 1 and then opens gate 2; task B blocks on gate 2.
/// Both are blocked before gate 1 opens. With B nested on top of A's frame,
/// A could never resume: a deadlock.
fn two_blocked_tasks(workers: usize, name: &'static str) {
    watchdog(name, move || {
        let pool = ThreadPool::builder()
            .workers(workers)
            .name(name)
            .build()
            .unwrap();
        let (gate1, gate2) = (Gate::default(), Gate::default());
        let (entered, entries) = mpsc::channel();

        let (g1, g2, tx) = (gate1.clone(), gate2.clone(), entered.clone());
        let a = pool.spawn(async move {
            tx.send("a").unwrap();
            unirun_core::block_on(g1.wait());
            g2.open();
            "a done"
        });
        assert_eq!(entries.recv().unwrap(), "a");

        let g2 = gate2.clone();
        let b = pool.spawn(async move {
            entered.send("b").unwrap();
            unirun_core::block_on(g2.wait());
            "b done"
        });
        assert_eq!(entries.recv().unwrap(), "b");

        gate1.open();
        assert_eq!(b.join().unwrap(), "b done");
        assert_eq!(a.join().unwrap(), "a done");
        pool.shutdown();
        // The hand-off threads were joined with the workers. A joined
        // thread can stay listed in /proc for a moment after `join`
        // returns, so wait for the listing (a thread really left behind
        // never leaves it: the watchdog turns that into a failure).
        wait_until(|| threads_named(name) == 0);
    });
}

#[test]
fn blocked_tasks_do_not_bury_each_other_one_worker() {
    two_blocked_tasks(1, "live-gate1");
}

#[test]
fn blocked_tasks_do_not_bury_each_other_two_workers() {
    two_blocked_tasks(2, "live-gate2");
}

/// `JoinHandle::join` inside a task blocks the same way `block_on` does.
#[test]
fn join_inside_task_waits_for_task_queued_behind_it() {
    watchdog("join queued behind", || {
        let pool = ThreadPool::builder()
            .workers(1)
            .name("live-join")
            .build()
            .unwrap();
        let handle = pool.handle();
        let outer = pool.spawn(async move {
            // Queued on this worker's LIFO slot, behind the running task.
            let inner = handle.spawn(async { 41 });
            inner.join().unwrap() + 1
        });
        assert_eq!(outer.join().unwrap(), 42);
    });
}

/// Many tasks block at once, each on its own gate, then all gates open in
/// reverse order. Nested on one stack this overflowed it (and waited in
/// LIFO order); with the hand-off each blocked task has its own thread, and
/// the thread count goes back to the baseline at shutdown.
fn many_blocked_tasks(workers: usize, name: &'static str) {
    const TASKS: usize = 2_000;
    watchdog(name, move || {
        let pool = ThreadPool::builder()
            .workers(workers)
            .name(name)
            // Small stacks: a nested wait per task would overflow quickly.
            .stack_size(256 << 10)
            .build()
            .unwrap();
        let blocked = Arc::new(AtomicUsize::new(0));
        let (all_blocked, wait_all) = mpsc::channel();
        let all_blocked = Arc::new(Mutex::new(all_blocked));
        let gates: Vec<Gate> = (0..TASKS).map(|_| Gate::default()).collect();
        let tasks: Vec<_> = gates
            .iter()
            .enumerate()
            .map(|(i, gate)| {
                let (gate, blocked, all_blocked) =
                    (gate.clone(), blocked.clone(), all_blocked.clone());
                pool.spawn(async move {
                    if blocked.fetch_add(1, Ordering::SeqCst) + 1 == TASKS {
                        all_blocked.lock().unwrap().send(()).unwrap();
                    }
                    unirun_core::block_on(gate.wait());
                    i
                })
            })
            .collect();
        wait_all.recv().unwrap();
        for gate in gates.iter().rev() {
            gate.open();
        }
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.join().unwrap(), i);
        }
        pool.shutdown();
        // As above: a thread left behind fails through the watchdog.
        wait_until(|| threads_named(name) == 0);
    });
}

#[test]
fn many_blocked_tasks_one_worker() {
    many_blocked_tasks(1, "live-many1");
}

#[test]
fn many_blocked_tasks_two_workers() {
    many_blocked_tasks(2, "live-many2");
}

/// A task pushes work to its own local queue (two spawns: the first moves
/// from the LIFO slot to the queue) and then blocks its thread outside
/// `block_on`, waiting for that work. The other worker is asleep; only the
/// wake-up on the local push path can get the work run (issue 8, defect 3;
/// the memory-order side of it is the loom model
/// `idle_local_push_vs_last_searcher`).
#[test]
fn local_push_wakes_a_sleeper_while_owner_blocks() {
    watchdog("local push wake-up", || {
        let pool = ThreadPool::builder()
            .workers(2)
            .name("live-local")
            .build()
            .unwrap();
        for _ in 0..200 {
            let handle = pool.handle();
            let task = pool.spawn(async move {
                let (tx, rx) = mpsc::channel();
                let first = handle.spawn(async move { tx.send(()).unwrap() });
                let second = handle.spawn(async {});
                // Synchronous wait: this worker cannot run `first` itself.
                rx.recv().unwrap();
                (first, second)
            });
            let (first, second) = task.join().unwrap();
            first.join().unwrap();
            second.join().unwrap();
        }
    });
}

/// A spawner that fails makes the blocking call panic with a clear message
/// instead of hanging, and the worker keeps serving.
#[test]
fn blocking_on_a_worker_without_threads_fails_loudly() {
    watchdog("spawn failure", || {
        let (pool, workers) = unirun_core::Pool::with_workers(1);
        pool.set_thread_spawner(|_, _| Err(std::io::Error::other("no threads today")));
        let threads: Vec<_> = workers
            .into_iter()
            .map(|w| std::thread::spawn(move || w.run()))
            .collect();
        let gate = Gate::default();
        let waiting = gate.clone();
        let blocked = pool.spawn(async move { unirun_core::block_on(waiting.wait()) });
        let err = blocked.join().unwrap_err();
        let message = format!("{err}");
        assert!(err.is_panic(), "{message}");
        assert!(message.contains("no threads today"), "{message}");
        // The worker still runs tasks.
        assert_eq!(pool.spawn(async { 5 }).join().unwrap(), 5);
        gate.open();
        pool.shutdown();
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
}
