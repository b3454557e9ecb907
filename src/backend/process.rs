//! Forked processes (feature `process-backend`, unix): a thread pool for
//! `spawn` and `spawn_blocking`, plus a pre-forked process pool for `call`
//! and `to_process`.

pub(crate) use unirun_process::{ProcessOptions, ProcessPool};

use super::{threads, Backend, Started};
use crate::error::Error;
pub(crate) use crate::process::{
    cancel_children, cancel_handle_children, close_scope_pool, reset_processes, start_pending_calls,
};

/// Starts a thread pool like `Plan::Threads` and creates (without forking
/// yet: its workers start on the first call) a process pool of `workers`
/// with `options`.
pub(crate) fn start(
    workers: usize,
    blocking_cap: usize,
    name: &str,
    options: ProcessOptions,
) -> Result<Started, Error> {
    let pool = threads::pool(workers, blocking_cap, name)?;
    Ok(Started {
        backend: Backend::Threads(pool.handle()),
        owned: Box::new(pool),
        processes: Some(ProcessPool::new(workers, options)),
    })
}

/// The pool's calls, crashes and timeouts so far (for `Metrics`).
pub(crate) fn call_counts(pool: &ProcessPool) -> [u64; 3] {
    [pool.calls(), pool.crashes(), pool.timeouts()].map(|n| n as u64)
}
