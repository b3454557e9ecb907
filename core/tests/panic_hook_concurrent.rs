//! Checking that unirun's panic hook is in place never takes the hook out:
//! a panic on another thread meanwhile always reaches the program's hook,
//! never std's default one.
//!
//! Its own test binary with one test: it replaces the process-wide hook.
//!
//! The window it guards against (between `take_hook` and `set_hook`) is
//! nanoseconds wide, so without the fix this test fails only when a panic
//! lands in it: most runs (7 of 8 when the fix was made, with 20,000
//! panics against back-to-back checks). With the fix it cannot fail: the
//! check reads an atomic and never takes the hook out.

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
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(body));
    });
    // A generous limit turns a hang into a failure.
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(())) => {}
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("hung for 120 s"),
    }
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
