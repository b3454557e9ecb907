//! `unirun::compat::smol`, written as smol code is. Each test runs here in
//! managed mode and again in a child process with
//! `UNIRUN_COMPAT_MODE=passthrough`.
#![cfg(feature = "smol-backend")]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use unirun::compat::smol;
use unirun_test_support::watchdog;

/// Sends on drop: tells the test that a task's future was dropped.
struct DropSignal(mpsc::Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn spawn_unblock_and_block_on_return_values() {
    common::also_in_passthrough("spawn_unblock_and_block_on_return_values");
    let (sum, blocking) = smol::block_on(async {
        let tasks: Vec<smol::Task<u64>> =
            (0..10u64).map(|i| smol::spawn(async move { i })).collect();
        let mut sum = 0;
        for task in tasks {
            sum += task.await;
        }
        let blocking = smol::unblock(|| std::thread::current().name().map(String::from)).await;
        (sum, blocking)
    });
    assert_eq!(sum, 45);
    if !common::passthrough() {
        let name = blocking.unwrap_or_default();
        assert!(name.starts_with("unirun-blocking-"), "{name}");
    }
}

#[test]
fn managed_unblock_runs_on_the_unirun_blocking_lane() {
    if common::passthrough() {
        return;
    }
    let name = smol::block_on(smol::unblock(|| {
        std::thread::current().name().map(String::from)
    }))
    .unwrap_or_default();
    assert!(name.contains("-blocking-"), "{name}");
}

#[test]
fn a_task_panic_resumes_where_it_is_awaited() {
    common::also_in_passthrough("a_task_panic_resumes_where_it_is_awaited");
    let task = smol::spawn(async { panic!("smol task failed") });
    let caught = catch_unwind(AssertUnwindSafe(|| smol::block_on(task)));
    let payload: Box<dyn std::any::Any + Send> = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"smol task failed"));

    let blocking = smol::unblock(|| -> u8 { panic!("unblock failed") });
    assert!(catch_unwind(AssertUnwindSafe(|| smol::block_on(blocking))).is_err());
}

#[test]
fn dropping_a_task_cancels_it() {
    common::also_in_passthrough("dropping_a_task_cancels_it");
    let (tx, dropped) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let task = smol::spawn(async move {
        let _signal = DropSignal(tx);
        let _ = started_tx.send(());
        std::future::pending::<()>().await;
    });
    started.recv().unwrap();
    drop(task);
    // The future is dropped: the signal fires.
    dropped.recv().unwrap();
}

#[test]
fn cancel_and_detach() {
    common::also_in_passthrough("cancel_and_detach");
    let pending = smol::spawn(std::future::pending::<u8>());
    assert_eq!(smol::block_on(pending.cancel()), None);

    let done = smol::spawn(async { 7 });
    while !done.is_finished() {
        std::thread::yield_now();
    }
    assert_eq!(smol::block_on(done.cancel()), Some(7));

    let (tx, rx) = mpsc::channel();
    smol::spawn(async move { tx.send("ran").unwrap() }).detach();
    assert_eq!(rx.recv().unwrap(), "ran");
}

/// Polls `future` once on this thread: `Some(output)` if it was ready.
fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
    futures_lite::future::block_on(futures_lite::future::poll_once(future))
}

#[test]
fn cancel_returns_only_after_a_running_unblock_closure_returned() {
    common::also_in_passthrough("cancel_returns_only_after_a_running_unblock_closure_returned");
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let returned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = returned.clone();
    let task = smol::unblock(move || {
        started_tx.send(()).unwrap();
        gate.recv().unwrap();
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        5
    });
    started.recv().unwrap();
    let mut cancel = Box::pin(task.cancel());
    // The closure is blocked on the gate: cancelling cannot be done yet.
    assert!(
        poll_once(&mut cancel).is_none(),
        "cancel returned while the closure ran"
    );
    release.send(()).unwrap();
    let output = watchdog("cancel of a running closure", move || {
        smol::block_on(cancel)
    });
    assert!(returned.load(std::sync::atomic::Ordering::SeqCst));
    // As smol: the task was cancelled before it completed, so no output.
    assert_eq!(output, None);
}

#[test]
fn cancel_returns_only_after_the_future_is_dropped() {
    common::also_in_passthrough("cancel_returns_only_after_the_future_is_dropped");
    /// Blocks its drop on a gate, then reports it.
    struct SlowDrop(mpsc::Receiver<()>, mpsc::Sender<()>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            self.0.recv().unwrap();
            let _ = self.1.send(());
        }
    }
    let (release, gate) = mpsc::channel();
    let (dropped_tx, dropped) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let task = smol::spawn(async move {
        let _slow = SlowDrop(gate, dropped_tx);
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    started.recv().unwrap();
    let mut cancel = Box::pin(task.cancel());
    assert!(
        poll_once(&mut cancel).is_none(),
        "cancel returned before the drop ended"
    );
    release.send(()).unwrap();
    assert_eq!(
        watchdog("cancel of a pending task", move || smol::block_on(cancel)),
        None
    );
    // The drop finished before `cancel` returned.
    assert!(dropped.try_recv().is_ok());
}

#[test]
fn a_task_is_unwind_safe() {
    common::also_in_passthrough("a_task_is_unwind_safe");
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>(_: &T) {}
    let task = smol::spawn(async { panic!("inside") });
    unwind_safe(&task);
    // `catch_unwind` over a task, as written for smol: no `AssertUnwindSafe`.
    let caught = catch_unwind(move || smol::block_on(task));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"inside"));

    let fallible = smol::spawn(async { 1 }).fallible();
    unwind_safe(&fallible);
    assert_eq!(
        catch_unwind(move || smol::block_on(fallible)).unwrap(),
        Some(1)
    );
}

