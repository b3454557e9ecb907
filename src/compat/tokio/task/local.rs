//! `!Send` tasks: tokio's own in both modes (unirun's executors move tasks
//! between threads), with compat handles.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::JoinHandle;

/// Spawns a `!Send` future on the current [`LocalSet`], like
/// `tokio::task::spawn_local` (tokio's own in both modes).
///
/// # Panics
///
/// Outside a `LocalSet`, with tokio's message.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use unirun::compat::tokio::task;
///
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let local = task::LocalSet::new();
/// let value = local.block_on(&rt, async {
///     let shared = Rc::new(3);
///     let inner = shared.clone();
///     task::spawn_local(async move { *inner * 2 }).await.unwrap()
/// });
/// assert_eq!(value, 6);
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    JoinHandle::tokio(tokio::task::spawn_local(future))
}

/// A set of `!Send` tasks run on one thread, like `tokio::task::LocalSet`
/// (it is tokio's, in both modes); its `spawn_local` returns the compat
/// [`JoinHandle`].
///
/// # Examples
///
/// ```
/// use unirun::compat::tokio::task::LocalSet;
///
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let local = LocalSet::new();
/// let handle = local.spawn_local(async { std::rc::Rc::new(5) });
/// let value = local.block_on(&rt, async { handle.await.unwrap() });
/// assert_eq!(*value, 5);
/// ```
#[derive(Default)]
pub struct LocalSet(tokio::task::LocalSet);

impl LocalSet {
    /// tokio's own set, for the compat `JoinSet`.
    pub(super) fn tokio(&self) -> &tokio::task::LocalSet {
        &self.0
    }

    /// Creates an empty set.
    ///
    /// # Examples
    ///
    /// ```
    /// let local = unirun::compat::tokio::task::LocalSet::new();
    /// # drop(local);
    /// ```
    pub fn new() -> Self {
        LocalSet(tokio::task::LocalSet::new())
    }

    /// Spawns a `!Send` future on this set; it runs when the set is driven.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let local = unirun::compat::tokio::task::LocalSet::new();
    /// let handle = local.spawn_local(async { 1 });
    /// assert_eq!(local.block_on(&rt, handle).unwrap(), 1);
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        JoinHandle::tokio(self.0.spawn_local(future))
    }

    /// Runs `future` to completion on `rt`, driving this set's tasks meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let local = unirun::compat::tokio::task::LocalSet::new();
    /// assert_eq!(local.block_on(&rt, async { 2 }), 2);
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(&self, rt: &tokio::runtime::Runtime, future: F) -> F::Output {
        self.0.block_on(rt, future)
    }

    /// Runs `future` to completion, driving this set's tasks meanwhile.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// use unirun::compat::tokio::task;
    ///
    /// let local = task::LocalSet::new();
    /// let value = local
    ///     .run_until(async { task::spawn_local(async { 3 }).await.unwrap() })
    ///     .await;
    /// assert_eq!(value, 3);
    /// # });
    /// ```
    pub async fn run_until<F: Future>(&self, future: F) -> F::Output {
        self.0.run_until(future).await
    }

    /// Makes this set the target of [`spawn_local`] on this thread until
    /// the guard drops.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let local = unirun::compat::tokio::task::LocalSet::new();
    /// let handle = {
    ///     let _guard = local.enter();
    ///     unirun::compat::tokio::task::spawn_local(async { 4 })
    /// };
    /// assert_eq!(local.block_on(&rt, handle).unwrap(), 4);
    /// ```
    pub fn enter(&self) -> tokio::task::LocalEnterGuard {
        self.0.enter()
    }
}

/// Awaiting a `LocalSet` runs its tasks until all have finished.
impl Future for LocalSet {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
