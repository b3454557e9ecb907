//! Panic locations stay right when the program replaces the panic hook and
//! when a stale record from a panic caught elsewhere is left behind.
//!
//! Its own test binary with one test: it replaces the process-wide hook.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use unirun_core::TickExecutor;

fn run<T: Send + 'static>(
    ex: &TickExecutor,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, unirun_core::JoinError> {
    let handle = ex.spawn(f);
    ex.run_until_stalled();
    handle.join()
}

#[test]
fn locations_survive_a_replaced_hook_and_ignore_stale_records() {
    let ex = TickExecutor::new();
    // The first task installs unirun's recorder.
    let line = line!() + 1;
    let err = run(&ex, async { panic!("first") }).unwrap_err();
    assert_eq!(err.panic_location().map(|l| l.line()), Some(line));

    // (a) The program replaces the hook; its hook keeps running.
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    // The first caught panic finds no record and re-chains the recorder ...
    let _ = run(&ex, async { panic!("after replace") }).unwrap_err();
    // ... so every later one is located again.
    for _ in 0..3 {
        let line = line!() + 1;
        let err = run(&ex, async { panic!("located again") }).unwrap_err();
        assert_eq!(err.panic_message(), Some("located again"));
        assert_eq!(err.panic_location().map(|l| l.line()), Some(line));
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        4,
        "the program's hook still runs once per panic"
    );

    // Replaced again, then re-chained explicitly: no location is lost.
    panic::set_hook(Box::new(|_| {}));
    unirun_core::install_panic_hook();
    let line = line!() + 1;
    let err = run(&ex, async { panic!("explicit") }).unwrap_err();
    assert_eq!(err.panic_location().map(|l| l.line()), Some(line));

    // (b) A panic caught outside any task leaves a record behind; a task
    // that raises an equal message without running the hook
    // (`resume_unwind`) must not get that stale location.
    let stale = panic::catch_unwind(|| panic!("same message"));
    assert!(stale.is_err());
    let err = run(&ex, async {
        panic::resume_unwind(Box::new("same message"));
    })
    .unwrap_err();
    assert_eq!(err.panic_message(), Some("same message"));
    assert_eq!(
        err.panic_location(),
        None,
        "a stale record is not attributed"
    );

    // A stale record also never leaks into a later, located panic.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| panic!("elsewhere")));
    let line = line!() + 1;
    let err = run(&ex, async { panic!("elsewhere") }).unwrap_err();
    assert_eq!(err.panic_location().map(|l| l.line()), Some(line));

    let _ = panic::take_hook();
}
