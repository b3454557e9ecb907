//! A one-shot latch between a test and the work it holds back.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// A latch: [`wait`](Gate::wait) blocks until some clone of the gate is
/// [`open`](Gate::open)ed, and returns at once ever after. Clones share
/// one state. A test that lets work block on a gate must open it on every
/// path (or wrap the wait in a [`watchdog`](crate::watchdog)), since that
/// is the only thing that ends the wait.
///
/// # Examples
///
/// ```
/// use unirun_test_support::Gate;
///
/// let gate = Gate::default();
/// let held = gate.clone();
/// let worker = std::thread::spawn(move || {
///     held.wait();
///     "released"
/// });
/// assert!(!gate.is_open());
/// gate.open();
/// assert_eq!(worker.join().unwrap(), "released");
/// ```
#[derive(Clone, Default, Debug)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    /// Opens the gate and wakes every waiter.
    pub fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        changed.notify_all();
    }

    /// Blocks until the gate is open.
    pub fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut is_open = open.lock().unwrap_or_else(PoisonError::into_inner);
        while !*is_open {
            is_open = changed
                .wait(is_open)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether the gate has been opened.
    pub fn is_open(&self) -> bool {
        *self.0 .0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
