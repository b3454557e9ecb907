//! [`JoinSet`]: a set of tasks spawned together, awaited in the order they
//! finish, aborted together when the set is dropped; with [`AbortHandle`],
//! which aborts one of them from elsewhere.
//!
//! The set keeps each task's [`JoinHandle`](crate::JoinHandle) in a slot
//! and polls it with a waker of that slot's own (see `ready`), so
//! `join_next` polls only the tasks that made progress. An abort is a flag
//! the task reads itself (see `task`), which gives tokio's semantics on
//! every backend.

use std::fmt;
use std::future::{poll_fn, Future};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::{Handle, JoinError};

mod ready;
pub(crate) mod task;

use ready::{MemberWaker, Ready};
use task::{Control, Task};

/// A set of tasks that run on their own and are collected as they finish,
/// like `tokio::task::JoinSet`, on any unirun backend.
///
/// [`spawn`](Self::spawn) puts a task on the scope whose task (or
/// `block_on`) is running on this thread, else on the shared default
/// executor; [`spawn_on`](Self::spawn_on) on a given [`Handle`]'s.
/// [`join_next`](Self::join_next) waits for the next task to finish, in
/// the order they finish. Dropping the set aborts every task still in it;
/// [`detach_all`](Self::detach_all) lets them run on instead.
///
/// Aborting a task (through [`abort_all`](Self::abort_all), an
/// [`AbortHandle`] or the drop) behaves as tokio's: an async task stops at
/// its next poll point, and its result is ready only once its future has
/// been dropped (a panic in that drop is reported as the task's panic); a
/// blocking closure that has not started never runs, one that started runs
/// to the end and its result is kept.
///
/// # Examples
///
/// ```
/// use unirun::JoinSet;
///
/// unirun::block_on(async {
///     let mut set = JoinSet::new();
///     for i in 0..4u64 {
///         set.spawn(async move { i * 10 });
///     }
///     set.spawn_blocking(|| 100);
///     let mut total = 0;
///     while let Some(result) = set.join_next().await {
///         total += result.unwrap();
///     }
///     assert_eq!(total, 160);
/// });
/// ```
pub struct JoinSet<T> {
    slots: Vec<Option<Member<T>>>,
    /// Empty slots below `slots.len()`.
    free: Vec<usize>,
    len: usize,
    ready: Arc<Ready>,
}

/// A task in the set, and the waker its handle is polled with.
struct Member<T> {
    task: Task<T>,
    waker: Waker,
}

