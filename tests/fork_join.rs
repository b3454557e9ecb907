//! `join`, `scope` and the parallel maps on unirun's workers: results,
//! panics, every place a join can be called from, and async tasks keeping
//! their pace beside a long join. Every body runs under the watchdog, so a
//! hang fails instead of blocking the suite.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{message, watchdog_this_test};
use unirun::{Flavor, Run, RuntimeConfig};

/// fib by `unirun::join`, forking while `n >= cut`.
fn fib(n: u64, cut: u64) -> u64 {
    if n < cut {
        return fib_seq(n);
    }
    let (a, b) = unirun::join(|| fib(n - 1, cut), || fib(n - 2, cut));
    a + b
}

fn fib_seq(n: u64) -> u64 {
    (0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0
}

fn threads(workers: usize) -> Run {
    Run::builder()
        .flavor(Flavor::Threads)
        .max_workers(workers)
        .build()
        .unwrap()
}

#[test]
fn join_returns_both_results_from_everywhere() {
    watchdog_this_test(|| {
        let run = threads(2);
        // Off a worker: the join runs on the scope's workers.
        assert_eq!(run.join(|| fib(22, 8), || 7), (17_711, 7));
        // Inside an async task, in a blocking closure, under block_on.
        assert_eq!(run.spawn(async { fib(24, 8) }).join().unwrap(), 46_368);
        assert_eq!(run.spawn_blocking(|| fib(20, 8)).join().unwrap(), 6_765);
        assert_eq!(run.block_on(async { fib(21, 8) }), 10_946);
        // The free function off any worker: the shared default pool.
        assert_eq!(fib(23, 8), 28_657);
        let m = run.metrics();
        assert!(m.joins() > 0, "{m:?}");
        run.shutdown();
    });
}

#[test]
fn both_halves_finish_before_a_panic_resumes() {
    watchdog_this_test(|| {
        let run = threads(2);
        for left_panics in [true, false] {
            let other_ran = AtomicBool::new(false);
            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                run.join(
                    || {
                        if left_panics {
                            panic!("left failed");
                        }
                        other_ran.store(true, Ordering::SeqCst);
                    },
                    || {
                        if !left_panics {
                            panic!("right failed");
                        }
                        other_ran.store(true, Ordering::SeqCst);
                    },
                )
            }));
            let payload = caught.unwrap_err();
            let expected = if left_panics {
                "left failed"
            } else {
                "right failed"
            };
            assert_eq!(message(&*payload), expected);
            assert!(other_ran.load(Ordering::SeqCst), "the other half ran");
        }
        // Both panic: the first closure's panic wins.
        let caught = panic::catch_unwind(|| unirun::join(|| panic!("a"), || panic!("b")));
        assert_eq!(message(&*caught.unwrap_err()), "a");
        // The pool keeps serving.
        assert_eq!(run.join(|| 1, || 2), (1, 2));
        run.shutdown();
    });
}

#[test]
fn joins_nest_thirty_deep_and_recurse_on_one_worker() {
    watchdog_this_test(|| {
        fn chain(depth: usize) -> usize {
            if depth == 0 {
                return 0;
            }
            let (below, one) = unirun::join(|| chain(depth - 1), || 1);
            below + one
        }
        for workers in [1, 2] {
            let run = threads(workers);
            assert_eq!(run.spawn(async { chain(30) }).join().unwrap(), 30);
            assert_eq!(run.join(|| chain(30), || fib(25, 12)), (30, 75_025));
            // A deeper recursion than the join deque holds on one worker.
            assert_eq!(run.spawn(async { chain(600) }).join().unwrap(), 600);
            run.shutdown();
        }
    });
}

#[test]
fn a_half_that_blocks_its_worker_still_finishes() {
    watchdog_this_test(|| {
        let run = threads(1);
        let handle = run.handle();
        let total = run
            .spawn(async move {
                // `a` blocks on a task queued behind it on the only worker:
                // the core moves to a new thread, which finds `b` on it.
                let (a, b) = unirun::join(
                    || unirun::block_on(handle.spawn(async { 40 })).unwrap(),
                    || fib(15, 8),
                );
                a + b as i32
            })
            .join()
            .unwrap();
        assert_eq!(total, 40 + 610);
        run.shutdown();
    });
}

