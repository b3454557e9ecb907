//! A pool inherited through `fork`: its driver threads (and its blocking
//! lane's) were not copied, so nothing would ever run what is queued on
//! its executor. In such a child the pool's tasks run on the calling
//! thread instead, through a core [`Pool`] whose scheduler runs tasks
//! inline in a forked child (one loop, not one stack frame per self-wake;
//! see `unirun_core::in_forked_child`).

use std::sync::{Arc, OnceLock};

use unirun_core::{JoinHandle, Pool, Runnable, Schedule, ScheduleInfo, TaskSet};

/// The child's inline runner: a core pool that is never driven by threads
/// ([`Pool::inline`]), which runs every task it is given right where it is
/// scheduled.
///
/// Made on first use, only in a child, so the parent never has one. A
/// grandchild forked while a thread of its parent is inside `get_or_init`
/// would wait here; that is a fork in the middle of a spawn, which the
/// core's own pools do not survive either.
fn inline_pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::inline)
}

/// Spawns `future` to run on the calling thread (see the module docs).
#[cold]
#[inline(never)]
pub(crate) fn spawn<F>(tasks: Option<&Arc<TaskSet>>, future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tasks {
        Some(tasks) => inline_pool().spawn_in(tasks, future),
        None => inline_pool().spawn(future),
    }
}

/// The [`Schedule`] hook of an inherited pool, for tasks the core
/// allocates (`dyn Executor` spawns): each wake-up runs here.
pub(crate) struct Inline;

impl Schedule for Inline {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        inline_pool().schedule(runnable, info);
    }
}
