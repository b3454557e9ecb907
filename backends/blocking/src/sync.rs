//! The one place that names the lane's locks, condition variables, threads
//! and thread-locals.
//!
//! Under `--cfg loom` everything switches to loom's model-checked versions,
//! so the lane's counters and wake-ups run unchanged in the models of
//! `loom_tests.rs`. loom's timed wait never times out, so the keep-alive is a
//! [`Clock`] the model expires by hand: a thread waiting past it sees the
//! timeout at whatever point the model's clock fires.

#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread;

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread;

use std::time::{Duration, Instant};

/// Locks a mutex, ignoring poison: no critical section of the lane calls
/// user code, so a panic never leaves its state half-updated.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(loom))]
    return mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    #[cfg(loom)]
    return mutex.lock().unwrap();
}

/// Waits on `condvar` without a deadline.
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    #[cfg(not(loom))]
    return condvar
        .wait(guard)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    #[cfg(loom)]
    return condvar.wait(guard).unwrap();
}

/// Waits on `condvar` until `deadline` at most (under loom: without one;
/// the models never use a bounded shutdown).
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Instant,
) -> MutexGuard<'a, T> {
    #[cfg(not(loom))]
    {
        let left = deadline.saturating_duration_since(Instant::now());
        condvar
            .wait_timeout(guard, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }
    #[cfg(loom)]
    {
        let _ = deadline;
        wait(condvar, guard)
    }
}

/// The keep-alive timer of idle lane threads.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct Clock;

#[cfg(not(loom))]
impl Clock {
    pub(crate) fn new() -> Self {
        Clock
    }

    /// Waits on `condvar` for a wake-up or `keep_alive`; returns whether it timed out.
    pub(crate) fn wait<'a, T>(
        &self,
        condvar: &Condvar,
        guard: MutexGuard<'a, T>,
        keep_alive: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        let (guard, result) = condvar
            .wait_timeout(guard, keep_alive)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (guard, result.timed_out())
    }
}

/// The keep-alive timer under loom: the model fires it with [`Clock::expire`].
#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct Clock {
    expired: loom::sync::atomic::AtomicBool,
}

#[cfg(loom)]
impl Clock {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Once the clock has fired every wait times out at once; before, a wait
    /// ends with a wake-up or with the clock firing, whichever loom picks.
    pub(crate) fn wait<'a, T>(
        &self,
        condvar: &Condvar,
        guard: MutexGuard<'a, T>,
        _keep_alive: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        use loom::sync::atomic::Ordering::SeqCst;
        if self.expired.load(SeqCst) {
            return (guard, true);
        }
        let guard = wait(condvar, guard);
        (guard, self.expired.load(SeqCst))
    }

    /// Fires the keep-alive of every thread waiting on `condvar` now or later.
    #[cfg(test)]
    pub(crate) fn expire<T>(&self, mutex: &Mutex<T>, condvar: &Condvar) {
        // Set under the lock, so no waiter can check the flag, miss this
        // store and then block after the notification went out.
        let guard = lock(mutex);
        self.expired
            .store(true, loom::sync::atomic::Ordering::SeqCst);
        drop(guard);
        condvar.notify_all();
    }
}
