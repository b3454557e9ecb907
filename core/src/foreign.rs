//! Executors that allocate their own tasks (tokio, async-executor) behind
//! unirun's types: the [`ForeignJoin`] contract for their join handles,
//! [`Foreign`], which stores such a handle without an allocation when it
//! fits in two words, and what every backend onto such an executor shares:
//! [`ForeignExecutor`], [`spawn_foreign`] and [`ForeignRunQueue`].

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::future::Future;
use core::marker::PhantomData;
use core::mem::{align_of, size_of, MaybeUninit};
use core::task::{Context, Poll};

use crate::{
    CatchPanic, JoinError, JoinHandle, RunQueue, Runnable, ScheduleInfo, TaskFuture, TaskSet,
};

/// An executor that allocates its own tasks (a tokio runtime, an
/// async-executor; or a reference to one), as a unirun backend sees it: it spawns a future whose
/// output is already a `Result<T, JoinError>` as one task of its own and
/// returns its join handle.
///
/// Implementing it gives a backend [`spawn_foreign`] (the one way a unirun
/// task becomes a foreign task) and [`ForeignRunQueue`] (the run queue for tasks
/// that the core allocates, for code that spawns through `dyn Executor`).
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use std::task::{Context, Poll};
/// use unirun_core::{spawn_foreign, ForeignExecutor, ForeignJoin, JoinError};
///
/// /// Runs each task to completion right away, on the spawning thread.
/// struct Eager;
///
/// /// The finished task's outcome.
/// struct Ready<T>(Option<Result<T, JoinError>>);
///
/// impl<T: Send> ForeignJoin<T> for Ready<T> {
///     fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
///         Poll::Ready(self.0.take().unwrap_or_else(|| Err(JoinError::cancelled())))
///     }
///     fn is_finished(&self) -> bool {
///         true
///     }
///     fn abort(&mut self) {}
/// }
///
/// impl ForeignExecutor for Eager {
///     type Join<T: Send + 'static> = Ready<T>;
///
///     fn spawn_task<T, F>(&self, task: F) -> Ready<T>
///     where
///         T: Send + 'static,
///         F: Future<Output = Result<T, JoinError>> + Send + 'static,
///     {
///         Ready(Some(unirun_core::block_on(task)))
///     }
/// }
///
/// let ok = spawn_foreign(&Eager, None, async { 2 + 2 });
/// assert_eq!(ok.join().unwrap(), 4);
/// let panicked = spawn_foreign(&Eager, None, async { panic!("caught") });
/// assert_eq!(panicked.join().unwrap_err().panic_message(), Some("caught"));
/// ```
pub trait ForeignExecutor: Send + Sync {
    /// The executor's join handle for a task with output `Result<T, JoinError>`.
    type Join<T: Send + 'static>: ForeignJoin<T> + 'static;

    /// Spawns `task` as one task of the executor. Each poll of that task
    /// must use the same waker (tokio's and async-task's tasks do): see
    /// [`TaskFuture::for_task`]. An executor that can no longer run tasks
    /// returns a handle that resolves to [`JoinError::cancelled`].
    fn spawn_task<T, F>(&self, task: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, JoinError>> + Send + 'static;
}

/// Spawns `future` on a foreign executor as one task of its own, and
/// returns unirun's [`JoinHandle`] to it.
///
/// A panic in `future` becomes a [`JoinError`] with its message and
/// location. With `tasks`, the task is a member of that [`TaskSet`]
/// ([`TaskFuture::for_task`]: its waker is recorded once); without, it
/// carries only the panic capture ([`CatchPanic`]), so it stays as small as
/// the executor's own tasks.
///
/// # Examples
///
/// See [`ForeignExecutor`].
pub fn spawn_foreign<E, F>(
    executor: &E,
    tasks: Option<&Arc<TaskSet>>,
    future: F,
) -> JoinHandle<F::Output>
where
    E: ForeignExecutor + ?Sized,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tasks {
        Some(tasks) => {
            JoinHandle::from_foreign(executor.spawn_task(TaskFuture::for_task(future, Some(tasks))))
        }
        None => JoinHandle::from_foreign(executor.spawn_task(CatchPanic::new(future))),
    }
}

