//! A drop-in for `std::thread`: [`spawn`], [`Builder`], [`JoinHandle`] and
//! [`scope`] are unirun's, the rest is std's own.
//!
//! In managed mode, [`spawn`] runs the closure on the shared default
//! executor's blocking lane (see [`to_thread`](crate::to_thread)): 10,000
//! calls reuse a few pooled threads instead of starting 10,000. In
//! passthrough mode (`UNIRUN_COMPAT_MODE=passthrough`) every call is
//! `std::thread`'s own (for [`scope`]: one OS thread per spawned closure,
//! as std starts).
//!
//! What differs in managed mode:
//! - the closure runs on a pooled thread, so `thread::current()` inside it
//!   is the pool's thread: its `name()` is `Some("unirun-blocking-{i}")`
//!   where std's unnamed threads give `None` (the lane's threads always
//!   carry the pool's name), its `id()` is shared by every closure that
//!   thread runs, and thread-locals persist from one closure to the next
//!   (a closure sees what an earlier one left, and their destructors run
//!   when the pooled thread retires, not when the closure returns);
//! - no deadlock where std has none: when the blocking lane cannot promise a
//!   closure a thread (it is at its cap with closures that may wait for each
//!   other), the closure gets a dedicated OS thread, as std gives every
//!   spawn (see the `native` module for the argument);
//! - a closure spawned through a [`Builder`] with a [`name`](Builder::name)
//!   runs on an OS thread of its own with that name, as std's does
//!   (`thread::current().name()`, panic messages, `ps` and debuggers all
//!   show it; naming is rare, so these few spawns skip the pool). So does
//!   one with a [`stack_size`](Builder::stack_size), since pooled threads
//!   cannot change their stack;
//! - [`JoinHandle::thread`] is the thread running the closure; asked before
//!   the closure started, it starts it on a dedicated thread at once rather
//!   than wait for the pool;
//! - [`scope`]'s threads are pooled too, with the same fallback;
//! - like std's threads, they are independent of a serialized default
//!   (`UNIRUN_THREAD_MODE=gil`): a closure never holds its lock, so one
//!   blocked in `recv` never keeps its sender from running.
//!
//! Everything else (`sleep`, `current`, `park`, `Thread`, `LocalKey`, ...) is
//! std's own, re-exported, so a whole `use std::thread::{...}` line converts.
//!
//! # Examples
//!
//! ```
//! // Was: use std::thread;
//! use unirun::compat::thread;
//!
//! let handle = thread::spawn(|| "hello from a pooled thread");
//! assert_eq!(handle.join().unwrap(), "hello from a pooled thread");
//!
//! let failed = thread::spawn(|| panic!("boom"));
//! assert!(failed.join().is_err());
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;

mod native;
mod scoped;

pub use self::scoped::{scope, Scope, ScopedJoinHandle};
pub use std::thread::{
    available_parallelism, current, panicking, park, park_timeout, sleep, yield_now, AccessError,
    LocalKey, Result, Thread, ThreadId,
};

/// Spawns a thread (in managed mode: runs `f` on a pooled thread, or a
/// dedicated one when the pool is full) and returns a [`JoinHandle`] for it,
/// like `std::thread::spawn`.
///
/// # Panics
///
/// When a thread is needed and the OS refuses to start one, as std's does.
///
/// # Examples
///
/// ```
/// use unirun::compat::thread;
///
/// let handle = thread::spawn(|| 6 * 7);
/// assert_eq!(handle.join().unwrap(), 42);
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if super::passthrough() {
        JoinHandle(Inner::Std(std::thread::spawn(f)))
    } else {
        // std's own words when the OS refuses the thread.
        let shared = native::launch(Box::new(f), None).expect("failed to spawn thread");
        JoinHandle(Inner::Pooled(shared))
    }
}

/// An owned permission to join a spawned thread, like
/// `std::thread::JoinHandle`. Dropping it detaches the thread.
///
/// # Examples
///
/// ```
/// use unirun::compat::thread;
///
/// let handle = thread::spawn(|| 1);
/// let value = handle.join().unwrap();
/// assert_eq!(value, 1);
/// ```
pub struct JoinHandle<T>(Inner<T>);

enum Inner<T> {
    Std(std::thread::JoinHandle<T>),
    Pooled(Arc<native::Shared<T>>),
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish; `Err` carries the panic payload if it
    /// panicked, as `std::thread::JoinHandle::join` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::thread;
    ///
    /// let err = thread::spawn(|| -> u8 { panic!("no") }).join().unwrap_err();
    /// assert_eq!(err.downcast_ref::<&str>(), Some(&"no"));
    /// ```
    pub fn join(self) -> Result<T> {
        match self.0 {
            Inner::Std(handle) => handle.join(),
            Inner::Pooled(shared) => shared.join(),
        }
    }

