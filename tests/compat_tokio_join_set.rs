//! `unirun::compat::tokio::task::JoinSet`, checked against tokio's
//! documented behaviour; each test also runs in a child process in
//! passthrough mode (tokio's own `JoinSet`), with the same assertions.
#![cfg(feature = "tokio-backend")]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{on_tokio, watchdog_this_test};
use unirun::compat::tokio::task::{self, JoinSet};

#[test]
fn join_set_collects_results_as_they_finish() {
    common::also_in_passthrough("join_set_collects_results_as_they_finish");
    on_tokio(|| async {
        let mut set = JoinSet::new();
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
        for i in 0..100u32 {
            set.spawn(async move {
                task::yield_now().await;
                i
            });
        }
        set.spawn_blocking(|| 1000);
        assert_eq!(set.len(), 101);
        assert!(!set.is_empty());
        let mut seen = HashSet::new();
        while let Some(result) = set.join_next().await {
            assert!(seen.insert(result.unwrap()));
            assert_eq!(set.len(), 101 - seen.len());
        }
        assert_eq!(seen.len(), 101);
        assert!(seen.contains(&1000));
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
    });
}

/// Results come in the order tasks finish, not the order they were spawned.
#[test]
fn join_next_follows_completion_order() {
    common::also_in_passthrough("join_next_follows_completion_order");
    on_tokio(|| async {
        let mut set = JoinSet::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        set.spawn(async move {
            rx.await.unwrap();
            "second"
        });
        set.spawn(async { "first" });
        assert_eq!(set.join_next().await.unwrap().unwrap(), "first");
        tx.send(()).unwrap();
        assert_eq!(set.join_next().await.unwrap().unwrap(), "second");
    });
}

#[test]
fn try_join_next_never_waits() {
    common::also_in_passthrough("try_join_next_never_waits");
    on_tokio(|| async {
        let mut set = JoinSet::new();
        assert!(set.try_join_next().is_none());
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        set.spawn(async move { rx.await.unwrap() });
        // Nothing has finished: `None`, and the task stays in the set.
        task::yield_now().await;
        assert!(set.try_join_next().is_none());
        assert_eq!(set.len(), 1);
        tx.send(5).unwrap();
        let result = loop {
            if let Some(result) = set.try_join_next() {
                break result;
            }
            task::yield_now().await;
        };
        assert_eq!(result.unwrap(), 5);
        assert!(set.is_empty());
        assert!(set.try_join_next().is_none());
    });
}

#[test]
fn abort_all_cancels_every_task_and_keeps_finished_results() {
    common::also_in_passthrough("abort_all_cancels_every_task_and_keeps_finished_results");
    on_tokio(|| async {
        let mut set = JoinSet::new();
        for _ in 0..10 {
            set.spawn(std::future::pending::<u8>());
        }
        let done = set.spawn(async { 7 });
        while !done.is_finished() {
            task::yield_now().await;
        }
        set.abort_all();
        assert_eq!(set.len(), 11, "aborted tasks stay until joined");
        let (mut cancelled, mut values) = (0, Vec::new());
        while let Some(result) = set.join_next().await {
            match result {
                Ok(v) => values.push(v),
                Err(e) => {
                    assert!(e.is_cancelled());
                    cancelled += 1;
                }
            }
        }
        assert_eq!((cancelled, values), (10, vec![7]));
    });
}

#[test]
fn abort_handles_from_spawn_abort_one_task() {
    common::also_in_passthrough("abort_handles_from_spawn_abort_one_task");
    on_tokio(|| async {
        let mut set = JoinSet::new();
        let abort = set.spawn(std::future::pending::<&str>());
        let keep = set.spawn(async { "kept" });
        assert_ne!(abort.id(), keep.id());
        abort.abort();
        let mut results = Vec::new();
        while let Some(result) = set.join_next_with_id().await {
            results.push(result);
        }
        assert_eq!(results.len(), 2);
        for result in results {
            match result {
                Ok((id, value)) => assert_eq!((id, value), (keep.id(), "kept")),
                Err(err) => {
                    assert!(err.is_cancelled());
                    assert_eq!(err.id(), abort.id());
                }
            }
        }
        assert!(abort.is_finished());
    });
}

#[test]
fn aborting_a_running_blocking_closure_in_a_set_keeps_its_result() {
    common::also_in_passthrough("aborting_a_running_blocking_closure_in_a_set_keeps_its_result");
    on_tokio(|| async {
        let (started_tx, started_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let mut set = JoinSet::new();
        set.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            gate_rx.recv().unwrap();
            11
        });
        started_rx.recv().unwrap();
        set.abort_all();
        gate_tx.send(()).unwrap();
        assert_eq!(set.join_next().await.unwrap().unwrap(), 11);
    });
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>, Option<mpsc::Sender<()>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        if let Some(tx) = self.1.take() {
            let _ = tx.send(());
        }
    }
}

