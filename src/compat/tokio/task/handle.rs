//! [`JoinHandle`], [`AbortHandle`] and [`Id`], in tokio's shape.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::JoinError;
use crate::join_set::task::Task;

/// An owned permission to await a task, like `tokio::task::JoinHandle`:
/// resolves to `Result<T, JoinError>`; dropping it detaches the task.
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task;
///
/// let handle = task::spawn(std::future::pending::<()>());
/// handle.abort();
/// assert!(handle.await.unwrap_err().is_cancelled());
/// # });
/// ```
pub struct JoinHandle<T>(Inner<T>);

enum Inner<T> {
    Tokio(tokio::task::JoinHandle<T>),
    Managed(Task<T>),
}

impl<T> JoinHandle<T> {
    pub(super) fn tokio(handle: tokio::task::JoinHandle<T>) -> Self {
        JoinHandle(Inner::Tokio(handle))
    }

    pub(super) fn managed(task: Task<T>) -> Self {
        JoinHandle(Inner::Managed(task))
    }

    /// Aborts the task, as tokio's: an async task stops at its next poll
    /// point and the handle resolves to a cancelled error once its future
    /// is dropped; a blocking closure that already runs is not stopped,
    /// and the handle resolves to its result. No effect on a finished task.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let handle = unirun::compat::tokio::task::spawn(std::future::pending::<()>());
    /// handle.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort(&self) {
        match &self.0 {
            Inner::Tokio(handle) => handle.abort(),
            Inner::Managed(task) => task.abort(),
        }
    }

    /// Whether the task has finished (after an abort: once its future is gone).
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let handle = unirun::compat::tokio::task::spawn(async {});
    /// while !handle.is_finished() {
    ///     tokio::task::yield_now().await;
    /// }
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            Inner::Tokio(handle) => handle.is_finished(),
            Inner::Managed(task) => task.is_finished(),
        }
    }

    /// A handle that aborts the task without owning its result.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let handle = unirun::compat::tokio::task::spawn(std::future::pending::<()>());
    /// let abort = handle.abort_handle();
    /// assert_eq!(abort.id(), handle.id());
    /// abort.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        match &self.0 {
            Inner::Tokio(handle) => AbortHandle::tokio(handle.abort_handle()),
            Inner::Managed(task) => {
                AbortHandle::managed(crate::AbortHandle::new(task.control.clone()))
            }
        }
    }

    /// The task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// use unirun::compat::tokio::task;
    ///
    /// let handle = task::spawn(async { task::id() });
    /// let id = handle.id();
    /// assert_eq!(handle.await.unwrap(), id);
    /// # });
    /// ```
    pub fn id(&self) -> Id {
        match &self.0 {
            Inner::Tokio(handle) => Id::tokio(handle.id()),
            Inner::Managed(task) => Id::unirun(task.control.id()),
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both inner handles are `Unpin`.
        match &mut self.get_mut().0 {
            Inner::Tokio(handle) => Pin::new(handle).poll(cx).map_err(JoinError::tokio),
            Inner::Managed(task) => {
                let id = Id::unirun(task.control.id());
                task.poll_join(cx)
                    .map_err(|err| JoinError::managed(err, id))
            }
        }
    }
}

// As tokio's: a handle only reads its task's state through locks that
// tolerate poisoning, so a panic while one is borrowed breaks nothing.
impl<T> UnwindSafe for JoinHandle<T> {}
impl<T> RefUnwindSafe for JoinHandle<T> {}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Aborts a task without owning its result, like `tokio::task::AbortHandle`.
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task;
///
/// let mut set = task::JoinSet::new();
/// let abort = set.spawn(std::future::pending::<()>());
/// abort.abort();
/// let err = set.join_next().await.unwrap().unwrap_err();
/// assert!(err.is_cancelled());
/// assert_eq!(err.id(), abort.id());
/// assert!(abort.is_finished());
/// # });
/// ```
pub struct AbortHandle(AbortInner);

enum AbortInner {
    Tokio(tokio::task::AbortHandle),
    Managed(crate::AbortHandle),
}

impl AbortHandle {
    pub(super) fn tokio(handle: tokio::task::AbortHandle) -> Self {
        AbortHandle(AbortInner::Tokio(handle))
    }

    pub(super) fn managed(handle: crate::AbortHandle) -> Self {
        AbortHandle(AbortInner::Managed(handle))
    }

    /// Aborts the task, as [`JoinHandle::abort`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let handle = unirun::compat::tokio::task::spawn(std::future::pending::<()>());
    /// handle.abort_handle().abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort(&self) {
        match &self.0 {
            AbortInner::Tokio(handle) => handle.abort(),
            AbortInner::Managed(handle) => handle.abort(),
        }
    }

    /// Whether the task has finished. In managed mode this turns true when
    /// the task's future or closure is gone, a moment before its result can
    /// be taken.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let handle = unirun::compat::tokio::task::spawn(async {});
    /// let abort = handle.abort_handle();
    /// handle.await.unwrap();
    /// assert!(abort.is_finished());
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.0 {
            AbortInner::Tokio(handle) => handle.is_finished(),
            AbortInner::Managed(handle) => handle.is_finished(),
        }
    }

    /// The task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let handle = unirun::compat::tokio::task::spawn(async {});
    /// assert_eq!(handle.abort_handle().id(), handle.id());
    /// # });
    /// ```
    pub fn id(&self) -> Id {
        match &self.0 {
            AbortInner::Tokio(handle) => Id::tokio(handle.id()),
            AbortInner::Managed(handle) => Id::unirun(handle.id()),
        }
    }
}

// As tokio's, for the reason given on `JoinHandle`.
impl UnwindSafe for AbortHandle {}
impl RefUnwindSafe for AbortHandle {}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A task's id, like `tokio::task::Id`: unique among the tasks of the
/// process while they live. Shown as a number (`Display`) or `Id(7)`
/// (`Debug`). A managed task's id is unirun's; a tokio task's is tokio's;
/// the two never compare equal.
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task;
///
/// let a = task::spawn(async {});
/// let b = task::spawn(async {});
/// assert_ne!(a.id(), b.id());
/// assert_eq!(format!("{:?}", a.id()), format!("Id({})", a.id()));
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id(IdRepr);

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum IdRepr {
    Tokio(tokio::task::Id),
    Unirun(NonZeroU64),
}

impl Id {
    pub(super) fn tokio(id: tokio::task::Id) -> Self {
        Id(IdRepr::Tokio(id))
    }

    pub(super) fn unirun(id: NonZeroU64) -> Self {
        Id(IdRepr::Unirun(id))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IdRepr::Tokio(id) => fmt::Display::fmt(&id, f),
            IdRepr::Unirun(id) => fmt::Display::fmt(&id, f),
        }
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}
