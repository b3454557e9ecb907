//! The tokio backend: `Flavor::Tokio` borrows the ambient runtime or owns one,
//! `Flavor::Auto` inside a runtime resolves to it, and owned runtimes shut
//! down anywhere without panicking.
#![cfg(feature = "tokio-backend")]

mod common;
#[path = "common/backend.rs"]
mod shared;

use shared::Case;
use unirun::trace::Reason;
use unirun::{Flavor, Run};

/// tokio names its blocking threads like its workers.
const TOKIO: Case = Case {
    flavor: Flavor::Tokio,
    blocking_prefix: |name| format!("{name}-"),
};

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambient_runtime_is_borrowed_and_survives_the_scope() {
    let run = Run::new(Flavor::Tokio).unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Tokio);
    assert!(run.trace().reasons().contains(&Reason::AmbientTokio));
    assert!(
        run.trace().to_string().contains("ambient"),
        "{}",
        run.trace()
    );
    assert_eq!(run.handle().flavor(), Flavor::Tokio);
    // Tasks run on the ambient runtime, so its reactor and timers work.
    let task = run.spawn(async {
        tokio::task::yield_now().await;
        tokio::runtime::Handle::try_current().is_ok()
    });
    assert!(task.await.unwrap());
    assert_eq!(run.spawn_blocking(|| 6 * 7).await.unwrap(), 42);
    drop(run);
    // The runtime was borrowed, not shut down.
    assert_eq!(tokio::spawn(async { 1 }).await.unwrap(), 1);
}

#[tokio::test]
async fn auto_inside_a_tokio_runtime_resolves_to_tokio() {
    let run = Run::builder().build().unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Tokio);
    assert_eq!(run.trace().reason(), &Reason::AmbientTokio);
    assert_eq!(run.spawn(async { 2 }).await.unwrap(), 2);
}

#[test]
fn outside_a_runtime_the_scope_owns_one_sized_and_named_from_the_config() {
    let run = Run::builder()
        .flavor(Flavor::Tokio)
        .max_workers(1)
        .build()
        .unwrap();
    assert!(!run.trace().reasons().contains(&Reason::AmbientTokio));
    drop(run);
    shared::scope_is_sized_and_named_from_the_config(TOKIO, "tkowned");
}

#[test]
fn panics_and_aborts_arrive_as_join_errors() {
    shared::panics_and_aborts_arrive_as_join_errors(TOKIO);
}

#[test]
fn shutdown_now_cancels_pending_tasks() {
    shared::shutdown_now_cancels_pending_tasks(TOKIO);
}

#[test]
fn shutdown_waits_for_a_task_that_yields_many_times() {
    shared::shutdown_waits_for_a_task_that_yields_many_times(TOKIO);
}

#[test]
fn shutdown_now_cancels_a_task_waiting_after_yields() {
    shared::shutdown_now_cancels_a_task_waiting_after_yields(TOKIO);
}

#[test]
fn owned_runtime_dropped_inside_another_runtimes_task_does_not_panic() {
    let run = Run::builder()
        .flavor(Flavor::Tokio)
        .name("tkinner")
        .max_workers(1)
        .build()
        .unwrap();
    let pending = run.spawn(async { 5 });
    let outer = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let value = outer.block_on(async move {
        let value = tokio::spawn(async move {
            let value = pending.await.unwrap();
            drop(run);
            value
        })
        .await
        .unwrap();
        // Inside the outer runtime, `Flavor::Tokio` borrows it instead.
        let borrowed = Run::new(Flavor::Tokio).unwrap();
        assert!(borrowed.trace().reasons().contains(&Reason::AmbientTokio));
        value
    });
    assert_eq!(value, 5);
}

#[test]
fn scope_dropped_on_a_tokio_worker_with_pending_work_does_not_block_it() {
    let run = Run::builder()
        .flavor(Flavor::Tokio)
        .name("tkbusy")
        .max_workers(1)
        .build()
        .unwrap();
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let waiting = run.spawn_blocking(move || gate.recv().is_ok());
    let outer = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // On a current-thread runtime a blocked worker would never reach `send`.
    outer.block_on(async move {
        drop(run);
        tokio::task::yield_now().await;
        open.send(()).unwrap();
    });
    assert!(waiting.join().unwrap());
}

#[test]
fn scope_thread_count_returns_to_baseline() {
    if !common::lists_threads() {
        return;
    }
    if common::in_child_process("scope_thread_count_returns_to_baseline") {
        shared::scope_thread_count_returns_to_baseline(TOKIO, "tkbase");
    }
}

#[test]
fn a_provided_runtime_is_used_and_left_running() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tkmine")
        .build()
        .unwrap();
    let run = Run::builder()
        .executor(unirun::Handle::from_tokio(rt.handle().clone()))
        .build()
        .unwrap();
    assert_eq!(run.trace().resolved(), Flavor::Tokio);
    assert_eq!(run.trace().reason(), &Reason::Provided);
    assert_eq!(run.spawn(async { thread_name() }).join().unwrap(), "tkmine");
    run.shutdown();
    assert_eq!(rt.block_on(rt.spawn(async { 4 })).unwrap(), 4);
}

#[test]
fn block_on_runs_in_the_owned_runtimes_context() {
    let run = Run::builder()
        .flavor(Flavor::Tokio)
        .max_workers(1)
        .build()
        .unwrap();
    let inside = run.block_on(async { tokio::runtime::Handle::try_current().is_ok() });
    assert!(inside);
    assert!(tokio::runtime::Handle::try_current().is_err());
}
