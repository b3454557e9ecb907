//! A pool inherited through `fork`: its driver threads (and its blocking
//! lane's) were not copied, so nothing would ever run what is queued on
//! its executor. In such a child the pool's tasks run on the calling
//! thread instead, through a core [`Pool`] whose scheduler runs tasks
//! inline in a forked child (one loop, not one stack frame per self-wake;
//! see `unirun_core::in_forked_child`).

use std::sync::Arc;

use unirun_core::{JoinHandle, Pool, RunQueue, Runnable, ScheduleInfo, TaskSet};

/// Spawns `future` to run on the calling thread (see the module docs).
#[cold]
#[inline(never)]
pub(crate) fn spawn<F>(tasks: Option<&Arc<TaskSet>>, future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tasks {
        Some(tasks) => Pool::inline().spawn_in(tasks, future),
        None => Pool::inline().spawn(future),
    }
}

/// The [`RunQueue`] of an inherited pool, for tasks the core
/// allocates (`dyn Executor` spawns): each wake-up runs here.
pub(crate) struct Inline;

impl RunQueue for Inline {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        Pool::inline().schedule(runnable, info);
    }
}
