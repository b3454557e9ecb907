//! A child forked by code other than unirun (a plain `fork`) is known to be
//! a forked child: unirun's pools there run tasks inline and never wait for
//! the threads (or queue claims of threads) that `fork` did not copy.
//! Runs in a fresh process (it forks), under a watchdog; the forked child
//! arms `alarm` so that a hang there ends as a death by SIGALRM, which the
//! parent reports.
#![cfg(unix)]

mod common;

use common::{in_child_process, watchdog_this_test};

#[test]
fn a_child_forked_by_other_code_runs_unirun_tasks_and_shuts_down() {
    if !in_child_process("a_child_forked_by_other_code_runs_unirun_tasks_and_shuts_down") {
        return;
    }
    watchdog_this_test(|| {
        // The shared default's workers exist from here on.
        assert_eq!(unirun::spawn(async { 1 }).join().unwrap(), 1);
        // The workers are idle and the watchdog thread waits on a channel:
        // no other thread holds a lock the child needs.
        // SAFETY: the child runs what a unirun child runs and leaves with `_exit`.
        match unsafe { libc::fork() } {
            -1 => panic!("fork failed: {}", std::io::Error::last_os_error()),
            0 => {
                // SAFETY: `alarm` and `_exit` are async-signal-safe.
                unsafe { libc::alarm(60) };
                if !unirun_core::in_forked_child() {
                    // SAFETY: as below.
                    unsafe { libc::_exit(2) }
                }
                // Without the mark this queues for an absent worker and
                // waits forever.
                let ok = unirun::spawn(async { 2 }).join().ok() == Some(2);
                // Stops the inherited default: nothing to join here.
                unirun::reset();
                // SAFETY: ends the child without running the parent's
                // atexit handlers or destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            pid => {
                let mut status = 0;
                // SAFETY: waits for our own child; `status` is a valid out
                // pointer. Ends: the child exits, or `alarm` kills it.
                let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
                assert_eq!(waited, pid);
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "the plain-forked child ran its task and shut down (status {status:#x})"
                );
            }
        }
    });
}

/// A program whose only pool is a smol scope (no threads pool ever built)
/// forks by other code: the child still knows it is one, so the scope's
/// work runs there instead of waiting for smol threads fork did not copy.
#[cfg(feature = "smol-backend")]
#[test]
fn a_smol_scope_works_in_a_child_forked_by_other_code() {
    if !in_child_process("a_smol_scope_works_in_a_child_forked_by_other_code") {
        return;
    }
    watchdog_this_test(|| {
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Smol)
            .max_workers(2)
            .build()
            .unwrap();
        assert_eq!(run.spawn(async { 1 }).join().unwrap(), 1);
        // SAFETY: as in the test above; the smol threads are idle.
        match unsafe { libc::fork() } {
            -1 => panic!("fork failed: {}", std::io::Error::last_os_error()),
            0 => {
                // SAFETY: `alarm` and `_exit` are async-signal-safe.
                unsafe { libc::alarm(60) };
                if !unirun_core::in_forked_child() {
                    // SAFETY: as below.
                    unsafe { libc::_exit(2) }
                }
                let ok = run.spawn(async { 2 }).join().ok() == Some(2);
                std::mem::forget(run);
                // SAFETY: ends the child without running the parent's
                // atexit handlers or destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            pid => {
                let mut status = 0;
                // SAFETY: waits for our own child; `status` is a valid out
                // pointer. Ends: the child exits, or `alarm` kills it.
                let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
                assert_eq!(waited, pid);
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "the plain-forked child ran its smol task (status {status:#x})"
                );
            }
        }
    });
}
