//! `unirun::compat::tokio`, written as tokio code is, checked against
//! tokio's documented behaviour. Each test runs here in managed mode and
//! again in a child process with `UNIRUN_COMPAT_MODE=passthrough`, where
//! every call is tokio's own: the same assertions hold for both.
#![cfg(feature = "tokio-backend")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{message, on_tokio, watchdog_this_test};
use unirun::compat::tokio as compat;
use unirun::compat::tokio::task;

fn current_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn spawn_and_spawn_blocking_return_values() {
    common::also_in_passthrough("spawn_and_spawn_blocking_return_values");
    on_tokio(|| async {
        let handle: task::JoinHandle<u32> = task::spawn(async {
            task::yield_now().await;
            40 + 2
        });
        assert_eq!(handle.await.unwrap(), 42);
        // `tokio::spawn` call sites: the module root has `spawn` too.
        assert_eq!(compat::spawn(async { 7 }).await.unwrap(), 7);

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
    });
}

#[test]
fn panics_are_join_errors() {
    common::also_in_passthrough("panics_are_join_errors");
    on_tokio(|| async {
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
        assert!(io.to_string().contains("as io"), "{io}");
    });
}

#[test]
fn join_error_display_and_debug_have_tokios_shape() {
    common::also_in_passthrough("join_error_display_and_debug_have_tokios_shape");
    on_tokio(|| async {
        let handle = task::spawn(async { panic!("boom") });
        let id = handle.id();
        let err = handle.await.unwrap_err();
        assert_eq!(err.id(), id);
        assert_eq!(
            err.to_string(),
            format!("task {id} panicked with message \"boom\"")
        );
        assert_eq!(
            format!("{err:?}"),
            format!("JoinError::Panic({id:?}, \"boom\", ...)")
        );

        // A formatted message, from a blocking closure.
        let handle = task::spawn_blocking(|| -> () { panic!("n = {}", 7) });
        let id = handle.id();
        let err = handle.await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("task {id} panicked with message \"n = 7\"")
        );

        // A payload that is not a string.
        let handle = task::spawn(async { std::panic::panic_any(42_u32) });
        let id = handle.id();
        let err = handle.await.unwrap_err();
        assert_eq!(err.to_string(), format!("task {id} panicked"));
        assert_eq!(format!("{err:?}"), format!("JoinError::Panic({id:?}, ...)"));
        assert_eq!(err.into_panic().downcast_ref::<u32>(), Some(&42));

        let handle = task::spawn(std::future::pending::<()>());
        let id = handle.id();
        handle.abort();
        let err = handle.await.unwrap_err();
        assert_eq!(err.id(), id);
        assert_eq!(err.to_string(), format!("task {id} was cancelled"));
        assert_eq!(format!("{err:?}"), format!("JoinError::Cancelled({id:?})"));
        assert_eq!(format!("{id:?}"), format!("Id({id})"));
    });
}

#[test]
fn abort_cancels_the_task() {
    common::also_in_passthrough("abort_cancels_the_task");
    on_tokio(|| async {
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
            task::yield_now().await;
        }
        done.abort();
        assert_eq!(done.await.unwrap(), 9);

        // Through an `AbortHandle`, which may outlive the `JoinHandle`.
        let handle = task::spawn(std::future::pending::<()>());
        let abort = handle.abort_handle();
        assert_eq!(abort.id(), handle.id());
        assert!(!abort.is_finished());
        abort.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
        assert!(abort.is_finished());
    });
}

/// Aborting a blocking closure that already runs has no effect: it runs
/// to the end and the handle returns its real result.
#[test]
fn aborting_a_running_blocking_closure_keeps_its_result() {
    common::also_in_passthrough("aborting_a_running_blocking_closure_keeps_its_result");
    on_tokio(|| async {
        let (started_tx, started_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let handle = task::spawn_blocking(move || {
            started_tx.send(()).unwrap();
            gate_rx.recv().unwrap();
            "finished anyway"
        });
        started_rx.recv().unwrap();
        handle.abort();
        handle.abort_handle().abort();
        gate_tx.send(()).unwrap();
        assert_eq!(handle.await.unwrap(), "finished anyway");
    });
}

/// Something held by a task's future, that says when it is dropped and
/// can hold the drop up until the test lets it go on.
struct DropProbe {
    dropping: mpsc::Sender<()>,
    gate: mpsc::Receiver<()>,
    dropped: Arc<AtomicBool>,
    panic_in_drop: bool,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        let _ = self.dropping.send(());
        let _ = self.gate.recv();
        self.dropped.store(true, Ordering::SeqCst);
        if self.panic_in_drop {
            panic!("panic while dropping");
        }
    }
}

