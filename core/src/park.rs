//! Parking: how an idle thread sleeps until it is given work.
//!
//! The scheduler only needs two operations, so they are traits: [`Park`] for
//! the thread that sleeps and [`Unpark`] for whoever wakes it. Both keep a
//! wake-up token, so an `unpark` that comes before the `park` is not lost.
//! With `std` the crate provides [`Parker`]/[`Unparker`] (a mutex and a
//! condition variable, as in the `parking` crate); a `no_std` user plugs in
//! whatever its platform has (`WFE`/`SEV`, an RTOS semaphore, a spin).

/// The sleeping side of a parker.
///
/// # Examples
///
/// A parker that spins on a token, the simplest thing a `no_std` target can
/// plug in (real hardware would rather sleep with `WFE` or an RTOS primitive):
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use unirun_core::{Park, Unpark};
///
/// struct SpinToken(AtomicBool);
///
/// impl Park for SpinToken {
///     fn park(&self) {
///         while !self.0.swap(false, Ordering::Acquire) {
///             std::hint::spin_loop();
///         }
///     }
/// }
///
/// impl Unpark for SpinToken {
///     fn unpark(&self) {
///         self.0.store(true, Ordering::Release);
///     }
/// }
///
/// let token = Arc::new(SpinToken(AtomicBool::new(false)));
/// let remote = token.clone();
/// let helper = std::thread::spawn(move || remote.unpark());
/// token.park(); // returns once the helper has unparked
/// assert!(!token.0.load(Ordering::SeqCst)); // the token was consumed
/// helper.join().unwrap();
/// ```
///
/// # Panics
///
/// `park` must not panic (nor unwind): a [`Pool`](crate::Pool)'s worker
/// calls it after listing itself as asleep, and a worker that unwound from
/// there would stay listed, so a producer would count it as the one to wake
/// and wake nobody. If it panics anyway, the process aborts, saying so on
/// stderr (with `std`).
pub trait Park {
    /// Blocks until [`Unpark::unpark`] is called, or returns at once if it was
    /// called since the last `park`. May return spuriously.
    fn park(&self);
}

/// The waking side of a parker; shared with other threads.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use unirun_core::{Park, Unpark};
///
/// let (parker, unparker) = unirun_core::park::pair();
/// let done = Arc::new(AtomicBool::new(false));
/// let flag = done.clone();
/// let helper = std::thread::spawn(move || {
///     flag.store(true, Ordering::SeqCst);
///     unparker.unpark();
/// });
/// // `park` may return spuriously, so wait for the condition in a loop.
/// while !done.load(Ordering::SeqCst) {
///     parker.park();
/// }
/// helper.join().unwrap();
/// ```
///
/// # Panics
///
/// `unpark` must not panic (nor unwind). A [`Pool`](crate::Pool) calls it
/// after it took the worker off its list of sleepers and counted it as
/// awake and searching for work, and cannot tell from a panic whether the
/// worker got its token: counted as searching but still asleep, it would
/// keep every later wake-up from being sent (each sees a searcher that
/// will find the work), a lost wake-up that stalls the pool for good; put
/// back on the list after it did wake, the counts would go wrong. So a
/// panicking `unpark` aborts the process, saying so on stderr (with
/// `std`), instead of leaving a pool that may hang. The same holds for
/// [`Pool::shutdown`](crate::Pool::shutdown), which unparks every worker.
pub trait Unpark: Send + Sync {
    /// Wakes the parked thread, or makes its next [`Park::park`] return at once.
    fn unpark(&self);
}

/// What the process says before it aborts on a panicking [`Unpark::unpark`].
pub(crate) const UNPARK_PANICKED: &str = "an Unpark::unpark of the pool panicked: the pool \
    cannot tell whether its worker was woken, and going on could leave the worker asleep \
    while counted awake, so that no wake-up would reach the pool again (see the contract \
    on Unpark)";

/// What the process says before it aborts on a panicking [`Park::park`].
pub(crate) const PARK_PANICKED: &str = "a Park::park of the pool's worker panicked: the \
    worker is listed asleep, and going on would leave wake-ups sent to it that nobody \
    receives (see the contract on Park)";

/// `unparker.unpark()`, aborting the process if it panics (see [`Unpark`]).
#[inline]
pub(crate) fn unpark_or_abort(unparker: &dyn Unpark) {
    let guard = AbortOnUnwind(UNPARK_PANICKED);
    unparker.unpark();
    core::mem::forget(guard);
}

/// `parker.park()`, aborting the process if it panics (see [`Park`]).
#[inline]
pub(crate) fn park_or_abort(parker: &dyn Park) {
    let guard = AbortOnUnwind(PARK_PANICKED);
    parker.park();
    core::mem::forget(guard);
}

