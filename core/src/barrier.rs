//! The two sides of the sleep protocol's store-buffering pair: [`light`] on
//! the hot path (a worker pushing to its own queue) and [`heavy`] on the cold
//! path (the last searcher going to sleep). Both are a `SeqCst` fence.
//!
//! The protocol (see [`idle`](crate::idle)) needs a `SeqCst` fence between
//! the store and the load on *both* sides: a worker pushing to its own queue
//! stores `tail`, then loads the idle state; the last searcher going to
//! sleep updates the idle state, then loads `tail`. The memory model orders
//! the two loads only through fences on both sides.
//!
//! An asymmetric pair was used before: a compiler fence on the push side and
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` on the park side, which
//! makes every running thread of the process execute a full barrier. It
//! kept the push cheap at the cost of an inter-processor interrupt on every
//! park of the last searcher. Once a task waking itself stopped going
//! through the local queue (it is re-polled in place, see
//! [`worker`](crate::worker)), pushes became rarer than parks in the shapes
//! that hand work back and forth, and two fences measured faster on every
//! `cargo bench` scenario that moved: `ping_pong_root` 0.88-0.93x the best
//! peer against 1.04-1.06x, `chained_spawn` 0.92-0.94x against 1.09-1.15x,
//! the others within noise (four alternating runs of each on 2 cores). The
//! two names stay so that each call site says which side it is.

use crate::sync::{fence, Ordering};

/// The cheap side: between a store and a load on the hot path.
#[inline]
pub(crate) fn light() {
    fence(Ordering::SeqCst);
}

/// The other side: between a store and a load on the cold path; pairs with
/// every [`light`] and every `SeqCst` fence of the protocol.
#[inline]
pub(crate) fn heavy() {
    fence(Ordering::SeqCst);
}
