//! The current executor: `Handle::current()` / `Handle::try_current()`, and
//! `unirun::spawn`, `unirun::to_thread` and `JoinSet::spawn` meaning
//! "here" inside a scope. Where each task ran is read off its thread's name.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{message, watchdog_this_test};
use unirun::{Flavor, Handle, Run};

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

fn scope(name: &str) -> Run {
    Run::builder()
        .flavor(Flavor::Threads)
        .name(name)
        .max_workers(2)
        .build()
        .expect("a threads scope")
}

/// `unirun::block_on` counts itself on its thread only while it runs (the
/// depth guard in `scope.rs`, dropped after the reactor's context and
/// lease): nested calls see the shared default, and once the outer call
/// returned, or unwound from a panicking future, the plain thread sees no
/// current executor again.
#[test]
fn block_on_leaves_no_current_executor_behind() {
    watchdog_this_test(|| {
        std::thread::spawn(|| {
            assert!(Handle::try_current().is_none());
            let seen = unirun::block_on(async {
                let inner = unirun::block_on(async { Handle::try_current().is_some() });
                (inner, Handle::try_current().is_some())
            });
            assert_eq!(seen, (true, true), "inside the inner and the outer call");
            assert!(Handle::try_current().is_none(), "after block_on returned");
            let unwound = std::panic::catch_unwind(|| {
                unirun::block_on(async {
                    assert!(Handle::try_current().is_some());
                    panic!("the future panics");
                })
            });
            assert_eq!(message(&*unwound.unwrap_err()), "the future panics");
            assert!(Handle::try_current().is_none(), "after block_on unwound");
        })
        .join()
        .unwrap();
    });
}

#[test]
fn try_current_is_none_on_a_plain_thread() {
    watchdog_this_test(|| {
        assert!(Handle::try_current().is_none());
        let payload = std::panic::catch_unwind(Handle::current).unwrap_err();
        let text = message(&*payload);
        assert!(text.contains("Handle::current()"), "{text}");
        assert!(text.contains("get_executor"), "{text}");
    });
}

#[test]
fn handle_current_in_a_scope_task_spawns_on_that_scope() {
    watchdog_this_test(|| {
        let run = scope("cur-task");
        let names = run
            .spawn(async {
                let here = Handle::current();
                let inner = here.spawn(async { thread_name() }).await.unwrap();
                (here.name().to_string(), thread_name(), inner)
            })
            .join()
            .unwrap();
        assert_eq!(names.0, "cur-task");
        assert!(names.1.starts_with("cur-task-"), "{names:?}");
        assert!(names.2.starts_with("cur-task-"), "{names:?}");
        // The inner task was one of the scope's.
        assert_eq!(run.metrics().spawned(), 2);
    });
}

#[test]
fn unirun_spawn_inside_a_scope_runs_on_its_workers() {
    watchdog_this_test(|| {
        let run = scope("cur-spawn");
        let (from_block_on, from_task) = run.block_on(async {
            let direct = unirun::spawn(async { thread_name() }).await.unwrap();
            let nested = unirun::spawn(async { unirun::spawn(async { thread_name() }).await })
                .await
                .unwrap()
                .unwrap();
            (direct, nested)
        });
        assert!(from_block_on.starts_with("cur-spawn-"), "{from_block_on}");
        assert!(from_task.starts_with("cur-spawn-"), "{from_task}");
        assert_eq!(run.metrics().spawned(), 3);
    });
}

#[test]
fn scope_shutdown_waits_for_what_unirun_spawn_started_inside_it() {
    watchdog_this_test(|| {
        let run = scope("cur-wait");
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        run.block_on(async move {
            // Detached: only the scope keeps track of it.
            unirun::spawn(async move {
                unirun::to_thread(move || rx.recv()).await.unwrap().unwrap();
                flag.store(true, Ordering::SeqCst);
            })
            .detach();
        });
        tx.send(()).unwrap();
        run.shutdown();
        assert!(
            done.load(Ordering::SeqCst),
            "shutdown returned before the task ended"
        );
    });
}

