//! What a [`Run`](crate::Run) scope shares with its handles and tasks: the
//! backend it runs on, the set of its live tasks, its gil in `Gil` mode, and
//! the thread-local "current scope" that nested scopes look at (and how
//! many [`block_on`](crate::block_on) calls the thread is inside).
//!
//! Every task a scope spawns (through `Run` or its `Handle`) is a member of
//! the scope's task set, which the scope owns
//! ([`TaskSet::owned_by`](unirun_core::TaskSet::owned_by)): while the task
//! is polled, the scope is current on that thread through the membership
//! ([`current`]), at no cost per task. `run.block_on` and each blocking
//! closure enter the scope ([`ScopeState::enter`], [`ScopeState::enter_blocking`]);
//! in `Gil` mode each poll of a task enters it too ([`Scoped`]), to hold
//! the scope's gil (which blocking closures hold only when the gil covers
//! them; see the `gil` module). The current
//! scope is what lets `Run::builder().build()` inside a task or inside
//! `run.block_on` find its parent and reuse the parent's backend.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use unirun_core::{JoinHandle, RunQueue, Runnable, ScheduleInfo, TaskSet};

use crate::backend::{cluster, process, Backend};
use crate::gil::{self, Gil};

thread_local! {
    /// How many [`block_on`](crate::block_on) calls the calling thread is inside.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Whether the calling thread is inside [`block_on`](crate::block_on).
pub(crate) fn in_block_on() -> bool {
    DEPTH.try_with(Cell::get).is_ok_and(|depth| depth > 0)
}

/// Counts one [`block_on`](crate::block_on) on this thread while alive.
pub(crate) struct Depth;

impl Depth {
    pub(crate) fn enter() -> Depth {
        let _ = DEPTH.try_with(|d| d.set(d.get() + 1));
        Depth
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
    }
}

/// The shared state of one scope: a [`Run`](crate::Run) is its owner (the
/// public face, which shuts the scope down), and the `Run`'s
/// [`Handle`](crate::Handle)s and tasks point to it through an `Arc`, so
/// they keep working, or refuse work, after the `Run` is gone. It holds the
/// backend (owned by the `Run`, or borrowed), the live tasks and, in `Gil`
/// mode, the lock. (Not to be confused with the fork-join
/// [`Scope`](crate::Scope) or `compat::thread::Scope`.)
pub(crate) struct ScopeState {
    pub(crate) backend: Backend,
    pub(crate) tasks: Arc<TaskSet>,
    pub(crate) gil: Option<Arc<Gil>>,
    /// Whether a nested scope may reuse this scope's backend.
    pub(crate) reusable: bool,
    /// The scheduler chose processes for this scope: `call`/`to_process`
    /// fork, `spawn`/`spawn_blocking` stay on the thread pool
    /// (`Handle::flavor` says `Processes`).
    pub(crate) forks: bool,
    /// The scope's pre-forked workers, started by its first `call`.
    pub(crate) processes: std::sync::OnceLock<process::ProcessPool>,
    /// The scope's default limits for its forked calls and its pool
    /// (`RunBuilder::process_options`). Read only by the process backend.
    #[cfg_attr(not(all(unix, feature = "process-backend")), allow(dead_code))]
    pub(crate) process_options: process::ProcessOptions,
    /// The scope's own config says `force_threads`: its `to_process` and
    /// `call` work runs on its blocking lane (set once, by its builder).
    pub(crate) threads_only: std::sync::atomic::AtomicBool,
    /// A cluster scope's connection: its `call`s go there (set once, by
    /// its builder).
    pub(crate) cluster: std::sync::OnceLock<cluster::Client>,
}

impl ScopeState {
    /// A scope on `backend`; with `processes`, one that forks (its pool
    /// started already).
    pub(crate) fn new(
        backend: Backend,
        gil: Option<Arc<Gil>>,
        reusable: bool,
        process_options: process::ProcessOptions,
        processes: Option<process::ProcessPool>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|scope| ScopeState {
            // SAFETY: the scope holds its set for as long as it lives.
            tasks: Arc::new(unsafe { backend.task_set().owned_by(scope.clone()) }),
            backend,
            gil,
            reusable,
            forks: processes.is_some(),
            processes: match processes {
                Some(pool) => std::sync::OnceLock::from(pool),
                None => std::sync::OnceLock::new(),
            },
            process_options,
            threads_only: std::sync::atomic::AtomicBool::new(false),
            cluster: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // The task keeps the scope alive as a member of its set (see
        // `TaskSet::owned_by`), and while it is polled the scope is current
        // through that membership (`current`): no reference count of its
        // own, and no wrapper unless each poll must hold the gil.
        if unirun_core::in_forked_child() {
            return self.spawn_in_forked_child(future);
        }
        if self.gil.is_some() {
            self.backend.spawn_in(&self.tasks, Scoped::new(future))
        } else {
            self.backend.spawn_in(&self.tasks, future)
        }
    }

    /// In a forked child the task's first poll happens here, inline (the
    /// pool's threads were not copied): inside the scope's reactor (for a
    /// thread pool, the child's own unirun-io), so that tokio futures
    /// created in that poll find a live one. Cold: never in a parent.
    #[cold]
    #[inline(never)]
    fn spawn_in_forked_child<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let _context = self.backend.enter();
        if self.gil.is_some() {
            self.backend.spawn_in(&self.tasks, Scoped::new(future))
        } else {
            self.backend.spawn_in(&self.tasks, future)
        }
    }

    pub(crate) fn spawn_blocking<F, R>(self: &Arc<Self>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let scope = self.clone();
        self.backend.spawn_blocking_in(&self.tasks, move || {
            let _enter = scope.enter_blocking();
            f()
        })
    }

    /// Like [`spawn_blocking`](Self::spawn_blocking), for code that mirrors
    /// an independent thread (the compat modules): `f` never holds the gil
    /// (see the `gil` module for why).
    pub(crate) fn spawn_independent<F, R>(self: &Arc<Self>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let scope = self.clone();
        self.backend.spawn_blocking_in(&self.tasks, move || {
            let _enter = scope.enter_unlocked();
            f()
        })
    }

    /// Like [`spawn_blocking`](Self::spawn_blocking), but `f` enters the
    /// scope itself, e.g. once per item so a serialized scope interleaves.
    pub(crate) fn spawn_blocking_entering_itself<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.backend.spawn_blocking_in(&self.tasks, f)
    }

    /// Makes this scope current on this thread (and holds its gil) until
    /// the guard drops.
    ///
    /// This runs on every poll of every scoped task, so it touches only
    /// this thread: the thread-local keeps a pointer to the scope, not a
    /// reference count, and the guard borrows the `Arc` so the scope
    /// outlives the pointer's stay in the thread-local.
    #[inline]
    pub(crate) fn enter(&self) -> Enter<'_> {
        self.enter_holding(self.gil.as_ref())
    }

    /// [`enter`](Self::enter) for a blocking closure: holds the gil only
    /// when the scope's gil covers blocking closures (the program chose
    /// `Gil` in code; see the `gil` module).
    #[inline]
    pub(crate) fn enter_blocking(&self) -> Enter<'_> {
        self.enter_holding(self.gil.as_ref().filter(|g| g.covers_blocking()))
    }

    /// [`enter`](Self::enter) without the gil, for code that mirrors an
    /// independent thread.
    #[inline]
    pub(crate) fn enter_unlocked(&self) -> Enter<'_> {
        self.enter_holding(None)
    }

    #[inline]
    fn enter_holding(&self, gil: Option<&Arc<Gil>>) -> Enter<'_> {
        let hold = gil.map(gil::hold);
        let previous = CURRENT.with(|c| c.replace(self as *const ScopeState));
        Enter {
            previous,
            _scope: PhantomData,
            _hold: hold,
        }
    }

    /// Whether the calling thread is running one of this scope's tasks (or
    /// its `block_on`).
    pub(crate) fn is_current(self: &Arc<Self>) -> bool {
        std::ptr::eq(current_ptr(), Arc::as_ptr(self))
    }
}

