//! The async bridges: `to_thread`, `run_in_executor`, `gather`, `spawn`,
//! `block_on`, from plain threads and from inside tasks.
//! `cargo test --test async_bridge run_in_executor` selects the
//! `run_in_executor` cases.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use unirun::{Flavor, Run};

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn to_thread_runs_on_the_shared_blocking_lane() {
    let name = unirun::block_on(unirun::to_thread(thread_name)).unwrap();
    assert!(name.starts_with("unirun-blocking-"), "{name}");
    let err = unirun::to_thread(|| panic!("disk on fire"))
        .join()
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("disk on fire"));
}

#[test]
fn to_thread_awaited_inside_a_task_does_not_block_the_workers() {
    // More blocking closures than the pool has workers, all waiting for
    // each other: only the blocking lane can hold them all at once.
    let n = unirun::get_executor().num_workers() + 2;
    let barrier = Arc::new(Barrier::new(n));
    let total = unirun::spawn(async move {
        let waits = (0..n).map(|_| {
            let barrier = barrier.clone();
            unirun::to_thread(move || usize::from(barrier.wait().is_leader()))
        });
        let leaders: usize = unirun::gather(waits)
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
        leaders
    });
    assert_eq!(total.join().unwrap(), 1);
}

#[test]
fn gather_keeps_input_order_and_reports_each_result() {
    let handles = (0..10u64).map(|i| {
        unirun::to_thread(move || {
            if i == 7 {
                panic!("item 7");
            }
            i * i
        })
    });
    let results = unirun::block_on(unirun::gather(handles));
    assert_eq!(results.len(), 10);
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(v) => assert_eq!(v, (i * i) as u64),
            Err(err) => {
                assert_eq!(i, 7);
                assert_eq!(err.panic_message(), Some("item 7"));
            }
        }
    }
    // Plain futures, and nothing at all.
    let plain = unirun::block_on(unirun::gather((1..=2).map(|i| async move { i })));
    assert_eq!(plain, [1, 2]);
    let empty: Vec<u8> = unirun::block_on(unirun::gather(Vec::<std::future::Ready<u8>>::new()));
    assert!(empty.is_empty());
}

#[test]
fn spawn_and_to_thread_mix_under_gather() {
    let tasks = (0..4).map(|i| unirun::spawn(async move { i }));
    let blocking = (4..8).map(|i| unirun::to_thread(move || i));
    let all: Vec<i32> = unirun::block_on(unirun::gather(tasks.chain(blocking)))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all, (0..8).collect::<Vec<_>>());
}

#[test]
fn run_in_executor_with_none_uses_the_shared_default() {
    let name = unirun::run_in_executor(None, thread_name).join().unwrap();
    assert!(name.starts_with("unirun-blocking-"), "{name}");
}

#[test]
fn run_in_executor_with_a_scope_handle_runs_in_that_scope() {
    let run = Run::builder().name("bridge").build().unwrap();
    let handle = run.handle();
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let name = unirun::run_in_executor(Some(&handle), move || {
        counter.fetch_add(1, Ordering::SeqCst);
        thread_name()
    });
    assert!(
        unirun::block_on(name)
            .unwrap()
            .starts_with("bridge-blocking-"),
        "runs on the scope's lane"
    );
    // It is one of the scope's tasks: shutdown waits for it.
    let counter = done.clone();
    unirun::run_in_executor(Some(&handle), move || {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .detach();
    run.shutdown();
    assert_eq!(done.load(Ordering::SeqCst), 2);
    // After the scope shut down its handle cancels.
    let late = unirun::run_in_executor(Some(&handle), || 1);
    assert!(late.join().unwrap_err().is_cancelled());
}

#[test]
fn run_in_executor_awaited_inside_an_async_task() {
    let run = Run::new(Flavor::Threads).unwrap();
    let handle = run.handle();
    let out = run.block_on(async move {
        let a = unirun::run_in_executor(Some(&handle), || 20);
        let b = unirun::run_in_executor(None, || 22);
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(out, 42);
}

#[test]
fn run_in_executor_propagates_panics_as_join_errors() {
    let err = unirun::run_in_executor(None, || -> u8 { panic!("bad input {}", 3) })
        .join()
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("bad input 3"));
}

#[test]
fn block_on_drives_a_future_that_awaits_tasks_and_closures() {
    let out = unirun::block_on(async {
        let a = unirun::spawn(async { 1 }).await.unwrap();
        let b = unirun::to_thread(|| 2).await.unwrap();
        a + b
    });
    assert_eq!(out, 3);
}
