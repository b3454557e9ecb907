//! `unirun::JoinSet`: tokio's `JoinSet` semantics on every backend.

mod common;

use std::collections::HashSet;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Waker};

use common::{message, watchdog_this_test};
use unirun::{Flavor, JoinSet, Run};

fn name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn collects_results_as_they_finish() {
    watchdog_this_test(|| {
        unirun::block_on(async {
            let mut set = JoinSet::new();
            assert!(set.is_empty());
            assert!(set.join_next().await.is_none());
            for i in 0..1000u32 {
                set.spawn(async move { i });
            }
            set.spawn_blocking(|| 5000);
            assert_eq!(set.len(), 1001);
            let mut seen = HashSet::new();
            while let Some(result) = set.join_next().await {
                assert!(seen.insert(result.unwrap()));
            }
            assert_eq!(seen.len(), 1001);
            assert!(set.is_empty());
        });
    });
}

#[test]
fn join_next_follows_completion_order_and_is_cancel_safe() {
    watchdog_this_test(|| {
        let mut set = JoinSet::new();
        let (tx, rx) = async_channel::bounded::<()>(1);
        set.spawn(async move {
            rx.recv().await.unwrap();
            "second"
        });
        set.spawn(async { "first" });
        unirun::block_on(async {
            assert_eq!(set.join_next().await.unwrap().unwrap(), "first");
            // A `join_next` polled once and dropped takes nothing.
            {
                let mut next = pin!(set.join_next());
                let pending = poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await;
                assert!(pending.is_pending());
            }
            assert_eq!(set.len(), 1);
            tx.send(()).await.unwrap();
            assert_eq!(set.join_next().await.unwrap().unwrap(), "second");
        });
    });
}

#[test]
fn try_join_next_never_waits() {
    watchdog_this_test(|| {
        let mut set = JoinSet::new();
        assert!(set.try_join_next().is_none());
        let (tx, rx) = async_channel::bounded::<u8>(1);
        set.spawn(async move { rx.recv().await.unwrap() });
        assert!(set.try_join_next().is_none());
        assert_eq!(set.len(), 1);
        tx.send_blocking(4).unwrap();
        let result = loop {
            if let Some(result) = set.try_join_next() {
                break result;
            }
            std::thread::yield_now();
        };
        assert_eq!(result.unwrap(), 4);
        assert!(set.is_empty());
    });
}

#[test]
fn spawns_onto_the_current_scope_else_the_shared_default() {
    watchdog_this_test(|| {
        let run = Run::builder().name("joins").build().unwrap();
        let (async_name, blocking_name) = run.block_on(async {
            let mut set = JoinSet::new();
            set.spawn(async { name() });
            let async_name = set.join_next().await.unwrap().unwrap();
            set.spawn_blocking(name);
            (async_name, set.join_next().await.unwrap().unwrap())
        });
        assert!(async_name.starts_with("joins-"), "{async_name}");
        assert!(
            blocking_name.starts_with("joins-blocking-"),
            "{blocking_name}"
        );
        run.shutdown();

        let mut set = JoinSet::new();
        set.spawn(async { name() });
        set.spawn_blocking(name);
        let names: Vec<String> = unirun::block_on(set.join_all());
        assert!(names.iter().all(|n| n.starts_with("unirun-")), "{names:?}");

        let run = Run::builder().name("target").build().unwrap();
        let mut set = JoinSet::new();
        set.spawn_on(async { name() }, &run.handle());
        set.spawn_blocking_on(name, &run.handle());
        let names: Vec<String> = unirun::block_on(set.join_all());
        assert!(names.iter().all(|n| n.starts_with("target-")), "{names:?}");
    });
}

/// Holds up the drop of a task's future until the test lets it go on.
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

/// Spawns a pending task holding a probe; returns once it was polled.
fn probed_task(
    set: &mut JoinSet<()>,
    panic_in_drop: bool,
) -> (
    unirun::AbortHandle,
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
    Arc<AtomicBool>,
) {
    let (dropping_tx, dropping_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel();
    let (polled_tx, polled_rx) = mpsc::channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let probe = DropProbe {
        dropping: dropping_tx,
        gate: gate_rx,
        dropped: dropped.clone(),
        panic_in_drop,
    };
    let abort = set.spawn(async move {
        let _probe = probe;
        polled_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    polled_rx.recv().unwrap();
    (abort, dropping_rx, gate_tx, dropped)
}

#[test]
fn an_aborted_task_is_joined_only_after_its_future_is_dropped() {
    watchdog_this_test(|| {
        let mut set = JoinSet::new();
        let (abort, dropping, gate, dropped) = probed_task(&mut set, false);
        abort.abort();
        dropping.recv().unwrap();
        assert!(
            set.try_join_next().is_none(),
            "joined while the future was being dropped"
        );
        assert!(!abort.is_finished());
        gate.send(()).unwrap();
        let err = unirun::block_on(set.join_next()).unwrap().unwrap_err();
        assert!(err.is_cancelled());
        assert!(dropped.load(Ordering::SeqCst));
        assert!(abort.is_finished());
    });
}

#[test]
fn a_panic_while_dropping_an_aborted_task_is_its_panic() {
    watchdog_this_test(|| {
        let mut set = JoinSet::new();
        let (abort, _dropping, gate, _dropped) = probed_task(&mut set, true);
        abort.abort();
        gate.send(()).unwrap();
        let err = unirun::block_on(set.join_next()).unwrap().unwrap_err();
        assert!(err.is_panic(), "{err}");
        assert_eq!(message(&*err.into_panic()), "panic while dropping");
    });
}

#[test]
fn a_blocking_closure_that_started_keeps_its_result() {
    watchdog_this_test(|| {
        let (started_tx, started_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let mut set = JoinSet::new();
        let abort = set.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            gate_rx.recv().unwrap();
            "kept"
        });
        started_rx.recv().unwrap();
        abort.abort();
        set.abort_all();
        gate_tx.send(()).unwrap();
        assert_eq!(unirun::block_on(set.join_next()).unwrap().unwrap(), "kept");
    });
}

/// Counts drops and says each one on a channel.
struct Counted(Arc<AtomicUsize>, mpsc::Sender<()>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        let _ = self.1.send(());
    }
}

#[test]
fn dropping_the_set_aborts_and_detach_all_does_not() {
    watchdog_this_test(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let mut set = JoinSet::new();
        for _ in 0..8 {
            let held = Counted(drops.clone(), tx.clone());
            set.spawn(async move {
                let _held = held;
                std::future::pending::<()>().await;
            });
        }
        drop(set);
        for _ in 0..8 {
            rx.recv().unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), 8);

        let (go_tx, go_rx) = async_channel::bounded::<()>(1);
        let (done_tx, done_rx) = mpsc::channel();
        let mut set = JoinSet::new();
        set.spawn(async move {
            go_rx.recv().await.unwrap();
            done_tx.send("ran").unwrap();
        });
        set.detach_all();
        assert!(set.is_empty());
        drop(set);
        go_tx.send_blocking(()).unwrap();
        assert_eq!(done_rx.recv().unwrap(), "ran");
    });
}

