//! The lifecycle (docs/design.md, "Lifecycle"): shutdown waits, bounded
//! shutdowns cancel, no wait ever blocks an async worker, threads are
//! joined, panics do not kill workers, reset tears the shared pool down.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use unirun::{Run, RuntimeConfig, ThreadMode};

/// A gate tasks can wait on, sync or async, opened once from anywhere.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<GateState>, std::sync::Condvar)>);

/// Whether the gate is open, and the async waiters to wake when it opens.
type GateState = (bool, Vec<Waker>);

impl Gate {
    fn open(&self) {
        let wakers = {
            let mut state = self.0 .0.lock().unwrap();
            state.0 = true;
            std::mem::take(&mut state.1)
        };
        self.0 .1.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    fn wait_blocking(&self) {
        let mut state = self.0 .0.lock().unwrap();
        while !state.0 {
            state = self.0 .1.wait(state).unwrap();
        }
    }

    fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }

    /// Opens the gate from another thread once `flag` is set, i.e. once the
    /// caller is about to block in a shutdown.
    fn open_when(&self, flag: &Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
        let (gate, flag) = (self.clone(), flag.clone());
        std::thread::spawn(move || {
            common::wait_until(|| flag.load(Ordering::SeqCst));
            gate.open();
        })
    }
}

struct GateWait(Gate);

impl Future for GateWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0 .0 .0.lock().unwrap();
        if state.0 {
            Poll::Ready(())
        } else {
            state.1.push(cx.waker().clone());
            Poll::Pending
        }
    }
}

fn named(name: &str) -> Run {
    Run::builder().name(name).build().unwrap()
}

#[test]
fn shutdown_waits_for_async_and_blocking_work() {
    let run = named("waits");
    let gate = Gate::default();
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (g, d) = (gate.clone(), done.clone());
        run.spawn(async move {
            g.wait().await;
            d.fetch_add(1, Ordering::SeqCst);
        })
        .detach();
        let (g, d) = (gate.clone(), done.clone());
        run.spawn_blocking(move || {
            g.wait_blocking();
            d.fetch_add(1, Ordering::SeqCst);
        })
        .detach();
    }
    let shutting_down = Arc::new(AtomicBool::new(false));
    let opener = gate.open_when(&shutting_down);
    shutting_down.store(true, Ordering::SeqCst);
    run.shutdown();
    assert_eq!(done.load(Ordering::SeqCst), 8);
    opener.join().unwrap();
}

#[test]
fn dropping_a_scope_waits_like_shutdown() {
    let gate = Gate::default();
    let done = Arc::new(AtomicBool::new(false));
    let shutting_down = Arc::new(AtomicBool::new(false));
    let opener = gate.open_when(&shutting_down);
    {
        let run = named("dropwait");
        let (gate, done) = (gate.clone(), done.clone());
        run.spawn(async move {
            gate.wait().await;
            done.store(true, Ordering::SeqCst);
        })
        .detach();
        shutting_down.store(true, Ordering::SeqCst);
    }
    assert!(done.load(Ordering::SeqCst));
    opener.join().unwrap();
}

#[test]
fn shutdown_now_cancels_what_has_not_finished() {
    let run = Run::builder()
        .name("now")
        .max_workers(1)
        .max_blocking(1)
        .build()
        .unwrap();
    let gate = Gate::default();
    let (started_tx, started_rx) = mpsc::channel();
    let running = {
        let gate = gate.clone();
        run.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            gate.wait_blocking();
            "ran to completion"
        })
    };
    started_rx.recv().unwrap();
    // The lane's one thread is busy: these wait in its queue.
    let queued: Vec<_> = (0..3).map(|i| run.spawn_blocking(move || i)).collect();
    let waiting: Vec<_> = (0..3)
        .map(|_| run.spawn(std::future::pending::<()>()))
        .collect();
    let shutting_down = Arc::new(AtomicBool::new(false));
    let opener = gate.open_when(&shutting_down);
    shutting_down.store(true, Ordering::SeqCst);
    run.shutdown_now();
    opener.join().unwrap();
    assert_eq!(running.join().unwrap(), "ran to completion");
    for handle in queued {
        let err = handle.join().unwrap_err();
        assert!(err.is_cancelled(), "{err}");
    }
    for handle in waiting {
        assert!(handle.join().unwrap_err().is_cancelled());
    }
}