#[test]
fn joins_around_shutdown_finish() {
    watchdog_this_test(|| {
        // A join running when the scope is stopped finishes; a join on a
        // stopped scope runs on the caller.
        let run = threads(2);
        let handle = run.handle();
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let busy = run.spawn(async move {
            flag.store(true, Ordering::SeqCst);
            fib(27, 10)
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        run.shutdown_now();
        // It had started: it ran to its end (a running task is not stopped).
        assert_eq!(busy.join().unwrap(), 196_418);
        assert_eq!(handle.join(|| fib(12, 6), || 2), (144, 2));
        assert_eq!(handle.par_map(0..4u32, |i| i + 1), [1, 2, 3, 4]);
    });
}

#[test]
fn async_tasks_keep_making_progress_while_a_long_join_runs() {
    watchdog_this_test(|| {
        let run = threads(2);
        let round_trips = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // A ping-pong between two tasks over channels.
        let (ping_tx, ping_rx) = async_channel::bounded::<()>(1);
        let (pong_tx, pong_rx) = async_channel::bounded::<()>(1);
        let ponger = run.spawn(async move {
            while ping_rx.recv().await.is_ok() {
                if pong_tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        let (trips, stopping) = (round_trips.clone(), stop.clone());
        let pinger = run.spawn(async move {
            while !stopping.load(Ordering::SeqCst) {
                ping_tx.send(()).await.unwrap();
                pong_rx.recv().await.unwrap();
                trips.fetch_add(1, Ordering::SeqCst);
            }
        });
        // The ping-pong is running before the join starts.
        while round_trips.load(Ordering::SeqCst) < 10 {
            std::thread::yield_now();
        }
        // In the middle of fib(35), one leaf waits for 100 more round trips:
        // if the join starved the async tasks, this would hang.
        let waited = AtomicBool::new(false);
        fn fib_waiting(n: u64, waited: &AtomicBool, trips: &AtomicUsize) -> u64 {
            if n < 20 {
                if n == 19 && !waited.swap(true, Ordering::SeqCst) {
                    let seen = trips.load(Ordering::SeqCst);
                    while trips.load(Ordering::SeqCst) < seen + 100 {
                        std::thread::yield_now();
                    }
                }
                return fib_seq(n);
            }
            let (a, b) = unirun::join(
                || fib_waiting(n - 1, waited, trips),
                || fib_waiting(n - 2, waited, trips),
            );
            a + b
        }
        let before = round_trips.load(Ordering::SeqCst);
        let value = run.join(|| fib_waiting(35, &waited, &round_trips), || ()).0;
        assert_eq!(value, 9_227_465);
        assert!(waited.load(Ordering::SeqCst));
        assert!(round_trips.load(Ordering::SeqCst) >= before + 100);
        stop.store(true, Ordering::SeqCst);
        pinger.join().unwrap();
        ponger.join().unwrap();
        run.shutdown();
    });
}

#[test]
fn scope_spawns_borrow_and_wait_for_all() {
    watchdog_this_test(|| {
        let run = threads(2);
        let mut slots = vec![0u64; 64];
        let base = 3u64;
        run.scope(|s| {
            for (i, slot) in slots.iter_mut().enumerate() {
                let base = &base;
                s.spawn(move |s| {
                    *slot = fib(12 + (i as u64 % 6), 8) + *base;
                    // Nested spawns into the same scope.
                    s.spawn(|_| {
                        let _ = fib(10, 6);
                    });
                });
            }
        });
        for (i, slot) in slots.iter().enumerate() {
            assert_eq!(*slot, fib_seq(12 + (i as u64 % 6)) + 3);
        }
        // Inside a task too, and the free function.
        let sum = run
            .spawn(async {
                let counter = AtomicUsize::new(0);
                unirun::scope(|s| {
                    for i in 0..10 {
                        let counter = &counter;
                        s.spawn(move |_| {
                            counter.fetch_add(i, Ordering::SeqCst);
                        });
                    }
                });
                counter.into_inner()
            })
            .join()
            .unwrap();
        assert_eq!(sum, 45);
        run.shutdown();
    });
}

#[test]
fn scope_resumes_a_panic_after_every_closure_finished() {
    watchdog_this_test(|| {
        let run = threads(2);
        let finished = AtomicUsize::new(0);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            run.scope(|s| {
                for i in 0..8 {
                    let finished = &finished;
                    s.spawn(move |_| {
                        if i == 5 {
                            panic!("closure {i} failed");
                        }
                        finished.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        }));
        assert_eq!(message(&*caught.unwrap_err()), "closure 5 failed");
        assert_eq!(finished.load(Ordering::SeqCst), 7);
        // The body's own panic wins over the closures'.
        let caught = panic::catch_unwind(|| {
            unirun::scope(|s| {
                s.spawn(|_| panic!("spawned"));
                panic!("body");
            })
        });
        assert_eq!(message(&*caught.unwrap_err()), "body");
        run.shutdown();
    });
}

#[test]
fn join_on_a_one_worker_scope_and_in_gil_mode() {
    watchdog_this_test(|| {
        let one = threads(1);
        assert_eq!(one.join(|| fib(20, 6), || fib(19, 6)), (6_765, 4_181));
        assert_eq!(one.spawn(async { fib(22, 6) }).join().unwrap(), 17_711);
        one.shutdown();
        // A Gil scope runs the halves on the caller, one after the other.
        let gil = Run::builder()
            .flavor(Flavor::Threads)
            .config(RuntimeConfig::default().thread_mode(unirun::ThreadMode::Gil))
            .build()
            .unwrap();
        let caller = std::thread::current().id();
        let (a, b) = gil.join(
            || std::thread::current().id(),
            || std::thread::current().id(),
        );
        assert_eq!((a, b), (caller, caller));
        gil.shutdown();
    });
}

fn gil_scope(workers: usize) -> Run {
    Run::builder()
        .flavor(Flavor::Threads)
        .max_workers(workers)
        .config(RuntimeConfig::default().thread_mode(unirun::ThreadMode::Gil))
        .build()
        .unwrap()
}

/// The free `join`, `scope` and `par_map` inside a task of a `Gil` scope
/// run their closures on the task's thread, one after the other (they never
/// fork, so the pool counts no join), and a half that waits for another
/// task of the scope gets it run: the wait lets go of the gil.
#[test]
fn fork_join_inside_a_gil_task_runs_in_turn_and_lets_siblings_in() {
    watchdog_this_test(|| {
        let run = gil_scope(2);
        let handle = run.handle().clone();
        let out = run
            .spawn(async move {
                let here = std::thread::current().id();
                let (a, b) = unirun::join(
                    || std::thread::current().id(),
                    || {
                        let seven = handle.spawn(async { 7u32 }).join().unwrap();
                        (std::thread::current().id(), seven)
                    },
                );
                let mut spawned = [None; 2];
                unirun::scope(|s| {
                    for slot in spawned.iter_mut() {
                        s.spawn(move |_| *slot = Some(std::thread::current().id()));
                    }
                });
                let ids = unirun::par_map(0..64u32, |_| std::thread::current().id());
                let all_here = a == here
                    && b.0 == here
                    && spawned.iter().all(|id| *id == Some(here))
                    && ids.iter().all(|id| *id == here);
                (all_here, b.1)
            })
            .join()
            .unwrap();
        assert_eq!(out, (true, 7));
        let m = run.metrics();
        assert_eq!(m.joins(), 0, "a Gil task's join forked: {m:?}");
        run.shutdown();
    });
}

/// The name of the executor "here" (`Handle::try_current`), or `none`.
fn here() -> String {
    unirun::Handle::try_current().map_or_else(|| "none".to_string(), |h| h.name().to_string())
}

/// Inside a scope's task, the closures of `unirun::join` and `par_map`
/// run inside the scope wherever they run: one taken by another worker too
/// (`a` gives `b` a while to be taken; whether it was changes only how
/// much the test sees, not what it expects).
#[test]
fn fork_join_closures_called_in_a_scopes_task_run_inside_the_scope() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .name("forking-here")
            .max_workers(2)
            .build()
            .unwrap();
        let seen = run
            .spawn(async {
                let mut seen = std::collections::BTreeSet::new();
                for _ in 0..20 {
                    let (taken_tx, taken) = std::sync::mpsc::channel();
                    let (a, b) = unirun::join(
                        move || {
                            let _ = taken.recv_timeout(std::time::Duration::from_millis(20));
                            here()
                        },
                        move || {
                            let _ = taken_tx.send(());
                            here()
                        },
                    );
                    seen.insert(a);
                    seen.insert(b);
                }
                seen.extend(unirun::par_map(0..256u32, |_| here()));
                seen
            })
            .join()
            .unwrap();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["forking-here"]);
    });
}

/// From a scope's `block_on` on a thread of the caller's, `unirun::join`
/// and `par_map` run on the scope's workers, not on the shared default:
/// their closures are inside the scope, and what they spawn "here" runs on
/// the scope's threads.
#[test]
fn fork_join_in_a_scopes_block_on_runs_on_the_scope() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .name("joining-here")
            .max_workers(2)
            .build()
            .unwrap();
        let (a, b, spawned, mapped) = run.block_on(async {
            let (a, b) = unirun::join(here, here);
            let (spawned, _) = unirun::join(
                || {
                    unirun::spawn(async { std::thread::current().name().map(String::from) })
                        .join()
                        .unwrap()
                        .unwrap()
                },
                || (),
            );
            let mapped: std::collections::BTreeSet<String> =
                unirun::par_map(0..64u32, |_| here()).into_iter().collect();
            (a, b, spawned, mapped)
        });
        assert_eq!((a.as_str(), b.as_str()), ("joining-here", "joining-here"));
        assert!(spawned.starts_with("joining-here-"), "{spawned}");
        assert_eq!(mapped.into_iter().collect::<Vec<_>>(), ["joining-here"]);
        assert!(run.metrics().spawned() >= 1, "the spawn was the scope's");
    });
}

