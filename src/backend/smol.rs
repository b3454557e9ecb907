//! An async-executor driven by threads of its own (feature `smol-backend`).

use unirun_smol::SmolPool;

use super::{Backend, Owned, Started};
use crate::error::Error;

/// Starts an executor driven by `workers` threads named after `name`, with
/// a blocking lane of up to `blocking_cap` threads.
pub(crate) fn start(workers: usize, blocking_cap: usize, name: &str) -> Result<Started, Error> {
    let pool = SmolPool::builder()
        .workers(workers)
        .max_blocking_threads(blocking_cap)
        .name(name)
        .build()?;
    Ok(Started {
        backend: Backend::Smol(pool.handle()),
        owned: Owned::Smol(pool),
        #[cfg(all(unix, feature = "process-backend"))]
        processes: None,
    })
}
