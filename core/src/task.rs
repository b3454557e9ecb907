//! Task allocation: one `async-task` allocation per task, holding the future,
//! its output slot and the schedule function.
//!
//! Every future is wrapped in [`CatchPanic`] before it is allocated, so a
//! panicking task turns into a [`JoinError`] at the task boundary and the thread
//! that polled it keeps serving.

use core::future::Future;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::task::{Context, Poll};

use async_task::{Builder, ScheduleInfo, WithInfo};

use alloc::sync::Arc;

use crate::member::Member;
use crate::stats::Outcome;
use crate::{JoinError, JoinHandle, TaskSet};

/// A scheduled task, ready to be polled once by [`Runnable::run`].
///
/// Dropping a `Runnable` without running it cancels its task: the task's
/// [`JoinHandle`] then resolves to [`JoinError::cancelled`]. (When one of
/// unirun's executors drops it and the future's destructor panics, the
/// handle reports that panic instead; a runnable your own code drops
/// reports `cancelled`.)
///
/// # Examples
///
/// ```
/// use unirun_core::{spawn_with, Runnable};
///
/// // A schedule function that runs each task right where it is woken.
/// let run_now = |r: Runnable, _| {
///     r.run();
/// };
/// let (runnable, handle) = spawn_with(async { 1 + 1 }, None, run_now);
/// runnable.run();
/// assert_eq!(handle.join().unwrap(), 2);
///
/// // Dropped without running: the task is cancelled.
/// let (runnable, handle) = spawn_with(async { 1 + 1 }, None, run_now);
/// drop(runnable);
/// assert!(handle.join().unwrap_err().is_cancelled());
/// ```
pub type Runnable = async_task::Runnable;

/// Runs a task of unirun's: polls it once through its runnable, the way
/// every executor of the core runs one. Its key is current meanwhile, so a
/// panic of its future's destructor, if the poll cancels it, reaches its
/// handle (see [`abandoned`](crate::abandoned)). Returns whether the task
/// woke itself while it ran ([`Runnable::run`]).
#[inline]
pub(crate) fn run(runnable: Runnable) -> bool {
    crate::abandoned::with_key(runnable, Runnable::run)
}

/// Cancels a task of unirun's by dropping its runnable unrun; a panic of
/// its future's destructor reaches its handle (see
/// [`abandoned`](crate::abandoned)).
pub(crate) fn cancel(runnable: Runnable) {
    crate::abandoned::with_key(runnable, drop)
}

/// What a task's output slot holds: the value, or why there is none.
pub(crate) type TaskOutput<T> = Result<T, JoinError>;

/// A task's outcome as its allocation holds it, with a destructor that
/// contains a panic of the value's own.
///
/// async-task drops an outcome nobody will take (the handle was dropped
/// or detached before the task finished) right where the task finishes,
/// inside an abort-on-panic guard: a value whose destructor panics would
/// abort the process there. This wrapper's destructor catches that panic
/// (the panic hook still prints it, as for any panic), so the worker keeps
/// serving, as in tokio. The handle takes the outcome out with
/// [`into_inner`](Self::into_inner), which skips the wrapper's destructor:
/// a value the handle returns is the caller's to drop.
///
/// Cost: nothing on the paths that take the outcome; where async-task
/// drops it, an `Ok` whose type needs no drop is forgotten after one
/// compile-time check and one branch on the discriminant, and anything
/// else is dropped through `catch_unwind`, which costs nothing unless it
/// unwinds.
pub(crate) struct Stored<T>(ManuallyDrop<TaskOutput<T>>);

impl<T> Stored<T> {
    #[inline(always)]
    fn new(output: TaskOutput<T>) -> Self {
        Self(ManuallyDrop::new(output))
    }

    /// The outcome, for whoever returns it to the task's awaiter.
    #[inline(always)]
    pub(crate) fn into_inner(self) -> TaskOutput<T> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the value is taken once and
        // the wrapper's destructor does not see it again.
        unsafe { ManuallyDrop::take(&mut this.0) }
    }
}

impl<T> Drop for Stored<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the value is taken once, here, and `self` is gone after.
        match unsafe { ManuallyDrop::take(&mut self.0) } {
            // Nothing to drop: no call, no catch.
            Ok(value) if !core::mem::needs_drop::<T>() => core::mem::forget(value),
            output => drop_contained(output),
        }
    }
}