/// A join or scope called from a plain thread runs closures on that thread
/// (the pool's guest) and on the workers: wherever they run, they see the
/// pool's reactor, as the workers' tasks do, so tokio's I/O and timers work
/// in them.
#[cfg(feature = "tokio-backend")]
#[test]
fn join_and_scope_closures_from_a_plain_thread_see_the_pools_reactor() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(2)
            .build()
            .unwrap();
        let has_reactor = || tokio::runtime::Handle::try_current().is_ok();
        assert!(!has_reactor(), "the test thread is in no tokio context");
        assert_eq!(run.join(has_reactor, has_reactor), (true, true));
        let in_scope = run.scope(|s| {
            s.spawn(|_| assert!(has_reactor()));
            has_reactor()
        });
        assert!(in_scope);
        assert!(!has_reactor(), "the context ends with the call");
        // A tokio socket registers with the reactor in context (it panics
        // "there is no reactor running" without one).
        let register = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            tokio::net::TcpListener::from_std(listener).is_ok()
        };
        assert_eq!(run.join(register, register), (true, true));
        run.shutdown();
    });
}

/// `par_map` in a task of a tokio scope (which has no unirun workers) runs
/// on the shared default's workers, not one after the other on the tokio
/// thread, and each item still sees the scope as current.
#[cfg(feature = "tokio-backend")]
#[test]
fn par_map_in_a_tokio_scopes_task_runs_on_unirun_workers_inside_the_scope() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Tokio)
            .name("tokio-scope")
            .build()
            .unwrap();
        let seen = run
            .spawn(async {
                unirun::par_map(0..8u32, |_| {
                    let thread = std::thread::current().name().unwrap_or("").to_string();
                    let here = unirun::Handle::try_current().map(|h| h.name().to_string());
                    (thread, here)
                })
            })
            .join()
            .unwrap();
        run.shutdown();
        for (thread, here) in seen {
            assert!(thread.starts_with("unirun"), "an item ran on {thread:?}");
            assert_eq!(here.as_deref(), Some("tokio-scope"));
        }
    });
}

