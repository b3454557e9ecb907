//! A drop-in for smol: [`spawn`], [`unblock`], [`block_on`], [`Task`] and
//! [`FallibleTask`] are unirun's; everything else smol exports (`Timer`,
//! `Async`, `io`, `future`, `channel`, `fs`, `net`, `Executor`, ...) is
//! smol's own, re-exported unchanged, so a whole `use smol::{...}` line
//! converts.
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
//! `BLOCKING_MAX_THREADS`). A task is cancelled as smol's is:
//! [`Task::cancel`] returns once the task has stopped (an [`unblock`]
//! closure already running: once it returned).
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
use std::panic::{self, RefUnwindSafe, UnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(not(target_os = "espidf"))]
pub use ::smol::process;
pub use ::smol::{
    channel, fs, future, io, lock, net, pin, prelude, ready, stream, Async, Executor,
    LocalExecutor, Timer, Unblock,
};

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
        // Never under a serialized default's gil: smol's blocking threads
        // are independent (see the `gil` module).
        Task(Inner::Unirun(Some(
            crate::get_executor().spawn_independent(f),
        )))
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
                // The handle resolves only once the task has stopped: its
                // future dropped, or its running closure returned.
                match handle.await {
                    Ok(value) => Some(value),
                    Err(err) if err.is_panic() => panic::resume_unwind(err.into_panic()),
                    Err(_) => None,
                }
            }
        }
    }

    /// Turns the task into a [`FallibleTask`], which resolves to `None`
    /// instead of panicking when the task was cancelled (its executor went
    /// away), like `smol::Task::fallible`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::smol;
    ///
    /// let task = smol::spawn(async { 3 }).fallible();
    /// assert_eq!(smol::block_on(task), Some(3));
    /// ```
    pub fn fallible(self) -> FallibleTask<T>
    where
        T: Send + 'static,
    {
        let mut this = self;
        match std::mem::replace(&mut this.0, Inner::Unirun(None)) {
            Inner::Smol(task) => FallibleTask(FallibleInner::Smol(Box::new(Erased {
                task: task.fallible(),
                finished: |t| t.is_finished(),
                cancel: |t| Box::pin(t.cancel()),
                detach: |t| t.detach(),
            }))),
            Inner::Unirun(handle) => FallibleTask(FallibleInner::Unirun(handle)),
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

// As smol's `Task`: a panic while one is borrowed leaves nothing half-done
// that the task could observe (its state is behind the executor's own
// synchronization), so `catch_unwind` over code holding a task is fine.
impl<T> UnwindSafe for Task<T> {}
impl<T> RefUnwindSafe for Task<T> {}

/// A task that resolves to `None` when it was cancelled rather than
/// panicking, like smol's `FallibleTask` (from [`Task::fallible`]). A panic
/// in the task is still re-raised when it is awaited; dropping it cancels
/// the task.
///
/// # Examples
///
/// ```
/// use unirun::compat::smol;
///
/// let task = smol::spawn(async { "done" }).fallible();
/// assert_eq!(smol::block_on(task), Some("done"));
/// ```
#[must_use = "tasks get cancelled when dropped, use `.detach()` to run them in the background"]
pub struct FallibleTask<T>(FallibleInner<T>);

enum FallibleInner<T> {
    Smol(Box<dyn SmolFallible<T>>),
    /// `None` once detached or resolved.
    Unirun(Option<crate::JoinHandle<T>>),
}

/// A boxed future resolving to an option: what smol's fallible `cancel` returns, nameable.
type BoxedOption<T> = Pin<Box<dyn Future<Output = Option<T>> + Send>>;

/// What we call on smol's `FallibleTask`, whose type smol does not export.
trait SmolFallible<T>: Send {
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>>;
    fn finished(&self) -> bool;
    fn cancel(self: Box<Self>) -> BoxedOption<T>;
    fn detach(self: Box<Self>);
}

/// smol's fallible task with its methods as function pointers, filled in
/// where its type is known.
struct Erased<X, T> {
    task: X,
    finished: fn(&X) -> bool,
    cancel: fn(X) -> BoxedOption<T>,
    detach: fn(X),
}

impl<X, T> SmolFallible<T> for Erased<X, T>
where
    X: Future<Output = Option<T>> + Unpin + Send,
    T: Send,
{
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.task).poll(cx)
    }

    fn finished(&self) -> bool {
        (self.finished)(&self.task)
    }

    fn cancel(self: Box<Self>) -> BoxedOption<T> {
        (self.cancel)(self.task)
    }

    fn detach(self: Box<Self>) {
        (self.detach)(self.task)
    }
}

impl<T> FallibleTask<T> {
    /// Lets the task run in the background, its output discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let task = unirun::compat::smol::spawn(async move { tx.send(1).unwrap() });
    /// task.fallible().detach();
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// ```
    pub fn detach(self) {
        let mut this = self;
        match std::mem::replace(&mut this.0, FallibleInner::Unirun(None)) {
            FallibleInner::Smol(task) => task.detach(),
            FallibleInner::Unirun(handle) => drop(handle),
        }
    }

    /// Cancels the task and waits until it stopped, like [`Task::cancel`]:
    /// `Some(output)` if it had already finished, else `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::smol;
    ///
    /// let task = smol::spawn(std::future::pending::<()>()).fallible();
    /// assert_eq!(smol::block_on(task.cancel()), None);
    /// ```
    pub async fn cancel(self) -> Option<T> {
        let mut this = self;
        match std::mem::replace(&mut this.0, FallibleInner::Unirun(None)) {
            FallibleInner::Smol(task) => task.cancel().await,
            FallibleInner::Unirun(handle) => Task(Inner::Unirun(handle)).cancel().await,
        }
    }

    /// Whether the task has finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::smol;
    ///
    /// let task = smol::spawn(async {}).fallible();
    /// while !task.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            FallibleInner::Smol(task) => task.finished(),
            FallibleInner::Unirun(handle) => {
                handle.as_ref().is_none_or(crate::JoinHandle::is_finished)
            }
        }
    }
}

impl<T> Future for FallibleTask<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // Both inner handles are `Unpin`.
        match &mut self.get_mut().0 {
            FallibleInner::Smol(task) => task.poll_output(cx),
            FallibleInner::Unirun(slot) => {
                let handle = slot
                    .as_mut()
                    .expect("`FallibleTask` polled after completion");
                let output = match Pin::new(handle).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(output) => output,
                };
                *slot = None;
                match output {
                    Ok(value) => Poll::Ready(Some(value)),
                    Err(err) if err.is_panic() => panic::resume_unwind(err.into_panic()),
                    Err(_) => Poll::Ready(None),
                }
            }
        }
    }
}

impl<T> Drop for FallibleTask<T> {
    fn drop(&mut self) {
        if let FallibleInner::Unirun(Some(handle)) = &self.0 {
            handle.abort();
        }
    }
}

impl<T> fmt::Debug for FallibleTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallibleTask")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> UnwindSafe for FallibleTask<T> {}
impl<T> RefUnwindSafe for FallibleTask<T> {}
