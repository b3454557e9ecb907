//! `unirun::compat::tokio::task`, written as tokio code is. Each test runs
//! here in managed mode and again in a child process with
//! `UNIRUN_COMPAT_MODE=passthrough`.
#![cfg(feature = "tokio-backend")]

mod common;

use unirun::compat::tokio::task;

fn current_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_and_spawn_blocking_return_values() {
    common::also_in_passthrough("spawn_and_spawn_blocking_return_values");
    let handle: task::JoinHandle<u32> = task::spawn(async {
        tokio::task::yield_now().await;
        40 + 2
    });
    assert_eq!(handle.await.unwrap(), 42);

    // Spawned tasks stay on the ambient runtime: its context is there.
    let in_runtime = task::spawn(async { tokio::runtime::Handle::try_current().is_ok() });
    assert!(in_runtime.await.unwrap());

    let blocking = task::spawn_blocking(|| {
        (
            current_name(),
            tokio::runtime::Handle::try_current().is_ok(),
        )
    });
    let (name, in_runtime) = blocking.await.unwrap();
    assert!(in_runtime, "blocking closures see the caller's runtime");
    if common::passthrough() {
        assert!(!name.starts_with("unirun"), "{name}");
    } else {
        assert!(name.starts_with("unirun-blocking-"), "{name}");
    }
}

#[tokio::test]
async fn panics_are_join_errors() {
    common::also_in_passthrough("panics_are_join_errors");
    let err = task::spawn(async { panic!("task failed") })
        .await
        .unwrap_err();
    assert!(err.is_panic());
    assert!(!err.is_cancelled());
    assert_eq!(
        err.into_panic().downcast_ref::<&str>(),
        Some(&"task failed")
    );

    let err = task::spawn_blocking(|| -> u8 { panic!("blocking failed") })
        .await
        .unwrap_err();
    assert!(err.is_panic());
    let io: std::io::Error = task::spawn_blocking(|| -> u8 { panic!("as io") })
        .await
        .unwrap_err()
        .into();
    assert!(!io.to_string().is_empty());
}

#[tokio::test]
async fn abort_cancels_the_task() {
    common::also_in_passthrough("abort_cancels_the_task");
    let handle = task::spawn(std::future::pending::<()>());
    assert!(!handle.is_finished());
    handle.abort();
    let err = handle.await.unwrap_err();
    assert!(err.is_cancelled());
    assert!(!err.is_panic());
    assert!(err.try_into_panic().is_err());

    // A finished task keeps its output through an abort.
    let done = task::spawn(async { 9 });
    while !done.is_finished() {
        tokio::task::yield_now().await;
    }
    done.abort();
    assert_eq!(done.await.unwrap(), 9);
}

#[test]
fn spawn_outside_a_runtime_panics_like_tokio() {
    common::also_in_passthrough("spawn_outside_a_runtime_panics_like_tokio");
    let caught = std::panic::catch_unwind(|| task::spawn(async {}));
    let payload = caught.unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(message.contains("Tokio"), "{message}");
}
