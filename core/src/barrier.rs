//! The fence both sides of the sleep protocol's store-buffering pair
//! issue between their store and their load.
//!
//! The protocol (see [`idle`](crate::idle)) needs a `SeqCst` fence between
//! the store and the load on *both* sides: a worker pushing to its own queue
//! stores `tail`, then loads the idle state; the last searcher going to
//! sleep updates the idle state, then loads `tail`. The memory model orders
//! the two loads only through fences on both sides.
//!
//! An asymmetric pair would make the push side cheaper (a compiler fence
//! there, and `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes
//! every running thread of the process execute a full barrier, on the park
//! side), but it costs an inter-processor interrupt on every park of the
//! last searcher. A task that wakes itself is re-polled in place (see
//! [`worker`](crate::worker)) rather than pushed, so where tasks hand work
//! back and forth parks are about as frequent as pushes, and one plain
//! fence on each side is the cheaper pair.

use crate::sync::{fence, Ordering};

/// The store-load fence: issued between a store and a later load of
/// another location by both sides of the sleep protocol (the push side in
/// `Pool::notify_parked_local`, the park side after
/// `Idle::transition_worker_to_parked`); each call site says which side it
/// is.
#[inline]
pub(crate) fn store_load() {
    fence(Ordering::SeqCst);
}
