//! A runtime inherited through `fork`: its worker and blocking threads were
//! not copied, so nothing would ever run what is queued on it. In such a
//! child the runtime's tasks and blocking closures run on the calling
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

/// Runs `f` on the calling thread, as a blocking closure of a task (see
/// the module docs): a forked child's blocking lanes do the same.
#[cold]
#[inline(never)]
pub(crate) fn spawn_blocking<F, R>(tasks: Option<&Arc<TaskSet>>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (runnable, handle) = unirun_core::spawn_blocking_with(f, tasks, |runnable: Runnable, _| {
        runnable.run();
    });
    runnable.schedule();
    handle
}

/// The [`RunQueue`] of an inherited runtime, for tasks the core
/// allocates (`dyn Executor` spawns): each wake-up runs here.
pub(crate) struct Inline;

impl RunQueue for Inline {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        Pool::inline().schedule(runnable, info);
    }
}

/// The blocking [`RunQueue`] of an inherited runtime: each blocking
/// closure runs right where it is scheduled.
pub(crate) struct RunNow;

impl RunQueue for RunNow {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        runnable.run();
    }
}
