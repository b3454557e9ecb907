//! Seams between unirun and tokio: a runtime that dies under the shared
//! default, bounded shutdowns over tokio's blocking pool, compat
//! `spawn_blocking` and its runtime's drop, and unirun-io in a forked child.
#![cfg(feature = "tokio-backend")]

mod common;

use std::time::Duration;

use common::watchdog_this_test;
use unirun_test_support::Gate;

/// A tokio timer and a tokio socket, awaited in a unirun task.
async fn timer_and_socket() -> usize {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = unirun::spawn(async move { listener.accept().await.map(|_| ()) });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    accept.await.unwrap().unwrap();
    drop(stream);
    7
}

/// The shared default started inside a multi-thread runtime that is then
/// dropped: its tasks' tokio timers and sockets keep working (they move to
/// unirun-io), in a child process so the shared default starts there.
#[test]
fn a_dropped_runtime_that_started_the_shared_default_is_not_kept_as_its_reactor() {
    if !common::in_child_process(
        "a_dropped_runtime_that_started_the_shared_default_is_not_kept_as_its_reactor",
    ) {
        return;
    }
    watchdog_this_test(|| {
        let rt1 = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let first = rt1.block_on(async { unirun::spawn(timer_and_socket()).await.unwrap() });
        assert_eq!(first, 7);
        drop(rt1);
        let after = unirun::block_on(unirun::spawn(timer_and_socket())).unwrap();
        assert_eq!(after, 7);
    });
}

/// Two consecutive `#[tokio::test(flavor = "multi_thread")]`-shaped
/// runtimes in one process, each using the shared default with tokio
/// timers and sockets.
#[test]
fn consecutive_multi_thread_runtimes_share_the_default_without_a_dead_reactor() {
    if !common::in_child_process(
        "consecutive_multi_thread_runtimes_share_the_default_without_a_dead_reactor",
    ) {
        return;
    }
    watchdog_this_test(|| {
        for _ in 0..3 {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            let got = rt.block_on(async { unirun::spawn(timer_and_socket()).await.unwrap() });
            assert_eq!(got, 7);
            drop(rt);
        }
    });
}

/// In a forked child, after the parent used tokio through unirun (so its
/// unirun-io runtime runs, on a thread the child does not have), tokio
/// timers and sockets in unirun tasks still complete in `Run::block_on`:
/// the child gets a runtime of its own, it never waits on the parent's
/// thread; the shared default there is the child's own, inside it too.
#[cfg(all(unix, feature = "process-backend"))]
#[test]
fn a_forked_child_gets_its_own_unirun_io_never_the_parents() {
    if !common::in_child_process("a_forked_child_gets_its_own_unirun_io_never_the_parents") {
        return;
    }
    watchdog_this_test(|| {
        // The parent: unirun-io runs and serves a scope's task.
        let run = std::sync::Arc::new(unirun::Run::new(unirun::Flavor::Threads).unwrap());
        assert_eq!(run.block_on(run.spawn(timer_and_socket())).unwrap(), 7);
        assert!(unirun::io::test_hooks::own_runtime_running());
        // The safety net only: a hang would show as a timeout.
        let options = unirun::process::ProcessOptions::default().timeout(Duration::from_secs(30));

        // A scope inherited from the parent.
        let inherited = run.clone();
        let got = unirun::to_process_with(options, move || {
            inherited
                .block_on(inherited.spawn(timer_and_socket()))
                .unwrap()
        });
        assert_eq!(got.join().unwrap(), 7);

        // A scope built in the child.
        let got = unirun::to_process_with(options, || {
            let run = unirun::Run::new(unirun::Flavor::Threads).unwrap();
            let got = run.block_on(run.spawn(timer_and_socket())).unwrap();
            run.shutdown();
            got
        });
        assert_eq!(got.join().unwrap(), 7);

        // The shared default: the child's own, whose workers run inside
        // the child's unirun-io.
        let got = unirun::to_process_with(options, || {
            unirun::block_on(unirun::spawn(timer_and_socket())).unwrap()
        });
        assert_eq!(got.join().unwrap(), 7);
    });
}

/// `shutdown_timeout` of a threads scope (and of a processes scope, whose
/// tasks run on a thread pool) whose `block_on` started a tokio blocking
/// closure (on the reactor's runtime, unirun-io) returns while the closure
/// is still provably stuck, and says work was left (`false`). In a child
/// process: there the scope is unirun-io's only user.
#[test]
fn shutdown_timeout_of_a_threads_scope_is_bounded_over_a_stuck_tokio_blocking_closure() {
    if !common::in_child_process(
        "shutdown_timeout_of_a_threads_scope_is_bounded_over_a_stuck_tokio_blocking_closure",
    ) {
        return;
    }
    let mut flavors = vec![unirun::Flavor::Threads];
    if cfg!(all(unix, feature = "process-backend")) {
        flavors.push(unirun::Flavor::Processes);
    }
    for flavor in flavors {
        watchdog_this_test(move || threads_scope_bounded_over_tokio_blocking(flavor));
    }
}

fn threads_scope_bounded_over_tokio_blocking(flavor: unirun::Flavor) {
    {
        let run = unirun::Run::builder().flavor(flavor).build().unwrap();
        assert!(
            run.trace().reactor().unwrap().contains("unirun-io"),
            "{flavor:?}"
        );
        let gate = Gate::default();
        let stuck = gate.clone();
        let (started, ran) = std::sync::mpsc::channel();
        // Detached: shutdown_timeout is what must not wait for it.
        run.block_on(async move {
            drop(tokio::task::spawn_blocking(move || {
                started.send(()).unwrap();
                stuck.wait();
            }));
        });
        ran.recv().unwrap();
        // The gate opens only after this returned: a wait for the closure
        // here would hang, and the watchdog would fail the test.
        let clean = run.shutdown_timeout(Duration::from_millis(50));
        gate.open();
        assert!(!clean, "{flavor:?}: a blocking closure was still running");
    }
}

