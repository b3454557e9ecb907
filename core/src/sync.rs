//! The one place that names atomics, `Arc`, cells and locks used by the lock-free code.
//!
//! Under `--cfg loom` everything switches to loom's model-checked versions, so the
//! protocols in `queue`, `idle`, `park`, `join` and `task_set` are checked by the loom
//! models in `loom_tests.rs` without a line of them changing.

#[cfg(not(loom))]
pub(crate) use alloc::sync::Arc;
/// The join deques' slots (`fork_join`, which needs `std`).
#[cfg(all(not(loom), feature = "std"))]
pub(crate) use core::sync::atomic::AtomicPtr;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    fence, AtomicBool, AtomicU16, AtomicU32, AtomicUsize, Ordering,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU16, AtomicU32, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(all(feature = "std", not(loom)))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Spins politely; loom needs to know about busy-waits to explore them.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// An `UnsafeCell` with loom's closure-based API, so the same code runs under both.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Locks a mutex, ignoring poison: the data behind our locks stays consistent
/// across a panic because no critical section can unwind half-way.
#[cfg(any(feature = "std", loom))]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(loom))]
    return mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    #[cfg(loom)]
    return mutex.lock().unwrap();
}

/// A test-and-set spin lock for the few short critical sections that must also
/// work without `std` (the sleeper list, a `JoinHandle`'s task slot).
///
/// Every critical section guarded by it is a handful of instructions and never
/// calls out to user code, so spinning is cheaper than parking.
#[derive(Debug)]
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time, so
// sharing the lock is as safe as sending the value.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the value; nothing is tied to a thread.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access to the value.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: `locked` was switched from false to true by this thread, so no
        // other thread is inside `with` until `_unlock` releases it.
        self.value.with_mut(|value| f(unsafe { &mut *value }))
    }

    /// Exclusive access without locking: `&mut self` proves nobody else holds it.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` guarantees no other reference to the value exists.
        self.value.with_mut(|value| unsafe { &mut *value })
    }
}
