//! The threads backend: worker and blocking-lane threads, block_on on workers,
//! panics, abort and detach, the blocking lane's elasticity.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use unirun::{Executor, JoinHandle};
use unirun_threads::ThreadPool;

fn pool(workers: usize, name: &str) -> ThreadPool {
    ThreadPool::builder()
        .workers(workers)
        .name(name)
        .build()
        .expect("pool")
}

#[test]
fn worker_and_blocking_threads_carry_the_pool_name() {
    let pool = pool(2, "ingest");
    let worker = pool.spawn(async { std::thread::current().name().map(String::from) });
    let blocking = pool.spawn_blocking(|| std::thread::current().name().map(String::from));
    let worker = worker.join().unwrap().unwrap();
    let blocking = blocking.join().unwrap().unwrap();
    assert!(worker == "ingest-0" || worker == "ingest-1", "{worker}");
    assert_eq!(blocking, "ingest-blocking-0");
}

#[test]
fn zero_workers_is_an_error_naming_the_setting() {
    let err = ThreadPool::builder().workers(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("workers=0"), "{err}");
    let err = ThreadPool::builder()
        .max_blocking_threads(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_blocking_threads=0"), "{err}");
}

#[test]
fn block_on_inside_a_one_worker_pool_runs_the_work_queued_behind_it() {
    let pool = pool(1, "nested");
    let handle = pool.handle();
    let outer = pool.spawn(async move {
        // The only worker blocks on a task that is queued behind it.
        let inner = handle.spawn(async { 41 });
        unirun::block_on(inner).unwrap() + 1
    });
    assert_eq!(outer.join().unwrap(), 42);
}

#[test]
fn join_inside_a_task_of_a_one_worker_pool_does_not_deadlock() {
    let pool = pool(1, "joiner");
    let handle = pool.handle();
    let outer = pool.spawn(async move {
        let chain: Vec<JoinHandle<usize>> =
            (0..50).map(|i| handle.spawn(async move { i })).collect();
        chain.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    assert_eq!(outer.join().unwrap(), (0..50).sum::<usize>());
}

#[test]
fn a_panicking_task_reports_message_and_location_and_the_worker_survives() {
    let pool = pool(1, "panics");
    let err = pool
        .spawn(async { panic!("parser exploded on line {}", 7) })
        .join()
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("parser exploded on line 7"));
    let location = err.panic_location().expect("location recorded");
    assert!(location.file().ends_with("threads.rs"), "{location}");
    assert!(
        err.to_string().contains("parser exploded on line 7"),
        "{err}"
    );
    assert!(err.to_string().contains("threads.rs:"), "{err}");
    // The single worker is still there.
    assert_eq!(pool.spawn(async { 5 }).join().unwrap(), 5);
    let payload = pool
        .spawn_blocking(|| std::panic::panic_any(17u8))
        .join()
        .unwrap_err()
        .into_panic();
    assert_eq!(payload.downcast_ref::<u8>(), Some(&17));
}

#[test]
fn abort_cancels_a_waiting_task_but_keeps_a_finished_ones_output() {
    let pool = pool(2, "abort");
    let (_tx, rx) = futures_lite_channel();
    let waiting = pool.spawn(rx);
    waiting.abort();
    let err = waiting.join().unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(err.to_string(), "task was cancelled before it finished");

    let done = pool.spawn(async { 3 });
    unirun::block_on(wait_finished(&done));
    done.abort();
    assert_eq!(done.join().unwrap(), 3);
}

#[test]
fn dropping_or_detaching_a_handle_lets_the_task_run_on() {
    let pool = pool(2, "detach");
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    drop(pool.spawn(async move { tx.send("dropped").unwrap() }));
    pool.spawn_blocking(move || tx2.send("detached").unwrap())
        .detach();
    let mut got = [rx.recv().unwrap(), rx.recv().unwrap()];
    got.sort();
    assert_eq!(got, ["detached", "dropped"]);
}

#[test]
fn the_executor_trait_works_through_dyn_and_arc() {
    let pool = pool(2, "dyn");
    let handle: Arc<dyn Executor> = Arc::new(pool.handle());
    let a = handle.spawn(async { 1 });
    let b = handle.spawn_blocking(|| 2);
    let by_ref: &dyn Executor = &*handle;
    let c = by_ref.spawn(async { 3 });
    assert_eq!(a.join().unwrap() + b.join().unwrap() + c.join().unwrap(), 6);
    // Tasks spawned through the trait object count for shutdown too.
    assert!(pool.handle().num_tasks() <= 3);
}

#[test]
fn the_blocking_lane_never_exceeds_its_cap() {
    let pool = ThreadPool::builder()
        .workers(1)
        .max_blocking_threads(2)
        .name("capped")
        .build()
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (running, peak) = (running.clone(), peak.clone());
            pool.spawn_blocking(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::yield_now();
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 2);
    assert!(pool.handle().blocking_stats().threads <= 2);
}

#[test]
fn the_blocking_lane_grows_for_closures_that_block_on_each_other() {
    // Four closures that can only finish together need four threads at once.
    let pool = ThreadPool::builder()
        .workers(1)
        .max_blocking_threads(8)
        .name("grow")
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let barrier = barrier.clone();
            pool.spawn_blocking(move || barrier.wait().is_leader())
        })
        .collect();
    let leaders = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&l| l)
        .count();
    assert_eq!(leaders, 1);
    assert!(pool.handle().blocking_stats().threads >= 4);
}

