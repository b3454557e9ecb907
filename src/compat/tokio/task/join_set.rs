//! [`JoinSet`]: tokio's in passthrough mode, unirun's
//! [`JoinSet`](crate::JoinSet) with its tasks where
//! [`spawn`](super::spawn) puts them in managed mode.

use std::fmt;
use std::future::{poll_fn, Future};
use std::task::{Context, Poll};

use super::{AbortHandle, Id, JoinError};
use crate::join_set::task::{controlled, Outcome, Task};

/// A set of tasks collected as they finish, like `tokio::task::JoinSet`;
/// dropping it aborts the tasks still in it. The mode (managed or
/// passthrough) is fixed when the set is created.
///
/// In managed mode it is unirun's [`JoinSet`](crate::JoinSet): async tasks
/// run where [`spawn`](super::spawn)'s do (the unirun executor the caller
/// runs in, else the ambient tokio runtime) and
/// blocking closures as [`spawn_blocking`](super::spawn_blocking)'s.
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task::JoinSet;
///
/// let mut set = JoinSet::new();
/// for i in 0..3 {
///     set.spawn(async move { i });
/// }
/// let mut seen = Vec::new();
/// while let Some(result) = set.join_next().await {
///     seen.push(result.unwrap());
/// }
/// seen.sort();
/// assert_eq!(seen, [0, 1, 2]);
/// # });
/// ```
pub struct JoinSet<T>(Inner<T>);

enum Inner<T> {
    Tokio(tokio::task::JoinSet<T>),
    Managed(crate::JoinSet<T>),
}