#[test]
fn dropping_the_set_aborts_its_tasks() {
    common::also_in_passthrough("dropping_the_set_aborts_its_tasks");
    on_tokio(|| async {
        let drops = Arc::new(AtomicUsize::new(0));
        let (dropped_tx, dropped_rx) = mpsc::channel();
        let mut set = JoinSet::new();
        for _ in 0..5 {
            let held = Counted(drops.clone(), Some(dropped_tx.clone()));
            set.spawn(async move {
                let _held = held;
                std::future::pending::<()>().await;
            });
        }
        drop(set);
        // Each future is dropped by its runtime soon after: wait for all five.
        for _ in 0..5 {
            dropped_rx.recv().unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn shutdown_waits_until_every_future_is_dropped() {
    common::also_in_passthrough("shutdown_waits_until_every_future_is_dropped");
    on_tokio(|| async {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut set = JoinSet::new();
        for _ in 0..20 {
            let held = Counted(drops.clone(), None);
            set.spawn(async move {
                let _held = held;
                std::future::pending::<()>().await;
            });
        }
        set.shutdown().await;
        assert!(set.is_empty());
        assert_eq!(drops.load(Ordering::SeqCst), 20);
        // The set is usable again.
        set.spawn(async {});
        set.join_next().await.unwrap().unwrap();
    });
}

#[test]
fn detach_all_lets_tasks_run_on() {
    common::also_in_passthrough("detach_all_lets_tasks_run_on");
    on_tokio(|| async {
        let mut set = JoinSet::new();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        set.spawn(async move {
            go_rx.await.unwrap();
            done_tx.send("ran").unwrap();
        });
        set.detach_all();
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
        drop(set);
        go_tx.send(()).unwrap();
        assert_eq!(done_rx.await.unwrap(), "ran");
    });
}

#[test]
fn panics_in_a_set_are_join_errors_with_ids() {
    common::also_in_passthrough("panics_in_a_set_are_join_errors_with_ids");
    on_tokio(|| async {
        let mut set = JoinSet::new();
        let id = set.spawn(async { panic!("in a set") }).id();
        let err = set.join_next().await.unwrap().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.id(), id);
        assert_eq!(
            err.to_string(),
            format!("task {id} panicked with message \"in a set\"")
        );

        // Tasks in a set see their own id.
        let id = set.spawn(async { task::id() }).id();
        assert_eq!(set.join_next().await.unwrap().unwrap(), id);
        let id = set.spawn_blocking(task::id).id();
        let (joined, value) = set.join_next_with_id().await.unwrap().unwrap();
        assert_eq!((joined, value), (id, id));
    });
}

#[test]
fn join_all_returns_every_output() {
    common::also_in_passthrough("join_all_returns_every_output");
    on_tokio(|| async {
        let mut set = JoinSet::new();
        for i in 0..10 {
            set.spawn(async move { i });
        }
        let mut all = set.join_all().await;
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn spawn_on_targets_a_given_runtime() {
    common::also_in_passthrough("spawn_on_targets_a_given_runtime");
    watchdog_this_test(|| {
        let other = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("other-rt")
            .build()
            .unwrap();
        let driver = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();

        let mut names = JoinSet::new();
        names.spawn_on(
            async { std::thread::current().name().map(String::from) },
            other.handle(),
        );
        let name = driver.block_on(names.join_next()).unwrap().unwrap();
        assert_eq!(name.as_deref(), Some("other-rt"));

        let mut contexts = JoinSet::new();
        contexts.spawn_blocking_on(
            || tokio::runtime::Handle::current().block_on(async { "in other-rt's context" }),
            other.handle(),
        );
        let context = driver.block_on(contexts.join_next()).unwrap().unwrap();
        assert_eq!(context, "in other-rt's context");
    });
}

#[test]
fn spawn_local_and_extend_like_tokio() {
    common::also_in_passthrough("spawn_local_and_extend_like_tokio");
    watchdog_this_test(|| {
        use std::rc::Rc;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = task::LocalSet::new();
        let mut set = JoinSet::new();
        // On a set given by reference, before it runs...
        set.spawn_local_on(async { *Rc::new(1u32) }, &local);
        let all = local.block_on(&rt, async move {
            // ...and on the current one, with `!Send` state.
            let shared = Rc::new(10u32);
            for i in 0..3 {
                let shared = shared.clone();
                set.spawn_local(async move {
                    task::yield_now().await;
                    *shared + i
                });
            }
            // A local task that never ends is aborted like any other.
            let stuck = set.spawn_local(std::future::pending::<u32>());
            stuck.abort();
            set.extend((0..2u32).map(|i| async move { 100 + i }));
            assert_eq!(set.len(), 7);
            let (mut values, mut cancelled) = (Vec::new(), 0);
            while let Some(result) = set.join_next().await {
                match result {
                    Ok(v) => values.push(v),
                    Err(e) => cancelled += usize::from(e.is_cancelled()),
                }
            }
            values.sort();
            (values, cancelled)
        });
        assert_eq!(all, (vec![1, 10, 11, 12, 100, 101], 1));
    });
}
