//! Fork-join where it runs sequentially (off a worker, or inside
//! `sequentially` on one) keeps the forked form's panic rules: both halves
//! of a join run before a panic resumes, and a map runs every item.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[test]
fn off_a_worker_a_join_runs_b_after_a_panics() {
    let b_ran = AtomicBool::new(false);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        unirun_core::join(|| panic!("a"), || b_ran.store(true, Ordering::SeqCst))
    }));
    assert_eq!(
        caught.unwrap_err().downcast_ref::<&str>().copied(),
        Some("a")
    );
    assert!(b_ran.load(Ordering::SeqCst), "b skipped after a panicked");
    // `b`'s panic resumes when only `b` panics.
    let caught = panic::catch_unwind(|| unirun_core::join(|| 1, || panic!("b")));
    assert_eq!(
        caught.unwrap_err().downcast_ref::<&str>().copied(),
        Some("b")
    );
}

#[test]
fn off_a_worker_a_map_runs_every_item_after_a_panic() {
    let ran = AtomicUsize::new(0);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        unirun_core::map_indexed(8, |i| {
            ran.fetch_add(1, Ordering::SeqCst);
            if i == 0 {
                panic!("item 0");
            }
            i
        })
    }));
    assert!(caught.is_err());
    assert_eq!(ran.load(Ordering::SeqCst), 8, "items skipped after a panic");
}

#[test]
fn inside_sequentially_on_a_worker_a_join_runs_b_after_a_panics() {
    let (pool, workers) = unirun_core::Pool::with_workers(2);
    let threads: Vec<_> = workers
        .into_iter()
        .map(|w| std::thread::spawn(move || w.run()))
        .collect();
    let b_ran = pool
        .spawn(async {
            let b_ran = AtomicBool::new(false);
            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                unirun_core::sequentially(|| {
                    unirun_core::join(|| panic!("a"), || b_ran.store(true, Ordering::SeqCst))
                })
            }));
            caught.is_err() && b_ran.load(Ordering::SeqCst)
        })
        .join()
        .unwrap();
    assert!(b_ran);
    pool.shutdown();
    threads.into_iter().for_each(|t| t.join().unwrap());
}