/// Review fault: `shutdown_now` of a threads scope, unirun-io's last
/// user, waited for a tokio blocking closure its `block_on` started (the
/// dropped lease stopped unirun-io gracefully). "Now" stops now: it
/// returns while the closure is provably still stuck. In a child process,
/// where the scope is unirun-io's only user.
#[test]
fn shutdown_now_of_a_threads_scope_never_waits_for_a_tokio_blocking_closure() {
    if !common::in_child_process(
        "shutdown_now_of_a_threads_scope_never_waits_for_a_tokio_blocking_closure",
    ) {
        return;
    }
    watchdog_this_test(|| {
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Threads)
            .build()
            .unwrap();
        assert!(run.trace().reactor().unwrap().contains("unirun-io"));
        let gate = Gate::default();
        let stuck = gate.clone();
        let (started, ran) = std::sync::mpsc::channel();
        run.block_on(async move {
            drop(tokio::task::spawn_blocking(move || {
                started.send(()).unwrap();
                stuck.wait();
            }));
        });
        ran.recv().unwrap();
        // The gate opens only after this returned: a wait for the closure
        // here would hang, and the watchdog would fail the test.
        run.shutdown_now();
        gate.open();
    });
}

/// The same over a tokio scope: its runtime's blocking closure.
#[test]
fn shutdown_timeout_of_a_tokio_scope_is_bounded_and_reports_a_stuck_blocking_closure() {
    watchdog_this_test(|| {
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Tokio)
            .max_workers(1)
            .build()
            .unwrap();
        let gate = Gate::default();
        let stuck = gate.clone();
        let (started, ran) = std::sync::mpsc::channel();
        // Detached: shutdown_timeout is what must not wait for it.
        run.block_on(async move {
            drop(tokio::task::spawn_blocking(move || {
                started.send(()).unwrap();
                stuck.wait();
            }));
        });
        ran.recv().unwrap();
        let clean = run.shutdown_timeout(Duration::from_millis(50));
        gate.open();
        assert!(!clean, "a blocking closure was still running");
    });
}

/// The same over a smol scope: a closure on its blocking lane.
#[test]
fn shutdown_timeout_of_a_smol_scope_is_bounded_over_a_stuck_blocking_closure() {
    watchdog_this_test(|| {
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Smol)
            .max_workers(1)
            .build()
            .unwrap();
        let gate = Gate::default();
        let stuck = gate.clone();
        let (started, ran) = std::sync::mpsc::channel();
        let _detached = run.spawn_blocking(move || {
            started.send(()).unwrap();
            stuck.wait();
        });
        ran.recv().unwrap();
        let clean = run.shutdown_timeout(Duration::from_millis(50));
        gate.open();
        assert!(!clean, "a blocking closure was still running");
    });
}

/// Opens its gate when dropped: spawned as a never-ending task on a
/// runtime, it opens the gate while the runtime's drop drops its tasks.
struct OpensOnDrop(Gate);

impl std::future::Future for OpensOnDrop {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

impl Drop for OpensOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Managed `compat::tokio::task::spawn_blocking`: dropping the runtime it
/// was spawned in waits for the closure, as tokio's own drop does, so its
/// effect is visible right after the drop returns. The closure is
/// released only once the drop has begun (by a task the drop drops, before
/// or after unirun's own). On a current-thread runtime it also waits for
/// the runtime to start a blocking thread, which only the drop's wait
/// for the closure does: without that wait the closure stays stuck, so the
/// check cannot pass by luck.
#[test]
fn dropping_a_runtime_waits_for_its_managed_compat_blocking_closures() {
    for flavor in ["current_thread", "multi_thread"] {
        for opener_first in [true, false] {
            watchdog_this_test(move || dropped_runtime_waits(flavor, opener_first));
        }
    }
}

fn dropped_runtime_waits(flavor: &'static str, opener_first: bool) {
    use std::sync::atomic::{AtomicBool, Ordering};

    let waiting = Gate::default();
    let rt = if flavor == "current_thread" {
        let opens = waiting.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_start(move || opens.open())
            .build()
            .unwrap()
    } else {
        waiting.open();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let written = std::sync::Arc::new(AtomicBool::new(false));
    let gate = Gate::default();
    let (started, ran) = std::sync::mpsc::channel();
    let (theirs, stuck, drop_waits) = (written.clone(), gate.clone(), waiting.clone());
    if opener_first {
        drop(rt.spawn(OpensOnDrop(gate.clone())));
    }
    // Detached: the check below is the closure's own write.
    rt.block_on(async move {
        drop(unirun::compat::tokio::task::spawn_blocking(move || {
            started.send(()).unwrap();
            // Opened by the runtime's drop: it ends.
            stuck.wait();
            // Opened by the drop's wait (or below, after the check).
            drop_waits.wait();
            theirs.store(true, Ordering::SeqCst);
        }));
    });
    if !opener_first {
        drop(rt.spawn(OpensOnDrop(gate)));
    }
    ran.recv().unwrap();
    drop(rt);
    let seen = written.load(Ordering::SeqCst);
    waiting.open();
    assert!(
        seen,
        "{flavor}: the drop returned before the closure's write"
    );
}