impl<T: 'static> JoinSet<T> {
    /// Creates an empty set.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = unirun::compat::tokio::task::JoinSet::<()>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> Self {
        if crate::compat::passthrough() {
            JoinSet(Inner::Tokio(tokio::task::JoinSet::new()))
        } else {
            JoinSet(Inner::Managed(crate::JoinSet::new()))
        }
    }

    /// How many tasks are in the set (finished ones count until joined).
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn(async {});
    /// assert_eq!(set.len(), 1);
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        match &self.0 {
            Inner::Tokio(set) => set.len(),
            Inner::Managed(set) => set.len(),
        }
    }

    /// Whether the set holds no task.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = unirun::compat::tokio::task::JoinSet::<u8>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Aborts every task; their results still come from `join_next`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.abort_all();
    /// assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort_all(&mut self) {
        match &mut self.0 {
            Inner::Tokio(set) => set.abort_all(),
            Inner::Managed(set) => set.abort_all(),
        }
    }

    /// Empties the set, letting its tasks run on.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let (tx, rx) = tokio::sync::oneshot::channel();
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn(async move { tx.send(1).unwrap() });
    /// set.detach_all();
    /// assert!(set.is_empty());
    /// assert_eq!(rx.await.unwrap(), 1);
    /// # });
    /// ```
    pub fn detach_all(&mut self) {
        match &mut self.0 {
            Inner::Tokio(set) => set.detach_all(),
            Inner::Managed(set) => set.detach_all(),
        }
    }

    /// Takes the result of a finished task, if any, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::compat::tokio::task::JoinSet::<()>::new();
    /// assert!(set.try_join_next().is_none());
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id()
            .map(|result| result.map(|(_, output)| output))
    }

    /// [`try_join_next`](Self::try_join_next), with the task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::compat::tokio::task::JoinSet::<()>::new();
    /// assert!(set.try_join_next_with_id().is_none());
    /// ```
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        match &mut self.0 {
            Inner::Tokio(set) => Some(
                set.try_join_next_with_id()?
                    .map(|(id, output)| (Id::tokio(id), output))
                    .map_err(JoinError::tokio),
            ),
            Inner::Managed(set) => set.try_join_next_with_id().map(with_id),
        }
    }

    /// Polls for the next finished task (`Ready(None)` when empty).
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn(async { 3 });
    /// let next = std::future::poll_fn(|cx| set.poll_join_next(cx)).await;
    /// assert_eq!(next.unwrap().unwrap(), 3);
    /// # });
    /// ```
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_join_next_with_id(cx)
            .map(|next| next.map(|result| result.map(|(_, output)| output)))
    }

    /// [`poll_join_next`](Self::poll_join_next), with the task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// let id = set.spawn(async { 3 }).id();
    /// let next = std::future::poll_fn(|cx| set.poll_join_next_with_id(cx)).await;
    /// assert_eq!(next.unwrap().unwrap(), (id, 3));
    /// # });
    /// ```
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        match &mut self.0 {
            Inner::Tokio(set) => set.poll_join_next_with_id(cx).map(|next| {
                next.map(|result| {
                    result
                        .map(|(id, output)| (Id::tokio(id), output))
                        .map_err(JoinError::tokio)
                })
            }),
            Inner::Managed(set) => set.poll_join_next_with_id(cx).map(|next| next.map(with_id)),
        }
    }

    /// Waits for the next task to finish; `None` when the set is empty.
    /// Cancel-safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn(async { "a" });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), "a");
    /// assert!(set.join_next().await.is_none());
    /// # });
    /// ```
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`join_next`](Self::join_next), with the task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// let id = set.spawn(async { "a" }).id();
    /// assert_eq!(set.join_next_with_id().await.unwrap().unwrap(), (id, "a"));
    /// # });
    /// ```
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// Aborts every task and waits until each has stopped; the set is
    /// empty afterwards.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.shutdown().await;
    /// assert!(set.is_empty());
    /// # });
    /// ```
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Waits for every task; their outputs in the order they finished.
    ///
    /// # Panics
    ///
    /// If a task failed: a panic is resumed, a cancellation panics; the
    /// rest of the set is aborted.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn(async { 1 });
    /// assert_eq!(set.join_all().await, [1]);
    /// # });
    /// ```
    pub async fn join_all(mut self) -> Vec<T> {
        let mut outputs = Vec::with_capacity(self.len());
        while let Some(result) = self.join_next().await {
            match result {
                Ok(output) => outputs.push(output),
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(err) => panic!("{err}"),
            }
        }
        outputs
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `future` into the set where [`spawn`](super::spawn) would
    /// put it: in managed mode on the unirun executor the caller runs in,
    /// else on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside unirun and outside a tokio runtime, with tokio's message.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn(async { 1 });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        match &mut self.0 {
            Inner::Tokio(set) => AbortHandle::tokio(set.spawn(future)),
            Inner::Managed(set) => {
                AbortHandle::managed(set.insert(super::managed_spawn_here(future)))
            }
        }
    }

    /// Spawns `future` into the set on the runtime behind `handle`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn_on(async { 2 }, rt.handle());
    /// assert_eq!(rt.block_on(set.join_next()).unwrap().unwrap(), 2);
    /// ```
    pub fn spawn_on<F>(&mut self, future: F, handle: &tokio::runtime::Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        match &mut self.0 {
            Inner::Tokio(set) => AbortHandle::tokio(set.spawn_on(future, handle)),
            Inner::Managed(set) => {
                AbortHandle::managed(set.insert(super::managed_spawn(handle, future)))
            }
        }
    }

    /// Runs the blocking closure `f` as a task of the set, as
    /// [`spawn_blocking`](super::spawn_blocking) does.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, with tokio's message.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn_blocking(|| 4);
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 4);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        match &mut self.0 {
            Inner::Tokio(set) => AbortHandle::tokio(set.spawn_blocking(f)),
            Inner::Managed(set) => {
                let runtime = tokio::runtime::Handle::current();
                AbortHandle::managed(set.insert(super::managed_spawn_blocking(&runtime, f)))
            }
        }
    }

    /// Runs the blocking closure `f` as a task of the set, in the context
    /// of the runtime behind `handle`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    /// let mut set = unirun::compat::tokio::task::JoinSet::new();
    /// set.spawn_blocking_on(|| 5, rt.handle());
    /// assert_eq!(rt.block_on(set.join_next()).unwrap().unwrap(), 5);
    /// ```
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &tokio::runtime::Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        match &mut self.0 {
            Inner::Tokio(set) => AbortHandle::tokio(set.spawn_blocking_on(f, handle)),
            Inner::Managed(set) => {
                AbortHandle::managed(set.insert(super::managed_spawn_blocking(handle, f)))
            }
        }
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns a `!Send` future into the set on the current
    /// [`LocalSet`](super::LocalSet), like tokio's `JoinSet::spawn_local`.
    /// The task is tokio's in both modes (unirun's executors move tasks
    /// between threads); in managed mode the set still aborts, ids and
    /// collects it as its other tasks. Unlike tokio's, the output must be
    /// `Send` (the set's other tasks may run on other threads).
    ///
    /// # Panics
    ///
    /// Outside a `LocalSet`, with tokio's message.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use unirun::compat::tokio::task::{JoinSet, LocalSet};
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let sum = LocalSet::new().block_on(&rt, async {
    ///     let mut set = JoinSet::new();
    ///     let shared = Rc::new(20);
    ///     for i in 0..3 {
    ///         let shared = shared.clone();
    ///         set.spawn_local(async move { *shared + i });
    ///     }
    ///     set.join_all().await.into_iter().sum::<i32>()
    /// });
    /// assert_eq!(sum, 63);
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        match &mut self.0 {
            Inner::Tokio(set) => AbortHandle::tokio(set.spawn_local(future)),
            Inner::Managed(set) => {
                let (future, control) = controlled(future);
                let handle = foreign(tokio::task::spawn_local(future));
                AbortHandle::managed(set.insert(Task { handle, control }))
            }
        }
    }

    /// Spawns a `!Send` future into the set on `local_set`, like tokio's
    /// `JoinSet::spawn_local_on`; see [`spawn_local`](Self::spawn_local).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::compat::tokio::task::{JoinSet, LocalSet};
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let local = LocalSet::new();
    /// let mut set = JoinSet::new();
    /// set.spawn_local_on(async { std::rc::Rc::new(4).as_ref() + 1 }, &local);
    /// let five = local.block_on(&rt, set.join_next()).unwrap().unwrap();
    /// assert_eq!(five, 5);
    /// ```
    pub fn spawn_local_on<F>(&mut self, future: F, local_set: &super::LocalSet) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        match &mut self.0 {
            Inner::Tokio(set) => AbortHandle::tokio(set.spawn_local_on(future, local_set.tokio())),
            Inner::Managed(set) => {
                let (future, control) = controlled(future);
                let handle = foreign(local_set.tokio().spawn_local(future));
                AbortHandle::managed(set.insert(Task { handle, control }))
            }
        }
    }
}

