//! [`scope`]: threads that may borrow from the caller's stack, like
//! `std::thread::scope`, on pooled threads in managed mode.
//!
//! How borrowing stays sound: each spawned closure is packed in a [`Job`]
//! whose lifetime is erased so the pool (or an OS thread) can take it, and
//! [`scope`] does not return until every job of the scope is gone (`running`
//! back to zero). A job decrements `running` only in its `Drop`, after it
//! dropped the closure and its result slot, so nothing that borrows from
//! `'scope` outlives the count; a job dropped without running (if even a
//! dedicated thread was refused) still counts down.
//!
//! Pooled scoped threads get the same start guarantee as
//! [`spawn`](super::spawn) (see the `native` module): when the lane cannot
//! promise a job a thread, a dedicated one runs it, so scoped threads that
//! wait for each other never deadlock where std's would not.

use std::any::Any;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, Thread};

use super::native;

/// Creates a scope for spawning threads that borrow local variables, like
/// `std::thread::scope`. Every thread spawned in it is joined before `scope`
/// returns.
///
/// # Panics
///
/// If `f` panics (after the threads finished), or if a thread spawned in the
/// scope panicked and was not joined, as std's does.
///
/// # Examples
///
/// ```
/// use unirun::compat::thread;
///
/// let mut words = vec!["a", "bb"];
/// let lengths = thread::scope(|s| {
///     let total = s.spawn(|| words.iter().map(|w| w.len()).sum::<usize>());
///     total.join().unwrap()
/// });
/// words.push("ccc"); // borrowed only inside the scope
/// assert_eq!(lengths, 3);
/// ```
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            a_thread_panicked: AtomicBool::new(false),
            main: thread::current(),
        }),
        pooled: !super::super::passthrough(),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    // A serialized (`Gil`) scope around us must not stall our threads.
    crate::allow_threads(|| {
        while scope.data.running.load(Ordering::Acquire) != 0 {
            thread::park();
        }
    });
    match result {
        Err(payload) => panic::resume_unwind(payload),
        Ok(_) if scope.data.a_thread_panicked.load(Ordering::Relaxed) => {
            panic!("a scoped thread panicked")
        }
        Ok(result) => result,
    }
}

/// A scope to spawn threads in; see [`scope`].
///
/// # Examples
///
/// ```
/// use unirun::compat::thread;
///
/// let data = [1, 2, 3];
/// thread::scope(|s: &thread::Scope<'_, '_>| {
///     s.spawn(|| assert_eq!(data.len(), 3));
/// });
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    /// Pooled threads (managed mode) or OS threads (passthrough).
    pooled: bool,
    /// Invariance over both lifetimes, as std's `Scope` has.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

struct ScopeData {
    /// Jobs not yet dropped.
    running: AtomicUsize,
    /// A thread panicked and nobody joined it.
    a_thread_panicked: AtomicBool,
    /// The thread waiting in `scope`.
    main: Thread,
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a thread (in managed mode: runs `f` on a pooled thread) that
    /// may borrow from outside the scope; like `std::thread::Scope::spawn`.
    ///
    /// # Panics
    ///
    /// In passthrough mode, if the OS cannot start a thread, as std's does.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::thread;
    ///
    /// let mut count = 0;
    /// thread::scope(|s| {
    ///     s.spawn(|| count += 1).join().unwrap();
    /// });
    /// assert_eq!(count, 1);
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        if self.pooled {
            self.spawn_pooled(f, None).expect("failed to spawn thread")
        } else {
            self.spawn_os(f, thread::Builder::new())
                .expect("failed to spawn thread")
        }
    }

    /// Whether this scope's threads are pooled (managed mode).
    pub(super) fn is_pooled(&self) -> bool {
        self.pooled
    }

    /// Runs `f` on a pooled thread (a dedicated one when the pool is full,
    /// or named `name` when there is one).
    pub(super) fn spawn_pooled<F, T>(
        &'scope self,
        f: F,
        name: Option<String>,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let (packet, job) = self.job(f);
        // A refused launch drops the job, which counts it out of the scope.
        let waiter = Waiter::Pooled(native::launch(job, name)?);
        Ok(ScopedJoinHandle {
            packet,
            waiter,
            _scope: PhantomData,
        })
    }

    /// Runs `f` on an OS thread started by `builder`.
    pub(super) fn spawn_os<F, T>(
        &'scope self,
        f: F,
        builder: thread::Builder,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let (packet, job) = self.job(f);
        // A refused spawn drops the job, which counts it out of the scope.
        let waiter = Waiter::Os(builder.spawn(job)?);
        Ok(ScopedJoinHandle {
            packet,
            waiter,
            _scope: PhantomData,
        })
    }

    /// Packs `f` as a job the pool or an OS thread can take, counted in the
    /// scope until it is dropped.
    fn job<F, T>(&'scope self, f: F) -> (Arc<Packet<'scope, T>>, native::Job<()>)
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let packet = Arc::new(Packet {
            result: Mutex::new(None),
            scope: self.data.clone(),
            _borrows: PhantomData,
        });
        self.data.running.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            f: Some(f),
            packet: Some(packet.clone()),
            scope: self.data.clone(),
        };
        let job: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || job.run());
        // Only the lifetime changes: `scope()` does not return (so `'scope`
        // does not end) until `running` is back to zero, which the job's
        // `Drop` does only after dropping the closure and its packet.
        // SAFETY: nothing borrowed from `'scope` outlives `scope()`.
        let job: native::Job<()> = unsafe { std::mem::transmute(job) };
        (packet, job)
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.data.running.load(Ordering::Relaxed))
            .field("pooled", &self.pooled)
            .finish()
    }
}

