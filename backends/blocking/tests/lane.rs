//! `BlockingLane` on its own: named threads, task sets, and a shutdown that
//! joins every thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use unirun_blocking::BlockingLane;
use unirun_core::TaskSet;

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

fn flag_thread_exit() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    EXIT.with(|slot| *slot.borrow_mut() = Some(ExitFlag(flag.clone())));
    flag
}

#[test]
fn threads_are_named_and_joined_at_shutdown() {
    let lane = BlockingLane::builder()
        .name("lanetest")
        .max_threads(4)
        // Long enough that no thread retires on its own during the test.
        .keep_alive(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    // Two closures waiting for each other need two threads.
    let barrier = Arc::new(Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            lane.spawn_blocking(move || {
                barrier.wait();
                let name = std::thread::current().name().map(String::from);
                (name.unwrap_or_default(), flag_thread_exit())
            })
        })
        .collect();
    let results: Vec<_> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
    for (name, _) in &results {
        assert!(name.starts_with("lanetest-blocking-"), "{name}");
    }
    assert!(lane.stats().threads >= 2);
    lane.shutdown();
    assert_eq!(lane.stats().threads, 0);
    for (_, exited) in &results {
        assert!(
            exited.load(Ordering::SeqCst),
            "shutdown returned before a thread exited"
        );
    }
    // After shutdown, new closures are cancelled instead of left waiting.
    assert!(lane
        .spawn_blocking(|| ())
        .join()
        .unwrap_err()
        .is_cancelled());
}

#[test]
fn a_closed_task_set_cancels_queued_closures() {
    let lane = BlockingLane::builder().max_threads(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Occupies the only thread until released.
    let busy = lane.spawn_blocking(move || rx.recv().unwrap());
    let mine = Arc::new(TaskSet::new());
    let queued = lane.spawn_blocking_in(&mine, || 1);
    mine.close();
    tx.send(()).unwrap();
    busy.join().unwrap();
    assert!(queued.join().unwrap_err().is_cancelled());
    assert!(mine.is_empty());
}

#[test]
fn dropping_the_lane_joins_its_threads() {
    let lane = BlockingLane::builder().name("droplane").build().unwrap();
    let exited = lane.spawn_blocking(flag_thread_exit).join().unwrap();
    drop(lane);
    assert!(exited.load(Ordering::SeqCst));
}
