//! A drop-in for smol's task API: [`spawn`], [`unblock`], [`block_on`] and
//! [`Task`].
//!
//! In managed mode, [`spawn`] runs the future on unirun's shared default
//! executor, [`unblock`] on its blocking lane and [`block_on`] is
//! [`unirun::block_on`](crate::block_on); a task's panic keeps its message and
//! location until it resumes on the awaiting side. In passthrough mode all
//! of them are smol's own. smol's I/O types (`Async`, `Timer`) work in both
//! modes: their reactor runs on its own thread.
//!
//! What differs in managed mode: tasks run on threads named `unirun-{i}`
//! rather than smol's global executor threads, blocking closures on
//! `unirun-blocking-{i}` (capped by unirun's config, not
//! `BLOCKING_MAX_THREADS`).
//!
//! # Examples
//!
//! ```
//! // Was: use smol::{block_on, spawn, unblock};
//! use unirun::compat::smol::{block_on, spawn, unblock};
//!
//! block_on(async {
//!     let sum = spawn(async { 1 + 1 });
//!     let cwd = unblock(|| std::env::current_dir().is_ok());
//!     assert_eq!(sum.await, 2);
//!     assert!(cwd.await);
//! });
//! ```

use std::fmt;
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Spawns a task, like `smol::spawn`.
///
/// # Examples
///
/// ```
/// use unirun::compat::smol;
///
/// let task = smol::spawn(async { 40 + 2 });
/// assert_eq!(smol::block_on(task), 42);
/// ```
pub fn spawn<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Task<T> {
    if super::passthrough() {
        Task(Inner::Smol(::smol::spawn(future)))
    } else {
        Task(Inner::Unirun(Some(crate::spawn(future))))
    }
}

/// Runs a blocking closure on a thread pool and returns its output as a
/// task, like `smol::unblock`.
///
/// # Examples
///
/// ```
/// use unirun::compat::smol;
///
/// let task = smol::unblock(|| 6 * 7);
/// assert_eq!(smol::block_on(task), 42);
/// ```
pub fn unblock<T, F>(f: F) -> Task<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if super::passthrough() {
        Task(Inner::Smol(::smol::unblock(f)))
    } else {
        Task(Inner::Unirun(Some(crate::to_thread(f))))
    }
}

/// Blocks the calling thread until `future` completes, like
/// `smol::block_on`.
///
/// # Examples
///
/// ```
/// assert_eq!(unirun::compat::smol::block_on(async { 5 }), 5);
/// ```
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    if super::passthrough() {
        ::smol::block_on(future)
    } else {
        crate::block_on(future)
    }
}

/// A spawned task, like `smol::Task`: resolves to the output, **cancels the
/// task when dropped** (use [`detach`](Self::detach) to let it run on), and
/// re-raises the task's panic when awaited.
///
/// # Examples
///
/// ```
/// use unirun::compat::smol;
///
/// let task = smol::spawn(async { "value" });
/// assert_eq!(smol::block_on(task), "value");
///
/// // Dropping cancels; detaching lets it finish unobserved.
/// drop(smol::spawn(std::future::pending::<()>()));
/// smol::spawn(async {}).detach();
/// ```
#[must_use = "tasks get cancelled when dropped, use `.detach()` to run them in the background"]
pub struct Task<T>(Inner<T>);

enum Inner<T> {
    Smol(::smol::Task<T>),
    /// `None` once detached or resolved.
    Unirun(Option<crate::JoinHandle<T>>),
}

impl<T> Task<T> {
    /// Lets the task run in the background, its output discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// unirun::compat::smol::spawn(async move { tx.send(1).unwrap() }).detach();
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// ```
    pub fn detach(self) {
        let mut this = self;
        match &mut this.0 {
            Inner::Smol(_) => {
                let Inner::Smol(task) = std::mem::replace(&mut this.0, Inner::Unirun(None)) else {
                    unreachable!("matched above")
                };
                task.detach();
            }
            Inner::Unirun(handle) => {
                if let Some(handle) = handle.take() {
                    handle.detach();
                }
            }
        }
    }

    /// Cancels the task and waits until it stopped: `Some(output)` if it had
    /// already finished, else `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::smol;
    ///
    /// let task = smol::spawn(std::future::pending::<()>());
    /// assert_eq!(smol::block_on(task.cancel()), None);
    /// ```
    pub async fn cancel(self) -> Option<T> {
        let mut this = self;
        match std::mem::replace(&mut this.0, Inner::Unirun(None)) {
            Inner::Smol(task) => task.cancel().await,
            Inner::Unirun(None) => None,
            Inner::Unirun(Some(handle)) => {
                handle.abort();
                handle.await.ok()
            }
        }
    }

    /// Whether the task has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::smol;
    ///
    /// let task = smol::spawn(async {});
    /// while !task.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            Inner::Smol(task) => task.is_finished(),
            Inner::Unirun(handle) => handle.as_ref().is_none_or(crate::JoinHandle::is_finished),
        }
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // Both inner handles are `Unpin`.
        match &mut self.get_mut().0 {
            Inner::Smol(task) => Pin::new(task).poll(cx),
            Inner::Unirun(slot) => {
                let handle = slot.as_mut().expect("`Task` polled after completion");
                let output = match Pin::new(handle).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(output) => output,
                };
                *slot = None;
                match output {
                    Ok(value) => Poll::Ready(value),
                    Err(err) if err.is_panic() => panic::resume_unwind(err.into_panic()),
                    Err(err) => panic!("{err}"),
                }
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Inner::Unirun(Some(handle)) = &self.0 {
            handle.abort();
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("finished", &self.is_finished())
            .finish()
    }
}
