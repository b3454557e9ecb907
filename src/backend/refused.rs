//! The backend of a shared default executor whose threads the OS refused
//! (`RLIMIT_NPROC`, cgroup `pids.max`, address space): it runs nothing,
//! and every task or closure handed to it resolves its `JoinHandle` at once
//! to [`JoinError::not_started`] naming the pool and the OS error. It owns
//! no thread, so it never hangs and never needs shutting down; the shared
//! default does not keep it (see `global::default_handle`), so the next
//! use tries to start the pool again.
//!
//! Nothing here is on a running pool's path: a `Backend` is this variant
//! only when a pool could not start at all.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use unirun_core::{
    Executor, ForeignJoin, JoinError, JoinHandle, RunQueue, Runnable, ScheduleInfo, TaskSet,
};

use super::BackendHandle;
use crate::flavor::Flavor;

/// A backend that refuses all work, with the reason.
#[derive(Clone)]
pub(crate) struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// What failed and the OS error, as the `JoinError`s say it.
    reason: String,
}

impl Handle {
    /// A backend named `name` that could not start because of `reason`.
    pub(crate) fn new(name: &str, reason: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_string(),
                reason,
            }),
        }
    }

    fn refuse<T: Send + 'static>(&self) -> JoinHandle<T> {
        JoinHandle::from_foreign(Refusal {
            err: Some(JoinError::not_started(self.inner.reason.clone())),
            output: PhantomData,
        })
    }
}

/// A join handle that is finished from the start, with the refusal.
struct Refusal<T> {
    err: Option<JoinError>,
    output: PhantomData<fn() -> T>,
}

impl<T> ForeignJoin<T> for Refusal<T> {
    fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        // Polled again after it gave its error: it has nothing left.
        Poll::Ready(Err(self.err.take().unwrap_or_else(JoinError::cancelled)))
    }

    fn is_finished(&self) -> bool {
        true
    }

    fn abort(&mut self) {}
}

/// What runs a task spawned through [`Executor::run_queue`]: nothing. A
/// dropped `Runnable` cancels its task, so its handle resolves cancelled.
struct DropAll;

impl RunQueue for DropAll {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        drop(runnable);
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusedPool")
            .field("name", &self.inner.name)
            .field("reason", &self.inner.reason)
            .finish()
    }
}

impl Executor for Handle {
    fn run_queue(&self) -> Arc<dyn RunQueue> {
        Arc::new(DropAll)
    }

    fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        Arc::new(DropAll)
    }
}

impl BackendHandle for Handle {
    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        drop(future);
        self.refuse()
    }

    fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        drop(f);
        self.refuse()
    }

    fn spawn_in<F>(&self, _tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future)
    }

    fn spawn_blocking_in<F, R>(&self, _tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_blocking(f)
    }

    fn name(&self) -> &str {
        &self.inner.name
    }

    fn num_workers(&self) -> usize {
        0
    }

    fn max_blocking_threads(&self) -> usize {
        0
    }

    fn flavor(&self) -> Flavor {
        Flavor::Threads
    }
}
