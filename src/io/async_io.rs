//! Idle pool workers drive async-io's reactor (feature `smol-backend`).
//!
//! async-io's `block_on` drives its reactor on the calling thread whenever
//! no other thread holds the reactor's lock, and parks the thread
//! otherwise; its `async-io` thread drives only when nobody else does. An
//! idle worker that parks inside it ([`park`]) therefore handles the
//! readiness of smol sockets and timers itself, and the tasks they wake
//! run on that worker (`unirun_core`'s parked-core wake): no thread hop.
//! A wake-up of the worker completes its park future, whose waker is
//! async-io's (it notifies the reactor when the thread waits in it).
//!
//! **Liveness.** The park future completes once the worker is unparked,
//! and async-io's `block_on` returns once its future completes, whether it
//! drove the reactor or parked. The reactor is driven by its own thread
//! whenever no `block_on` holds it, so events are handled while every
//! worker is busy. In a forked child the reactor (its epoll descriptor) is
//! the parent's, and its thread is not there: workers there never park in
//! it.

use std::future::Future;
use std::pin::Pin;

/// Parks the calling pool worker in async-io's `block_on` until `woken`
/// completes; `false` (at once) in a forked child.
pub(crate) fn park(woken: Pin<&mut dyn Future<Output = ()>>) -> bool {
    if unirun_core::in_forked_child() {
        return false;
    }
    smol::block_on(woken);
    true
}

/// The worker context of a pool when async-io is the only reactor
/// compiled in (no `tokio-backend`): runs the threads as they are, and
/// parks idle workers in async-io.
#[cfg(not(feature = "tokio-backend"))]
pub(crate) struct AsyncIo;

#[cfg(not(feature = "tokio-backend"))]
impl unirun_threads::WorkerContext for AsyncIo {
    fn run(&self, body: &mut dyn FnMut()) {
        body();
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn park(&self, woken: Pin<&mut dyn Future<Output = ()>>) -> bool {
        park(woken)
    }
}
