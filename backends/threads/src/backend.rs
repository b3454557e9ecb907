//! The threads backend's [`BackendHandle`](unirun_core::BackendHandle) impl.

use std::future::Future;
use std::sync::Arc;

use unirun_core::{JoinHandle, TaskSet};

use crate::Handle;

impl unirun_core::BackendHandle for Handle {
    fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Handle::spawn_in(self, tasks, future)
    }

    fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        Handle::spawn_blocking_in(self, tasks, f)
    }

    fn name(&self) -> &str {
        Handle::name(self)
    }

    fn num_workers(&self) -> usize {
        Handle::num_workers(self)
    }

    fn max_blocking_threads(&self) -> usize {
        Handle::max_blocking_threads(self)
    }
}