/// The [`RunQueue`] of a backend onto a foreign executor: each
/// wake-up of a task the core allocated ([`spawn_with`](crate::spawn_with),
/// used by [`Executor`](crate::Executor)'s object-safe spawn) runs as one
/// small task of the foreign executor. When that executor can no longer
/// run tasks it drops the runnable, which cancels the unirun task: its
/// handle resolves to [`JoinError::cancelled`], never hangs.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{spawn_with, ForeignExecutor, ForeignRunQueue, RunQueue};
/// # use std::future::Future;
/// # use std::task::{Context, Poll};
/// # use unirun_core::{ForeignJoin, JoinError};
/// # struct Eager;
/// # struct Ready<T>(Option<Result<T, JoinError>>);
/// # impl<T: Send> ForeignJoin<T> for Ready<T> {
/// #     fn poll_join(&mut self, _: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
/// #         Poll::Ready(self.0.take().unwrap_or_else(|| Err(JoinError::cancelled())))
/// #     }
/// #     fn is_finished(&self) -> bool { true }
/// #     fn abort(&mut self) {}
/// # }
/// # impl ForeignExecutor for Eager {
/// #     type Join<T: Send + 'static> = Ready<T>;
/// #     fn spawn_task<T: Send + 'static, F>(&self, task: F) -> Ready<T>
/// #     where F: Future<Output = Result<T, JoinError>> + Send + 'static {
/// #         Ready(Some(unirun_core::block_on(task)))
/// #     }
/// # }
///
/// let hook = Arc::new(ForeignRunQueue(Eager));
/// let (runnable, handle) = spawn_with(async { 7 }, None, move |r, info| hook.schedule(r, info));
/// runnable.schedule(); // runs as one task of `Eager`
/// assert_eq!(handle.join().unwrap(), 7);
/// ```
#[derive(Debug)]
pub struct ForeignRunQueue<E>(pub E);

impl<E: ForeignExecutor + 'static> RunQueue for ForeignRunQueue<E> {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        // Dropping the foreign handle detaches its task (`ForeignJoin`'s
        // contract). The runnable catches its task's panics itself.
        drop(self.0.spawn_task(async move {
            runnable.run();
            Ok(())
        }));
    }
}

/// A foreign executor's join handle, seen through a unirun [`JoinHandle`]
/// (see [`JoinHandle::from_foreign`]).
///
/// This is the extension point for backends onto executors that allocate
/// their own tasks (tokio, async-executor): they spawn the user's future
/// wrapped in [`TaskFuture`](crate::TaskFuture), so a panic is caught with
/// its message and location and the output is already a
/// `Result<T, JoinError>`, and hand their own join handle to unirun. One
/// foreign task per spawn, instead of one per wake-up through
/// [`spawn_with`](crate::spawn_with). A handle of up to two words (tokio's
/// and async-task's are one) is stored in the `JoinHandle` itself; a
/// bigger one is boxed.
///
/// # Examples
///
/// ```
/// use std::task::{Context, Poll};
/// use unirun_core::{ForeignJoin, JoinError, JoinHandle};
///
/// /// A "foreign" task that is already done.
/// struct Done(Option<u8>);
///
/// impl ForeignJoin<u8> for Done {
///     fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u8, JoinError>> {
///         Poll::Ready(self.0.take().ok_or_else(JoinError::cancelled))
///     }
///     fn is_finished(&self) -> bool {
///         true
///     }
///     fn abort(&mut self) {}
/// }
///
/// let handle = JoinHandle::from_foreign(Done(Some(7)));
/// assert!(handle.is_finished());
/// assert_eq!(unirun_core::block_on(handle).unwrap(), 7);
/// ```
pub trait ForeignJoin<T>: Send {
    /// Polls for the task's outcome: its output, or why there is none (a
    /// foreign cancellation is [`JoinError::cancelled`]). Called again
    /// after `Ready` only if the caller misbehaves; may then panic.
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;

    /// Whether the task has finished (completed, panicked or been cancelled).
    /// Called outside unirun's locks (from [`JoinHandle::is_finished`] and
    /// [`JoinHandle::abort`]), so it may ask the same `JoinHandle`, which
    /// answers `false` while this runs.
    fn is_finished(&self) -> bool;

    /// Cancels the task; the handle is dropped right after. Called outside
    /// unirun's locks, so it may run the future's destructor, and may ask
    /// the same `JoinHandle` whether it finished (`false` until this
    /// returns).
    fn abort(&mut self);

