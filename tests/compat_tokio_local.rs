//! What `compat::tokio` takes from tokio as is (`!Send` tasks, the coop
//! budget, `block_in_place`, task-locals), used the way tokio code uses it,
//! from managed tasks too. Each test also runs in passthrough mode.
#![cfg(feature = "tokio-backend")]

mod common;

use std::rc::Rc;

use common::{on_tokio, watchdog_this_test};
use unirun::compat::tokio::task::{self, LocalSet};

unirun::compat::tokio::task_local! {
    static REQUEST: u32;
}

#[test]
fn spawn_local_runs_non_send_tasks_on_a_local_set() {
    common::also_in_passthrough("spawn_local_runs_non_send_tasks_on_a_local_set");
    watchdog_this_test(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let local = LocalSet::new();
        let shared = Rc::new(20);
        let inner = shared.clone();
        let queued: task::JoinHandle<u32> = local.spawn_local(async move { *inner + 1 });
        let value = local.block_on(&rt, async move {
            let inner = shared.clone();
            let own: task::JoinHandle<u32> = task::spawn_local(async move { *inner + 2 });
            let pending = task::spawn_local(std::future::pending::<()>());
            pending.abort();
            assert!(pending.await.unwrap_err().is_cancelled());
            let err = task::spawn_local(async { panic!("local") })
                .await
                .unwrap_err();
            assert!(err.is_panic());
            queued.await.unwrap() + own.await.unwrap()
        });
        assert_eq!(value, 43);

        // `run_until` inside a runtime, and awaiting the set to drain it.
        rt.block_on(async {
            let local = LocalSet::new();
            let value = local
                .run_until(async { task::spawn_local(async { Rc::new(5) }).await.unwrap() })
                .await;
            assert_eq!(*value, 5);
            let (tx, rx) = std::sync::mpsc::channel();
            local.spawn_local(async move { tx.send(Rc::new(6)).map_err(|_| ()).unwrap() });
            local.await;
            assert_eq!(*rx.recv().unwrap(), 6);
        });
    });
}

#[test]
fn block_in_place_works_in_spawned_tasks() {
    common::also_in_passthrough("block_in_place_works_in_spawned_tasks");
    on_tokio(|| async {
        // The worker blocks; the runtime's other tasks go on meanwhile
        // (here, the one that unblocks it).
        let value = task::spawn(async {
            task::block_in_place(|| {
                let (tx, rx) = std::sync::mpsc::channel();
                task::spawn(async move { tx.send(17).unwrap() });
                rx.recv().unwrap()
            })
        })
        .await
        .unwrap();
        assert_eq!(value, 17);
    });
}

#[test]
fn coop_budget_and_yielding_work_in_spawned_tasks() {
    common::also_in_passthrough("coop_budget_and_yielding_work_in_spawned_tasks");
    on_tokio(|| async {
        let sum = task::spawn(async {
            let mut sum = 0u64;
            for i in 0..1000 {
                sum += i;
                task::consume_budget().await;
                if i % 100 == 0 {
                    task::yield_now().await;
                }
            }
            sum
        });
        assert_eq!(sum.await.unwrap(), 499_500);
        let unconstrained: task::Unconstrained<_> = task::unconstrained(async { 3 });
        assert_eq!(task::spawn(unconstrained).await.unwrap(), 3);
    });
}

#[test]
fn task_locals_are_scoped_to_their_future() {
    common::also_in_passthrough("task_locals_are_scoped_to_their_future");
    on_tokio(|| async {
        let seen = task::spawn(REQUEST.scope(7, async {
            task::yield_now().await;
            let blocking = task::spawn_blocking(|| REQUEST.try_with(|v| *v).is_ok());
            (REQUEST.get(), blocking.await.unwrap())
        }))
        .await
        .unwrap();
        // Task-locals are not inherited by tasks spawned from the scope.
        assert_eq!(seen, (7, false));
        assert!(REQUEST.try_with(|v| *v).is_err());
        let key: &'static task::LocalKey<u32> = &REQUEST;
        assert_eq!(key.sync_scope(9, || key.get()), 9);
        let future: task::futures::TaskLocalFuture<u32, _> = REQUEST.scope(1, async {});
        future.await;
    });
}
