//! Fork-join never unwinds past a job another thread may still run: a panic
//! in user code that runs between queueing a job and waiting for it (the
//! wait hook) is held until the job finished, then resumed; a custom
//! `Unpark` that panics aborts the process before anything unwinds. Every
//! test runs under a watchdog.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use unirun_core::{panic_message, park, Park, Pool, Unpark};
use unirun_test_support::watchdog;

/// Armed: the next `unpark` of any worker of the pool panics (once).
static UNPARK_ARMED: AtomicBool = AtomicBool::new(false);
/// Workers inside `park()` right now.
static PARKED: AtomicUsize = AtomicUsize::new(0);

struct CountingPark(park::Parker);
impl Park for CountingPark {
    fn park(&self) {
        PARKED.fetch_add(1, Ordering::SeqCst);
        self.0.park();
        PARKED.fetch_sub(1, Ordering::SeqCst);
    }
}

struct PanickyUnpark(park::Unparker);
impl Unpark for PanickyUnpark {
    fn unpark(&self) {
        if UNPARK_ARMED.swap(false, Ordering::SeqCst) {
            panic!("custom unpark failed");
        }
        self.0.unpark();
    }
}

/// A join's push wakes the parked worker through a user `Unpark` that
/// panics: the process aborts there (see the contract on `Unpark`), so the
/// panic never unwinds past the pushed half, whose stack slot the deque
/// still points at, and no pool is left with a worker counted awake that
/// sleeps. In a child process, which aborts; the parent checks how it
/// ended.
#[cfg(unix)]
#[test]
fn a_panicking_unpark_after_a_join_push_aborts_before_unwinding() {
    const NAME: &str = "a_panicking_unpark_after_a_join_push_aborts_before_unwinding";
    if !unirun_test_support::child::is_child() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(unirun_test_support::child::CHILD_ENV, "1")
            .output()
            .expect("re-run the test binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // SIGABRT is 6 on every unix this crate builds on.
        assert_eq!(out.status.signal(), Some(6), "{}: {stderr}", out.status);
        assert!(
            stderr.contains("Unpark::unpark of the pool panicked"),
            "{stderr}"
        );
        return;
    }
    watchdog("unpark", || {
        let parkers = (0..2)
            .map(|_| {
                let (parker, unparker) = park::pair();
                (
                    Box::new(CountingPark(parker)) as Box<dyn Park + Send>,
                    Arc::new(PanickyUnpark(unparker)) as Arc<dyn Unpark>,
                )
            })
            .collect();
        let (pool, workers) = Pool::new(parkers);
        let _threads: Vec<_> = workers
            .into_iter()
            .map(|w| thread::spawn(move || w.run()))
            .collect();
        let outcome = pool
            .spawn(async {
                loop {
                    // The other worker parks (there is no other work): the
                    // push below then wakes it through its `Unpark`. If it
                    // was not really asleep yet (woken, not back in the
                    // sleeper list), the unpark does not happen: try again.
                    while PARKED.load(Ordering::SeqCst) == 0 {
                        thread::yield_now();
                    }
                    UNPARK_ARMED.store(true, Ordering::SeqCst);
                    let caught =
                        panic::catch_unwind(AssertUnwindSafe(|| unirun_core::join(|| 1, || 2)));
                    if UNPARK_ARMED.swap(false, Ordering::SeqCst) {
                        assert_eq!(caught.ok(), Some((1, 2)));
                        continue;
                    }
                    break caught.map_err(|p| panic_message(&*p).unwrap_or("").to_string());
                }
            })
            .join();
        // Not reached once the process aborts.
        panic!(
            "the join's push woke the worker through the panicking unpark and went on: {outcome:?}"
        );
    });
}

thread_local! {
    static RELEASE_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Set by the hook's panicking `release`.
static RELEASE_FAILED: AtomicBool = AtomicBool::new(false);

fn release() -> usize {
    if RELEASE_PANICS.with(|armed| armed.replace(false)) {
        RELEASE_FAILED.store(true, Ordering::SeqCst);
        panic!("wait hook release failed");
    }
    0
}

fn reacquire(_token: usize) {}

/// `Pool::join` off a worker, while another caller holds the pool's guest
/// core, injects a task pointing at a job on the caller's stack, then calls
/// the wait hook: a panicking hook is resumed only once the injected job
/// ran, with both halves done.
#[test]
fn a_panicking_wait_hook_in_pool_join_is_resumed_after_the_job_ran() {
    assert!(unirun_core::set_wait_hook(unirun_core::WaitHook {
        release,
        reacquire
    }));
    watchdog("wait hook", || {
        let (pool, workers) = Pool::with_workers(2);
        let threads: Vec<_> = workers
            .into_iter()
            .map(|w| thread::spawn(move || w.run()))
            .collect();
        let a_done = AtomicBool::new(false);
        let b_done = AtomicBool::new(false);
        // This thread borrows the guest core for the whole outer join; the
        // inner join runs on a plain thread, so it takes the injected path.
        let (inner_caught, both_done) = pool
            .join(
                || {
                    thread::scope(|s| {
                        s.spawn(|| {
                            RELEASE_PANICS.with(|armed| armed.set(true));
                            let caught = panic::catch_unwind(AssertUnwindSafe(|| {
                                pool.join(
                                    || {
                                        // Still running when the hook panics: the
                                        // caller must not leave before this half
                                        // is done.
                                        while !RELEASE_FAILED.load(Ordering::SeqCst) {
                                            thread::yield_now();
                                        }
                                        a_done.store(true, Ordering::SeqCst)
                                    },
                                    || b_done.store(true, Ordering::SeqCst),
                                )
                            }));
                            let both =
                                a_done.load(Ordering::SeqCst) && b_done.load(Ordering::SeqCst);
                            (
                                caught
                                    .map_err(|payload| panic_message(&*payload).map(String::from)),
                                both,
                            )
                        })
                        .join()
                        .unwrap()
                    })
                },
                || (),
            )
            .0;
        assert_eq!(
            inner_caught.unwrap_err().as_deref(),
            Some("wait hook release failed")
        );
        assert!(
            both_done,
            "the wait hook's panic left while the job still ran"
        );
        pool.shutdown();
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
}
