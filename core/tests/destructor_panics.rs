//! Many cancelled tasks whose destructors panic, each collected by its own
//! handle. The only test in its binary: the table of such panics is
//! process-wide, and this one fills it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use unirun_core::TickExecutor;
use unirun_test_support::watchdog;

/// Never finishes; panics when dropped.
struct PendingThenPanicOnDrop;

impl Future for PendingThenPanicOnDrop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for PendingThenPanicOnDrop {
    fn drop(&mut self) {
        panic!("destructor of a cancelled task");
    }
}

/// 64 tasks (the table's capacity) are aborted and all dropped before any
/// handle looks: every handle resolves to its own task's panic, whatever
/// slots their keys hash to (with one entry per slot, 26 of 64 came back
/// `cancelled`).
#[test]
fn sixty_four_aborted_tasks_each_report_their_destructor_panic() {
    watchdog(
        "sixty_four_aborted_tasks_each_report_their_destructor_panic",
        || {
            const N: usize = 64;
            let ex = TickExecutor::new();
            let handles: Vec<_> = (0..N).map(|_| ex.spawn(PendingThenPanicOnDrop)).collect();
            ex.run_until_stalled();
            for handle in &handles {
                handle.abort();
            }
            // Every aborted future is dropped here: every panic is recorded.
            ex.run_until_stalled();
            let mut panicked = 0;
            for handle in handles {
                assert!(handle.is_finished());
                let err = unirun_core::block_on(handle).unwrap_err();
                if err.panic_message() == Some("destructor of a cancelled task") {
                    panicked += 1;
                }
            }
            assert_eq!(panicked, N, "handles lost their task's destructor panic");
        },
    );
}
