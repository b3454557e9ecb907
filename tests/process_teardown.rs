//! Process calls across teardown and limits: a call nobody joins yet never
//! holds up `configure`, `reset` or a gil-mode wait; a child's output is
//! capped; `memory_limit` is headroom above what the child inherits. Every
//! test changes process-wide state, so each re-runs this binary as a fresh
//! process, under the watchdog.
#![cfg(all(unix, feature = "process-backend"))]

mod common;
mod watchdog;

use unirun::RuntimeConfig;

use common::in_child_process;
use watchdog::watchdog;

fn add_ten(x: u64) -> u64 {
    x + 10
}

/// A joined call, then one left unjoined across `teardown`; the unjoined
/// one's handle still gives its result once `teardown` returned.
fn unjoined_call_survives(teardown: fn()) {
    let executor = unirun::get_executor();
    assert_eq!(executor.call(add_ten, 0).join().unwrap(), 10);
    let pending = executor.call(add_ten, 1);
    teardown();
    assert_eq!(pending.join().unwrap(), 11);
}

fn reconfigure() {
    unirun::configure(RuntimeConfig::default().max_workers(2)).unwrap();
}

#[test]
fn configure_returns_while_a_process_call_is_unjoined_and_the_call_still_gives_its_result() {
    if !in_child_process(
        "configure_returns_while_a_process_call_is_unjoined_and_the_call_still_gives_its_result",
    ) {
        return;
    }
    watchdog(|| unjoined_call_survives(reconfigure));
}

#[test]
fn reset_returns_while_a_process_call_is_unjoined_and_the_call_still_gives_its_result() {
    if !in_child_process(
        "reset_returns_while_a_process_call_is_unjoined_and_the_call_still_gives_its_result",
    ) {
        return;
    }
    watchdog(|| unjoined_call_survives(unirun::reset));
}

#[test]
fn in_gil_mode_configure_and_reset_return_while_a_process_call_is_unjoined() {
    if !in_child_process("in_gil_mode_configure_and_reset_return_while_a_process_call_is_unjoined")
    {
        return;
    }
    // SAFETY-free: set before any unirun state is read, in a child process
    // running this test alone.
    std::env::set_var("UNIRUN_THREAD_MODE", "gil");
    watchdog(|| {
        unjoined_call_survives(reconfigure);
        unjoined_call_survives(unirun::reset);
    });
}
