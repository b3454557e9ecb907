//! A task's output whose destructor panics, dropped by the task itself
//! because nobody will take it (its handle is gone): the panic is
//! contained, the worker keeps serving, the process lives on.
//!
//! Before, async-task dropped such an output inside an abort-on-panic
//! guard: each test runs its body in a child process, so an abort fails
//! the test instead of killing the test binary.

use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::mpsc;
use std::task::{Context, Waker};
use std::thread;
use std::time::Duration;

use unirun_core::{Pool, TickExecutor};

const CHILD_ENV: &str = "UNIRUN_CORE_OUTPUT_DROP_CHILD";

/// Whether this is the child that runs the test's body; in the parent,
/// runs test `name` alone in a child process and asserts it passed (with
/// a generous limit: a hang becomes a failure).
fn in_child_process(name: &str) -> bool {
    if std::env::var_os(CHILD_ENV).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let child = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("re-run the test binary");
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    let waiter = thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = tx.send(());
        output
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        // Our own child, by its id.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("child test {name} hung for 60 s");
    }
    let output = waiter.join().unwrap().expect("child output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child test {name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("1 passed"),
        "child test {name} did not run:\n{stdout}"
    );
    false
}

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
