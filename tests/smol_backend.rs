//! The smol backend: `Flavor::Smol` scopes run on an async-executor driven by
//! threads named after the scope.
#![cfg(feature = "smol-backend")]

mod common;

use unirun::{Flavor, Run};

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn smol_scope_threads_carry_the_scope_name() {
    let run = Run::builder()
        .flavor(Flavor::Smol)
        .name("smolscope")
        .max_workers(2)
        .build()
        .unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Smol);
    assert_eq!(run.handle().flavor(), Flavor::Smol);
    assert_eq!(run.handle().num_workers(), 2);
    let name = run.spawn(async { thread_name() }).join().unwrap();
    assert!(name == "smolscope-0" || name == "smolscope-1", "{name}");
    assert_eq!(run.spawn_blocking(|| 6 * 7).join().unwrap(), 42);
    let name = run.spawn_blocking(thread_name).join().unwrap();
    assert!(name.starts_with("smolscope-blocking-"), "{name}");
    assert_eq!(run.map(1..=3, |i| i * 2), [2, 4, 6]);
}

#[test]
fn panics_and_aborts_arrive_as_join_errors() {
    let run = Run::new(Flavor::Smol).unwrap();
    let err = run
        .spawn(async { panic!("smol task failed") })
        .join()
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("smol task failed"));
    assert!(err
        .panic_location()
        .expect("location")
        .file()
        .ends_with("smol_backend.rs"));
    let stuck = run.spawn(std::future::pending::<()>());
    stuck.abort();
    assert!(stuck.join().unwrap_err().is_cancelled());
    assert_eq!(run.spawn(async { 1 }).join().unwrap(), 1);
}

#[test]
fn shutdown_now_cancels_pending_tasks() {
    let run = Run::new(Flavor::Smol).unwrap();
    let stuck = run.spawn(std::future::pending::<()>());
    run.shutdown_now();
    assert!(stuck.join().unwrap_err().is_cancelled());
}

#[test]
fn scope_thread_count_returns_to_baseline() {
    if !common::in_child_process("scope_thread_count_returns_to_baseline") {
        return;
    }
    let before = common::thread_names().len();
    let run = Run::builder()
        .flavor(Flavor::Smol)
        .name("smolbase")
        .max_workers(2)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..8).map(|i| run.spawn(async move { i })).collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), i);
    }
    // A new thread names itself once it first runs.
    common::wait_until(|| common::threads_named("smolbase-") == 2);
    // Two closures that wait for each other (and for this thread) hold two
    // blocking threads at once; the kernel shows names cut to 15 bytes.
    let (started, release) = (
        std::sync::Arc::new(std::sync::Barrier::new(3)),
        std::sync::Arc::new(std::sync::Barrier::new(3)),
    );
    let blocking: Vec<_> = (0..2)
        .map(|_| {
            let (started, release) = (started.clone(), release.clone());
            run.spawn_blocking(move || {
                started.wait();
                release.wait();
                thread_name()
            })
        })
        .collect();
    started.wait();
    assert_eq!(common::threads_named("smolbase-block"), 2);
    release.wait();
    for task in blocking {
        let name = task.join().unwrap();
        assert!(name.starts_with("smolbase-blocking-"), "{name}");
    }
    run.shutdown();
    // Joined; the kernel may list an exited thread a moment longer.
    common::wait_until(|| common::threads_named("smolbase-") == 0);
    common::wait_until(|| common::thread_names().len() == before);
}

#[test]
fn a_provided_executor_is_used_and_left_running() {
    use std::sync::Arc;

    let ex = Arc::new(async_executor::Executor::new());
    let run = Run::builder()
        .executor(unirun::Handle::from_smol(ex.clone()))
        .build()
        .unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Smol);
    assert_eq!(run.trace().reason(), &unirun::trace::Reason::Provided);
    // The caller drives its executor; the scope's task runs there.
    let task = run.spawn(async { 6 });
    assert_eq!(futures_lite::future::block_on(ex.run(task)).unwrap(), 6);
    drop(run);
    assert_eq!(
        futures_lite::future::block_on(ex.run(ex.spawn(async { 7 }))),
        7
    );
}