/// The closures of a `par_map` in a task of a one-worker tokio scope wait
/// for tasks of that scope: the task's wait gives the runtime's worker
/// up (`block_in_place`), so those tasks run and the map ends.
#[cfg(feature = "tokio-backend")]
#[test]
fn par_map_in_a_one_worker_tokio_scopes_task_can_wait_for_the_scopes_tasks() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Tokio)
            .max_workers(1)
            .build()
            .unwrap();
        let out = run
            .spawn(async {
                unirun::par_map(0..4u32, |i| {
                    unirun::block_on(unirun::spawn(async move { i * 2 })).unwrap()
                })
            })
            .join()
            .unwrap();
        run.shutdown();
        assert_eq!(out, [0, 2, 4, 6]);
    });
}

/// In a task of a tokio scope, the closures of `unirun::join` and
/// `par_map` run on the shared default's workers, yet inside the scope's
/// tokio context, as its tasks are: a `tokio::spawn` in them runs on the
/// scope's runtime (not on unirun's own reactor, `unirun-io`).
#[cfg(feature = "tokio-backend")]
#[test]
fn fork_join_closures_in_a_tokio_scopes_task_see_the_scopes_runtime() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Tokio)
            .name("ctx-scope")
            .build()
            .unwrap();
        let (ran_on, spawned_on) = run
            .spawn(async {
                let spawn_here = || {
                    let thread = std::thread::current().name().map(String::from);
                    let task =
                        tokio::spawn(async { std::thread::current().name().map(String::from) });
                    (thread, task)
                };
                let (a, b) = unirun::join(spawn_here, spawn_here);
                let mapped = unirun::par_map(0..8u32, |_| spawn_here());
                let (mut ran_on, mut spawned_on) = (Vec::new(), Vec::new());
                for (thread, task) in [a, b].into_iter().chain(mapped) {
                    ran_on.push(thread);
                    spawned_on.push(task.await.unwrap());
                }
                (ran_on, spawned_on)
            })
            .join()
            .unwrap();
        run.shutdown();
        // On the shared default's workers, or on the calling thread (the
        // scope's, inside `block_in_place`) as the default pool's guest.
        for thread in ran_on {
            let thread = thread.unwrap_or_default();
            assert!(
                thread.starts_with("unirun-") || thread.starts_with("ctx-scope-"),
                "a closure ran on {thread:?}"
            );
        }
        for thread in spawned_on {
            let thread = thread.unwrap_or_default();
            assert!(
                thread.starts_with("ctx-scope-"),
                "a tokio::spawn ran on {thread:?}"
            );
        }
    });
}

