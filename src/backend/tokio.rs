//! A tokio runtime: one the scope owns, or the ambient one it borrows
//! (feature `tokio-backend`).

use unirun_tokio::TokioRuntime;

use super::{Backend, Owned, Started};
use crate::error::Error;

/// Starts a multi-thread tokio runtime of `workers` threads named after
/// `name`, with up to `blocking_cap` blocking threads.
pub(crate) fn start(workers: usize, blocking_cap: usize, name: &str) -> Result<Started, Error> {
    let runtime = TokioRuntime::builder()
        .workers(workers)
        .max_blocking_threads(blocking_cap)
        .name(name)
        .build()?;
    Ok(Started {
        backend: Backend::Tokio(runtime.handle()),
        owned: Owned::Tokio(runtime),
        #[cfg(all(unix, feature = "process-backend"))]
        processes: None,
    })
}

/// The tokio runtime the calling thread runs in, when unirun can borrow it.
pub(crate) fn ambient() -> Option<unirun_tokio::Handle> {
    unirun_tokio::Handle::current()
}
