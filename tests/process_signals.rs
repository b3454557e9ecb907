//! Seams between the forked-process backend and the host process: the
//! fork server's lifetime while forked children live, and the host's
//! `SIGCHLD` and `SIGPIPE` dispositions. Every test runs in a fresh child
//! process of this binary (they start fork servers, change signal
//! dispositions or reset the shared default) under a watchdog.
#![cfg(all(unix, feature = "process-backend"))]

mod common;
mod watchdog;

use std::os::fd::{AsFd, OwnedFd};

use unirun::process::ProcessOptions;
use unirun::{Flavor, Run};
use unirun_platform::process as sys;

use common::in_child_process;
use watchdog::watchdog;

/// A child that says it started, then blocks until the test releases it:
/// while the test holds `release`, the child is provably still running.
struct Gate {
    started: OwnedFd,
    release: OwnedFd,
    /// The child's ends.
    child_started: OwnedFd,
    child_release: OwnedFd,
}

impl Gate {
    fn new() -> Self {
        let (started, child_started) = sys::pipe().unwrap();
        let (child_release, release) = sys::pipe().unwrap();
        Self {
            started,
            release,
            child_started,
            child_release,
        }
    }

    /// The closure the child runs: signal, block on the release pipe, 7.
    fn body(&self) -> impl FnOnce() -> u8 + Send + 'static {
        let started = self.child_started.try_clone().unwrap();
        let release = self.child_release.try_clone().unwrap();
        move || {
            sys::write_all(started.as_fd(), b"s").unwrap();
            let mut byte = [0u8; 1];
            // Ends only when the test writes its byte.
            assert_eq!(
                sys::read_until(release.as_fd(), &mut byte, None).unwrap(),
                Some(1)
            );
            7
        }
    }

    fn wait_started(&self) {
        let mut byte = [0u8; 1];
        assert_eq!(
            sys::read_until(self.started.as_fd(), &mut byte, None).unwrap(),
            Some(1)
        );
    }

    fn open(&self) {
        sys::write_all(self.release.as_fd(), b"r").unwrap();
    }
}

fn no_timeout() -> ProcessOptions {
    ProcessOptions::default().timeout(None)
}

/// Defect (issue 19, item 2): children forked after `init()` inherited the
/// parent's end of the fork server's socket, so the server never saw end
/// of file and `shutdown()` waited for the child's whole run.
#[test]
fn process_shutdown_returns_while_a_to_process_child_still_runs() {
    if !in_child_process("process_shutdown_returns_while_a_to_process_child_still_runs") {
        return;
    }
    watchdog(|| {
        assert!(unirun::process::init());
        let gate = Gate::new();
        let handle = unirun::to_process_with(no_timeout(), gate.body());
        gate.wait_started();
        // Returns although the child blocks until `open` below.
        unirun::process::shutdown();
        gate.open();
        assert_eq!(handle.join().unwrap(), 7);
    });
}

#[test]
fn reset_returns_while_a_scopes_process_child_still_runs() {
    if !in_child_process("reset_returns_while_a_scopes_process_child_still_runs") {
        return;
    }
    watchdog(|| {
        assert!(unirun::process::init());
        let run = Run::builder().flavor(Flavor::Threads).build().unwrap();
        let gate = Gate::new();
        let handle = run.to_process_with(no_timeout(), gate.body());
        gate.wait_started();
        // The scope is not the shared default: reset leaves its child alone
        // and still returns at once.
        unirun::reset();
        gate.open();
        assert_eq!(handle.join().unwrap(), 7);
        run.shutdown();
    });
}

#[test]
fn process_shutdown_returns_while_a_fork_call_child_still_runs() {
    if !in_child_process("process_shutdown_returns_while_a_fork_call_child_still_runs") {
        return;
    }
    watchdog(|| {
        assert!(unirun::process::init());
        let gate = Gate::new();
        let body = gate.body();
        let caller = std::thread::spawn(move || unirun::process::fork_call(&no_timeout(), body));
        gate.wait_started();
        unirun::process::shutdown();
        unirun::reset();
        gate.open();
        assert_eq!(caller.join().unwrap().unwrap(), 7);
    });
}