#[test]
fn to_thread_inside_a_scope_uses_its_blocking_lane() {
    watchdog_this_test(|| {
        let run = scope("cur-lane");
        let name = run.block_on(async { unirun::to_thread(thread_name).await.unwrap() });
        assert!(name.starts_with("cur-lane-blocking-"), "{name}");
        // And from inside one of its blocking closures.
        let nested = run
            .spawn_blocking(|| Handle::current().name().to_string())
            .join()
            .unwrap();
        assert_eq!(nested, "cur-lane");
    });
}

#[test]
fn join_set_spawn_inside_a_scope_runs_on_its_workers() {
    watchdog_this_test(|| {
        let run = scope("cur-set");
        let name = run.block_on(async {
            let mut set = unirun::JoinSet::new();
            set.spawn(async { thread_name() });
            set.join_next().await.unwrap().unwrap()
        });
        assert!(name.starts_with("cur-set-"), "{name}");
    });
}

#[test]
fn outside_scopes_the_current_executor_is_the_shared_default() {
    watchdog_this_test(|| {
        // A task of the shared default sees the shared default.
        let seen = unirun::spawn(async {
            let here = Handle::try_current().map(|h| h.name().to_string());
            let inner = unirun::spawn(async { thread_name() }).await.unwrap();
            (here, inner)
        })
        .join()
        .unwrap();
        assert_eq!(seen.0.as_deref(), Some("unirun"));
        assert!(seen.1.starts_with("unirun-"), "{seen:?}");
        // So does a blocking closure of it, and `unirun::block_on`.
        let lane = unirun::to_thread(|| Handle::try_current().map(|h| h.name().to_string()));
        assert_eq!(lane.join().unwrap().as_deref(), Some("unirun"));
        let main = unirun::block_on(async { Handle::current().name().to_string() });
        assert_eq!(main, "unirun");
        // `get_executor` is the shared default even inside a scope.
        let run = scope("cur-default");
        let name = run.block_on(async { unirun::get_executor().name().to_string() });
        assert_eq!(name, "unirun");
    });
}

#[test]
fn another_scopes_handle_spawns_there_even_inside_a_task() {
    watchdog_this_test(|| {
        let outer = scope("cur-outer");
        let inner = scope("cur-inner");
        let inner_handle = inner.handle();
        let (name, thread) = outer
            .spawn(async move {
                inner_handle
                    .spawn(async { (Handle::current().name().to_string(), thread_name()) })
                    .await
                    .unwrap()
            })
            .join()
            .unwrap();
        assert_eq!(name, "cur-inner");
        assert!(thread.starts_with("cur-inner-"), "{thread}");
    });
}

/// A blocking closure of the shared default that is still running when
/// `reset` replaces the default: `Handle::current()` there panics with a
/// message that names the reset (not "called outside unirun"). `reset`
/// waits for the closure, so the closure watches for the reset to start:
/// the default it sees goes away then. In a child process: it resets the
/// process.
#[test]
fn handle_current_in_a_closure_of_a_reset_default_names_the_reset() {
    if !unirun_test_support::child::in_child_process(
        "handle_current_in_a_closure_of_a_reset_default_names_the_reset",
    ) {
        return;
    }
    watchdog_this_test(|| {
        let (looked_tx, looked) = std::sync::mpsc::channel();
        let closure = unirun::to_thread(move || {
            let before = Handle::try_current().is_some();
            looked_tx.send(()).unwrap();
            // Ends: `reset` replaces the default, then waits for this.
            while Handle::try_current().is_some() {
                std::thread::yield_now();
            }
            let after = std::panic::catch_unwind(Handle::current).map(|_| ());
            (before, after.map_err(|payload| message(&*payload)))
        });
        looked.recv().unwrap();
        let reset = std::thread::spawn(unirun::reset);
        let (before, after) = closure.join().unwrap();
        reset.join().unwrap();
        assert!(before, "a closure of the shared default sees it");
        let said = after.expect_err("no default of its own after the reset");
        assert!(said.contains("reset"), "{said}");
    });
}
