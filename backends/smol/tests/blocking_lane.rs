//! The smol backend's blocking closures run on unirun's lane, named after
//! the pool, and its threads are joined by whoever owns the lane.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use unirun_smol::{Handle, SmolPool};

/// Sets its flag when the thread holding it exits (thread-local destructors
/// run before the thread can be joined).
struct ExitFlag(Arc<AtomicBool>);

impl Drop for ExitFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

thread_local! {
    static EXIT: std::cell::RefCell<Option<ExitFlag>> = const { std::cell::RefCell::new(None) };
}

/// Runs on a blocking thread: its name, and a flag set when it exits.
fn name_and_exit_flag() -> (String, Arc<AtomicBool>) {
    let flag = Arc::new(AtomicBool::new(false));
    EXIT.with(|slot| *slot.borrow_mut() = Some(ExitFlag(flag.clone())));
    let name = std::thread::current().name().unwrap_or("").to_string();
    (name, flag)
}

#[test]
fn pool_blocking_threads_are_named_and_joined_at_shutdown() {
    let pool = SmolPool::builder()
        .workers(1)
        .name("smollane")
        .max_blocking_threads(3)
        // Long enough that no thread retires on its own during the test.
        .keep_alive(Duration::from_secs(3600))
        .build()
        .unwrap();
    let handle = pool.handle();
    assert_eq!(handle.max_blocking_threads(), 3);
    let (name, exited) = handle.spawn_blocking(name_and_exit_flag).join().unwrap();
    assert!(name.starts_with("smollane-blocking-"), "{name}");
    assert!(handle.blocking_stats().threads >= 1);
    pool.shutdown();
    assert!(
        exited.load(Ordering::SeqCst),
        "shutdown left a blocking thread running"
    );
    // The lane is gone: a late closure is cancelled, not stranded.
    assert!(handle
        .spawn_blocking(|| ())
        .join()
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn scoped_blocking_closures_join_the_scope_set() {
    let pool = SmolPool::builder().workers(1).build().unwrap();
    let set = Arc::new(unirun_core::TaskSet::new());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let task = pool
        .handle()
        .spawn_blocking_in(&set, move || rx.recv().is_ok());
    assert!(!set.is_empty());
    tx.send(()).unwrap();
    assert!(task.join().unwrap());
    assert!(set.is_empty());
}

#[test]
fn a_provided_executor_handle_owns_its_lane() {
    let ex = Arc::new(async_executor::Executor::new());
    let handle = Handle::from_executor(ex.clone());
    let clone = handle.clone();
    let (name, exited) = handle.spawn_blocking(name_and_exit_flag).join().unwrap();
    assert!(name.starts_with("smol-blocking-"), "{name}");
    drop(handle);
    // A clone still holds the lane.
    assert_eq!(clone.spawn_blocking(|| 2).join().unwrap(), 2);
    drop(clone);
    assert!(
        exited.load(Ordering::SeqCst),
        "the last handle left a blocking thread running"
    );
    // The caller's executor keeps running.
    assert_eq!(
        futures_lite::future::block_on(ex.run(ex.spawn(async { 7 }))),
        7
    );
}
