//! `unirun::compat::smol`, written as smol code is. Each test runs here in
//! managed mode and again in a child process with
//! `UNIRUN_COMPAT_MODE=passthrough`.
#![cfg(feature = "smol-backend")]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use unirun::compat::smol;

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