#[test]
fn fallible_tasks_resolve_to_options() {
    common::also_in_passthrough("fallible_tasks_resolve_to_options");
    let task: smol::FallibleTask<u8> = smol::spawn(async { 3 }).fallible();
    assert_eq!(smol::block_on(task), Some(3));
    // A panic is still re-raised.
    let failed = smol::spawn(async { panic!("fallible failed") }).fallible();
    let payload = catch_unwind(AssertUnwindSafe(|| smol::block_on(failed))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"fallible failed"));
    // cancel, is_finished, detach.
    let pending = smol::spawn(std::future::pending::<u8>()).fallible();
    assert!(!pending.is_finished());
    assert_eq!(smol::block_on(pending.cancel()), None);
    let done = smol::spawn(async { 4 }).fallible();
    common::wait_until(|| done.is_finished());
    assert_eq!(smol::block_on(done.cancel()), Some(4));
    let (tx, rx) = mpsc::channel();
    smol::spawn(async move { tx.send(5).unwrap() })
        .fallible()
        .detach();
    assert_eq!(rx.recv().unwrap(), 5);
    // Dropping cancels, as for `Task`.
    let (tx, dropped) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let task = smol::spawn(async move {
        let _signal = DropSignal(tx);
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    })
    .fallible();
    started.recv().unwrap();
    drop(task);
    dropped.recv().unwrap();
}

#[test]
fn a_fallible_task_cancelled_by_a_reset_resolves_to_none() {
    // Resets the shared default: alone in a child process (managed mode).
    if !common::in_child_process("a_fallible_task_cancelled_by_a_reset_resolves_to_none") {
        return;
    }
    let task = smol::spawn(std::future::pending::<u8>()).fallible();
    unirun::reset();
    assert_eq!(watchdog("a reset task", move || smol::block_on(task)), None);
}

#[test]
fn a_whole_use_line_converts() {
    common::also_in_passthrough("a_whole_use_line_converts");
    use std::time::Duration;
    // Was: use smol::{...}; every name smol exports resolves here, and the
    // re-exported ones are smol's own items.
    #[allow(unused_imports)]
    use unirun::compat::smol::{
        block_on, channel, fs, future, io, lock, net, pin, prelude::*, process, ready, spawn,
        stream, unblock, Async, Executor, LocalExecutor, Task, Timer, Unblock,
    };

    let timer: ::smol::Timer = Timer::after(Duration::from_millis(1));
    let (total, copied, echoed) = block_on(async {
        timer.await;
        let (tx, rx) = channel::bounded::<u32>(2);
        let sender: Task<()> = spawn(async move {
            tx.send(1).await.unwrap();
            tx.send(2).await.unwrap();
        });
        let total: u32 = rx.collect::<Vec<_>>().await.into_iter().sum();
        sender.await;
        let mut reader = Unblock::new(std::io::Cursor::new(b"abc".to_vec()));
        let mut copied = Vec::new();
        io::copy(&mut reader, &mut copied).await.unwrap();
        let counter = lock::Mutex::new(0);
        *counter.lock().await += 1;
        let echoed = future::ready(7).await + *counter.lock().await;
        let items: Vec<u32> = stream::iter([1, 2]).collect().await;
        assert_eq!(items, [1, 2]);
        (total, copied, echoed)
    });
    assert_eq!(total, 3);
    assert_eq!(copied, b"abc");
    assert_eq!(echoed, 8);
    // smol's own executors, unchanged.
    let ex = Executor::new();
    assert_eq!(block_on(ex.run(ex.spawn(async { 9 }))), 9);
    let local = LocalExecutor::new();
    let rc = std::rc::Rc::new(10);
    assert_eq!(block_on(local.run(local.spawn(async move { *rc }))), 10);
    // And the macros and the rest of the modules resolve.
    let ready_now = block_on(future::poll_fn(|cx| {
        let fut = std::pin::pin!(future::ready(11));
        let value = ready!(fut.poll(cx));
        std::task::Poll::Ready(value)
    }));
    assert_eq!(ready_now, 11);
    let pinned = future::ready(12);
    pin!(pinned);
    assert_eq!(block_on(pinned), 12);
    assert!(block_on(fs::metadata(".")).unwrap().is_dir());
    let bound = block_on(net::TcpListener::bind("127.0.0.1:0")).unwrap();
    assert!(bound.local_addr().is_ok());
    let command = process::Command::new("true");
    assert_eq!(command.get_program(), "true");
    let listener = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    assert!(listener.get_ref().local_addr().is_ok());
}

#[test]
fn a_hundred_unblock_closures_meet_at_a_barrier() {
    common::also_in_passthrough("a_hundred_unblock_closures_meet_at_a_barrier");
    // Below both pools' caps (unirun's lane: at least 512; smol's: 500), so
    // closures that wait for each other all get a thread.
    let sum = watchdog("100 unblock closures at a barrier", || {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(100));
        let tasks: Vec<smol::Task<usize>> = (0..100)
            .map(|i| {
                let barrier = barrier.clone();
                smol::unblock(move || {
                    barrier.wait();
                    i
                })
            })
            .collect();
        smol::block_on(async {
            let mut sum = 0;
            for task in tasks {
                sum += task.await;
            }
            sum
        })
    });
    assert_eq!(sum, 4950);
}