/// Drops `value`, containing a panic of its destructor (and of that
/// panic's payload's destructor; a payload whose destructor panics too is
/// leaked). Without `std` a panic aborts, as every panic does there.
#[cold]
#[inline(never)]
fn drop_contained<V>(value: V) {
    #[cfg(feature = "std")]
    {
        use std::panic::{catch_unwind, AssertUnwindSafe};
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                core::mem::forget(again);
            }
        }
    }
    #[cfg(not(feature = "std"))]
    drop(value);
}

pin_project_lite::pin_project! {
    /// A task's future whose outcome is handed to async-task as an
    /// [`Stored`], so dropping it there never aborts.
    struct Contain<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T> Future for Contain<F>
where
    F: Future<Output = TaskOutput<T>>,
{
    type Output = Stored<T>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Stored<T>> {
        self.project().inner.poll(cx).map(Stored::new)
    }
}

/// Allocates a task for `future` whose wake-ups go to `schedule`, and returns
/// its first [`Runnable`] (not yet scheduled) and its [`JoinHandle`].
///
/// This is the building block for executors: schedule the runnable once to
/// start the task. `schedule` is told through [`ScheduleInfo`] whether the task
/// woke itself while running (a yield), which a scheduler uses to send it to
/// the back of the queue. With `tasks`, the task is a member of that
/// [`TaskSet`] until it finishes.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// let (tx, rx) = mpsc::channel();
/// let tx = std::sync::Mutex::new(tx);
/// let (runnable, handle) = unirun_core::spawn_with(async { 7 }, None, move |r, _info| {
///     tx.lock().unwrap().send(r).unwrap();
/// });
/// runnable.schedule();
/// rx.recv().unwrap().run();
/// assert_eq!(unirun_core::block_on(handle).unwrap(), 7);
/// ```
pub fn spawn_with<F, S>(
    future: F,
    tasks: Option<&Arc<TaskSet>>,
    schedule: S,
) -> (Runnable, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Runnable, ScheduleInfo) + Send + Sync + 'static,
{
    let future = Contain {
        inner: OwnTask::new(future, tasks),
    };
    let (runnable, task) = Builder::new().spawn(move |()| future, WithInfo(schedule));
    (runnable, JoinHandle::from_task(task))
}

/// Like [`spawn_with`] for a blocking closure: the task runs `f` on its first
/// poll, so it belongs on a thread that may block.
///
/// # Examples
///
/// ```
/// // A schedule function that runs the task right where it is woken.
/// let (runnable, handle) = unirun_core::spawn_blocking_with(|| 6 * 7, None, |r: unirun_core::Runnable, _| {
///     r.run();
/// });
/// runnable.schedule();
/// assert_eq!(unirun_core::block_on(handle).unwrap(), 42);
/// ```
pub fn spawn_blocking_with<F, R, S>(
    f: F,
    tasks: Option<&Arc<TaskSet>>,
    schedule: S,
) -> (Runnable, JoinHandle<R>)
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
    S: Fn(Runnable, ScheduleInfo) + Send + Sync + 'static,
{
    spawn_with(BlockingFn(Some(f)), tasks, schedule)
}

/// Like [`spawn_blocking_with`] for a closure that may fail with a
/// [`JoinError`] of its own (a backend that runs the work elsewhere and can
/// lose it, like a crashed child process): its error becomes the handle's.
///
/// # Examples
///
/// ```
/// use unirun_core::{spawn_blocking_fallible_with, JoinError, Runnable};
///
/// let run_here = |r: Runnable, _| { r.run(); };
/// let (runnable, handle) = spawn_blocking_fallible_with(|| Ok::<_, JoinError>(1), None, run_here);
/// runnable.schedule();
/// assert_eq!(unirun_core::block_on(handle).unwrap(), 1);
///
/// let (runnable, handle) =
///     spawn_blocking_fallible_with(|| Err::<u8, _>(JoinError::timed_out()), None, run_here);
/// runnable.schedule();
/// assert!(unirun_core::block_on(handle).unwrap_err().is_timeout());
/// ```
pub fn spawn_blocking_fallible_with<F, R, S>(
    f: F,
    tasks: Option<&Arc<TaskSet>>,
    schedule: S,
) -> (Runnable, JoinHandle<R>)
where
    F: FnOnce() -> Result<R, JoinError> + Send + 'static,
    R: Send + 'static,
    S: Fn(Runnable, ScheduleInfo) + Send + Sync + 'static,
{
    let future = Contain {
        inner: Flatten {
            inner: OwnTask::new(BlockingFn(Some(f)), tasks),
        },
    };
    let (runnable, task) = Builder::new().spawn(move |()| future, WithInfo(schedule));
    (runnable, JoinHandle::from_task(task))
}

pin_project_lite::pin_project! {
    /// A task whose own output is a `Result<_, JoinError>`, flattened.
    struct Flatten<F> {
        #[pin]
        inner: F,
    }
}

impl<F, R> Future for Flatten<OwnTask<F>>
where
    F: Future<Output = TaskOutput<R>>,
{
    type Output = TaskOutput<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.project().inner;
        let output = core::task::ready!(inner.as_mut().poll(cx));
        if let (Ok(Err(err)), Some(tasks)) = (&output, inner.task.member.set()) {
            // Counted completed by `TaskFuture`; the closure's own error
            // says how the task really ended.
            let outcome = Outcome::of_error(err);
            tasks.stats.reclassify(outcome);
            // Cancelled after the close (a child process the shutdown
            // killed): the close's, as if it had cancelled it at a poll.
            if outcome == Outcome::Cancelled && tasks.is_closed() {
                inner.as_mut().project().task.close_out();
            }
        }
        Poll::Ready(output.and_then(|inner| inner))
    }
}

