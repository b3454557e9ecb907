//! The guest core: a join or scope called from a thread outside the pool
//! runs on that thread, holding the pool's guest core (see
//! `fork_join::guest`). Every test runs under a watchdog, so a hang fails.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use unirun_core::{on_worker_core, Pool};
use unirun_test_support::watchdog;

mod block_on;
mod outer_scope;
mod stats;

fn start(workers: usize) -> (Pool, Vec<thread::JoinHandle<()>>) {
    let (pool, workers) = Pool::with_workers(workers);
    let threads = workers
        .into_iter()
        .map(|w| thread::spawn(move || w.run()))
        .collect();
    (pool, threads)
}

fn finish(pool: Pool, threads: Vec<thread::JoinHandle<()>>) {
    pool.shutdown();
    threads.into_iter().for_each(|t| t.join().unwrap());
}

fn fib(pool: &Pool, n: u64) -> u64 {
    if n < 10 {
        return (1..=n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0;
    }
    let (a, b) = pool.join(|| fib(pool, n - 1), || fib(pool, n - 2));
    a + b
}

#[test]
fn a_join_from_outside_runs_its_first_half_on_the_calling_thread_holding_a_core() {
    watchdog("guest join", || {
        let (pool, threads) = start(2);
        let here = thread::current().id();
        let (a, b) = pool.join(|| (thread::current().id(), on_worker_core()), || 2);
        assert_eq!(a, (here, true), "the caller ran `a` as the guest");
        assert_eq!(b, 2);
        assert!(!on_worker_core(), "the guest core went back");
        assert_eq!(fib(&pool, 25), 75_025);
        finish(pool, threads);
    });
}

#[test]
fn a_second_outside_caller_while_the_guest_core_is_taken_runs_on_a_worker() {
    watchdog("second caller", || {
        let (pool, threads) = start(2);
        let inside = Barrier::new(2);
        let (outer, inner) = thread::scope(|s| {
            let outer = s.spawn(|| {
                pool.join(
                    || {
                        let here = thread::current().id();
                        inside.wait(); // the guest core is taken now
                        inside.wait(); // the other caller is done
                        here
                    },
                    || (),
                )
                .0
            });
            inside.wait();
            let caller = thread::current().id();
            let (ran_on, _) = pool.join(|| thread::current().id(), || ());
            inside.wait();
            (outer.join().unwrap(), (caller, ran_on))
        });
        assert_ne!(outer, inner.0);
        assert_ne!(inner.1, inner.0, "the second caller's join ran on a worker");
        finish(pool, threads);
    });
}

/// A guest that blocks on a task it spawned (queued on the guest core) on a
/// one-worker pool: the task goes to the worker, which also takes the half
/// left on the guest's deque.
#[test]
fn a_guest_blocking_on_its_own_task_on_a_one_worker_pool_finishes() {
    watchdog("guest blocks", || {
        let (pool, threads) = start(1);
        let (a, b) = pool.join(
            || unirun_core::block_on(pool.spawn(async { 3 })).unwrap(),
            || 4,
        );
        assert_eq!((a, b), (3, 4));
        finish(pool, threads);
    });
}

/// Tasks a guest spawned and left queued run after it gave its core back.
#[test]
fn tasks_a_guest_leaves_queued_run_after_it_returns() {
    watchdog("guest leaves tasks", || {
        let (pool, threads) = start(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let handles = pool
            .join(
                || {
                    (0..10)
                        .map(|_| {
                            let ran = ran.clone();
                            pool.spawn(async move {
                                ran.fetch_add(1, Ordering::SeqCst);
                            })
                        })
                        .collect::<Vec<_>>()
                },
                || (),
            )
            .0;
        for handle in handles {
            unirun_core::block_on(handle).unwrap();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 10);
        finish(pool, threads);
    });
}

/// A panic in a guest's closure reaches the caller after both halves ran,
/// and the guest core is back for the next caller.
#[test]
fn a_panic_in_a_guest_closure_gives_the_core_back() {
    watchdog("guest panic", || {
        let (pool, threads) = start(2);
        let b_ran = AtomicUsize::new(0);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.join(
                || panic!("left half"),
                || {
                    b_ran.fetch_add(1, Ordering::SeqCst);
                },
            )
        }));
        assert!(caught.is_err());
        assert_eq!(b_ran.load(Ordering::SeqCst), 1);
        let here = thread::current().id();
        assert_eq!(pool.join(|| thread::current().id(), || ()).0, here);
        finish(pool, threads);
    });
}

/// Shutdown while a guest works: its tasks resolve (cancelled or run), its
/// joins finish on the calling thread, nothing hangs.
#[test]
fn a_shutdown_during_a_guest_join_leaves_nothing_waiting() {
    watchdog("guest shutdown", || {
        let (pool, threads) = start(2);
        let (task, sum) = pool
            .join(
                || {
                    pool.shutdown();
                    let task = pool.spawn(async { 1 });
                    (task, fib(&pool, 20))
                },
                || (),
            )
            .0;
        assert_eq!(sum, 6765);
        assert!(unirun_core::block_on(task).unwrap_err().is_cancelled());
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
}

/// While a guest works it counts as an awake worker, never as more
/// workers than the pool has: with the one worker busy in a task, a guest's
/// view of the pool says one busy worker.
#[test]
fn the_guest_is_not_counted_as_an_extra_busy_worker() {
    watchdog("guest counts", || {
        let (pool, threads) = start(1);
        let (started, is_started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy_task = pool.spawn(async move {
            started.send(()).unwrap();
            released.recv().unwrap();
        });
        is_started.recv().unwrap();
        let busy = pool.join(|| pool.stats().busy_workers(), || ()).0;
        assert_eq!(
            busy, 1,
            "busy_workers on a one-worker pool, its worker busy"
        );
        release.send(()).unwrap();
        unirun_core::block_on(busy_task).unwrap();
        finish(pool, threads);
    });
}
