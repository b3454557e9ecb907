//! The first task of a process, created inside a destructor while the
//! thread unwinds, must not abort the process (installing a panic hook
//! while panicking panics in std).
//!
//! Its own test binary with one test: it needs the hook not yet installed.

use unirun_core::TickExecutor;

struct SpawnsOnDrop;

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        assert!(std::thread::panicking());
        let ex = TickExecutor::new();
        let handle = ex.spawn(async { 21 * 2 });
        ex.run_until_stalled();
        assert_eq!(handle.join().unwrap(), 42);
    }
}

#[test]
fn first_task_created_during_unwinding_does_not_abort() {
    let unwound = std::panic::catch_unwind(|| {
        let _spawns = SpawnsOnDrop;
        panic!("unwinding");
    });
    assert!(unwound.is_err());
    // Outside unwinding the next task installs the recorder as usual.
    let ex = TickExecutor::new();
    let line = line!() + 1;
    let handle = ex.spawn(async { panic!("located") });
    ex.run_until_stalled();
    let err = handle.join().unwrap_err();
    assert_eq!(err.panic_location().map(|l| l.line()), Some(line));
}