    /// Finishes the task on the calling thread, for
    /// [`JoinHandle::join`]: a handle whose remaining work the waiting
    /// thread can do itself (reading a reply it would otherwise be woken
    /// for) does it and returns the outcome. `None` (the default) means
    /// "cannot", and `join` parks until [`poll_join`](Self::poll_join) is
    /// ready, as for any future.
    ///
    /// Called only by `join`, on a thread that may block: on a unirun
    /// worker, its queues went to another thread first, and the wait hook
    /// (see `set_wait_hook`) has released what the thread held.
    /// Must return `None` at once when it cannot help, and must end
    /// (a bounded wait, or one that the task's own progress ends).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::task::{Context, Poll};
    /// use unirun_core::{ForeignJoin, JoinError, JoinHandle};
    ///
    /// /// Work that whoever joins can do itself.
    /// struct Deferred(Option<fn() -> u8>);
    ///
    /// impl ForeignJoin<u8> for Deferred {
    ///     fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u8, JoinError>> {
    ///         // This toy supports `join` only (a real backend would hand
    ///         // the work to a thread and wake `_cx` when it is done).
    ///         Poll::Ready(Err(JoinError::cancelled()))
    ///     }
    ///     fn is_finished(&self) -> bool {
    ///         self.0.is_none()
    ///     }
    ///     fn abort(&mut self) {
    ///         self.0 = None;
    ///     }
    ///     fn join_here(&mut self) -> Option<Result<u8, JoinError>> {
    ///         self.0.take().map(|work| Ok(work()))
    ///     }
    /// }
    ///
    /// let handle = JoinHandle::from_foreign(Deferred(Some(|| 6 * 7)));
    /// assert_eq!(handle.join().unwrap(), 42); // done by `join_here`, on this thread
    /// ```
    fn join_here(&mut self) -> Option<Result<T, JoinError>> {
        None
    }
}

impl<H: ForeignJoin<T> + ?Sized, T> ForeignJoin<T> for Box<H> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        (**self).poll_join(cx)
    }

    fn is_finished(&self) -> bool {
        (**self).is_finished()
    }

    fn abort(&mut self) {
        (**self).abort();
    }

    fn join_here(&mut self) -> Option<Result<T, JoinError>> {
        (**self).join_here()
    }
}

/// Storage for a handle of up to two words.
type Inline = MaybeUninit<[usize; 2]>;

/// Whether an `S` can live in [`Inline`].
const fn fits<S>() -> bool {
    size_of::<S>() <= size_of::<Inline>() && align_of::<S>() <= align_of::<Inline>()
}

/// A type-erased [`ForeignJoin`] handle.
///
/// Invariant: `data` holds an initialised value of the type `S` that
/// `vtable` was made for (`S` fits, see [`fits`]), until `Drop` drops it.
pub(crate) struct Foreign<T> {
    data: Inline,
    /// Points to a `'static` vtable (a raw pointer only so that `T` need
    /// not be `'static` for the struct to be well-formed).
    vtable: *const Vtable<T>,
    _stored: PhantomData<Box<dyn ForeignJoin<T>>>,
}

// SAFETY: the stored value is a `ForeignJoin`, which is `Send`; the vtable is
// immutable static data. `Foreign` is not `Sync`: `JoinHandle` reaches it only
// through `&mut` or after taking it out of its slot under its lock.
unsafe impl<T> Send for Foreign<T> {}

struct Vtable<T> {
    poll: unsafe fn(*mut (), &mut Context<'_>) -> Poll<Result<T, JoinError>>,
    /// Takes a mutable pointer although `S::is_finished` takes `&self`:
    /// a handle with interior mutability may write through that `&self`,
    /// which is sound only through a pointer that carries write permission.
    is_finished: unsafe fn(*mut ()) -> bool,
    abort: unsafe fn(*mut ()),
    /// Only `JoinHandle::join` (with `std`) calls it.
    #[cfg(feature = "std")]
    join_here: unsafe fn(*mut ()) -> Option<Result<T, JoinError>>,
    drop: unsafe fn(*mut ()),
}

/// The vtable for a stored `S`.
struct VtableOf<S, T>(PhantomData<(fn(S), T)>);

impl<S: ForeignJoin<T>, T> VtableOf<S, T> {
    const VTABLE: Vtable<T> = Vtable {
        poll: poll::<S, T>,
        is_finished: is_finished::<S, T>,
        abort: abort::<S, T>,
        #[cfg(feature = "std")]
        join_here: join_here::<S, T>,
        drop: drop_stored::<S>,
    };
}

/// # Safety
///
/// `data` points to a live `S`, not aliased for the call.
unsafe fn poll<S: ForeignJoin<T>, T>(
    data: *mut (),
    cx: &mut Context<'_>,
) -> Poll<Result<T, JoinError>> {
    // SAFETY: the caller guarantees a live, unaliased `S` at `data`.
    unsafe { (*data.cast::<S>()).poll_join(cx) }
}

/// # Safety
///
/// `data` points to a live `S`, not aliased for the call, and was derived
/// from a mutable borrow of its storage (so an `S` with interior
/// mutability may write through the `&S` made here).
unsafe fn is_finished<S: ForeignJoin<T>, T>(data: *mut ()) -> bool {
    // SAFETY: the caller guarantees a live, unaliased `S` at `data`, reached
    // through a pointer with write permission.
    unsafe { (*data.cast::<S>().cast_const()).is_finished() }
}

/// # Safety
///
/// `data` points to a live `S`, not aliased for the call.
unsafe fn abort<S: ForeignJoin<T>, T>(data: *mut ()) {
    // SAFETY: the caller guarantees a live, unaliased `S` at `data`.
    unsafe { (*data.cast::<S>()).abort() }
}

/// # Safety
///
/// `data` points to a live `S`, not aliased for the call.
#[cfg(feature = "std")]
unsafe fn join_here<S: ForeignJoin<T>, T>(data: *mut ()) -> Option<Result<T, JoinError>> {
    // SAFETY: the caller guarantees a live, unaliased `S` at `data`.
    unsafe { (*data.cast::<S>()).join_here() }
}

/// # Safety
///
/// `data` points to a live `S`, which is dead afterwards.
unsafe fn drop_stored<S>(data: *mut ()) {
    // SAFETY: the caller guarantees a live `S` at `data` and never uses it again.
    unsafe { data.cast::<S>().drop_in_place() }
}

impl<T> Foreign<T> {
    /// Stores `handle` inline when it fits, else boxed.
    pub(crate) fn new<H: ForeignJoin<T> + 'static>(handle: H) -> Self
    where
        T: 'static,
    {
        if fits::<H>() {
            Self::store(handle)
        } else {
            Self::store(Box::new(handle))
        }
    }