#[test]
fn idle_blocking_threads_retire_after_the_keep_alive() {
    let pool = ThreadPool::builder()
        .workers(1)
        .name("retire")
        .keep_alive(std::time::Duration::from_millis(1))
        .build()
        .unwrap();
    pool.spawn_blocking(|| ()).join().unwrap();
    let handle = pool.handle();
    common::wait_until(|| handle.blocking_stats().threads == 0);
    // A retired lane starts a thread again when work comes.
    assert_eq!(pool.spawn_blocking(|| 9).join().unwrap(), 9);
}

#[test]
fn threads_return_to_baseline_after_the_pool_is_dropped() {
    if !common::lists_threads() {
        return;
    }
    if !common::in_child_process("threads_return_to_baseline_after_the_pool_is_dropped") {
        return;
    }
    let before = unirun_platform::thread_count().expect("thread count on linux");
    {
        let pool = pool(3, "baseline");
        let blocking: Vec<_> = (0..8).map(|i| pool.spawn_blocking(move || i)).collect();
        let tasks: Vec<_> = (0..100).map(|i| pool.spawn(async move { i })).collect();
        for h in blocking {
            h.join().unwrap();
        }
        for h in tasks {
            h.join().unwrap();
        }
        assert!(unirun_platform::thread_count().unwrap() > before);
    }
    assert_eq!(unirun_platform::thread_count().unwrap(), before);
    assert_eq!(common::threads_named("baseline"), 0);
}

