//! [`HelperThread`]: where a pool keeps the handle of one of its helper
//! threads (the deadline watcher, the reply watcher), from the start that
//! succeeded to the stop that joins it.

use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

/// The handle of a helper thread, once started. Only the handle lives
/// here: how a helper is told to stop is its own business.
pub(super) struct HelperThread(Mutex<Option<JoinHandle<()>>>);

impl HelperThread {
    /// No thread yet.
    pub(super) const fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// Keeps the handle of the thread just started.
    pub(super) fn started(&self, thread: JoinHandle<()>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread);
    }

    /// Joins the thread, told to stop before this, unless called on the
    /// thread itself, which then ends on its own once it returns there.
    pub(super) fn join(&self) {
        let thread = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }

    /// Whether the thread runs (for tests).
    #[cfg(test)]
    pub(super) fn running(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }

    /// In a forked child: the thread does not exist here, so it is neither
    /// joined nor detached.
    pub(super) fn forget(&mut self) {
        let thread = self
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        std::mem::forget(thread);
    }
}