#[test]
fn shutdown_timeout_cancels_after_the_limit_and_says_so() {
    let run = named("timeout");
    let stuck = run.spawn(std::future::pending::<()>());
    let blocked = run.spawn(Gate::default().wait());
    assert!(!run.shutdown_timeout(Duration::from_millis(20)));
    assert!(stuck.join().unwrap_err().is_cancelled());
    assert!(blocked.join().unwrap_err().is_cancelled());

    let run = named("intime");
    let quick = run.spawn(async { 5 });
    assert_eq!(quick.join().unwrap(), 5);
    assert!(run.shutdown_timeout(Duration::from_secs(60)));
}

#[test]
fn a_scope_dropped_on_a_worker_thread_neither_blocks_nor_panics() {
    let host = Run::builder().name("host").max_workers(1).build().unwrap();
    let gate = Gate::default();
    let inner = named("dropped");
    let gated = {
        let gate = gate.clone();
        inner.spawn_blocking(move || {
            gate.wait_blocking();
            "finished after the drop"
        })
    };
    // If the drop waited here, this join could never return: the gate is
    // still closed.
    let returned = host
        .spawn(async move {
            drop(inner);
            "drop returned"
        })
        .join()
        .unwrap();
    assert_eq!(returned, "drop returned");
    // The worker is free for more work.
    assert_eq!(host.spawn(async { 2 }).join().unwrap(), 2);
    gate.open();
    assert_eq!(gated.join().unwrap(), "finished after the drop");
    // The helper thread waited, then shut the pool down and joined it.
    if common::lists_threads() {
        common::wait_until(|| common::threads_named("dropped") == 0);
    }
}

#[test]
fn a_scope_shut_down_inside_its_own_task_does_not_deadlock() {
    let run = named("selfdrop");
    let (tx, rx) = mpsc::channel::<Run>();
    let task = run.spawn_blocking(move || {
        let me = rx.recv().unwrap();
        me.shutdown();
        "shutdown returned"
    });
    tx.send(run).unwrap();
    assert_eq!(task.join().unwrap(), "shutdown returned");
    if common::lists_threads() {
        common::wait_until(|| common::threads_named("selfdrop") == 0);
    }
}

#[test]
fn shutdown_async_waits_without_blocking_the_worker() {
    fn assert_send<T: Send>(_: &T) {}
    let host = Run::builder().name("ahost").max_workers(1).build().unwrap();
    let inner = named("async");
    let gate = Gate::default();
    let finished = Arc::new(AtomicBool::new(false));
    {
        let (gate, finished) = (gate.clone(), finished.clone());
        inner
            .spawn(async move {
                gate.wait().await;
                finished.store(true, Ordering::SeqCst);
            })
            .detach();
    }
    let shutdown = inner.shutdown_async();
    assert_send(&shutdown);
    let checked = finished.clone();
    let waiter = host.spawn(async move {
        shutdown.await;
        checked.load(Ordering::SeqCst)
    });
    // The host's only worker is not blocked by the pending shutdown.
    assert_eq!(host.spawn(async { "free" }).join().unwrap(), "free");
    assert!(!waiter.is_finished());
    gate.open();
    assert!(
        waiter.join().unwrap(),
        "shutdown_async finished before the task"
    );
    if common::lists_threads() {
        common::wait_until(|| common::threads_named("async") == 0);
    }
}

#[test]
fn panics_in_tasks_never_kill_workers() {
    let run = Run::builder()
        .name("panics")
        .max_workers(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let err = run.spawn(async { panic!("boom") }).join().unwrap_err();
        assert!(err.is_panic());
        let err = run
            .spawn_blocking(|| panic!("blocking boom"))
            .join()
            .unwrap_err();
        assert_eq!(err.panic_message(), Some("blocking boom"));
    }
    assert_eq!(run.spawn(async { "serving" }).join().unwrap(), "serving");
    assert_eq!(run.spawn_blocking(|| "serving").join().unwrap(), "serving");
}