impl<T> JoinSet<T> {
    /// Creates an empty set.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = unirun::JoinSet::<u8>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> Self {
        JoinSet {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            ready: Arc::new(Ready::default()),
        }
    }

    /// How many tasks are in the set: spawned and not yet joined (a task
    /// that finished stays until [`join_next`](Self::join_next) or
    /// [`try_join_next`](Self::try_join_next) takes its result).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn(async { 1 });
    /// assert_eq!(set.len(), 1);
    /// unirun::block_on(set.join_next()).unwrap().unwrap();
    /// assert_eq!(set.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no task.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// assert!(set.is_empty());
    /// set.spawn(async {});
    /// assert!(!set.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a task made elsewhere (the compat layer's); returns its abort handle.
    pub(crate) fn insert(&mut self, task: Task<T>) -> AbortHandle {
        let control = task.control.clone();
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let waker = MemberWaker::waker(&self.ready, slot);
        self.slots[slot] = Some(Member { task, waker });
        self.len += 1;
        self.ready.add(slot);
        AbortHandle { control }
    }

    /// Aborts every task in the set. They stay in it: their results (each
    /// `Err(cancelled)`, unless the task finished first or is a blocking
    /// closure that had started) come from [`join_next`](Self::join_next).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.abort_all();
    /// let result = unirun::block_on(set.join_next()).unwrap();
    /// assert!(result.unwrap_err().is_cancelled());
    /// ```
    pub fn abort_all(&mut self) {
        for member in self.slots.iter().flatten() {
            member.task.abort();
        }
    }

    /// Empties the set without aborting its tasks: they run on, their
    /// results discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn(async move { tx.send("ran anyway").unwrap() });
    /// set.detach_all();
    /// assert!(set.is_empty());
    /// assert_eq!(rx.recv().unwrap(), "ran anyway");
    /// ```
    pub fn detach_all(&mut self) {
        // Dropping a handle detaches its task.
        self.slots.clear();
        self.free.clear();
        self.len = 0;
    }

    /// Takes the result of a task that has finished, if one has, without
    /// waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// assert!(set.try_join_next().is_none());
    /// set.spawn(async { 5 });
    /// let result = loop {
    ///     if let Some(result) = set.try_join_next() {
    ///         break result;
    ///     }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!(result.unwrap(), 5);
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id().map(|(_, result)| result)
    }

    /// [`try_join_next`](Self::try_join_next), with the task's id.
    pub(crate) fn try_join_next_with_id(&mut self) -> Option<(NonZeroU64, Result<T, JoinError>)> {
        for _ in 0..self.slots.len() {
            let slot = self.ready.take(None)?;
            if let Poll::Ready(done) = self.poll_slot(slot) {
                return Some(done);
            }
        }
        None
    }

    /// Polls for the next task to finish: `Ready(None)` when the set is
    /// empty, `Pending` (with `cx` woken when a task finishes) when no task
    /// has finished yet. The polling form of [`join_next`](Self::join_next).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::poll_fn;
    ///
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn(async { 'x' });
    /// let next = unirun::block_on(poll_fn(|cx| set.poll_join_next(cx)));
    /// assert_eq!(next.unwrap().unwrap(), 'x');
    /// ```
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_join_next_with_id(cx)
            .map(|next| next.map(|(_, result)| result))
    }

    /// [`poll_join_next`](Self::poll_join_next), with the task's id.
    pub(crate) fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(NonZeroU64, Result<T, JoinError>)>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        // Each slot is queued at most once, so this drains what was queued
        // when the call began; more than that means members keep waking:
        // let the caller's executor run something else meanwhile.
        for _ in 0..self.slots.len() {
            let Some(slot) = self.ready.take(Some(cx.waker())) else {
                return Poll::Pending;
            };
            if let Poll::Ready(done) = self.poll_slot(slot) {
                return Poll::Ready(Some(done));
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Polls the member in `slot` (if any); removes it when it is done.
    fn poll_slot(&mut self, slot: usize) -> Poll<(NonZeroU64, Result<T, JoinError>)> {
        let Some(member) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            // A wake-up for a member that was taken already.
            return Poll::Pending;
        };
        let waker = member.waker.clone();
        let result = std::task::ready!(member.task.poll_join(&mut Context::from_waker(&waker)));
        let id = member.task.control.id();
        self.slots[slot] = None;
        self.free.push(slot);
        self.len -= 1;
        Poll::Ready((id, result))
    }

    /// Waits for the next task to finish and returns its result, or `None`
    /// when the set is empty. Cancel-safe: a result is taken only when this
    /// future returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn(async { panic!("boom") });
    /// unirun::block_on(async {
    ///     let err = set.join_next().await.unwrap().unwrap_err();
    ///     assert_eq!(err.panic_message(), Some("boom"));
    ///     assert!(set.join_next().await.is_none());
    /// });
    /// ```
    pub fn join_next(&mut self) -> impl Future<Output = Option<Result<T, JoinError>>> + '_ {
        poll_fn(move |cx| self.poll_join_next(cx))
    }

    /// Aborts every task and waits until each has stopped (an async task
    /// once its future is dropped; a blocking closure that started once it
    /// returns). The set is empty afterwards.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// unirun::block_on(set.shutdown());
    /// assert!(set.is_empty());
    /// ```
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Waits for every task and returns their outputs in the order they
    /// finished.
    ///
    /// # Panics
    ///
    /// If a task panicked or was cancelled: the first such error is raised
    /// here (a panic with its own payload) and the tasks still running are
    /// aborted, when the set drops.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// for i in 0..3 {
    ///     set.spawn(async move { i });
    /// }
    /// let mut all = unirun::block_on(set.join_all());
    /// all.sort();
    /// assert_eq!(all, [0, 1, 2]);
    /// ```
    pub async fn join_all(mut self) -> Vec<T> {
        let mut outputs = Vec::with_capacity(self.len);
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
    /// Spawns `future` into the set where [`spawn`](crate::spawn) would
    /// put it (the scope running on this thread, else the shared default
    /// executor); returns a handle that aborts it.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// let abort = set.spawn(std::future::pending::<u8>());
    /// set.spawn(async { 2 });
    /// abort.abort();
    /// let (mut cancelled, mut values) = (0, vec![]);
    /// unirun::block_on(async {
    ///     while let Some(result) = set.join_next().await {
    ///         match result {
    ///             Ok(v) => values.push(v),
    ///             Err(e) => cancelled += usize::from(e.is_cancelled()),
    ///         }
    ///     }
    /// });
    /// assert_eq!((cancelled, values), (1, vec![2]));
    /// ```
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (future, control) = task::controlled(future);
        let handle = crate::spawn(future);
        self.insert(Task { handle, control })
    }

    /// Spawns `future` into the set on `handle`'s executor (and its scope,
    /// if the handle has one).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().name("set").build()?;
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn_on(async { std::thread::current().name().map(String::from) }, &run.handle());
    /// let name = run.block_on(set.join_next()).unwrap().unwrap().unwrap();
    /// assert!(name.starts_with("set-"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (future, control) = task::controlled(future);
        let handle = handle.spawn(future);
        self.insert(Task { handle, control })
    }

    /// Runs the blocking closure `f` as a task of the set, on the blocking
    /// lane of the scope running on this thread, else of the shared default
    /// executor.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn_blocking(|| std::fs::metadata(".").is_ok());
    /// assert!(unirun::block_on(set.join_next()).unwrap().unwrap());
    /// ```
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let (f, control) = task::controlled_blocking(f);
        let handle = crate::to_thread(f);
        self.insert(Task { handle, control })
    }

    /// Runs the blocking closure `f` as a task of the set on `handle`'s
    /// blocking lane.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().name("disk").build()?;
    /// let mut set = unirun::JoinSet::new();
    /// set.spawn_blocking_on(|| std::thread::current().name().map(String::from), &run.handle());
    /// let name = unirun::block_on(set.join_next()).unwrap().unwrap().unwrap();
    /// assert!(name.starts_with("disk-blocking-"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let (f, control) = task::controlled_blocking(f);
        let handle = handle.spawn_blocking(f);
        self.insert(Task { handle, control })
    }
}