thread_local! {
    /// The scope whose task (or `block_on`) this thread is running, or
    /// null. Invariant: a non-null pointer here came from `Arc::as_ptr` of
    /// an `Arc<ScopeState>` borrowed by a live [`Enter`] on this thread, and
    /// that `Enter` puts the previous value back before the borrow ends;
    /// `Enter`s nest (they are never leaked, moved to another thread or
    /// dropped out of order: it is `!Send`, crate-private, and only ever a
    /// local of the frame that created it).
    static CURRENT: Cell<*const ScopeState> = const { Cell::new(std::ptr::null()) };
}

/// The scope the calling thread is in: the one it entered last (`Enter`:
/// a `block_on`, a blocking closure, a poll in `Gil` mode), else the one
/// whose task it is polling (the task's set is the scope's, and the member
/// keeps the scope alive: see `unirun_core::with_polled_owner`), else null.
///
/// Entered scopes come first: inside a task, `block_on` of another scope
/// makes that one current. (Executors poll tasks at their top level, not
/// inside an `Enter`, so a task's own scope is not hidden by another.)
fn current_ptr() -> *const ScopeState {
    let entered = CURRENT.with(Cell::get);
    if !entered.is_null() {
        return entered;
    }
    unirun_core::with_polled_owner(|scope: Option<&ScopeState>| {
        scope.map_or(std::ptr::null(), |scope| scope as *const ScopeState)
    })
}

