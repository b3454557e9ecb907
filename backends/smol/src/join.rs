//! async-executor as a foreign executor to the core: spawning a wrapped
//! unirun task as one executor task, and its task handle seen through
//! unirun's join handle.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use async_executor::Executor as SmolExecutor;
use async_task::FallibleTask;
use unirun_core::{ForeignExecutor, ForeignJoin, JoinError};

/// An executor, held weakly (an owned one goes away with its pool), as the
/// core's [`ForeignExecutor`].
pub(crate) struct Smol(pub(crate) Weak<SmolExecutor<'static>>);

impl ForeignExecutor for Smol {
    type Join<T: Send + 'static> = SmolJoin<T>;

    fn spawn_task<T, F>(&self, task: F) -> SmolJoin<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, JoinError>> + Send + 'static,
    {
        // Without an executor the task is dropped unpolled: cancelled.
        // (No closure around `spawn`: capturing `task` in one costs an
        // extra copy of the future per spawn.)
        let Some(executor) = self.0.upgrade() else {
            return SmolJoin(None);
        };
        SmolJoin(Some(executor.spawn(task).fallible()))
    }
}

/// An async-task handle seen through unirun's [`JoinHandle`]: dropping it
/// detaches the task (async-task's own handle would cancel it).
///
/// [`JoinHandle`]: unirun_core::JoinHandle
pub(crate) struct SmolJoin<T>(Option<FallibleTask<Result<T, JoinError>>>);

impl<T: Send + 'static> ForeignJoin<T> for SmolJoin<T> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let Some(task) = self.0.as_mut() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        Pin::new(task)
            .poll(cx)
            .map(|output| output.unwrap_or_else(|| Err(JoinError::cancelled())))
    }

    fn is_finished(&self) -> bool {
        self.0.as_ref().is_none_or(FallibleTask::is_finished)
    }

    fn abort(&mut self) {
        // Dropping async-task's handle cancels the task.
        drop(self.0.take());
    }
}

impl<T> Drop for SmolJoin<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}
