//! `shutdown_timeout(d)` with blocking closures stuck on a channel returns
//! `false` after `d`, and the process's thread count returns to what it was
//! once the closures are released. Alone in its binary, so the process-wide
//! thread count sees no other test's threads.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use unirun_test_support::{skip, watchdog};
use unirun_threads::ThreadPool;

/// Sends on its channel when the thread holding it exits (thread-local
/// destructors run as the thread ends).
struct ExitSignal(mpsc::Sender<()>);

impl Drop for ExitSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

thread_local! {
    static EXIT: std::cell::RefCell<Option<ExitSignal>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn shutdown_timeout_returns_while_blocking_closures_are_stuck() {
    watchdog("shutdown_timeout with stuck closures", body);
}

fn body() {
    let baseline = unirun_platform::thread_count();
    if baseline.is_none() {
        skip(
            "shutdown_timeout_returns_while_blocking_closures_are_stuck",
            "the thread-count check: this platform cannot count threads",
        );
    }
    let pool = ThreadPool::builder()
        .workers(2)
        .name("stuck")
        .build()
        .unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let (started_tx, started) = mpsc::channel();
    let (exit_tx, exits) = mpsc::channel();
    let stuck: Vec<_> = (0..2)
        .map(|_| {
            let (gate, started_tx, exit_tx) = (gate.clone(), started_tx.clone(), exit_tx.clone());
            pool.spawn_blocking(move || {
                EXIT.with(|slot| *slot.borrow_mut() = Some(ExitSignal(exit_tx)));
                started_tx.send(()).unwrap();
                gate.lock().unwrap().recv().unwrap();
                "released"
            })
        })
        .collect();
    drop(exit_tx);
    started.recv().unwrap();
    started.recv().unwrap();

    let limit = Duration::from_millis(100);
    let begin = Instant::now();
    assert!(
        !pool.shutdown_timeout(limit),
        "stuck closures cannot finish in time"
    );
    assert!(
        begin.elapsed() >= limit,
        "returned before the limit: {:?}",
        begin.elapsed()
    );

    // Released after shutdown returned, the closures finish on their
    // detached threads and their handles still resolve.
    release.send(()).unwrap();
    release.send(()).unwrap();
    for task in stuck {
        assert_eq!(task.join().unwrap(), "released");
    }
    // Both threads announce their exit; the channel closes once both did.
    while exits.recv().is_ok() {}
    // The last step of an exiting thread is the kernel's: wait for it.
    if baseline.is_some() {
        while unirun_platform::thread_count() != baseline {
            std::thread::yield_now();
        }
    }
}