/// Where a scoped thread's result lands.
struct Packet<'scope, T> {
    result: Mutex<Option<thread::Result<T>>>,
    scope: Arc<ScopeData>,
    _borrows: PhantomData<&'scope ()>,
}

impl<T> Drop for Packet<'_, T> {
    fn drop(&mut self) {
        let result = self
            .result
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if matches!(result, Some(Err(_))) {
            // Nobody took the panic with `join`.
            self.scope.a_thread_panicked.store(true, Ordering::Relaxed);
        }
    }
}

/// A spawned closure and what it owes its scope.
struct Job<'scope, F, T> {
    f: Option<F>,
    packet: Option<Arc<Packet<'scope, T>>>,
    scope: Arc<ScopeData>,
}

impl<F: FnOnce() -> T, T> Job<'_, F, T> {
    fn run(mut self) {
        if let Some(f) = self.f.take() {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            if let Some(packet) = &self.packet {
                *packet.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            }
        }
    }
}

impl<F, T> Drop for Job<'_, F, T> {
    fn drop(&mut self) {
        // Everything that may borrow from `'scope` goes first.
        drop(self.f.take());
        drop(self.packet.take());
        if self.scope.running.fetch_sub(1, Ordering::Release) == 1 {
            self.scope.main.unpark();
        }
    }
}

enum Waiter {
    Pooled(Arc<native::Shared<()>>),
    Os(thread::JoinHandle<()>),
}

/// An owned permission to join a scoped thread, like
/// `std::thread::ScopedJoinHandle`.
///
/// # Examples
///
/// ```
/// use unirun::compat::thread;
///
/// let v = vec![1, 2, 3];
/// let sum = thread::scope(|s| s.spawn(|| v.iter().sum::<i32>()).join().unwrap());
/// assert_eq!(sum, 6);
/// ```
pub struct ScopedJoinHandle<'scope, T> {
    packet: Arc<Packet<'scope, T>>,
    waiter: Waiter,
    _scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the thread; `Err` carries its panic payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::thread;
    ///
    /// thread::scope(|s| {
    ///     let failed = s.spawn(|| panic!("scoped"));
    ///     assert!(failed.join().is_err());
    /// });
    /// ```
    pub fn join(self) -> thread::Result<T> {
        let finished = match self.waiter {
            Waiter::Pooled(shared) => shared.join().is_ok(),
            Waiter::Os(handle) => handle.join().is_ok(),
        };
        let result = self
            .packet
            .result
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match result {
            Some(result) => result,
            None => {
                debug_assert!(!finished, "a finished job left its result");
                let cancelled: Box<dyn Any + Send> =
                    Box::new("the scoped thread was cancelled before it ran");
                Err(cancelled)
            }
        }
    }

    /// Whether the thread has finished running its closure.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::thread;
    ///
    /// thread::scope(|s| {
    ///     let handle = s.spawn(|| ());
    ///     while !handle.is_finished() {
    ///         std::thread::yield_now();
    ///     }
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.waiter {
            Waiter::Pooled(shared) => shared.is_finished(),
            Waiter::Os(handle) => handle.is_finished(),
        }
    }

    /// The thread running the closure, like
    /// `std::thread::ScopedJoinHandle::thread`. Asked before a pooled
    /// closure started, it starts it on a dedicated thread at once (see
    /// [`JoinHandle::thread`](super::JoinHandle::thread)).
    ///
    /// # Panics
    ///
    /// If the closure had not started and the OS refuses a thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::thread;
    ///
    /// thread::scope(|s| {
    ///     let handle = s.spawn(|| thread::current().id());
    ///     let id = handle.thread().id();
    ///     assert_eq!(handle.join().unwrap(), id);
    /// });
    /// ```
    pub fn thread(&self) -> &Thread {
        match &self.waiter {
            Waiter::Pooled(shared) => shared.thread(),
            Waiter::Os(handle) => handle.thread(),
        }
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