/// In a tokio `LocalSet` (where tokio refuses `block_in_place`), a join
/// inside a scope without unirun workers runs its closures on the calling
/// thread in turn, and completes, instead of panicking with tokio's
/// message.
#[cfg(feature = "tokio-backend")]
#[test]
fn join_in_a_local_set_inside_a_tokio_scope_runs_the_closures_in_turn() {
    watchdog_this_test(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let (flavor, out) = local.block_on(&rt, async {
            // Borrows the ambient runtime: a scope without unirun workers.
            let run = Run::builder().name("local-scope").build().unwrap();
            let flavor = run.trace().resolved();
            let out = tokio::task::spawn_local(async move {
                let here = std::thread::current().id();
                let out = run.block_on(async {
                    unirun::join(
                        || (std::thread::current().id(), 1),
                        || (std::thread::current().id(), 2),
                    )
                });
                run.shutdown_async().await;
                (here, out)
            })
            .await
            .unwrap();
            (flavor, out)
        });
        assert_eq!(flavor, Flavor::Tokio);
        let (here, ((a_on, a), (b_on, b))) = out;
        assert_eq!((a, b), (1, 2));
        assert_eq!((a_on, b_on), (here, here), "the closures ran on the caller");
    });
}

/// A tokio scope's own `join` and `par_map`, called from a thread outside
/// the scope, run their closures on that thread inside the scope's
/// runtime, as its tasks are: a `tokio::spawn` in them runs there.
#[cfg(feature = "tokio-backend")]
#[test]
fn a_tokio_scopes_join_and_par_map_run_their_closures_in_its_runtime() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Tokio)
            .name("ctx-handle")
            .build()
            .unwrap();
        let spawn_here = || tokio::spawn(async { std::thread::current().name().map(String::from) });
        let (a, b) = run.join(spawn_here, spawn_here);
        let mapped = run.handle().par_map(0..4u32, |_| spawn_here());
        let spawned_on = run.block_on(async {
            let mut spawned_on = Vec::new();
            for task in [a, b].into_iter().chain(mapped) {
                spawned_on.push(task.await.unwrap().unwrap_or_default());
            }
            spawned_on
        });
        run.shutdown();
        for thread in spawned_on {
            assert!(
                thread.starts_with("ctx-handle-"),
                "a tokio::spawn ran on {thread:?}"
            );
        }
    });
}

