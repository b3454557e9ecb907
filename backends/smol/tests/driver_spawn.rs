//! A task of a pool spawning on that pool takes the driver thread's own
//! reference to the executor (no upgrade of the handle's weak one): the
//! spawns land on the right executor, a driver spawning on another pool
//! still goes through that pool's handle, and a pool dropped by its own
//! task leaves no spawn of that task stranded.

use std::sync::mpsc;

use unirun_smol::SmolPool;
use unirun_test_support::watchdog_this_test;

/// The name of the thread that runs this.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn a_task_spawns_on_its_own_pool_and_on_another() {
    watchdog_this_test(|| {
        let own = SmolPool::builder()
            .workers(1)
            .name("drv-own")
            .build()
            .unwrap();
        let other = SmolPool::builder()
            .workers(1)
            .name("drv-other")
            .build()
            .unwrap();
        let (own_handle, other_handle) = (own.handle(), other.handle());
        let names = own
            .handle()
            .spawn(async move {
                let here = own_handle.spawn(async { thread_name() });
                let there = other_handle.spawn(async { thread_name() });
                (thread_name(), here.await.unwrap(), there.await.unwrap())
            })
            .join()
            .unwrap();
        assert_eq!(names.0, "drv-own-0");
        assert_eq!(
            names.1, "drv-own-0",
            "a spawn on the driven pool runs there"
        );
        assert_eq!(names.2, "drv-other-0", "a spawn on another pool runs there");
        // Many spawns from a driver, each one's output its own.
        let handle = own.handle();
        let sum = own
            .handle()
            .spawn(async move {
                let tasks: Vec<_> = (0..1000u64)
                    .map(|i| handle.spawn(async move { i }))
                    .collect();
                let mut sum = 0;
                for task in tasks {
                    sum += task.await.unwrap();
                }
                sum
            })
            .join()
            .unwrap();
        assert_eq!(sum, 999 * 1000 / 2);
    });
}

#[test]
fn a_pool_dropped_by_its_own_task_strands_no_later_spawn() {
    watchdog_this_test(|| {
        let pool = SmolPool::builder()
            .workers(1)
            .name("drv-drop")
            .build()
            .unwrap();
        let handle = pool.handle();
        let (give, take) = mpsc::channel::<SmolPool>();
        let (late_tx, late_rx) = mpsc::channel();
        pool.handle()
            .spawn(async move {
                // The pool goes on its own driver thread: that thread's
                // reference keeps the executor until the thread ends.
                drop(take.recv().unwrap());
                late_tx.send(handle.spawn(async { 5 })).unwrap();
            })
            .detach();
        give.send(pool).unwrap();
        let late = late_rx.recv().unwrap();
        // The driver's loop ends with the pool; the late task either ran
        // before that or was cancelled when the executor went: never left
        // pending.
        match late.join() {
            Ok(value) => assert_eq!(value, 5),
            Err(err) => assert!(err.is_cancelled(), "{err:?}"),
        }
    });
}