/// A closure seen as a future that runs it on its first poll.
pub(crate) struct BlockingFn<F>(Option<F>);

impl<F> Unpin for BlockingFn<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingFn<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self.0.take().expect("a blocking task is polled once");
        Poll::Ready(f())
    }
}

/// What every task runs: the user's future, with
/// - a panic during a poll, or in the future's destructor, turned into
///   a [`JoinError`] with its message and location (with `std` and
///   `panic = "unwind"`; otherwise a panic aborts). A destructor that
///   panics when the task is cancelled (the future dropped unpolled) is
///   contained too: the thread that dropped it keeps serving and the
///   task still leaves its [`TaskSet`]; when unirun's own executor
///   dropped it (after [`JoinHandle::abort`], or with its runnable
///   dropped unrun), the task's handle reports that panic;
/// - membership in a [`TaskSet`]: counted while alive, its latest waker
///   recorded while it waits, cancelled at its next poll once the set is
///   closed.
///
/// unirun's own tasks are allocated around it by [`spawn_with`]. A
/// backend onto an executor that allocates its own tasks spawns a
/// `TaskFuture` there and wraps that executor's join handle with
/// [`JoinHandle::from_foreign`].
///
/// # Examples
///
/// ```
/// use unirun_core::TaskFuture;
///
/// let caught = unirun_core::block_on(TaskFuture::new(async { panic!("boom") }, None));
/// let err: unirun_core::JoinError = caught.unwrap_err();
/// assert_eq!(err.panic_message(), Some("boom"));
/// assert!(err.panic_location().is_some());
/// ```
pub struct TaskFuture<F> {
    /// The user's future; dropped (in place: it is pinned) once the
    /// member says `done`.
    inner: ManuallyDrop<F>,
    /// The set, if any, and whether `inner` is gone, in one word (it is in
    /// every task: see `member`).
    member: Member,
}

impl<F> TaskFuture<F> {
    /// The future, while it lives, and the member.
    fn parts(self: Pin<&mut Self>) -> (Option<Pin<&mut F>>, &mut Member) {
        // SAFETY: `inner` is structurally pinned: it is never moved out,
        // only dropped in place (`drop_inner`); `member` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = if this.member.is_done() {
            None
        } else {
            // SAFETY: as above; not `done`, so the future is live.
            Some(unsafe { Pin::new_unchecked(&mut *this.inner) })
        };
        (inner, &mut this.member)
    }

    /// Drops the future in place if it still lives, catching a panic of its
    /// destructor (with `std`; without, a panic aborts).
    fn drop_inner(inner: &mut ManuallyDrop<F>, member: &mut Member) -> Option<JoinError> {
        if member.is_done() {
            return None;
        }
        // Marked first: unwinding or not, the value counts as dropped.
        member.set_done();
        if !core::mem::needs_drop::<F>() {
            // Nothing runs: no panic to catch (nor its thread-local read).
            return None;
        }
        let place: *mut F = &mut **inner;
        // SAFETY: the future is live (not `done` until just now) and pinned
        // in place; it is dropped in place this once (`done` is set) and
        // never touched again.
        catch_drop(|| unsafe { core::ptr::drop_in_place(place) })
    }

    /// [`drop_inner`](Self::drop_inner) through the pin.
    fn drop_pinned(self: Pin<&mut Self>) -> Option<JoinError> {
        // SAFETY: the future is dropped in place, never moved (see `parts`).
        let this = unsafe { self.get_unchecked_mut() };
        Self::drop_inner(&mut this.inner, &mut this.member)
    }
}