async fn wait_finished<T>(handle: &JoinHandle<T>) {
    std::future::poll_fn(|cx| {
        if handle.is_finished() {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

/// A minimal oneshot built on a unirun task: the receiver is a JoinHandle of a
/// task blocked on a std channel would block a worker, so use a pending future
/// woken by the sender instead.
fn futures_lite_channel() -> (Sender, Receiver) {
    let state = Arc::new(std::sync::Mutex::new((false, None::<std::task::Waker>)));
    (Sender(state.clone()), Receiver(state))
}

struct Sender(Arc<std::sync::Mutex<(bool, Option<std::task::Waker>)>>);
struct Receiver(Arc<std::sync::Mutex<(bool, Option<std::task::Waker>)>>);

impl Drop for Sender {
    fn drop(&mut self) {
        let mut state = self.0.lock().unwrap();
        state.0 = true;
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    }
}

impl std::future::Future for Receiver {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut state = self.0.lock().unwrap();
        if state.0 {
            std::task::Poll::Ready(())
        } else {
            state.1 = Some(cx.waker().clone());
            std::task::Poll::Pending
        }
    }
}

#[test]
fn spawn_in_a_task_set_lets_a_scope_wait_for_and_cancel_only_its_own_tasks() {
    let pool = pool(2, "scoped");
    let handle = pool.handle();
    let mine = Arc::new(unirun_core::TaskSet::new());
    let (_tx, rx) = futures_lite_channel();
    // Someone else's task waits forever; ours finish or are cancelled.
    let (_other_tx, other_rx) = futures_lite_channel();
    let other = handle.spawn(other_rx);
    let done = handle.spawn_in(&mine, async { 1 });
    let blocking = handle.spawn_blocking_in(&mine, || 2);
    assert_eq!(done.join().unwrap() + blocking.join().unwrap(), 3);
    assert!(mine.is_empty());
    let waiting = handle.spawn_in(&mine, rx);
    assert_eq!(mine.len(), 1);
    mine.close();
    assert!(waiting.join().unwrap_err().is_cancelled());
    assert!(mine.is_empty());
    assert!(
        !other.is_finished(),
        "closing our set leaves other tasks alone"
    );
    // A closed set cancels new members before they start.
    assert!(handle
        .spawn_blocking_in(&mine, || 3)
        .join()
        .unwrap_err()
        .is_cancelled());
    other.abort();
}

// --- deep blocking: hand-off threads are capped, a wait past the cap fails --

/// Task `depth` of a chain: spawns task `depth - 1` and waits for it in
/// `block_on` (each wait blocks a worker, whose queue goes to a hand-off
/// thread). Returns the depth reached, or the first error seen below.
/// `finished` counts every task that ended, returned or unwound.
fn nested(
    handle: unirun_threads::Handle,
    depth: usize,
    finished: Arc<AtomicUsize>,
) -> JoinHandle<Result<usize, String>> {
    struct Finished(Arc<AtomicUsize>);
    impl Drop for Finished {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let spawner = handle.clone();
    spawner.spawn(async move {
        let _finished = Finished(finished.clone());
        if depth == 0 {
            return Ok(0);
        }
        let inner = nested(handle, depth - 1, finished);
        match unirun::block_on(inner) {
            Ok(Ok(reached)) => Ok(reached + 1),
            Ok(Err(below)) => Err(below),
            Err(err) => Err(err.to_string()),
        }
    })
}

/// With `max_handoff_threads(2)` on one worker, tasks 0, 1 and 2 of a
/// chain wait on hand-off threads while task 3 waits too: its wait needs a
/// fourth thread (2 plus the worker), which the cap refuses, so task 3
/// fails with an error naming the cap, and the failure travels up.
#[test]
fn a_wait_past_the_hand_off_cap_fails_in_its_task_with_an_error_naming_the_cap() {
    common::watchdog_this_test(|| {
        let pool = ThreadPool::builder()
            .workers(1)
            .name("capped")
            .max_handoff_threads(2)
            .build()
            .unwrap();
        let finished = Arc::new(AtomicUsize::new(0));
        let err = nested(pool.handle(), 10, finished.clone())
            .join()
            .unwrap()
            .unwrap_err();
        for part in ["capped", "max_handoff_threads=2", "block_on or join", "cap"] {
            assert!(err.contains(part), "{part:?} missing from: {err}");
        }
        // The worker kept its queue and serves on; two nested waits fit
        // once the chain's blocked threads have left (each gives its place
        // under the cap back as it exits, after the chain's result is out).
        assert_eq!(pool.spawn(async { 1 }).join().unwrap(), 1);
        if common::lists_threads() {
            common::wait_until(|| {
                common::thread_names()
                    .iter()
                    .filter(|name| *name == "capped-0")
                    .count()
                    <= 1
            });
        }
        let ok = nested(pool.handle(), 2, Arc::new(AtomicUsize::new(0)));
        assert_eq!(ok.join().unwrap(), Ok(2));
        // Every task of the chain ended (those below the failure too).
        pool.shutdown();
        assert_eq!(finished.load(Ordering::SeqCst), 11);
    });
}

#[test]
fn zero_max_handoff_threads_is_an_error_naming_the_setting() {
    let err = ThreadPool::builder()
        .max_handoff_threads(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_handoff_threads=0"), "{err}");
}

/// 20,000 tasks nested in `block_on` on one worker used to cost one thread
/// per level, and near 16,000 threads the process aborted ("failed to
/// initiate panic"). Under a cap every level ends, each with its depth or
/// an error naming the cap, and the process lives. A low cap proves the
/// same as the default one without starting thousands of threads.
#[test]
fn twenty_thousand_nested_waits_on_one_worker_all_end_without_an_abort() {
    if !common::in_child_process(
        "twenty_thousand_nested_waits_on_one_worker_all_end_without_an_abort",
    ) {
        return;
    }
    common::watchdog_this_test(|| {
        const DEPTH: usize = 20_000;
        // 19,000-odd refused waits each panic: keep the output short.
        std::panic::set_hook(Box::new(|_| {}));
        unirun::install_panic_hook();
        let pool = ThreadPool::builder()
            .workers(1)
            .name("deep")
            .max_handoff_threads(64)
            .build()
            .unwrap();
        let finished = Arc::new(AtomicUsize::new(0));
        let outcome = nested(pool.handle(), DEPTH, finished.clone())
            .join()
            .unwrap();
        match outcome {
            Ok(depth) => assert_eq!(depth, DEPTH),
            Err(err) => assert!(err.contains("max_handoff_threads=64"), "{err}"),
        }
        pool.shutdown();
        assert_eq!(finished.load(Ordering::SeqCst), DEPTH + 1);
        let _ = std::panic::take_hook();
    });
}
