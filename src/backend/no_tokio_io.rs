//! Without `tokio-backend`: no tokio reactor around a pool's workers and
//! no ambient runtime; the interface of `tokio_io.rs`, doing nothing.

use std::time::Instant;

use unirun_threads::{Builder, Handle};

use super::Backend;
use crate::error::Error;

/// A backend's runtime context: none without `tokio-backend`.
pub(crate) type BackendContext<'a> = std::marker::PhantomData<&'a ()>;

/// A pool's hold on a tokio runtime: there is none.
pub(super) struct Lease;

/// Leaves `builder` as it is.
pub(super) fn attach(builder: Builder) -> Result<(Builder, Lease), Error> {
    Ok((builder, Lease))
}

impl Lease {
    /// Nothing to release: nothing is left running.
    pub(super) fn release_by(self, _deadline: Option<Instant>) -> bool {
        true
    }

    /// Nothing to release.
    pub(super) fn release_now(self) {}
}

/// No reactor to enter.
pub(super) fn enter(_pool: &Handle) -> Option<BackendContext<'_>> {
    None
}

/// No reactor to describe.
pub(super) fn describe(_pool: &Handle) -> Option<&'static str> {
    None
}

/// No tokio runtime to borrow.
pub(super) fn ambient() -> Option<Backend> {
    None
}
