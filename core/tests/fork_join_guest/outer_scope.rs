//! A closure spawned into a scope that outlives the guest's call (`s.spawn`
//! in a half of `Pool::join` called from outside, the scope waiting on
//! another thread) is on the guest core's deque when the join returns: the
//! guest runs it before giving the core back, so it runs even if the
//! pool's workers leave (shutdown) before anyone steals it. Found by a
//! fault-finding review; each test runs under a watchdog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use unirun_core::Pool;
use unirun_test_support::watchdog_this_test;

/// A one-worker pool whose worker is inside a task until the returned
/// sender is used.
fn start_busy() -> (Pool, thread::JoinHandle<()>, mpsc::Sender<()>) {
    let (pool, mut workers) = Pool::with_workers(1);
    let worker = workers.pop().unwrap();
    let thread = thread::spawn(move || worker.run());
    let (started, is_started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    pool.spawn(async move {
        started.send(()).unwrap();
        // Ends when the test sends (or drops) `release`.
        let _ = released.recv();
    })
    .detach();
    is_started.recv().unwrap();
    (pool, thread, release)
}

/// A closure spawned into an outer scope from inside `Pool::join` (called
/// from a plain thread) runs, and the join does not panic.
#[test]
fn guest_spawn_into_outer_scope() {
    watchdog_this_test(|| {
        let (pool, thread, release) = start_busy();
        let ran = AtomicBool::new(false);
        let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            unirun_core::scope(|outer| {
                // The second half runs after the first, popped back: what
                // it spawns stays on the guest's deque once the join returns.
                pool.join(|| (), || outer.spawn(|_| ran.store(true, Ordering::SeqCst)));
                release.send(()).unwrap();
            })
        }));
        let message = joined
            .as_ref()
            .err()
            .and_then(|p| unirun_core::panic_message(&**p).map(String::from));
        assert!(joined.is_ok(), "Pool::join panicked: {message:?}");
        assert!(ran.load(Ordering::SeqCst));
        pool.shutdown();
        thread.join().unwrap();
    });
}

/// The same, with the pool shut down while the job sits on the guest core's
/// deque in its slot: the worker leaves without looking at it, and nothing
/// else ever runs it (release build: the scope hangs; debug build: the
/// `debug_assert` panic, as above).
#[test]
fn guest_spawn_into_outer_scope_then_shutdown() {
    watchdog_this_test(|| {
        let (pool, thread, release) = start_busy();
        let ran = Arc::new(AtomicBool::new(false));
        let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            unirun_core::scope(|outer| {
                let ran = ran.clone();
                pool.join(
                    || (),
                    || outer.spawn(move |_| ran.store(true, Ordering::SeqCst)),
                );
                pool.shutdown();
                release.send(()).unwrap();
                // The worker's loop sees the flag and returns.
                thread.join().unwrap();
            })
        }));
        assert!(joined.is_ok(), "Pool::join panicked");
        assert!(ran.load(Ordering::SeqCst));
    });
}

/// The guest runs an outer scope's closure left on its deque while it
/// gives its core back; that closure blocks on a task of the pool. The
/// guest must count for nothing by then: while it still counted as the
/// one-worker pool's awake worker, the spawn's wake-up skipped the
/// sleeping worker, and the closure's `block_on` (no core in the context,
/// so no hand-off) waited for it for good.
#[test]
fn guest_returning_runs_an_outer_scope_closure_that_blocks_on_the_pool() {
    watchdog_this_test(|| {
        let (pool, threads, parked) = super::stats::start(1);
        // The worker sleeps: only a wake-up brings it back.
        while parked.load(Ordering::SeqCst) < 1 {
            thread::yield_now();
        }
        let got = std::sync::atomic::AtomicUsize::new(0);
        unirun_core::scope(|outer| {
            // `b` is popped back by the guest (the sleeping worker is not
            // woken by a fork): what it spawns stays on the guest's deque.
            pool.join(
                || (),
                || {
                    outer.spawn(|_| {
                        let value = unirun_core::block_on(pool.spawn(async { 5 })).unwrap();
                        got.store(value, Ordering::SeqCst);
                    })
                },
            );
        });
        assert_eq!(got.load(Ordering::SeqCst), 5);
        pool.shutdown();
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
}

/// A future that is ready once opened, and counts its polls.
#[derive(Clone, Default)]
struct PollGate(Arc<std::sync::Mutex<(bool, usize, Option<std::task::Waker>)>>);

impl PollGate {
    fn open(&self) {
        let waker = {
            let mut state = self.0.lock().unwrap();
            state.0 = true;
            state.2.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn polls(&self) -> usize {
        self.0.lock().unwrap().1
    }
}

impl std::future::Future for PollGate {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut state = self.0.lock().unwrap();
        state.1 += 1;
        if state.0 {
            return std::task::Poll::Ready(());
        }
        state.2 = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// The pool is shut down (its worker gone) when the guest blocks on what
/// an outer scope's closure, left on the guest's deque, will do. A worker
/// blocking there gives up its core at once, and dropping the core runs
/// the closure; the guest kept it on its deque for workers that were gone.
#[test]
fn guest_blocking_after_shutdown_runs_the_outer_scope_closure_it_waits_for() {
    watchdog_this_test(|| {
        let (pool, thread, release) = start_busy();
        let gate = PollGate::default();
        let mut thread = Some(thread);
        unirun_core::scope(|outer| {
            pool.join(
                || {
                    pool.shutdown();
                    release.send(()).unwrap();
                    // The worker's loop sees the flag and returns.
                    thread.take().unwrap().join().unwrap();
                    let opener = gate.clone();
                    // On the guest's deque, with no worker left to take it.
                    outer.spawn(move |_| opener.open());
                    unirun_core::block_on(gate.clone());
                },
                || (),
            );
        });
        assert!(
            gate.polls() >= 2,
            "the guest blocked, then saw the gate open"
        );
    });
}

/// The same with the pool shut down while the guest is blocked: the
/// worker leaving its loop must not leave the closure the guest waits for
/// on the guest's deque.
#[test]
fn guest_blocked_through_a_shutdown_gets_the_outer_scope_closure_run() {
    watchdog_this_test(|| {
        let (pool, thread, release) = start_busy();
        let gate = PollGate::default();
        thread::scope(|s| {
            let watcher = gate.clone();
            let pool = &pool;
            s.spawn(move || {
                // The second poll is `block_on`'s own, after the guest gave
                // up its core for the wait.
                while watcher.polls() < 2 {
                    thread::yield_now();
                }
                pool.shutdown();
                release.send(()).unwrap();
                thread.join().unwrap();
            });
            unirun_core::scope(|outer| {
                pool.join(
                    || {
                        let opener = gate.clone();
                        outer.spawn(move |_| opener.open());
                        unirun_core::block_on(gate.clone());
                    },
                    || (),
                );
            });
        });
        assert!(gate.polls() >= 3, "the guest saw the gate open");
    });
}