    fn store<S: ForeignJoin<T> + 'static>(value: S) -> Self
    where
        T: 'static,
    {
        assert!(fits::<S>(), "checked by `new`: a handle or a box fits");
        let mut data = Inline::uninit();
        // SAFETY: `S` fits in `data` in size and alignment (asserted above),
        // and `data` is fresh storage that nothing else refers to.
        unsafe { data.as_mut_ptr().cast::<S>().write(value) };
        Foreign {
            data,
            vtable: &VtableOf::<S, T>::VTABLE as *const Vtable<T>,
            _stored: PhantomData,
        }
    }

    fn vtable(&self) -> &Vtable<T> {
        // SAFETY: `vtable` points to a `'static` constant (see `store`).
        unsafe { &*self.vtable }
    }

    pub(crate) fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        // SAFETY: by the invariant `data` holds the vtable's `S`; `&mut self`
        // makes the access exclusive.
        unsafe { (self.vtable().poll)(self.data.as_mut_ptr().cast(), cx) }
    }

    /// Takes `&mut self` although `ForeignJoin::is_finished` takes
    /// `&self`: the stored `S` may have interior mutability (a `Cell`, an
    /// atomic) and write through its `&self`, while `data` is plain
    /// `MaybeUninit` storage, not an `UnsafeCell`. A pointer made from
    /// `&self.data` has no write permission, so such a write would be
    /// undefined behaviour; one made from `&mut self.data` has it. The
    /// handle reaches its `Foreign` only after taking it out of its slot or
    /// through `&mut`, so exclusive access costs nothing.
    pub(crate) fn is_finished(&mut self) -> bool {
        // SAFETY: by the invariant `data` holds the vtable's `S`; `&mut self`
        // makes the access exclusive and the pointer writable.
        unsafe { (self.vtable().is_finished)(self.data.as_mut_ptr().cast()) }
    }

    /// Cancels the task; `self` is dropped afterwards.
    pub(crate) fn abort(&mut self) {
        // SAFETY: by the invariant `data` holds the vtable's `S`; `&mut self`
        // makes the access exclusive.
        unsafe { (self.vtable().abort)(self.data.as_mut_ptr().cast()) }
    }
}

impl<T> Foreign<T> {
    /// See [`ForeignJoin::join_here`].
    #[cfg(feature = "std")]
    pub(crate) fn join_here(&mut self) -> Option<Result<T, JoinError>> {
        // SAFETY: by the invariant `data` holds the vtable's `S`; `&mut self`
        // makes the access exclusive.
        unsafe { (self.vtable().join_here)(self.data.as_mut_ptr().cast()) }
    }
}

impl<T> Drop for Foreign<T> {
    fn drop(&mut self) {
        // SAFETY: by the invariant `data` holds the vtable's `S`, and it is
        // never used after this.
        unsafe { (self.vtable().drop)(self.data.as_mut_ptr().cast()) }
    }
}
