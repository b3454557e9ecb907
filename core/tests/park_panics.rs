//! The contract on a custom `Park`/`Unpark` that panics: the pool cannot
//! tell whether the worker got its wake-up (or it is listed asleep while
//! gone), and going on could stall the pool for good, so the process
//! aborts, saying why, instead of unwinding into whoever pushed the work.
//!
//! Each case runs in a child process (it aborts); the parent checks how
//! the child ended and what it said.

#![cfg(unix)]

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use unirun_core::{Park, Pool, Unpark};
use unirun_test_support::child::{is_child, CHILD_ENV};
use unirun_test_support::watchdog_this_test;

/// Runs test `name` of this binary alone in a child process and returns
/// how it ended and its stderr.
fn run_child(name: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("re-run the test binary");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that the child aborted (SIGABRT) with `said` on stderr.
fn assert_aborted_saying(name: &str, said: &str) {
    let (status, stderr) = run_child(name);
    assert_eq!(status.signal(), Some(SIGABRT), "{status}: {stderr}");
    assert!(stderr.contains(said), "{stderr}");
}

/// SIGABRT's number on every unix this crate builds on.
const SIGABRT: i32 = 6;

/// A parker that tells the test when its worker parks, and whose unpark
/// panics once `panics` is set (before setting the token).
struct Flaky {
    token: Mutex<bool>,
    wake: std::sync::Condvar,
    parked: Mutex<Option<mpsc::Sender<()>>>,
    unpark_panics: AtomicBool,
    park_panics: AtomicBool,
}

impl Flaky {
    fn new(parked: mpsc::Sender<()>) -> Arc<Self> {
        Arc::new(Flaky {
            token: Mutex::new(false),
            wake: std::sync::Condvar::new(),
            parked: Mutex::new(Some(parked)),
            unpark_panics: AtomicBool::new(false),
            park_panics: AtomicBool::new(false),
        })
    }
}

/// The worker's side of a shared `Flaky`.
struct ParkSide(Arc<Flaky>);

impl Park for ParkSide {
    fn park(&self) {
        self.0.park();
    }
}

impl Park for Flaky {
    fn park(&self) {
        if let Some(parked) = self.parked.lock().unwrap().as_ref() {
            let _ = parked.send(());
        }
        if self.park_panics.load(Ordering::SeqCst) {
            panic!("this park panics");
        }
        let mut token = self.token.lock().unwrap();
        while !*token {
            token = self.wake.wait(token).unwrap();
        }
        *token = false;
    }
}

impl Unpark for Flaky {
    fn unpark(&self) {
        if self.unpark_panics.load(Ordering::SeqCst) {
            panic!("this unpark panics");
        }
        *self.token.lock().unwrap() = true;
        self.wake.notify_one();
    }
}

/// A one-worker pool on a `Flaky` parker, its worker running on a thread,
/// and the channel that says when the worker parks.
fn flaky_pool() -> (
    Pool,
    Arc<Flaky>,
    mpsc::Receiver<()>,
    std::thread::JoinHandle<()>,
) {
    let (parked_tx, parked) = mpsc::channel();
    let flaky = Flaky::new(parked_tx);
    let (pool, mut workers) = Pool::new(vec![(
        Box::new(ParkSide(flaky.clone())) as Box<dyn Park + Send>,
        flaky.clone() as Arc<dyn Unpark>,
    )]);
    let worker = workers.pop().unwrap();
    let thread = std::thread::spawn(move || worker.run());
    (pool, flaky, parked, thread)
}

/// A spawn that must wake the sleeping worker through an `Unpark` that
/// panics aborts: the spawn does not unwind into the caller with the
/// worker counted awake but still asleep.
#[test]
fn a_panicking_unpark_aborts_the_process_saying_why() {
    const NAME: &str = "a_panicking_unpark_aborts_the_process_saying_why";
    if is_child() {
        watchdog_this_test(|| {
            let (pool, flaky, parked, _thread) = flaky_pool();
            // The worker found nothing to do and sleeps.
            parked.recv().unwrap();
            flaky.unpark_panics.store(true, Ordering::SeqCst);
            let spawned =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.spawn(async { 1 })));
            // Not reached once the pool aborts: say what happened instead.
            panic!(
                "the spawn returned ({}): the worker is counted awake but sleeps",
                if spawned.is_ok() {
                    "a handle"
                } else {
                    "a panic"
                }
            );
        });
        return;
    }
    assert_aborted_saying(NAME, "an Unpark::unpark of the pool panicked");
}

/// A worker whose `Park` panics aborts: it would otherwise leave the pool
/// with a sleeper listed that no wake-up reaches.
#[test]
fn a_panicking_park_aborts_the_process_saying_why() {
    const NAME: &str = "a_panicking_park_aborts_the_process_saying_why";
    if is_child() {
        watchdog_this_test(|| {
            let (parked_tx, _parked) = mpsc::channel();
            let flaky = Flaky::new(parked_tx);
            flaky.park_panics.store(true, Ordering::SeqCst);
            let (_pool, mut workers) = Pool::new(vec![(
                Box::new(ParkSide(flaky.clone())) as Box<dyn Park + Send>,
                flaky.clone() as Arc<dyn Unpark>,
            )]);
            let worker = workers.pop().unwrap();
            let ended = std::thread::spawn(move || worker.run()).join();
            // Not reached once the pool aborts.
            panic!("the worker's thread ended ({ended:?}) with the worker listed asleep");
        });
        return;
    }
    assert_aborted_saying(NAME, "a Park::park of the pool's worker panicked");
}
