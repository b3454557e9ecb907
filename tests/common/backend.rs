//! Test bodies shared by the backends onto foreign executors (tokio, smol):
//! each runs against a [`Case`] that says how the backend names its
//! threads, so both test files check the same behaviour with the same code.
#![allow(dead_code)] // each backend's test file uses the cases that fit it

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};

use unirun::{Flavor, Run};

use unirun_test_support::watchdog;

use crate::common::{thread_names, threads_named, wait_until};

/// A backend under test, and how its threads are named.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Case {
    pub(crate) flavor: Flavor,
    /// The prefix of a blocking thread's name in a scope named `name`.
    pub(crate) blocking_prefix: fn(&str) -> String,
}

/// A scope of the case's backend that owns its runtime.
fn scope(case: Case, name: &str, workers: usize) -> Run {
    let run = Run::builder()
        .flavor(case.flavor)
        .name(name)
        .max_workers(workers)
        .max_blocking(2)
        .build()
        .unwrap();
    assert_eq!(run.trace().resolved(), case.flavor, "{}", run.trace());
    run
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// The scope is sized and named from its settings: its handle says which
/// backend it is and how big, async tasks run on `{name}-` threads and
/// blocking closures on the backend's blocking threads.
pub(crate) fn scope_is_sized_and_named_from_the_config(case: Case, name: &str) {
    let run = scope(case, name, 2);
    assert_eq!(run.handle().flavor(), case.flavor);
    assert_eq!(run.handle().num_workers(), 2);
    assert_eq!(run.handle().max_blocking_threads(), 2);
    let worker = run.spawn(async { thread_name() }).join().unwrap();
    assert!(worker.starts_with(&format!("{name}-")), "{worker}");
    let blocking = run.spawn_blocking(thread_name).join().unwrap();
    assert!(
        blocking.starts_with(&(case.blocking_prefix)(name)),
        "{blocking}"
    );
    assert_eq!(run.spawn_blocking(|| 6 * 7).join().unwrap(), 42);
    assert_eq!(run.map(1..=3, |i| i * 2), [2, 4, 6]);
    run.shutdown();
}

/// A panic in a task or a blocking closure and an abort arrive as
/// `JoinError`s with the panic's message and location, and the workers
/// survive them.
pub(crate) fn panics_and_aborts_arrive_as_join_errors(case: Case) {
    let run = scope(case, "failing", 1);
    let err = run
        .spawn(async { panic!("async task failed") })
        .join()
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("async task failed"));
    let location = err.panic_location().expect("location");
    assert!(location.file().ends_with("backend.rs"), "{location:?}");

    let err = run
        .spawn_blocking(|| panic!("blocking failed"))
        .join()
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("blocking failed"));

    let stuck = run.spawn(std::future::pending::<()>());
    stuck.abort();
    assert!(stuck.join().unwrap_err().is_cancelled());

    assert_eq!(run.spawn(async { 3 }).join().unwrap(), 3);
}

/// Wakes itself `left` times, then is ready with how often it was polled.
struct Yields {
    left: usize,
    polls: usize,
}

impl Future for Yields {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        if self.left == 0 {
            return Poll::Ready(self.polls);
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A graceful shutdown waits for a task that returns `Pending` many times
/// (each poll after the first skips recording its waker again) and then
/// finishes: its output arrives whole.
pub(crate) fn shutdown_waits_for_a_task_that_yields_many_times(case: Case) {
    watchdog("shutdown after yields", move || {
        let run = scope(case, "yielding", 2);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                run.spawn(Yields {
                    left: 1_000,
                    polls: 0,
                })
            })
            .collect();
        run.shutdown();
        for task in tasks {
            assert_eq!(task.join().unwrap(), 1_001);
        }
    });
}

/// A task that yielded many times and then waits for something that never
/// comes is cancelled by `shutdown_now`: closing the scope wakes it through
/// the waker it recorded on its first `Pending`, even after later polls.
pub(crate) fn shutdown_now_cancels_a_task_waiting_after_yields(case: Case) {
    watchdog("shutdown_now after yields", move || {
        let run = scope(case, "closing", 2);
        let (reached, waiting) = mpsc::channel();
        let stuck = run.spawn(async move {
            Yields {
                left: 100,
                polls: 0,
            }
            .await;
            reached.send(()).unwrap();
            Never.await
        });
        waiting.recv().unwrap();
        run.shutdown_now();
        assert!(stuck.join().unwrap_err().is_cancelled());
    });
}

/// Pending forever, without waking anyone.
struct Never;

impl Future for Never {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// `shutdown_now` cancels a task that never ran to completion.
pub(crate) fn shutdown_now_cancels_pending_tasks(case: Case) {
    let run = scope(case, "pending", 1);
    let stuck = run.spawn(std::future::pending::<()>());
    run.shutdown_now();
    assert!(stuck.join().unwrap_err().is_cancelled());
}

/// Every thread a scope started (workers and blocking threads) is gone
/// after its shutdown. Runs in a child process (see the callers), so no
/// other test's threads come and go meanwhile.
pub(crate) fn scope_thread_count_returns_to_baseline(case: Case, name: &str) {
    let before = thread_names().len();
    let run = scope(case, name, 2);
    let tasks: Vec<_> = (0..8).map(|i| run.spawn(async move { i })).collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), i);
    }
    // Two closures that wait for each other (and for this thread) hold two
    // blocking threads at once; the kernel shows names cut to 15 bytes.
    let (started, release) = (Arc::new(Barrier::new(3)), Arc::new(Barrier::new(3)));
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
    let blocking_prefix = (case.blocking_prefix)(name);
    let shown: String = blocking_prefix.chars().take(15).collect();
    assert!(threads_named(&shown) >= 2, "{:?}", thread_names());
    release.wait();
    for task in blocking {
        let thread = task.join().unwrap();
        assert!(thread.starts_with(&blocking_prefix), "{thread}");
    }
    // A new thread names itself once it first runs.
    wait_until(|| threads_named(&format!("{name}-")) >= 2);
    run.shutdown();
    // Joined; the kernel may list an exited thread a moment longer.
    wait_until(|| threads_named(&format!("{name}-")) == 0);
    wait_until(|| thread_names().len() == before);
}
