//! [`TaskSet::unfinished_since_close`]: a closed set counts exactly the
//! members its close ended unfinished, however they leave (cancelled at
//! their next poll, waiting or not yet polled; dropped unpolled; a blocking
//! closure that reports its cancellation), and not a member whose poll was
//! under way at the close and that finished.
//!
//! Every test runs under a watchdog: a member the close failed to cancel
//! would leave its handle's `join` hanging.

use std::sync::Arc;

use unirun_core::{spawn_blocking_fallible_with, JoinError, Runnable, TaskFuture, TaskSet};
use unirun_core::{with_polled_owner, TickExecutor};
use unirun_test_support::watchdog_this_test;

/// Runs a runnable where it is scheduled.
fn run_here(runnable: Runnable, _: unirun_core::ScheduleInfo) {
    runnable.run();
}

#[test]
fn a_member_whose_poll_outlives_the_close_and_finishes_is_not_counted() {
    watchdog_this_test(|| {
        let ex = TickExecutor::new();
        let set = Arc::new(TaskSet::new());
        let closing = set.clone();
        // The close comes in the middle of the member's poll, which finishes.
        let member = ex.spawn_in(&set, async move {
            closing.close();
            5
        });
        ex.run_until_stalled();
        assert!(set.is_closed());
        assert_eq!(member.join().unwrap(), 5);
        assert_eq!(set.unfinished_since_close(), 0);
        assert_eq!(set.counts().completed(), 1);
    });
}

#[test]
fn members_the_close_cancels_are_counted_however_they_leave() {
    watchdog_this_test(|| {
        let ex = TickExecutor::new();
        let set = Arc::new(TaskSet::new());
        // Left before the close: never counted, finished or not.
        let finished = ex.spawn_in(&set, async { 1 });
        let aborted = ex.spawn_in(&set, std::future::pending::<()>());
        drop(TaskFuture::new(std::future::pending::<()>(), Some(&set)));
        ex.run_until_stalled();
        aborted.abort();
        ex.run_until_stalled();
        assert_eq!(finished.join().unwrap(), 1);
        assert!(aborted.join().unwrap_err().is_cancelled());
        assert!(set.is_empty());

        // Left after it: a member that waits (its waker holds a slot), one
        // that waits on a closure's own waker (no `OWN_TASK`), one spawned
        // and never polled, and one dropped unpolled.
        let waiting = ex.spawn_in(&set, std::future::pending::<()>());
        let foreign = ex.spawn(TaskFuture::new(std::future::pending::<()>(), Some(&set)));
        ex.run_until_stalled();
        let queued = ex.spawn_in(&set, async { unreachable!("cancelled before it starts") });
        let unpolled = TaskFuture::new(std::future::pending::<()>(), Some(&set));
        assert_eq!(set.len(), 4);
        set.close();
        assert_eq!(set.unfinished_since_close(), 4, "live ones count as well");
        drop(unpolled);
        ex.run_until_stalled();
        assert!(set.is_empty());
        assert_eq!(set.unfinished_since_close(), 4);
        assert!(waiting.join().unwrap_err().is_cancelled());
        assert!(queued.join().unwrap_err().is_cancelled());
        assert!(foreign.join().unwrap().unwrap_err().is_cancelled());
    });
}

#[test]
fn a_blocking_closure_that_reports_its_cancellation_after_the_close_is_counted() {
    watchdog_this_test(|| {
        let set = Arc::new(TaskSet::new());
        // Before the close: its own failure, not the close's.
        let (runnable, early) = spawn_blocking_fallible_with(
            || Err::<(), _>(JoinError::cancelled()),
            Some(&set),
            run_here,
        );
        runnable.schedule();
        assert!(unirun_core::block_on(early).unwrap_err().is_cancelled());

        // Running when the set closes, then saying it was cancelled (as a
        // call whose child process the shutdown killed does): the close's.
        let closing = set.clone();
        let (runnable, killed) = spawn_blocking_fallible_with(
            move || {
                closing.close();
                Err::<(), _>(JoinError::cancelled())
            },
            Some(&set),
            run_here,
        );
        runnable.schedule();
        assert!(unirun_core::block_on(killed).unwrap_err().is_cancelled());
        assert!(set.is_empty());
        assert_eq!(set.unfinished_since_close(), 1);

        // Running when the set closes, then returning a value: finished.
        let set = Arc::new(TaskSet::new());
        let closing = set.clone();
        let (runnable, value) = spawn_blocking_fallible_with(
            move || {
                closing.close();
                Ok::<_, JoinError>(2)
            },
            Some(&set),
            run_here,
        );
        runnable.schedule();
        assert_eq!(unirun_core::block_on(value).unwrap(), 2);
        assert_eq!(set.unfinished_since_close(), 0);
    });
}

struct Scope {
    tasks: Arc<TaskSet>,
}

#[test]
fn a_member_kept_by_its_sets_owner_is_counted_and_gives_the_owner_back() {
    watchdog_this_test(|| {
        let scope = Arc::new_cyclic(|owner| Scope {
            // SAFETY: the scope holds the set for as long as it lives and never
            // moves it out of its `Arc`.
            tasks: Arc::new(unsafe { TaskSet::new().owned_by(owner.clone()) }),
        });
        let ex = TickExecutor::new();
        let waiting = ex.spawn_in(&scope.tasks, async {
            // Polled with the owner published; then waits for good.
            assert!(with_polled_owner(|scope: Option<&Scope>| scope.is_some()));
            std::future::pending::<()>().await
        });
        ex.run_until_stalled();
        assert_eq!(Arc::strong_count(&scope), 2, "the member keeps the scope");
        scope.tasks.close();
        ex.run_until_stalled();
        assert!(waiting.join().unwrap_err().is_cancelled());
        assert_eq!(Arc::strong_count(&scope), 1, "the member gave it back");
        assert_eq!(scope.tasks.unfinished_since_close(), 1);
    });
}

#[test]
fn a_set_never_closed_reports_its_live_members() {
    watchdog_this_test(|| {
        let ex = TickExecutor::new();
        let set = Arc::new(TaskSet::new());
        let waiting = ex.spawn_in(&set, std::future::pending::<()>());
        ex.run_until_stalled();
        assert_eq!(set.unfinished_since_close(), 1);
        waiting.abort();
        ex.run_until_stalled();
        assert_eq!(set.unfinished_since_close(), 0);
    });
}
