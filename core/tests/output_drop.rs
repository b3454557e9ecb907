//! A task's output whose destructor panics, dropped by the task itself
//! because nobody will take it (its handle is gone): the panic is
//! contained, the worker keeps serving, the process lives on.
//!
//! async-task drops such an output inside an abort-on-panic guard unless
//! the task catches the panic first: each test runs its body in a child
//! process, so an abort fails the test instead of killing the test binary.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Waker};
use std::thread;

use unirun_core::{Pool, TickExecutor};
use unirun_test_support::child::in_child_process;

/// Panics when dropped.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

fn start_pool(workers: usize) -> (Pool, Vec<thread::JoinHandle<()>>) {
    let (pool, workers) = Pool::with_workers(workers);
    let threads = workers
        .into_iter()
        .map(|w| thread::spawn(move || w.run()))
        .collect();
    (pool, threads)
}

#[test]
fn a_detached_tasks_output_whose_destructor_panics_is_contained() {
    if !in_child_process("a_detached_tasks_output_whose_destructor_panics_is_contained") {
        return;
    }
    // On a pool worker: detached before the task finishes.
    let (pool, threads) = start_pool(1);
    let (release, gate) = mpsc::channel::<()>();
    pool.spawn(async move {
        gate.recv().unwrap();
        PanicOnDrop("a detached output")
    })
    .detach();
    release.send(()).unwrap();
    // One worker: this task runs after the first finished and dropped its
    // output, so the worker survived it.
    assert_eq!(pool.spawn(async { 7 }).join().unwrap(), 7);
    // A blocking task's output too, plain and fallible, run on a thread
    // of its own after its handle was dropped.
    let run_here = |r: unirun_core::Runnable, _| {
        r.run();
    };
    let (runnable, handle) = unirun_core::spawn_blocking_with(
        || PanicOnDrop("a detached blocking output"),
        None,
        run_here,
    );
    drop(handle);
    thread::spawn(move || runnable.run()).join().unwrap();
    let (runnable, handle) = unirun_core::spawn_blocking_fallible_with(
        || Ok(PanicOnDrop("a detached fallible output")),
        None,
        run_here,
    );
    drop(handle);
    thread::spawn(move || runnable.run()).join().unwrap();
    pool.shutdown();
    threads.into_iter().for_each(|t| t.join().unwrap());

    // On a tick executor, run on this very thread.
    let ex = TickExecutor::new();
    ex.spawn(async { PanicOnDrop("a detached output, ticked") })
        .detach();
    ex.run_until_stalled();
    assert_eq!(
        unirun_core::block_on({
            let h = ex.spawn(async { 9 });
            ex.run_until_stalled();
            h
        })
        .unwrap(),
        9
    );
}

#[test]
fn an_awaited_handle_dropped_before_its_task_finished_leaves_a_panicking_output_contained() {
    if !in_child_process(
        "an_awaited_handle_dropped_before_its_task_finished_leaves_a_panicking_output_contained",
    ) {
        return;
    }
    let (pool, threads) = start_pool(1);
    let (release, gate) = mpsc::channel::<()>();
    let mut handle = pool.spawn(async move {
        gate.recv().unwrap();
        PanicOnDrop("an output whose awaiter left")
    });
    // Awaited once (its waker registered), then dropped while it runs.
    assert!(Pin::new(&mut handle)
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_pending());
    drop(handle);
    release.send(()).unwrap();
    assert_eq!(pool.spawn(async { 7 }).join().unwrap(), 7);

    // Finished first, then the handle dropped without taking the output:
    // dropping it there is contained too (the dropping thread goes on).
    let handle = pool.spawn(async { PanicOnDrop("an output left in its slot") });
    while !handle.is_finished() {
        thread::yield_now();
    }
    drop(handle);
    assert_eq!(pool.spawn(async { 8 }).join().unwrap(), 8);
    pool.shutdown();
    threads.into_iter().for_each(|t| t.join().unwrap());
}