/// A tokio scope's `block_on` called in a thread pool's task polls first
/// on that pool's worker, so a join (or map) in it forks there. A `b` (an
/// item) another thread runs (here for sure: the first half waits for the
/// second in `block_on`, which hands the worker's core on) is inside the
/// tokio scope there, as the caller is, and inside its runtime too: a
/// `tokio::spawn` in it runs on the scope's runtime, not on unirun's own
/// reactor (`unirun-io`), which the pool's workers are in.
#[cfg(feature = "tokio-backend")]
#[test]
fn a_moved_half_of_a_join_in_a_tokio_scopes_block_on_on_a_worker_sees_its_runtime() {
    type Spawned = tokio::task::JoinHandle<Option<String>>;
    fn spawn_here() -> Spawned {
        tokio::spawn(async { std::thread::current().name().map(String::from) })
    }
    /// Where the tasks that `fork` spawned ran, and whether its second
    /// half left the calling thread; `fork` runs in a task of `pool`, inside
    /// `scope.block_on` (each in its own task: the first half's wait gives
    /// the worker's core away).
    fn forked_in_block_on(
        pool: &Run,
        scope: &Arc<Run>,
        fork: fn(std::thread::ThreadId) -> [(Spawned, bool); 2],
    ) -> (Vec<String>, bool) {
        let scope = scope.clone();
        pool.spawn(async move {
            scope.block_on(async {
                let halves = fork(std::thread::current().id());
                let moved = halves[1].1;
                let mut ran_on = Vec::new();
                for (task, _) in halves {
                    ran_on.push(task.await.unwrap().unwrap_or_default());
                }
                (ran_on, moved)
            })
        })
        .join()
        .unwrap()
    }
    watchdog_this_test(|| {
        let pool = threads(2);
        let scope = Arc::new(
            Run::builder()
                .flavor(Flavor::Tokio)
                .name("moved-ctx")
                .max_workers(1)
                .build()
                .unwrap(),
        );
        let joined = forked_in_block_on(&pool, &scope, |caller| {
            let (ran, wait) = tokio::sync::oneshot::channel();
            let (a, b) = unirun::join(
                move || {
                    unirun_core::block_on(wait).unwrap();
                    (spawn_here(), false)
                },
                move || {
                    let out = (spawn_here(), std::thread::current().id() != caller);
                    ran.send(()).unwrap();
                    out
                },
            );
            [a, b]
        });
        // Two items: one join, item 1 its second half.
        let mapped = forked_in_block_on(&pool, &scope, |caller| {
            let item_ran = tokio::sync::Notify::new();
            let mut items = unirun::par_map(0..2u32, |i| {
                if i == 0 {
                    unirun_core::block_on(item_ran.notified());
                }
                let out = (spawn_here(), std::thread::current().id() != caller);
                if i == 1 {
                    item_ran.notify_one();
                }
                out
            });
            let item1 = items.pop().unwrap();
            [items.pop().unwrap(), item1]
        });
        pool.shutdown();
        Arc::into_inner(scope).unwrap().shutdown();
        for (what, (ran_on, moved)) in [("join", joined), ("par_map", mapped)] {
            assert!(moved, "{what}: the second half ran on the caller's thread");
            for thread in ran_on {
                assert!(
                    thread.starts_with("moved-ctx-"),
                    "{what}: a tokio::spawn ran on {thread:?}"
                );
            }
        }
    });
}

/// Inside `unirun_core::sequentially` on a worker of a pool that is not
/// unirun's shared default, `unirun::join` runs both closures here, in
/// turn, as `unirun_core::join` does there, and does not start the shared
/// default on the way (in a fresh process, where nothing else started it).
#[test]
fn join_inside_sequentially_on_a_worker_runs_here_without_the_default() {
    if !common::in_child_process(
        "join_inside_sequentially_on_a_worker_runs_here_without_the_default",
    ) {
        return;
    }
    if !common::lists_threads() {
        return;
    }
    watchdog_this_test(|| {
        let (pool, workers) = unirun_core::Pool::with_workers(2);
        let threads: Vec<_> = workers
            .into_iter()
            .map(|w| std::thread::spawn(move || w.run()))
            .collect();
        let same = pool
            .spawn(async {
                unirun_core::sequentially(|| {
                    let here = std::thread::current().id();
                    let (a, b) = unirun::join(
                        || std::thread::current().id(),
                        || std::thread::current().id(),
                    );
                    a == here && b == here
                })
            })
            .join()
            .unwrap();
        pool.shutdown();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(same, "a closure left the calling thread");
        assert_eq!(
            common::threads_named("unirun-"),
            0,
            "the join started the shared default: {:?}",
            common::thread_names()
        );
    });
}