/// A tokio join handle of a controlled task, as unirun's.
fn foreign<T: Send + 'static>(
    handle: tokio::task::JoinHandle<Outcome<T>>,
) -> crate::JoinHandle<Outcome<T>> {
    crate::JoinHandle::from_foreign(super::TokioJoin(handle))
}

/// Spawns every future of the iterator into the set, as [`JoinSet::spawn`]
/// does (tokio's `Extend`).
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task::JoinSet;
///
/// let mut set = JoinSet::new();
/// set.extend((1..=3).map(|i| async move { i * 10 }));
/// assert_eq!(set.len(), 3);
/// let mut all = set.join_all().await;
/// all.sort();
/// assert_eq!(all, [10, 20, 30]);
/// # });
/// ```
impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn extend<I: IntoIterator<Item = F>>(&mut self, iter: I) {
        for future in iter {
            self.spawn(future);
        }
    }
}

/// A managed result with its compat id.
fn with_id<T>(
    (id, result): (std::num::NonZeroU64, Result<T, crate::JoinError>),
) -> Result<(Id, T), JoinError> {
    let id = Id::unirun(id);
    result
        .map(|output| (id, output))
        .map_err(|err| JoinError::managed(err, id))
}

/// Spawns every future of the iterator into a new set, as
/// [`JoinSet::spawn`] does.
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use unirun::compat::tokio::task::JoinSet;
///
/// let set: JoinSet<u32> = (1..=3).map(|i| async move { i }).collect();
/// let mut all = set.join_all().await;
/// all.sort();
/// assert_eq!(all, [1, 2, 3]);
/// # });
/// ```
impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> Self {
        let mut set = Self::new();
        for future in iter {
            set.spawn(future);
        }
        set
    }
}

impl<T: 'static> Default for JoinSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = match &self.0 {
            Inner::Tokio(set) => set.len(),
            Inner::Managed(set) => set.len(),
        };
        f.debug_struct("JoinSet").field("len", &len).finish()
    }
}