impl<F> Drop for TaskFuture<F> {
    fn drop(&mut self) {
        // The future goes first: its destructor is part of the task. A
        // panic in it is contained, and the task still leaves; the task's
        // own (outermost) future hands it to the task's handle through
        // `abandoned` (nested ones find no key: see there), and counts
        // the task as its handle will report it.
        if self.member.is_done() {
            // Finished (or its future already dropped): nothing can panic
            // and nothing is left to count. No key to take: a task whose
            // future finished left none (`OwnTask::poll`).
            self.member.leave();
            return;
        }
        self.drop_unfinished();
    }
}

impl<F> TaskFuture<F> {
    /// [`Drop`] of a task whose future still lives. Out of line: the path
    /// every finished task takes stays short (callgrind, executors bench,
    /// `spawn_remote`).
    #[cold]
    #[inline(never)]
    fn drop_unfinished(&mut self) {
        // The key is taken for good: what runs after the record (leaving
        // the set drops and wakes wakers, user code that may drop other
        // tasks' futures) must not find it.
        let key = crate::abandoned::set_current(0);
        let panicked = Self::drop_inner(&mut self.inner, &mut self.member);
        // Counted as the handle will report it: a panic the handle
        // receives, else cancelled.
        let reported_panic = match panicked {
            Some(panicked) if key != 0 => {
                if let Some(tasks) = self.member.set() {
                    failed(tasks, &panicked);
                }
                crate::abandoned::record(key, panicked);
                true
            }
            _ => false,
        };
        if let Some(tasks) = self.member.set() {
            if !reported_panic {
                cancelled(tasks);
            }
            // Dropped unfinished after the close: the close's, as if it
            // had cancelled it at a poll (see `unfinished_since_close`).
            if tasks.is_closed() {
                self.member.close_out();
            }
        }
        self.member.leave();
    }
}

impl<F> TaskFuture<F> {
    /// Wraps `inner`; with `tasks`, it is a member of that set from now
    /// until it finishes or is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskFuture, TaskSet};
    ///
    /// let set = Arc::new(TaskSet::new());
    /// let future = TaskFuture::new(async { 5 }, Some(&set));
    /// assert_eq!(set.len(), 1); // a member until it finishes or is dropped
    /// assert_eq!(unirun_core::block_on(future).unwrap(), 5);
    /// assert_eq!(set.len(), 0);
    /// ```
    pub fn new(inner: F, tasks: Option<&Arc<TaskSet>>) -> Self {
        Self::joining(inner, tasks, false)
    }

    /// Like [`new`](Self::new), for a `TaskFuture` that is the whole of a
    /// task on an executor that polls each task with one waker, the same
    /// every time (tokio's and async-task's tasks do): the waker is then
    /// recorded once, and later `Pending` polls skip the comparison with it
    /// (which takes the set's lock). Polled by changing wakers, such a
    /// member could miss [`TaskSet::close`]'s wake-up; use `new` when in
    /// doubt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskFuture, TaskSet};
    ///
    /// let set = Arc::new(TaskSet::new());
    /// let future = TaskFuture::for_task(async { 5 }, Some(&set));
    /// // An executor would spawn `future` as a task of its own.
    /// assert_eq!(unirun_core::block_on(future).unwrap(), 5);
    /// assert!(set.is_empty());
    /// ```
    pub fn for_task(inner: F, tasks: Option<&Arc<TaskSet>>) -> Self {
        Self::own(inner, tasks)
    }

    /// Like `new`, for a future polled only by the task that holds it.
    pub(crate) fn own(inner: F, tasks: Option<&Arc<TaskSet>>) -> Self {
        Self::joining(inner, tasks, true)
    }

