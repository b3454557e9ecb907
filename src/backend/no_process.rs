//! The process backend's interface when it is not compiled in (feature
//! `process-backend` off, or not unix): the scheduler never plans
//! processes then, and every hook does nothing.

use super::{threads, Started};
use crate::error::Error;
use crate::handle::Handle;
use crate::scope::ScopeState;

/// A pre-forked process pool: there are none without the process backend
/// (the type has no values).
#[derive(Debug, Clone)]
pub(crate) enum ProcessPool {}

impl ProcessPool {
    pub(crate) fn origin(&self) -> String {
        match *self {}
    }

    pub(crate) fn shutdown_now(&self) {
        match *self {}
    }

    pub(crate) fn retire(&self) {
        match *self {}
    }
}

/// The pool's calls, crashes and timeouts: there is no pool.
pub(crate) fn call_counts(pool: &ProcessPool) -> [u64; 3] {
    match *pool {}
}

/// The limits a scope's forked calls default to: none.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ProcessOptions;

/// Not reached: the scheduler falls back before planning processes
/// without the feature. Threads are still the honest answer.
pub(crate) fn start(
    workers: usize,
    blocking_cap: usize,
    name: &str,
    _options: ProcessOptions,
) -> Result<Started, Error> {
    threads::start(workers, blocking_cap, name)
}

/// No forked children to cancel.
pub(crate) fn cancel_children(_scope: &ScopeState) {}

/// No forked children to cancel.
pub(crate) fn cancel_handle_children(_handle: &Handle) {}

/// No process calls waiting for a reader.
pub(crate) fn start_pending_calls(_scope: &ScopeState) {}

/// No scope process pool to close.
pub(crate) fn close_scope_pool(_scope: &ScopeState) {}

/// No shared process pool to stop.
pub(crate) fn reset_processes() {}
