//! With `tokio-backend`: the tokio reactor unirun's thread pools run
//! inside (see [`crate::io`]), and the ambient tokio runtime a scope may
//! borrow. `no_tokio_io.rs` has the same interface without tokio.

use std::time::Instant;

use unirun_threads::{Builder, Handle};

use super::Backend;
use crate::error::Error;

/// A backend's runtime context, entered on a thread (see [`Backend::enter`]).
pub(crate) type BackendContext<'a> = crate::io::Context<'a>;

/// A pool's hold on unirun's own tokio runtime, released after the pool's
/// threads are joined.
pub(super) struct Lease(Option<crate::io::Lease>);

/// Runs the workers `builder` starts inside the tokio reactor a new pool
/// gets.
pub(super) fn attach(builder: Builder) -> Result<(Builder, Lease), Error> {
    let (reactor, lease) = crate::io::Reactor::for_new_pool()?;
    Ok((builder.worker_context(reactor), Lease(lease)))
}

impl Lease {
    /// Lets go of unirun's runtime; if this was its last pool, it stops by
    /// `deadline` (its blocking closures are not waited for past it).
    /// Whether nothing was left running.
    pub(super) fn release_by(self, deadline: Option<Instant>) -> bool {
        match (self.0, deadline) {
            (Some(io), Some(deadline)) => io.release_by(deadline),
            _ => true,
        }
    }

    /// Lets go of unirun's runtime; if this was its last pool, it stops
    /// without waiting for tokio blocking closures still running (a plain
    /// drop would wait for them, without bound).
    pub(super) fn release_now(self) {
        if let Some(io) = self.0 {
            io.release_now();
        }
    }
}

/// Enters the reactor `pool`'s workers run inside, if it has one.
pub(super) fn enter(pool: &Handle) -> Option<BackendContext<'_>> {
    crate::io::reactor_of(pool).map(crate::io::Reactor::enter)
}

/// Which reactor `pool`'s tasks use, for the trace.
pub(super) fn describe(pool: &Handle) -> Option<&'static str> {
    crate::io::reactor_of(pool).map(crate::io::Reactor::describe)
}

/// The tokio runtime the calling thread runs in, as a backend to borrow.
/// The context a thread pool's workers run inside is unirun's, not an
/// ambient runtime (see [`crate::io`]).
pub(super) fn ambient() -> Option<Backend> {
    if crate::io::entered_by_unirun() {
        return None;
    }
    super::tokio::ambient()
}