/// The scope whose task or `block_on` the calling thread is running, if any.
pub(crate) fn current() -> Option<Arc<ScopeState>> {
    let ptr = current_ptr();
    if ptr.is_null() {
        return None;
    }
    // By `CURRENT`'s invariant, or by the polled member's reference on its
    // set's owner, the pointer is an `Arc<ScopeState>`'s and the scope lives.
    // SAFETY: so the strong count is at least 1; we add the reference the
    // new `Arc` owns before building it.
    unsafe {
        Arc::increment_strong_count(ptr);
        Some(Arc::from_raw(ptr))
    }
}

/// Spawns `future` into the scope whose task (or `block_on`, or blocking
/// closure) the calling thread is running, without touching the scope's
/// reference count; gives the future back when there is none.
pub(crate) fn with_current_spawn<F>(future: F) -> Result<JoinHandle<F::Output>, F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let ptr = current_ptr();
    // SAFETY: a non-null pointer is a live scope's (see `current`), kept
    // alive by an `Enter` or the polled member for the duration of this
    // call.
    match unsafe { ptr.as_ref() } {
        Some(scope) => Ok(scope.spawn(future)),
        None => Err(future),
    }
}

/// Calls `f` with the scope whose task (or `block_on`) the calling thread
/// is running, if any, without touching its reference count (read by
/// `unirun::time` to pick a timer).
pub(crate) fn with_current<R>(f: impl FnOnce(&ScopeState) -> R) -> Option<R> {
    let ptr = current_ptr();
    // SAFETY: a non-null pointer is a live scope's (see `current`), kept
    // alive by an `Enter` or the polled member for the duration of this
    // call.
    unsafe { ptr.as_ref() }.map(f)
}

/// Calls `f` with the scope the calling thread is in, or `None`, without
/// touching its reference count (fork-join makes it current in the
/// closures it runs on other workers).
pub(crate) fn with_current_or_none<R>(f: impl FnOnce(Option<&ScopeState>) -> R) -> R {
    let ptr = current_ptr();
    // SAFETY: a non-null pointer is a live scope's (see `current`), kept
    // alive by an `Enter` or the polled member for the duration of this
    // call.
    f(unsafe { ptr.as_ref() })
}

/// Restores the previous current scope, then releases the gil.
pub(crate) struct Enter<'a> {
    previous: *const ScopeState,
    /// The scope whose pointer sits in `CURRENT` lives at least this long.
    _scope: PhantomData<&'a ScopeState>,
    // Declared last: dropped after `drop` below restored the current scope.
    _hold: Option<gil::Hold>,
}

impl Drop for Enter<'_> {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

pin_project_lite::pin_project! {
    /// A future of a `Gil` scope, each poll of which holds the scope's gil
    /// (see [`ScopeState::enter`]).
    ///
    /// It holds nothing but the future: the task it is in is a member of
    /// the scope's set, which keeps the scope alive and tells the poll
    /// which scope it is in ([`unirun_core::with_polled_owner`]), so a
    /// scoped task is as small as the future itself (a foreign executor
    /// that allocates in size classes keeps small futures in its smallest).
    /// Only ever spawned into its scope's own set (`ScopeState::spawn`).
    pub(crate) struct Scoped<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Scoped<F> {
    pub(crate) fn new(inner: F) -> Self {
        Scoped { inner }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        unirun_core::with_polled_owner(|scope: Option<&ScopeState>| {
            let scope = scope.expect("a scoped future runs as a member of its scope's set");
            let _enter = scope.enter();
            inner.poll(cx)
        })
    }
}

/// The run queue behind a scoped [`Handle`](crate::Handle)'s
/// [`Executor`] impl: tasks join the scope's set and, in `Gil` mode, every
/// run of one holds the scope's gil.
///
/// Tasks spawned through `dyn Executor` are allocated by the core before the
/// scope sees them, so they cannot be wrapped in [`Scoped`]; in `Gil` mode
/// each wake-up is wrapped instead (one small task per wake-up, the price of
/// serializing code that was written against the trait).
pub(crate) struct ScopeRunQueue {
    pub(crate) inner: Arc<dyn RunQueue>,
    pub(crate) scope: Arc<ScopeState>,
    /// Schedules blocking closures, which hold the gil only when it covers
    /// them (see [`ScopeState::enter_blocking`]).
    pub(crate) blocking: bool,
}

impl RunQueue for ScopeRunQueue {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        let serialized = match &self.scope.gil {
            Some(gil) => !self.blocking || gil.covers_blocking(),
            None => false,
        };
        if !serialized {
            self.inner.schedule(runnable, info);
            return;
        }
        let scope = self.scope.clone();
        let inner = self.inner.clone();
        let (wrapper, handle) = unirun_core::spawn_with(
            async move {
                let _enter = scope.enter();
                runnable.run();
            },
            None,
            move |r, info| inner.schedule(r, info),
        );
        handle.detach();
        wrapper.schedule();
    }

    fn task_set(&self) -> Option<&Arc<TaskSet>> {
        Some(&self.scope.tasks)
    }
}
