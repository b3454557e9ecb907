//! tokio as a foreign executor to the core: spawning a wrapped unirun task
//! as one tokio task, and tokio's join handle seen through unirun's.

use std::borrow::Borrow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use unirun_core::{ForeignExecutor, ForeignJoin, JoinError, JoinHandle, TaskFuture, TaskSet};

/// A tokio runtime handle, owned or borrowed (`H` is
/// `tokio::runtime::Handle` or a reference to one), as the core's
/// [`ForeignExecutor`]. Spawning borrows: no reference count is touched.
#[derive(Clone, Debug)]
pub(crate) struct Tokio<H>(pub(crate) H);

impl<H: Borrow<tokio::runtime::Handle>> Tokio<H> {
    /// Runs `f` on tokio's blocking pool, one blocking task per call.
    pub(crate) fn spawn_blocking<F, R>(&self, tasks: Option<&Arc<TaskSet>>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // Ready at its first poll (with the output, or cancelled if the set
        // closed meanwhile), so `block_on` returns at once.
        let task = TaskFuture::new(async move { f() }, tasks);
        let task = self
            .0
            .borrow()
            .spawn_blocking(move || unirun_core::block_on(task));
        JoinHandle::from_foreign(TokioJoin(task))
    }
}

impl<H: Borrow<tokio::runtime::Handle> + Send + Sync> ForeignExecutor for Tokio<H> {
    type Join<T: Send + 'static> = TokioJoin<T>;

    fn spawn_task<T, F>(&self, task: F) -> TokioJoin<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, JoinError>> + Send + 'static,
    {
        // A runtime that shut down drops the task: its handle reports
        // `cancelled`.
        TokioJoin(self.0.borrow().spawn(task))
    }
}

/// A tokio join handle seen through unirun's [`JoinHandle`].
pub(crate) struct TokioJoin<T>(tokio::task::JoinHandle<Result<T, JoinError>>);

impl<T: Send + 'static> ForeignJoin<T> for TokioJoin<T> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        Pin::new(&mut self.0).poll(cx).map(|outcome| match outcome {
            Ok(output) => output,
            // Panics were caught inside the task; this one came from a
            // destructor, after the output.
            Err(err) if err.is_panic() => Err(JoinError::panicked(err.into_panic(), None)),
            Err(_) => Err(JoinError::cancelled()),
        })
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    fn abort(&mut self) {
        self.0.abort();
    }
}