struct Probe {
    dropping: mpsc::Receiver<()>,
    gate: mpsc::Sender<()>,
    dropped: Arc<AtomicBool>,
}

fn probe(panic_in_drop: bool) -> (DropProbe, Probe) {
    let (dropping_tx, dropping_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel();
    let dropped = Arc::new(AtomicBool::new(false));
    (
        DropProbe {
            dropping: dropping_tx,
            gate: gate_rx,
            dropped: dropped.clone(),
            panic_in_drop,
        },
        Probe {
            dropping: dropping_rx,
            gate: gate_tx,
            dropped,
        },
    )
}

/// A pending task holding `held`; returns once it has been polled.
fn pending_task_holding(held: DropProbe) -> task::JoinHandle<()> {
    let (polled_tx, polled_rx) = mpsc::channel();
    let handle = task::spawn(async move {
        let _held = held;
        polled_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    polled_rx.recv().unwrap();
    handle
}

#[test]
fn aborted_task_resolves_only_after_its_future_is_dropped() {
    common::also_in_passthrough("aborted_task_resolves_only_after_its_future_is_dropped");
    on_tokio(|| async {
        let (held, probe) = probe(false);
        let handle = pending_task_holding(held);
        handle.abort();
        // The future's destructor has started and is held up: the task
        // has not finished.
        probe.dropping.recv().unwrap();
        assert!(!handle.is_finished());
        assert!(!probe.dropped.load(Ordering::SeqCst));
        probe.gate.send(()).unwrap();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(
            probe.dropped.load(Ordering::SeqCst),
            "resolved before the drop ended"
        );
    });
}

#[test]
fn panic_in_the_drop_of_an_aborted_task_is_a_panic() {
    common::also_in_passthrough("panic_in_the_drop_of_an_aborted_task_is_a_panic");
    on_tokio(|| async {
        let (held, probe) = probe(true);
        let handle = pending_task_holding(held);
        let id = handle.id();
        handle.abort();
        probe.gate.send(()).unwrap();
        let err = handle.await.unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        assert_eq!(err.id(), id);
        assert_eq!(message(&*err.into_panic()), "panic while dropping");
    });
}

/// tokio does not auto-advance a paused clock while a blocking closure is
/// in flight. The closure sleeps for real: that gives a wrong
/// implementation time to jump the clock (then the hour-long timeout fires
/// at once); a right one passes however long the sleep takes.
#[test]
fn paused_clock_waits_for_blocking_closures() {
    common::also_in_passthrough("paused_clock_waits_for_blocking_closures");
    watchdog_this_test(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let start = tokio::time::Instant::now();
            let handle = task::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(20));
                "slept"
            });
            let out = tokio::time::timeout(Duration::from_secs(3600), handle)
                .await
                .expect("the paused clock advanced past a blocking closure in flight");
            assert_eq!(out.unwrap(), "slept");

            let mut set = task::JoinSet::new();
            set.spawn_blocking(|| std::thread::sleep(Duration::from_millis(20)));
            tokio::time::timeout(Duration::from_secs(3600), set.join_next())
                .await
                .expect("the paused clock advanced past a JoinSet blocking closure")
                .unwrap()
                .unwrap();
            assert!(start.elapsed() < Duration::from_secs(3600));
        });
    });
}

#[test]
fn spawn_outside_a_runtime_panics_like_tokio() {
    common::also_in_passthrough("spawn_outside_a_runtime_panics_like_tokio");
    let payload = std::panic::catch_unwind(|| task::spawn(async {})).unwrap_err();
    assert!(
        message(&*payload).contains("Tokio 1.x runtime"),
        "{}",
        message(&*payload)
    );
    let payload = std::panic::catch_unwind(|| compat::spawn(async {})).unwrap_err();
    assert!(message(&*payload).contains("Tokio 1.x runtime"));
}

#[test]
fn spawn_blocking_outside_a_runtime_panics_like_tokio() {
    common::also_in_passthrough("spawn_blocking_outside_a_runtime_panics_like_tokio");
    let payload = std::panic::catch_unwind(|| task::spawn_blocking(|| 1)).unwrap_err();
    assert!(
        message(&*payload).contains("Tokio 1.x runtime"),
        "{}",
        message(&*payload)
    );
}