    fn joining(inner: F, tasks: Option<&Arc<TaskSet>>, own_task: bool) -> Self {
        #[cfg(feature = "std")]
        crate::panic::install_hook();
        Self {
            inner: ManuallyDrop::new(inner),
            member: match tasks {
                Some(tasks) => Member::join(tasks, own_task),
                None => Member::NONE,
            },
        }
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = TaskOutput<F::Output>;

    // Inlined into the foreign executor's poll of its task (its only
    // caller there): a call of its own cost a task on tokio about 15
    // instructions per poll in saved registers alone (callgrind).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_member(cx, false)
    }
}

pin_project_lite::pin_project! {
    /// The future of one of unirun's own tasks (the ones [`spawn_with`]
    /// allocates): a [`TaskFuture`] that also takes part in the two
    /// protocols between a task and the thread that runs its [`Runnable`]:
    ///
    /// - no task key while the user's future runs, nor after it finished,
    ///   so a future dropped inside the poll or with the output is not
    ///   taken for this task's (see `abandoned`);
    /// - polls in place again while the task wakes itself, when the worker
    ///   armed it (see `repoll`).
    ///
    /// A foreign executor's task never runs inside one of our runnables'
    /// `run` without such a future around it, so its `TaskFuture` finds no
    /// key and nothing armed, and its polls skip both.
    struct OwnTask<F> {
        #[pin]
        task: TaskFuture<F>,
    }
}

impl<F> OwnTask<F> {
    fn new(inner: F, tasks: Option<&Arc<TaskSet>>) -> Self {
        Self {
            task: TaskFuture::own(inner, tasks),
        }
    }
}

impl<F: Future> Future for OwnTask<F> {
    type Output = TaskOutput<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let key = crate::abandoned::set_current(0);
        let poll = self
            .project()
            .task
            .poll_member(cx, crate::repoll::take_armed());
        // Put back only for a task that may yet be dropped unfinished in
        // this same run (closed while it ran). A finished one leaves no key:
        // what async-task drops next (this future's shell, an output nobody
        // takes) must not be taken for this task's (see `abandoned`).
        if poll.is_pending() {
            crate::abandoned::set_current(key);
        }
        poll
    }
}

impl<F: Future> TaskFuture<F> {
    /// One poll; `in_place`: the worker armed this task (see `repoll`).
    #[inline(always)]
    fn poll_member(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        in_place: bool,
    ) -> Poll<TaskOutput<F::Output>> {
        // The set, found once per poll.
        let set: *const TaskSet = self.member.set().map_or(core::ptr::null(), |set| set);
        // SAFETY: the member keeps its set alive until it leaves, which only
        // `Drop` does, so the set outlives this poll.
        let set = unsafe { set.as_ref() };
        // Code inside reaches the set's owner (see `with_polled_owner`).
        let published = crate::member::publish(&self.member, set);
        let poll = self.poll_task(cx, set, in_place);
        crate::member::unpublish(published);
        poll
    }

    #[inline(always)]
    fn poll_task(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        tasks: Option<&TaskSet>,
        in_place: bool,
    ) -> Poll<TaskOutput<F::Output>> {
        let mut this = self;
        if let Some(tasks) = tasks.filter(|tasks| tasks.is_closed()) {
            return Poll::Ready(this.cancel_closed(tasks));
        }
        let (Some(inner), member) = this.as_mut().parts() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        let poll = if in_place {
            poll_in_place(inner, cx, tasks)
        } else {
            poll_catching(inner, cx)
        };
        match poll {
            Poll::Pending => {
                member.waits(cx.waker());
                Poll::Pending
            }
            Poll::Ready(output) => {
                // A destructor that panics after the value was produced
                // turns the task's outcome into that panic, as in tokio.
                let output = match (this.as_mut().drop_pinned(), output) {
                    (Some(panicked), Ok(_)) => Err(panicked),
                    (_, output) => output,
                };
                ended(tasks, &output);
                Poll::Ready(output)
            }
        }
    }

    /// The set was closed: the future is dropped unpolled and the task
    /// ends cancelled (or with its destructor's panic).
    #[cold]
    #[inline(never)]
    fn cancel_closed(mut self: Pin<&mut Self>, tasks: &TaskSet) -> TaskOutput<F::Output> {
        let output = Err(self
            .as_mut()
            .drop_pinned()
            .unwrap_or_else(JoinError::cancelled));
        ended(Some(tasks), &output);
        self.close_out();
        output
    }

