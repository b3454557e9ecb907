//! `BlockingLane` on its own: named threads, task sets, and a shutdown that
//! joins every thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use unirun_blocking::BlockingLane;
use unirun_core::TaskSet;
use unirun_test_support::watchdog;

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

#[test]
fn the_default_cap_is_at_least_tokios_512() {
    assert_eq!(unirun_blocking::default_blocking_cap(1), 512);
    assert_eq!(unirun_blocking::default_blocking_cap(2), 512);
    let lane = BlockingLane::builder().build().unwrap();
    assert!(lane.stats().cap >= 512, "{:?}", lane.stats());
}

#[test]
fn a_hundred_closures_at_one_barrier_all_get_a_thread() {
    // 100 closures that wait for each other deadlocked at the old default
    // cap (64 on a 2-CPU machine); with the default cap they all run.
    watchdog("100 closures at a barrier", || {
        let lane = BlockingLane::builder().name("barrier100").build().unwrap();
        let barrier = Arc::new(Barrier::new(100));
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let barrier = barrier.clone();
                lane.spawn_blocking(move || {
                    barrier.wait();
                    i
                })
            })
            .collect();
        let sum: usize = tasks.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sum, (0..100).sum());
        assert!(lane.stats().threads >= 100);
    });
}

#[test]
fn a_panic_escaping_a_runnable_does_not_leak_the_lanes_capacity() {
    watchdog("a closure after a panicking runnable", || {
        let lane = BlockingLane::builder()
            .name("panicrun")
            .max_threads(1)
            .build()
            .unwrap();
        // A raw runnable whose `run` lets the panic out (the core's own tasks
        // catch theirs; a foreign executor's may not).
        let hook = lane.run_queue();
        let (runnable, task) = async_task::Builder::new().spawn(
            |()| async { panic!("escapes run()") },
            async_task::WithInfo(move |runnable, info| hook.schedule(runnable, info)),
        );
        task.detach();
        runnable.schedule();
        // With one thread of capacity, the lane must still find a thread for this.
        assert_eq!(lane.spawn_blocking(|| 7).join().unwrap(), 7);
        let stats = lane.stats();
        assert!(stats.threads <= 1, "{stats:?}");
        lane.shutdown();
        assert_eq!(lane.stats().threads, 0);
    });
}

#[test]
fn a_lane_dropped_inside_its_own_closure_does_not_wait_for_a_sibling_waiting_on_it() {
    watchdog("dropping a lane on its own thread", || {
        let lane = BlockingLane::builder()
            .name("selfdroplane")
            .build()
            .unwrap();
        let (wake_sibling, sibling_gate) = std::sync::mpsc::channel::<()>();
        let (hand_over, lane_slot) = std::sync::mpsc::channel::<BlockingLane>();
        // The sibling runs until the dropping closure has dropped the lane.
        let sibling = lane.spawn_blocking(move || {
            sibling_gate.recv().unwrap();
            flag_thread_exit()
        });
        let dropper = lane.spawn_blocking(move || {
            let lane = lane_slot.recv().unwrap();
            drop(lane); // must not join the sibling, which waits for the next line
            wake_sibling.send(()).unwrap();
            flag_thread_exit()
        });
        hand_over.send(lane).unwrap();
        let exits = [sibling.join().unwrap(), dropper.join().unwrap()];
        // The joins moved to a helper thread: both lane threads exit.
        for exited in &exits {
            while !exited.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        }
    });
}

#[test]
fn shutdown_timeout_gives_up_on_stuck_closures_and_cancels_queued_ones() {
    watchdog("shutdown_timeout with stuck closures", || {
        let lane = BlockingLane::builder()
            .name("stucklane")
            .max_threads(2)
            .build()
            .unwrap();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let (started_tx, started) = std::sync::mpsc::channel();
        let stuck: Vec<_> = (0..2)
            .map(|_| {
                let (gate, started_tx) = (gate.clone(), started_tx.clone());
                lane.spawn_blocking(move || {
                    let exited = flag_thread_exit();
                    started_tx.send(()).unwrap();
                    gate.lock().unwrap().recv().unwrap();
                    exited
                })
            })
            .collect();
        started.recv().unwrap();
        started.recv().unwrap();
        // Both threads are busy: this one stays queued.
        let queued = lane.spawn_blocking(|| "never runs");
        let begin = std::time::Instant::now();
        assert!(!lane.shutdown_timeout(std::time::Duration::from_millis(100)));
        assert!(begin.elapsed() >= std::time::Duration::from_millis(100));
        assert!(queued.join().unwrap_err().is_cancelled());
        // The stuck closures finish later, on their detached threads.
        release.send(()).unwrap();
        release.send(()).unwrap();
        for task in stuck {
            let exited = task.join().unwrap();
            while !exited.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        }
        assert_eq!(lane.stats().threads, 0);
    });
}

#[test]
fn shutdown_timeout_joins_idle_threads_and_reports_success() {
    let lane = BlockingLane::builder()
        .name("idlelane")
        .keep_alive(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let exited = lane.spawn_blocking(flag_thread_exit).join().unwrap();
    assert!(lane.shutdown_timeout(std::time::Duration::from_secs(3600)));
    assert!(
        exited.load(Ordering::SeqCst),
        "an idle thread was not joined"
    );
    assert_eq!(lane.stats().threads, 0);
}
