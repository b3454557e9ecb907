//! A drop-in for `std::thread`'s spawning API: [`spawn`], [`Builder`],
//! [`JoinHandle`] and [`scope`].
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
//!   names the pool's thread (`unirun-blocking-{i}`), and thread-locals
//!   persist from one closure to the next;
//! - the lane has a cap (16 threads per CPU, at least 512, by default; see
//!   [`Handle::max_blocking_threads`](crate::Handle::max_blocking_threads)):
//!   more closures that wait *for each other* than the cap would deadlock,
//!   where OS threads would not. Spawn such long-lived, interdependent
//!   threads with a [`Builder`] that sets a stack size (always an OS
//!   thread), or use passthrough;
//! - [`Builder::name`] is recorded but a pooled thread keeps its own name;
//!   a builder with [`stack_size`](Builder::stack_size) starts a real OS
//!   thread, since pooled threads cannot change their stack;
//! - `JoinHandle::thread()` is not offered (the pooled thread is not known
//!   before the closure starts);
//! - [`scope`]'s threads are pooled too, with the same cap caveat.
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

mod scoped;

pub use self::scoped::{scope, Scope, ScopedJoinHandle};

/// Spawns a thread (in managed mode: runs `f` on a pooled thread) and
/// returns a [`JoinHandle`] for it, like `std::thread::spawn`.
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
        JoinHandle(Inner::Pooled(crate::to_thread(f)))
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
    Pooled(crate::JoinHandle<T>),
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
    pub fn join(self) -> std::thread::Result<T> {
        match self.0 {
            Inner::Std(handle) => handle.join(),
            Inner::Pooled(handle) => handle.join().map_err(|err| {
                if err.is_panic() {
                    err.into_panic()
                } else {
                    // Cancelled: the pool was reset under the closure.
                    Box::new(err.to_string())
                }
            }),
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
            Inner::Pooled(handle) => handle.is_finished(),
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

    /// Names the thread (in managed mode, a pooled thread keeps its own name).
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = unirun::compat::thread::Builder::new().name("io".into()).spawn(|| 1)?;
    /// assert_eq!(handle.join().unwrap(), 1);
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

    /// Spawns the thread, like `std::thread::Builder::spawn`.
    ///
    /// # Errors
    ///
    /// When the OS refuses to start an OS thread (passthrough mode, or a
    /// builder with a stack size). Pooled spawns do not fail.
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
        if self.stack_size.is_none() && !super::passthrough() {
            return Ok(JoinHandle(Inner::Pooled(crate::to_thread(f))));
        }
        let mut builder = std::thread::Builder::new();
        if let Some(name) = self.name {
            builder = builder.name(name);
        }
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(f).map(|h| JoinHandle(Inner::Std(h)))
    }
}
