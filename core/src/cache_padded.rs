//! Keeping a value on cache lines of its own.

use core::ops::Deref;

/// A value aligned (and so padded) to a cache-line pair, so that nothing
/// else shares its lines and writes to it never invalidate a neighbour's.
/// 128 bytes because x86's adjacent-line prefetcher pulls lines in pairs.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