/// Spawns every future of the iterator into a new set, as
/// [`JoinSet::spawn`] does.
///
/// # Examples
///
/// ```
/// use unirun::JoinSet;
///
/// let set: JoinSet<u32> = (1..=3).map(|i| async move { i * i }).collect();
/// let mut all = unirun::block_on(set.join_all());
/// all.sort();
/// assert_eq!(all, [1, 4, 9]);
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

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len).finish()
    }
}

/// Aborts one task of a [`JoinSet`] from anywhere, like
/// `tokio::task::AbortHandle`; dropping it does nothing to the task.
///
/// # Examples
///
/// ```
/// let mut set = unirun::JoinSet::new();
/// let abort = set.spawn(std::future::pending::<()>());
/// let thread = std::thread::spawn(move || abort.abort());
/// thread.join().unwrap();
/// assert!(unirun::block_on(set.join_next()).unwrap().unwrap_err().is_cancelled());
/// ```
pub struct AbortHandle {
    control: Arc<Control>,
}

impl AbortHandle {
    #[cfg_attr(not(feature = "tokio-backend"), allow(dead_code))]
    pub(crate) fn new(control: Arc<Control>) -> Self {
        AbortHandle { control }
    }

    /// Aborts the task: an async task stops at its next poll point (its
    /// result is `Err(cancelled)` once its future is dropped); a blocking
    /// closure is stopped only if it has not started. No effect on a task
    /// that finished.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// let abort = set.spawn(std::future::pending::<()>());
    /// abort.abort();
    /// assert!(unirun::block_on(set.join_next()).unwrap().unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        self.control.abort();
    }

    /// Whether the task's future or closure is gone (it completed, panicked
    /// or was aborted). Its result may be a moment from ready in the set
    /// when this turns true.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set = unirun::JoinSet::new();
    /// let abort = set.spawn(async {});
    /// unirun::block_on(set.join_next()).unwrap().unwrap();
    /// assert!(abort.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.control.is_finished()
    }

    /// The task's unirun id (what `compat::tokio` calls its `Id`).
    #[cfg_attr(not(feature = "tokio-backend"), allow(dead_code))]
    pub(crate) fn id(&self) -> NonZeroU64 {
        self.control.id()
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