    /// The thread running the closure, like `std::thread::JoinHandle::thread`:
    /// inside the closure, `thread::current().id()` is its id.
    ///
    /// Managed mode learns the thread when the closure starts on it. Asked
    /// before that, it starts the closure on a dedicated OS thread right
    /// away (as std would have), so this never waits for the pool.
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
    /// let handle = thread::spawn(|| thread::current().id());
    /// let id = handle.thread().id();
    /// assert_eq!(handle.join().unwrap(), id);
    /// ```
    pub fn thread(&self) -> &Thread {
        match &self.0 {
            Inner::Std(handle) => handle.thread(),
            Inner::Pooled(shared) => shared.thread(),
        }
    }

    /// Whether the thread has finished running its closure.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::thread;
    ///
    /// let handle = thread::spawn(|| ());
    /// while !handle.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// handle.join().unwrap();
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            Inner::Std(handle) => handle.is_finished(),
            Inner::Pooled(shared) => shared.is_finished(),
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("pooled", &matches!(self.0, Inner::Pooled(_)))
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Thread factory, like `std::thread::Builder`.
///
/// # Examples
///
/// ```
/// use unirun::compat::thread;
///
/// let handle = thread::Builder::new().name("worker".into()).spawn(|| 5)?;
/// assert_eq!(handle.join().unwrap(), 5);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "must eventually spawn the thread"]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with no name and the default stack size.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = unirun::compat::thread::Builder::new().spawn(|| 1)?;
    /// assert_eq!(handle.join().unwrap(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the thread. The closure then runs on an OS thread of its own
    /// with that name, in managed mode too, so `thread::current().name()`
    /// inside it is the name given, as with std.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = unirun::compat::thread::Builder::new()
    ///     .name("io".into())
    ///     .spawn(|| std::thread::current().name().map(String::from))?;
    /// assert_eq!(handle.join().unwrap().as_deref(), Some("io"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Sets the stack size; the closure then always runs on an OS thread of
    /// its own.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = unirun::compat::thread::Builder::new().stack_size(1 << 20).spawn(|| 1)?;
    /// assert_eq!(handle.join().unwrap(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Whether this builder's spawns go to the pool (managed mode, no stack size).
    fn pooled(&self) -> bool {
        self.stack_size.is_none() && !super::passthrough()
    }

    /// std's builder with this one's settings.
    fn into_std(self) -> std::thread::Builder {
        let mut builder = std::thread::Builder::new();
        if let Some(name) = self.name {
            builder = builder.name(name);
        }
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        builder
    }

    /// Spawns the thread, like `std::thread::Builder::spawn`.
    ///
    /// # Errors
    ///
    /// When the OS refuses to start an OS thread (passthrough mode, or a
    /// builder with a stack size), as std's does. A pooled spawn fails only
    /// when the shared default could not start its pool and a dedicated
    /// thread is refused too (tested by `tests/no_thread.rs`).
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = unirun::compat::thread::Builder::new().spawn(|| "ok")?;
    /// assert_eq!(handle.join().unwrap(), "ok");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.pooled() {
            return Ok(JoinHandle(Inner::Pooled(native::launch(
                Box::new(f),
                self.name,
            )?)));
        }
        self.into_std().spawn(f).map(|h| JoinHandle(Inner::Std(h)))
    }

    /// Spawns a thread whose closure may borrow what is not `'static`, like
    /// `std::thread::Builder::spawn_unchecked`. It is std's in both modes:
    /// an OS thread of its own (the pool's threads outlive any borrow).
    ///
    /// # Safety
    ///
    /// As std's: the caller makes sure the thread is joined before
    /// anything it borrows is dropped, or that nothing it borrows can
    /// dangle (see `std::thread::Builder::spawn_unchecked`).
    ///
    /// # Errors
    ///
    /// When the OS refuses to start the thread, as std's does.
    ///
    /// # Examples
    ///
    /// ```
    /// let numbers = vec![1, 2, 3];
    /// let borrowed = &numbers;
    /// // SAFETY: joined below, while `numbers` lives.
    /// let handle = unsafe {
    ///     unirun::compat::thread::Builder::new().spawn_unchecked(|| borrowed.iter().sum::<i32>())?
    /// };
    /// assert_eq!(handle.join().unwrap(), 6);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn spawn_unchecked<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        // SAFETY: the caller upholds std's contract, passed on unchanged.
        let handle = unsafe { self.into_std().spawn_unchecked(f) }?;
        Ok(JoinHandle(Inner::Std(handle)))
    }

    /// Spawns a scoped thread with this builder's settings, like
    /// `std::thread::Builder::spawn_scoped`.
    ///
    /// # Errors
    ///
    /// When the OS refuses to start an OS thread (passthrough mode, or a
    /// builder with a stack size).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::thread;
    ///
    /// let mut total = 0;
    /// thread::scope(|s| -> std::io::Result<()> {
    ///     let handle = thread::Builder::new().name("adder".into()).spawn_scoped(s, || total += 5)?;
    ///     handle.join().unwrap();
    ///     Ok(())
    /// })?;
    /// assert_eq!(total, 5);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        if self.pooled() && scope.is_pooled() {
            return scope.spawn_pooled(f, self.name);
        }
        scope.spawn_os(f, self.into_std())
    }
}