/// Aborts the process when dropped: forgotten on the normal path, so only
/// an unwind past it drops it.
struct AbortOnUnwind(&'static str);

impl Drop for AbortOnUnwind {
    #[cold]
    fn drop(&mut self) {
        #[cfg(feature = "std")]
        {
            use std::io::Write;
            // Not `eprintln!`: it panics when stderr is gone.
            let _ = writeln!(std::io::stderr(), "unirun_core: {}; aborting", self.0);
            std::process::abort();
        }
        // Without `std` there is no abort to call: a panic while this
        // one unwinds aborts.
        #[cfg(not(feature = "std"))]
        panic!("unirun_core: {}; aborting", self.0);
    }
}

#[cfg(any(feature = "std", loom))]
pub use self::std_parker::{pair, Parker, Unparker};

#[cfg(any(feature = "std", loom))]
mod std_parker {
    use core::fmt;

    use crate::sync::{lock, Arc, AtomicUsize, Condvar, Mutex, Ordering};

    /// Spins before a park sleeps (none under loom: spinning only adds states).
    #[cfg(not(loom))]
    const SPIN_BEFORE_PARK: u32 = 64;
    #[cfg(loom)]
    const SPIN_BEFORE_PARK: u32 = 0;

    const EMPTY: usize = 0;
    const PARKED: usize = 1;
    const NOTIFIED: usize = 2;

    /// `state` is `NOTIFIED` while a token is pending, `PARKED` while the owner
    /// waits on `condvar`, `EMPTY` otherwise. It only becomes `PARKED` with
    /// `lock` held, and `unpark` takes `lock` before notifying, so a
    /// notification cannot slip between the owner's check and its wait.
    struct Inner {
        state: AtomicUsize,
        lock: Mutex<()>,
        condvar: Condvar,
    }

    /// Parks the thread that owns it. `Send`, not `Clone`.
    ///
    /// # Examples
    ///
    /// An `unpark` that comes before the `park` is not lost:
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use unirun_core::{Park, Unpark};
    ///
    /// let (parker, unparker) = unirun_core::park::pair();
    /// let result = Arc::new(AtomicUsize::new(0));
    /// let slot = result.clone();
    /// std::thread::spawn(move || {
    ///     slot.store(42, Ordering::SeqCst);
    ///     unparker.unpark();
    /// })
    /// .join()
    /// .unwrap(); // the unpark has happened before we park...
    /// parker.park(); // ...so this returns at once
    /// assert_eq!(result.load(Ordering::SeqCst), 42);
    /// ```
    ///
    /// Only its owner parks, so a `Parker` is not `Sync`: two threads cannot
    /// share one (the sleep state has room for one sleeper).
    ///
    /// ```compile_fail
    /// fn shared<T: Sync>(_: &T) {}
    /// let (parker, _unparker) = unirun_core::park::pair();
    /// shared(&parker);
    /// ```
    pub struct Parker {
        inner: Arc<Inner>,
        _not_sync: core::marker::PhantomData<core::cell::Cell<()>>,
    }

    /// Wakes a [`Parker`]. Cheap to clone, usable from any thread.
    ///
    /// # Examples
    ///
    /// An `Unparker` is also a [`Wake`](std::task::Wake), so it can wake a parked
    /// thread through a [`Waker`](std::task::Waker):
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::task::Waker;
    /// use unirun_core::Park;
    ///
    /// let (parker, unparker) = unirun_core::park::pair();
    /// let waker = Waker::from(Arc::new(unparker));
    /// let done = Arc::new(AtomicBool::new(false));
    /// let flag = done.clone();
    /// let remote = waker.clone();
    /// let helper = std::thread::spawn(move || {
    ///     flag.store(true, Ordering::SeqCst);
    ///     remote.wake();
    /// });
    /// while !done.load(Ordering::SeqCst) {
    ///     parker.park();
    /// }
    /// helper.join().unwrap();
    /// ```
    #[derive(Clone)]
    pub struct Unparker {
        inner: Arc<Inner>,
    }

    /// Creates a connected parker and unparker.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::{Park, Unpark};
    ///
    /// let (parker, unparker) = unirun_core::park::pair();
    /// unparker.unpark(); // the token is kept...
    /// parker.park(); // ...so this returns at once
    /// ```
    pub fn pair() -> (Parker, Unparker) {
        let inner = Arc::new(Inner {
            state: AtomicUsize::new(EMPTY),
            lock: Mutex::new(()),
            condvar: Condvar::new(),
        });
        (
            Parker {
                inner: inner.clone(),
                _not_sync: core::marker::PhantomData,
            },
            Unparker { inner },
        )
    }

    impl super::Park for Parker {
        fn park(&self) {
            let inner = &*self.inner;
            // A wake-up is often a few hundred nanoseconds away (the task we
            // wait for is running on another core): a short spin saves the
            // futex sleep and wake, which cost microseconds each.
            for _ in 0..SPIN_BEFORE_PARK {
                if inner.state.load(Ordering::Relaxed) == NOTIFIED {
                    break;
                }
                crate::sync::spin_loop();
            }
            if inner
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
            let mut guard = lock(&inner.lock);
            match inner
                .state
                .compare_exchange(EMPTY, PARKED, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {}
                Err(_) => {
                    // NOTIFIED arrived meanwhile: consume it. A swap, not a
                    // store: another `unpark` may have renewed the token since
                    // the CAS read it, and only reading that write makes the
                    // unparker's earlier writes visible to us.
                    inner.state.swap(EMPTY, Ordering::SeqCst);
                    return;
                }
            }
            loop {
                guard = inner.condvar.wait(guard).unwrap_or_else(|e| e.into_inner());
                if inner
                    .state
                    .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
            }
        }
    }

    impl super::Unpark for Unparker {
        fn unpark(&self) {
            let inner = &*self.inner;
            match inner.state.swap(NOTIFIED, Ordering::SeqCst) {
                EMPTY | NOTIFIED => {}
                _ => {
                    // The owner is waiting (or about to): taking the lock orders
                    // this notify after its wait began.
                    drop(lock(&inner.lock));
                    inner.condvar.notify_one();
                }
            }
        }
    }

    impl fmt::Debug for Parker {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Parker { .. }")
        }
    }

    impl fmt::Debug for Unparker {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("Unparker { .. }")
        }
    }

    impl std::task::Wake for Unparker {
        fn wake(self: std::sync::Arc<Self>) {
            super::Unpark::unpark(&*self);
        }

        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            super::Unpark::unpark(&**self);
        }
    }
}
