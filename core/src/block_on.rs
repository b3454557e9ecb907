//! [`block_on`]: run a future to completion on the current thread.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

/// Blocks the current thread until `future` completes and returns its output.
///
/// - A future that is ready at once costs one poll: no parker, no waker, no
///   thread-local is touched.
/// - With `std`, the thread sleeps on a parker cached per thread (no
///   allocation per call).
/// - On a unirun worker thread (inside a task), the worker's queues first go
///   to a new thread that keeps running the pool's other tasks, then this
///   thread parks: blocking on work queued behind the caller cannot deadlock
///   the pool, and no task ever runs nested under the waiting frame (see
///   [`Worker`](crate::Worker#blocking-on-a-worker)). If that thread cannot be
///   started, this panics with the OS error instead of risking a hang.
/// - With `std`, a [`WaitHook`](crate::WaitHook), if installed, is told
///   when the wait starts and ends, so a lock the caller holds (a serialized
///   scope's) can be released meanwhile.
/// - Without `std`, the thread spins; [`block_on_with`] lets the caller
///   supply a real parker.
///
/// # Examples
///
/// ```
/// assert_eq!(unirun_core::block_on(async { 1 + 2 }), 3);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    if let Poll::Ready(output) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return output;
    }
    #[cfg(feature = "std")]
    {
        let _released = crate::context::release_core();
        cached::block_on(future)
    }
    #[cfg(not(feature = "std"))]
    {
        block_on_with_spin(future)
    }
}

/// Like [`block_on`], sleeping on `park` between polls; `unpark` must wake it.
/// Made for `no_std` targets with their own way to sleep.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
///
/// let (parker, unparker) = unirun_core::park::pair();
/// let out = unirun_core::block_on_with(async { "ready" }, &parker, Arc::new(unparker));
/// assert_eq!(out, "ready");
/// ```
pub fn block_on_with<F: Future>(
    future: F,
    park: &dyn crate::Park,
    unpark: alloc::sync::Arc<dyn crate::Unpark>,
) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(alloc::sync::Arc::new(UnparkWaker(unpark)));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        park.park();
    }
}

struct UnparkWaker(alloc::sync::Arc<dyn crate::Unpark>);

impl alloc::task::Wake for UnparkWaker {
    fn wake(self: alloc::sync::Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &alloc::sync::Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(not(feature = "std"))]
fn block_on_with_spin<F: Future>(future: core::pin::Pin<&mut F>) -> F::Output {
    use core::sync::atomic::{AtomicBool, Ordering};
    struct Flag(AtomicBool);
    impl alloc::task::Wake for Flag {
        fn wake(self: alloc::sync::Arc<Self>) {
            self.0.store(true, Ordering::Release);
        }
    }
    let flag = alloc::sync::Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut future = future;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return output;
        }
        while !flag.0.swap(false, Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
}

#[cfg(feature = "std")]
mod cached {
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Poll, Waker};
    use std::cell::RefCell;
    use std::sync::Arc;

    use crate::park::{pair, Parker};
    use crate::Park;

    #[cfg(not(loom))]
    std::thread_local! {
        /// One parker and its waker per thread, reused by every `block_on`.
        static CACHE: RefCell<(Parker, Waker)> = RefCell::new({
            let (parker, unparker) = pair();
            (parker, Waker::from(Arc::new(unparker)))
        });
    }

    // Loom's parker must be created inside each execution, per loom thread.
    #[cfg(loom)]
    loom::thread_local! {
        static CACHE: RefCell<(Parker, Waker)> = RefCell::new({
            let (parker, unparker) = pair();
            (parker, Waker::from(Arc::new(unparker)))
        });
    }

    pub(super) fn block_on<F: Future>(mut future: Pin<&mut F>) -> F::Output {
        CACHE.with(|cache| match cache.try_borrow_mut() {
            Ok(cache) => {
                let (parker, waker) = &*cache;
                run(future.as_mut(), parker, waker)
            }
            // A nested `block_on` (called from inside a poll): use a fresh pair.
            Err(_) => {
                let (parker, unparker) = pair();
                run(future.as_mut(), &parker, &Waker::from(Arc::new(unparker)))
            }
        })
    }

    fn run<F: Future>(mut future: Pin<&mut F>, parker: &Parker, waker: &Waker) -> F::Output {
        let mut cx = Context::from_waker(waker);
        let mut waiting = crate::wait::Waiting::new();
        loop {
            waiting.reacquire();
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            waiting.release();
            parker.park();
        }
    }
}