#[test]
fn threads_return_to_baseline_after_scopes() {
    if !common::in_child_process("threads_return_to_baseline_after_scopes") {
        return;
    }
    if !common::lists_threads() {
        return;
    }
    let before = unirun_platform::thread_count().expect("thread count on linux");
    for (name, mode) in [("base", ThreadMode::Nogil), ("basegil", ThreadMode::Gil)] {
        let run = Run::builder()
            .name(name)
            .config(RuntimeConfig::default().thread_mode(mode))
            .build()
            .unwrap();
        let blocking: Vec<_> = (0..8).map(|i| run.spawn_blocking(move || i)).collect();
        let tasks: Vec<_> = (0..100).map(|i| run.spawn(async move { i })).collect();
        assert_eq!(run.map(0..16, |i| i).len(), 16);
        for h in blocking {
            h.join().unwrap();
        }
        for h in tasks {
            h.join().unwrap();
        }
        // A nested scope borrows the pool and starts no thread.
        let threads = unirun_platform::thread_count().unwrap();
        run.block_on(async { drop(Run::builder().build().unwrap()) });
        assert_eq!(unirun_platform::thread_count().unwrap(), threads);
        assert!(threads > before);
        run.shutdown();
        // See the end of the test: a joined thread leaves `/proc` a
        // moment after its join.
        common::wait_until(|| unirun_platform::thread_count().unwrap() == before);
        assert_eq!(common::threads_named(name), 0);
    }
    // The bounded and the drop forms join their threads too.
    let run = named("basenow");
    run.spawn(std::future::pending::<()>()).detach();
    run.spawn_blocking(|| ()).join().unwrap();
    run.shutdown_now();
    drop(named("basedrop"));
    let run = named("basetime");
    run.spawn_blocking(|| ()).join().unwrap();
    assert!(run.shutdown_timeout(Duration::from_secs(60)));
    // Joined threads leave `/proc/self/task` a moment after `pthread_join`
    // returns (the kernel clears the thread id before it releases the
    // task): wait for that, as for any thread's exit.
    common::wait_until(|| unirun_platform::thread_count().unwrap() == before);
    assert_eq!(
        common::threads_named("base"),
        0,
        "{:?}",
        common::thread_names()
    );
}

#[test]
fn reset_shuts_the_shared_pool_down_and_joins_it() {
    if !common::in_child_process("reset_shuts_the_shared_pool_down_and_joins_it") {
        return;
    }
    if !common::lists_threads() {
        return;
    }
    let before = unirun_platform::thread_count().expect("thread count on linux");
    let pending = unirun::spawn(std::future::pending::<()>());
    assert_eq!(unirun::to_thread(|| 1).join().unwrap(), 1);
    assert!(common::threads_named("unirun") > 0);
    unirun::reset();
    assert!(pending.join().unwrap_err().is_cancelled());
    assert_eq!(unirun_platform::thread_count().unwrap(), before);
    assert_eq!(common::threads_named("unirun"), 0);
    // The helpers start a fresh pool on next use.
    assert_eq!(unirun::spawn(async { 2 }).join().unwrap(), 2);
}

/// Defect: `Run::shutdown_timeout(d)` waited without bound for blocking
/// closures stuck on a channel. Now it gives up on them at the deadline on
/// every backend the scope owns; their threads exit once released, and
/// their handles resolve.
fn shutdown_timeout_gives_up_on_stuck_closures(builder: unirun::RunBuilder, prefix: &'static str) {
    unirun_test_support::watchdog(prefix, move || {
        let run = builder.name(prefix).build().unwrap();
        let (release, stuck) = mpsc::channel::<()>();
        let stuck = Arc::new(Mutex::new(stuck));
        let (started_tx, started) = mpsc::channel();
        let closures: Vec<_> = (0..2)
            .map(|_| {
                let (stuck, started_tx) = (stuck.clone(), started_tx.clone());
                run.spawn_blocking(move || {
                    started_tx.send(()).unwrap();
                    let _ = stuck.lock().unwrap().recv();
                })
            })
            .collect();
        // The first closure holds the receiver's lock, the second waits for it.
        started.recv().unwrap();
        started.recv().unwrap();
        assert!(!run.shutdown_timeout(Duration::from_millis(100)));
        drop(release);
        for closure in closures {
            // Finished on its detached thread, or cancelled: never a hang.
            let _ = closure.join();
        }
        if common::lists_threads() {
            common::wait_until(|| common::threads_named(&format!("{prefix}-blocking")) == 0);
        }
    });
}

#[test]
fn run_shutdown_timeout_is_bounded_on_threads() {
    shutdown_timeout_gives_up_on_stuck_closures(
        Run::builder().flavor(unirun::Flavor::Threads),
        "stuckthr",
    );
}

#[cfg(feature = "smol-backend")]
#[test]
fn run_shutdown_timeout_is_bounded_on_smol() {
    shutdown_timeout_gives_up_on_stuck_closures(
        Run::builder().flavor(unirun::Flavor::Smol),
        "stucksml",
    );
}
