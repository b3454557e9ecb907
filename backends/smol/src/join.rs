//! async-executor as a foreign executor to the core: spawning a wrapped
//! unirun task as one executor task, and its task handle seen through
//! unirun's join handle.

use std::cell::Cell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Weak};
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
        let executor = self.0.as_ptr();
        if DRIVEN
            .try_with(Cell::get)
            .is_ok_and(|driven| std::ptr::eq(driven, executor))
        {
            // A task of the pool spawning on it: the executor this thread
            // drives needs no upgrade (two read-modify-writes on a count
            // the pool's other drivers spawn through too).
            // The allocation `self.0` points to is that executor's.
            // SAFETY: `DRIVEN` names an executor only while this thread
            // holds a strong reference to it (see `drive`): live all call.
            let executor = unsafe { &*executor };
            return SmolJoin(Some(executor.spawn(Contain { task }).fallible()));
        }
        // Without an executor the task is dropped unpolled: cancelled.
        // (No closure around `spawn`: capturing `task` in one costs an
        // extra copy of the future per spawn.)
        let Some(executor) = self.0.upgrade() else {
            return SmolJoin(None);
        };
        SmolJoin(Some(executor.spawn(Contain { task }).fallible()))
    }
}

std::thread_local! {
    /// The executor this thread drives (a [`SmolPool`](crate::SmolPool)'s
    /// driver thread), or null. Invariant: non-null only inside [`drive`],
    /// whose caller holds a strong reference to that executor throughout.
    static DRIVEN: Cell<*const SmolExecutor<'static>> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f`, a driver thread's loop over `executor`, with `executor`
/// recorded as the one this thread drives: its tasks spawn on it without
/// upgrading the handle's weak reference. `executor` outlives the call, so
/// the record (cleared on the way out, also when `f` unwinds) never names
/// a dropped executor.
pub(crate) fn drive<R>(executor: &Arc<SmolExecutor<'static>>, f: impl FnOnce() -> R) -> R {
    struct Restore(*const SmolExecutor<'static>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = DRIVEN.try_with(|driven| driven.set(self.0));
        }
    }
    let _restore = Restore(DRIVEN.with(|driven| driven.replace(Arc::as_ptr(executor))));
    f()
}

/// A task's outcome as async-task holds it, with a destructor that
/// contains a panic of the value's own.
///
/// async-task drops an outcome nobody will take (the handle was detached
/// before the task finished) where the task finishes, inside an
/// abort-on-panic guard: an output whose destructor panics would abort the
/// process there. This wrapper's destructor catches that panic (the panic
/// hook still reports it), so the driver thread keeps serving, as the
/// core's own tasks and tokio do. The handle takes the outcome out with
/// [`into_inner`](Self::into_inner), which skips that destructor: a value
/// the handle returns is the caller's to drop.
///
/// Cost: nothing where the handle takes the outcome; where async-task drops
/// it, an `Ok` whose type needs no drop is forgotten after a compile-time
/// check, anything else goes through `catch_unwind` (free unless it unwinds).
pub(crate) struct Stored<T>(ManuallyDrop<Result<T, JoinError>>);

impl<T> Stored<T> {
    /// The outcome, for whoever returns it to the task's awaiter.
    fn into_inner(self) -> Result<T, JoinError> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the value is taken exactly
        // once and the wrapper's destructor never sees it.
        unsafe { ManuallyDrop::take(&mut this.0) }
    }
}

impl<T> Drop for Stored<T> {
    fn drop(&mut self) {
        // SAFETY: taken once, here; `self` is gone right after.
        match unsafe { ManuallyDrop::take(&mut self.0) } {
            Ok(value) if !std::mem::needs_drop::<T>() => std::mem::forget(value),
            output => drop_contained(output),
        }
    }
}

/// Drops `value`, containing a panic of its destructor (and of that
/// panic's payload's; a payload whose destructor panics too is leaked).
#[cold]
#[inline(never)]
fn drop_contained<V>(value: V) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
    }
}

pin_project_lite::pin_project! {
    /// A task's future whose outcome async-task holds as a [`Stored`].
    struct Contain<F> {
        #[pin]
        task: F,
    }
}

impl<F, T> Future for Contain<F>
where
    F: Future<Output = Result<T, JoinError>>,
{
    type Output = Stored<T>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Stored<T>> {
        self.project()
            .task
            .poll(cx)
            .map(|output| Stored(ManuallyDrop::new(output)))
    }
}

/// An async-task handle seen through unirun's [`JoinHandle`]: dropping it
/// detaches the task (async-task's own handle would cancel it).
///
/// [`JoinHandle`]: unirun_core::JoinHandle
pub(crate) struct SmolJoin<T>(Option<FallibleTask<Stored<T>>>);

impl<T: Send + 'static> ForeignJoin<T> for SmolJoin<T> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let Some(task) = self.0.as_mut() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        Pin::new(task)
            .poll(cx)
            .map(|output| output.map_or_else(|| Err(JoinError::cancelled()), Stored::into_inner))
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
