//! Unit tests of `Run`'s teardown.

use super::shutdown::REFUSE_HELPER;
use super::*;

#[test]
fn a_refused_helper_thread_cancels_once_and_returns() {
    let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
    // Pending forever: only the cancellation can end it.
    let stuck = run.spawn(std::future::pending::<()>());
    REFUSE_HELPER.with(|r| r.set(true));
    let mut run = run;
    let name = run.name.clone();
    run.take_teardown().off_thread(Stop::Wait, &name);
    REFUSE_HELPER.with(|r| r.set(false));
    let err = stuck.join().unwrap_err();
    assert!(err.is_cancelled(), "{err}");
}
