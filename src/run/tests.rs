//! Unit tests of `Run`'s teardown.

use super::shutdown::{AT_THE_DEADLINE, REFUSE_HELPER};
use super::*;

#[test]
fn a_refused_helper_thread_cancels_once_and_returns() {
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
    });
}
