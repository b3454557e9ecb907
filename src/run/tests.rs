//! Unit tests of `Run`'s teardown.

use std::sync::mpsc;

use super::shutdown::{AT_THE_CLOSE, AT_THE_DEADLINE, COUNTED, REFUSE_HELPER};
use super::*;

#[test]
fn a_refused_helper_thread_cancels_once_and_returns() {
    // If the refusal stopped cancelling, the join below would hang: the
    // watchdog fails the test instead.
    unirun_test_support::watchdog_this_test(|| {
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        // Pending forever: only the cancellation can end it.
        let stuck = run.spawn(std::future::pending::<()>());
        REFUSE_HELPER.with(|r| r.set(true));
        let mut run = run;
        let name = run.name.clone();
        run.take_teardown().off_thread(Stop::Wait, &name);
        REFUSE_HELPER.with(|r| r.set(false));
        let err = stuck.join().unwrap_err();
        assert!(err.is_cancelled(), "{err}");
    });
}

/// How many tasks the last shutdown on this thread counted cancelled.
fn counted() -> usize {
    COUNTED
        .with(std::cell::Cell::take)
        .expect("a shutdown ran on this thread")
}

/// A blocking closure of `run` that runs until `release` is sent to;
/// returns once it is running (in its poll, which a close cannot stop).
fn running_closure(run: &Run) -> (JoinHandle<()>, mpsc::Sender<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let closure = run.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        released.recv().unwrap();
    });
    started.recv().unwrap();
    (closure, release)
}

/// Lets the closure of [`running_closure`] return right after the
/// shutdown's close, and waits until every task left the set.
fn release_after_the_close(release: mpsc::Sender<()>) {
    AT_THE_CLOSE.with(|step| {
        step.set(Some(Box::new(move |tasks: &unirun_core::TaskSet| {
            assert!(tasks.is_closed());
            release.send(()).unwrap();
            unirun_core::block_on(tasks.wait_empty());
        })))
    });
}

fn assert_the_step_ran() {
    assert!(
        AT_THE_CLOSE.with(|step| step.take()).is_none(),
        "the shutdown cancelled nothing"
    );
}

/// A task that ends just at a bounded shutdown's deadline, after its last
/// look at the tasks and before the close, was not left running: the
/// shutdown says everything finished in time.
#[test]
fn a_task_that_ends_at_the_deadline_is_not_reported_left_running() {
    unirun_test_support::watchdog_this_test(|| {
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        let gate = unirun_test_support::Gate::default();
        let held = gate.clone();
        let task = run.spawn_blocking(move || held.wait());
        AT_THE_DEADLINE.with(|step| {
            step.set(Some(Box::new(move |tasks: &unirun_core::TaskSet| {
                gate.open();
                // Ends: the closure returns once the gate is open.
                unirun_core::block_on(tasks.wait_empty());
            })))
        });
        let in_time = run.shutdown_timeout(std::time::Duration::ZERO);
        assert!(
            AT_THE_DEADLINE.with(|step| step.take()).is_none(),
            "the deadline passed with the task left"
        );
        task.join().unwrap();
        assert!(in_time, "the task ended before the close");
        assert_eq!(counted(), 0);
    });
}

/// Defect: a bounded shutdown counted the tasks left at its deadline before
/// it closed the scope, so a task that finished after that count (here a
/// blocking closure, which the close cannot stop once it runs) was
/// reported cancelled, and the shutdown said it cancelled something. Now
/// it counts only what the close ended unfinished.
#[test]
fn a_task_that_finishes_after_the_close_is_not_counted_cancelled() {
    unirun_test_support::watchdog_this_test(|| {
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        let (closure, release) = running_closure(&run);
        release_after_the_close(release);
        let in_time = run.shutdown_timeout(std::time::Duration::ZERO);
        assert_the_step_ran();
        closure.join().unwrap();
        assert_eq!(counted(), 0);
        assert!(in_time, "nothing was cancelled");
    });
}

/// The other side: a task the close really cancels makes the bounded
/// shutdown say so, and is counted, alone (the closure that finished
/// after the close is not).
#[test]
fn a_bounded_shutdown_counts_exactly_what_its_close_cancelled() {
    unirun_test_support::watchdog_this_test(|| {
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        let stuck = run.spawn(std::future::pending::<()>());
        let (closure, release) = running_closure(&run);
        release_after_the_close(release);
        let in_time = run.shutdown_timeout(std::time::Duration::ZERO);
        assert_the_step_ran();
        assert!(stuck.join().unwrap_err().is_cancelled());
        closure.join().unwrap();
        assert_eq!(counted(), 1);
        assert!(!in_time, "a task was cancelled");
    });
}

/// `shutdown_now` counts the same way: the cancelled task, not the closure
/// that finished after the close.
#[test]
fn shutdown_now_counts_exactly_what_its_close_cancelled() {
    unirun_test_support::watchdog_this_test(|| {
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        let stuck = run.spawn(std::future::pending::<()>());
        let (closure, release) = running_closure(&run);
        release_after_the_close(release);
        run.shutdown_now();
        assert_the_step_ran();
        assert!(stuck.join().unwrap_err().is_cancelled());
        closure.join().unwrap();
        assert_eq!(counted(), 1);
    });
}
