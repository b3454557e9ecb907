//! [`BackendHandle`]: what every backend's handle offers a scope, so the
//! facade can drive the threads, tokio and smol backends through one
//! interface instead of matching on each.

use alloc::sync::Arc;
use core::future::Future;

use crate::{Executor, JoinHandle, TaskSet};

/// A cheap, cloneable handle to a running backend (a thread pool, a tokio
/// runtime, an async-executor driven by threads): spawning into a
/// [`TaskSet`], running blocking closures, and the backend's name and
/// sizes.
///
/// Generic spawn methods keep the spawn path free of virtual calls and
/// boxing; code that needs a trait object uses the object-safe
/// [`Executor`] supertrait instead.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{BackendHandle, TaskSet};
///
/// fn double_on<H: BackendHandle>(backend: &H) -> u32 {
///     let tasks = Arc::new(TaskSet::new());
///     let a = backend.spawn_in(&tasks, async { 21 });
///     let b = backend.spawn_blocking_in(&tasks, || 21);
///     unirun_core::block_on(async { a.await.unwrap() + b.await.unwrap() })
/// }
/// ```
pub trait BackendHandle: Executor + Clone + core::fmt::Debug + Send + Sync + 'static {
    /// Spawns `future` as a member of `tasks` (so closing the set cancels
    /// it and waiting for the set waits for it).
    fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Runs `f` where blocking is allowed, as a member of `tasks`.
    fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;

    /// The backend's name: its threads are named after it.
    fn name(&self) -> &str;

    /// How many threads run async tasks.
    fn num_workers(&self) -> usize;

    /// The most threads the blocking lane may run at once.
    fn max_blocking_threads(&self) -> usize;
}