    /// Marks the member as one the set's close ended unfinished: it will
    /// leave counted as the close's (see
    /// [`TaskSet::unfinished_since_close`]).
    fn close_out(self: Pin<&mut Self>) {
        // SAFETY: only the member is touched, which is not pinned (see
        // `parts`).
        unsafe { self.get_unchecked_mut() }.member.close_out();
    }
}

/// A poll of a task a worker runs because it woke itself: polls again in
/// place while it keeps doing so and the turn's budget lasts (see
/// `repoll`), with one panic capture around the whole loop. Out of line:
/// only unirun's own workers arm a task.
#[inline(never)]
fn poll_in_place<F: Future>(
    mut inner: Pin<&mut F>,
    cx: &mut Context<'_>,
    tasks: Option<&TaskSet>,
) -> Poll<TaskOutput<F::Output>> {
    let place = crate::repoll::InPlace::new(cx.waker());
    catching(|| {
        place.with_waker(|waker| {
            let mut in_place = Context::from_waker(waker);
            loop {
                let poll = inner.as_mut().poll(&mut in_place);
                if poll.is_ready() || !place.take_woken() {
                    break poll;
                }
                if tasks.is_some_and(TaskSet::is_closed) || !crate::repoll::charge() {
                    // Out of budget (or cancelled): the wake-up goes to the
                    // task, which queues it (or drops it) as usual.
                    cx.waker().wake_by_ref();
                    break Poll::Pending;
                }
            }
        })
    })
}

/// Counts a member's outcome, before the task publishes it (and before it
/// leaves its set). The common case, a value, stays inline; the rest is
/// out of line.
#[inline(always)]
fn ended<T>(tasks: Option<&TaskSet>, output: &TaskOutput<T>) {
    if let Some(tasks) = tasks {
        match output {
            Ok(_) => tasks.stats.ended(Outcome::Completed),
            Err(err) => failed(tasks, err),
        }
    }
}

#[cold]
#[inline(never)]
fn failed(tasks: &TaskSet, err: &JoinError) {
    tasks.stats.ended(Outcome::of_error(err));
}

/// Counts a member dropped before it finished.
#[cold]
#[inline(never)]
fn cancelled(tasks: &TaskSet) {
    tasks.stats.ended(Outcome::Cancelled);
}

/// Runs a destructor, turning its panic into a [`JoinError`].
#[cfg(feature = "std")]
fn catch_drop(drop: impl FnOnce()) -> Option<JoinError> {
    crate::panic::catch(drop).err()
}

/// Runs a destructor (a panic aborts without `std`).
#[cfg(not(feature = "std"))]
fn catch_drop(drop: impl FnOnce()) -> Option<JoinError> {
    drop();
    None
}

pin_project_lite::pin_project! {
    /// The user's future with only the panic capture of [`TaskFuture`]: a
    /// panic during a poll becomes a [`JoinError`] with its message and
    /// location. No [`TaskSet`] membership, and nothing added to the future's
    /// size, for backends whose executor allocates the task (a bigger task can
    /// cost a foreign allocator a size class).
    ///
    /// Like most futures it must not be polled after it completed.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::CatchPanic;
    ///
    /// assert_eq!(unirun_core::block_on(CatchPanic::new(async { 7 })).unwrap(), 7);
    /// let err = unirun_core::block_on(CatchPanic::new(async { panic!("boom") })).unwrap_err();
    /// assert_eq!(err.panic_message(), Some("boom"));
    /// assert!(err.panic_location().is_some());
    /// ```
    pub struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

impl<F> CatchPanic<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        #[cfg(feature = "std")]
        crate::panic::install_hook();
        Self { inner }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = TaskOutput<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_catching(self.project().inner, cx)
    }
}

#[inline(always)]
fn poll_catching<F: Future>(
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<TaskOutput<F::Output>> {
    catching(move || future.poll(cx))
}

/// Runs `poll`, turning a panic in it into a ready [`JoinError`].
#[cfg(feature = "std")]
#[inline]
fn catching<T>(poll: impl FnOnce() -> Poll<T>) -> Poll<TaskOutput<T>> {
    match crate::panic::catch(poll) {
        Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(err) => Poll::Ready(Err(err)),
    }
}

/// Runs `poll` (a panic aborts without `std`).
#[cfg(not(feature = "std"))]
#[inline]
fn catching<T>(poll: impl FnOnce() -> Poll<T>) -> Poll<TaskOutput<T>> {
    poll().map(Ok)
}