#[test]
fn task_ids_agree_everywhere() {
    common::also_in_passthrough("task_ids_agree_everywhere");
    on_tokio(|| async {
        // Outside a task (the runtime's `block_on` is not one).
        assert!(task::try_id().is_none());
        let payload = std::panic::catch_unwind(task::id).unwrap_err();
        assert_eq!(
            message(&*payload),
            "Can't get a task id when not inside a task"
        );

        let handle = task::spawn(async { (task::id(), task::try_id()) });
        let id = handle.id();
        assert_eq!(handle.abort_handle().id(), id);
        assert_eq!(handle.await.unwrap(), (id, Some(id)));

        let handle = task::spawn_blocking(task::id);
        let id = handle.id();
        assert_eq!(handle.await.unwrap(), id);

        // Ids are distinct while the tasks live, and hash.
        let handles: Vec<_> = (0..50)
            .map(|_| task::spawn(std::future::pending::<()>()))
            .collect();
        let ids: std::collections::HashSet<task::Id> = handles.iter().map(|h| h.id()).collect();
        assert_eq!(ids.len(), 50);
        for handle in handles {
            handle.abort();
            let err = handle.await.unwrap_err();
            assert!(ids.contains(&err.id()));
        }
    });
}

/// The compat types are as `Send`, `Sync` and unwind-safe as tokio's, so
/// code that moves them between threads or over `catch_unwind` compiles.
#[test]
fn types_have_tokios_auto_traits() {
    use std::panic::{RefUnwindSafe, UnwindSafe};
    fn send_sync<T: Send + Sync>() {}
    fn unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}
    fn send<T: Send>() {}
    send_sync::<task::JoinHandle<u8>>();
    send_sync::<task::AbortHandle>();
    send_sync::<task::JoinError>();
    send_sync::<task::Id>();
    send::<task::JoinSet<u8>>();
    unwind_safe::<task::JoinHandle<std::cell::Cell<u8>>>();
    unwind_safe::<task::AbortHandle>();
    send::<unirun::JoinSet<u8>>();
    send_sync::<unirun::AbortHandle>();
    unwind_safe::<unirun::AbortHandle>();
}

#[test]
fn spawn_inside_a_unirun_scope_runs_on_its_workers() {
    watchdog_this_test(|| {
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Threads)
            .name("compat-here")
            .max_workers(2)
            .build()
            .unwrap();
        let names = run.block_on(async {
            // From `block_on`, from a task of the scope, and through the set.
            let direct = compat::spawn(async { current_name() }).await.unwrap();
            let nested = compat::spawn(async { compat::spawn(async { current_name() }).await })
                .await
                .unwrap()
                .unwrap();
            let mut set = task::JoinSet::new();
            set.spawn(async { current_name() });
            let in_set = set.join_next().await.unwrap().unwrap();
            // tokio's timers and sockets work there.
            let io = compat::spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                listener.local_addr().unwrap().port() > 0
            });
            assert!(io.await.unwrap());
            [direct, nested, in_set]
        });
        for name in &names {
            assert!(name.starts_with("compat-here-"), "{names:?}");
        }
        // Every one of them was the scope's.
        assert_eq!(run.metrics().spawned(), 5);
    });
}

/// `compat::tokio::task::spawn_blocking` called inside a scope (here its
/// `block_on`) is one of the scope's blocking closures: the scope's
/// shutdown waits for it, as for `compat::tokio::spawn`.
///
/// The shutdown may not return while the closure waits: the test gives it
/// a while to (wrongly) return before letting the closure go. Only how fast
/// a wrong shutdown is caught depends on that wait, never whether a right
/// one passes.
#[test]
fn a_scopes_shutdown_waits_for_a_compat_blocking_closure_spawned_in_it() {
    watchdog_this_test(|| {
        let run = unirun::Run::builder()
            .name("compat-scope")
            .flavor(unirun::Flavor::Threads)
            .build()
            .unwrap();
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        run.block_on(async move {
            drop(task::spawn_blocking(move || {
                started_tx.send(()).unwrap();
                released.recv().unwrap();
                done.store(true, Ordering::SeqCst);
            }));
        });
        started.recv().unwrap();
        let (returned_tx, returned) = mpsc::channel();
        let shutdown = std::thread::spawn(move || {
            run.shutdown();
            returned_tx.send(()).unwrap();
        });
        let early = returned.recv_timeout(Duration::from_millis(300)).is_ok();
        release.send(()).unwrap();
        shutdown.join().unwrap();
        assert!(
            !early,
            "the scope's shutdown returned while its closure ran"
        );
        assert!(finished.load(Ordering::SeqCst));
    });
}