#[test]
fn shutdown_and_abort_all() {
    watchdog_this_test(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, _rx) = mpsc::channel();
        let mut set = JoinSet::new();
        for _ in 0..16 {
            let held = Counted(drops.clone(), tx.clone());
            set.spawn(async move {
                let _held = held;
                std::future::pending::<u8>().await
            });
        }
        unirun::block_on(set.shutdown());
        assert!(set.is_empty());
        assert_eq!(
            drops.load(Ordering::SeqCst),
            16,
            "shutdown returned before every drop"
        );

        set.spawn(std::future::pending());
        set.spawn(async { 3 });
        set.abort_all();
        let results: Vec<_> = unirun::block_on(async {
            let mut results = Vec::new();
            while let Some(result) = set.join_next().await {
                results.push(result.map_err(|e| e.is_cancelled()));
            }
            results
        });
        // The finished task may have been aborted before it ran: then both
        // are cancelled; otherwise its output is kept.
        assert_eq!(results.len(), 2);
        assert!(
            results.iter().all(|r| matches!(r, Ok(3) | Err(true))),
            "{results:?}"
        );
        assert!(results.contains(&Err(true)));
    });
}

#[test]
fn join_all_raises_a_task_panic() {
    watchdog_this_test(|| {
        let mut set = JoinSet::new();
        set.spawn(async { 1 });
        set.spawn(async { panic!("one failed") });
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            unirun::block_on(set.join_all())
        }));
        assert_eq!(message(&*caught.unwrap_err()), "one failed");
    });
}

/// A caller of `poll_join_next` that got `Pending` is woken when a task
/// finishes, also among many that never do.
#[test]
fn poll_join_next_wakes_its_caller_when_a_task_finishes() {
    watchdog_this_test(|| {
        let mut set = JoinSet::new();
        let (tx, rx) = async_channel::bounded::<u32>(1);
        for _ in 0..100 {
            set.spawn(std::future::pending::<u32>());
        }
        set.spawn(async move { rx.recv().await.unwrap() });
        let woken = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let waker = Waker::from(Arc::new(Flag(woken.clone())));
        // Drain the initial polls until the set waits.
        while set
            .poll_join_next(&mut Context::from_waker(&waker))
            .is_pending()
        {
            if !woken.swap(false, Ordering::SeqCst) {
                break;
            }
        }
        tx.send_blocking(9).unwrap();
        while !woken.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let next = unirun::block_on(set.join_next()).unwrap().unwrap();
        assert_eq!(next, 9);
        assert_eq!(set.len(), 100);
    });
}

#[cfg(feature = "tokio-backend")]
#[test]
fn works_on_a_tokio_scope() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Tokio)
            .name("tk")
            .build()
            .unwrap();
        let out = run.block_on(async {
            let mut set = JoinSet::new();
            set.spawn(async {
                tokio::task::yield_now().await;
                tokio::runtime::Handle::try_current().is_ok()
            });
            let abort = set.spawn(std::future::pending());
            abort.abort();
            let mut results = Vec::new();
            while let Some(result) = set.join_next().await {
                results.push(result.map_err(|e| e.is_cancelled()));
            }
            results
        });
        assert_eq!(out.len(), 2);
        assert!(
            out.contains(&Ok(true)) && out.contains(&Err(true)),
            "{out:?}"
        );
    });
}

#[cfg(feature = "smol-backend")]
#[test]
fn works_on_a_smol_scope() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Smol)
            .name("sm")
            .build()
            .unwrap();
        let out = run.block_on(async {
            let mut set = JoinSet::new();
            set.spawn(async { name() });
            set.spawn_blocking(name);
            set.join_all().await
        });
        assert!(out.iter().all(|n| n.starts_with("sm-")), "{out:?}");
    });
}

#[test]
fn works_on_a_threads_scope_from_its_tasks() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .name("nest")
            .build()
            .unwrap();
        let names = run
            .spawn(async {
                let mut set = JoinSet::new();
                for _ in 0..4 {
                    set.spawn(async { name() });
                }
                set.join_all().await
            })
            .join()
            .unwrap();
        assert!(names.iter().all(|n| n.starts_with("nest-")), "{names:?}");
    });
}
