//! Checking that unirun's panic hook is in place never takes the hook out:
//! a panic on another thread meanwhile always reaches the program's hook,
//! never std's default one.
//!
//! Its own test binary with one test: it replaces the process-wide hook.
//!
//! The window it guards against (a check that took the hook out and put it
//! back, between `take_hook` and `set_hook`) is nanoseconds wide, so such
//! a check would fail this test only when a panic lands in it; 20,000
//! panics against back-to-back checks make that most runs. The check reads
//! an atomic and never takes the hook out, so this test cannot fail.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Panics raised on the panicking thread.
const PANICS: usize = 20_000;

#[test]
fn a_panic_on_another_thread_always_reaches_the_programs_hook_while_unirun_checks_its_own() {
    // A generous limit: the body raises many panics.
    unirun_test_support::watchdog_for("20,000 panics", Duration::from_secs(120), body);
}

fn body() {
    // The program's hook counts the panics it sees (and prints nothing).
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    // unirun chains its recorder in front, here, before other threads.
    unirun_core::install_panic_hook();

    // One thread keeps making unirun check its hook: explicitly, and by
    // catching re-raised panics (they run no hook, so unirun looks for its
    // recorder each time). It panics through no hook itself.
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let (started_tx, started) = mpsc::channel();
    let checker = thread::spawn(move || {
        let mut checks = 0u64;
        while checks == 0 || !stop.load(Ordering::SeqCst) {
            if checks == 1 {
                started_tx.send(()).unwrap();
            }
            for _ in 0..100 {
                unirun_core::install_panic_hook();
            }
            let err = unirun_core::catch_panic(|| panic::resume_unwind(Box::new("re-raised")))
                .unwrap_err();
            assert!(err.panic_location().is_none());
            checks += 1;
        }
        checks
    });

    // Meanwhile another thread panics, many times: every panic reaches the
    // program's hook (before, some ran std's default hook instead while
    // the checker held the hook out).
    started.recv().unwrap();
    let before = seen.load(Ordering::SeqCst);
    for _ in 0..PANICS {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| panic!("counted")));
        assert!(caught.is_err());
    }
    done.store(true, Ordering::SeqCst);
    let checks = checker.join().unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst) - before,
        PANICS,
        "some panics missed the program's hook ({checks} checks ran meanwhile)"
    );
    let _ = panic::take_hook();
}
