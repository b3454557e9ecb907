//! Helpers shared by the threads backend's integration tests.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A gate futures can wait on, opened from any thread.
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<Mutex<(bool, Vec<Waker>)>>);

impl Gate {
    pub(crate) fn open(&self) {
        let mut state = self.0.lock().unwrap();
        state.0 = true;
        for waker in state.1.drain(..) {
            waker.wake();
        }
    }

    pub(crate) fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }
}

/// The future of [`Gate::wait`].
pub(crate) struct GateWait(Gate);

impl Future for GateWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = (self.0).0.lock().unwrap();
        if state.0 {
            Poll::Ready(())
        } else {
            state.1.push(cx.waker().clone());
            Poll::Pending
        }
    }
}

pub(crate) use unirun_test_support::watchdog;

/// How many threads of this process have a name starting with `prefix`
/// (none, after saying the check is skipped, where threads cannot be
/// listed).
pub(crate) fn threads_named(prefix: &str) -> usize {
    unirun_test_support::threads_named(prefix).unwrap_or_else(|| {
        unirun_test_support::skip("thread-name checks", "this platform cannot list threads");
        0
    })
}

/// Spins (yielding) until `done()` holds: for events with no notification
/// to wait on (a thread exiting); never a timing check.
pub(crate) fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        std::thread::yield_now();
    }
}
