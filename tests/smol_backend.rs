//! The smol backend: `Flavor::Smol` scopes run on an async-executor driven by
//! threads named after the scope.
#![cfg(feature = "smol-backend")]

mod common;
#[path = "common/backend.rs"]
mod shared;

use shared::Case;
use unirun::{Flavor, Run};

/// The smol backend's blocking lane names its threads `{name}-blocking-{i}`.
const SMOL: Case = Case {
    flavor: Flavor::Smol,
    blocking_prefix: |name| format!("{name}-blocking-"),
};

#[test]
fn smol_scope_threads_carry_the_scope_name() {
    shared::scope_is_sized_and_named_from_the_config(SMOL, "smolscope");
}

#[test]
fn panics_and_aborts_arrive_as_join_errors() {
    shared::panics_and_aborts_arrive_as_join_errors(SMOL);
}

#[test]
fn shutdown_now_cancels_pending_tasks() {
    shared::shutdown_now_cancels_pending_tasks(SMOL);
}

#[test]
fn shutdown_waits_for_a_task_that_yields_many_times() {
    shared::shutdown_waits_for_a_task_that_yields_many_times(SMOL);
}

#[test]
fn shutdown_now_cancels_a_task_waiting_after_yields() {
    shared::shutdown_now_cancels_a_task_waiting_after_yields(SMOL);
}

#[test]
fn scope_thread_count_returns_to_baseline() {
    if !common::lists_threads() {
        return;
    }
    if common::in_child_process("scope_thread_count_returns_to_baseline") {
        shared::scope_thread_count_returns_to_baseline(SMOL, "smolbase");
    }
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
