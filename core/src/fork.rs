//! Whether this process is a forked child of a unirun process, and how
//! often it was forked.
//!
//! `fork` copies only the calling thread: an inherited pool's workers and
//! blocking lane do not exist in the child, and queueing work for them (or
//! waiting to join them) would hang. The process backend marks the child
//! right after the fork; schedulers then run what they are given inline on
//! the calling thread ([`run_here`]), and pools skip joining threads that
//! are not there.
//!
//! # Driver threads in a child
//!
//! A thread that fires wake-ups for everyone (the timer thread, the thread
//! that turns unirun's own tokio runtime) must never run a task: a task may
//! block (`JoinHandle::join`, `block_on`) until something that only that
//! driver can deliver, and a driver stuck inside it delivers nothing again.
//! In a parent a wake-up only queues the task for a worker. In a child there
//! are no workers, so such a thread marks itself with
//! [`mark_driver_thread`], and a wake-up on it hands the task to a runner
//! thread of the child instead of running it:
//!
//! - an idle runner takes it if there is one, else a new runner starts (so a
//!   runner blocked inside a task never holds up a hand-off);
//! - the driver only locks the hand-off queue, pushes, and notifies or
//!   starts a thread: it never waits for a task, so it is back in its loop
//!   at once;
//! - a runner runs the task like any other thread in a child (a task it
//!   wakes runs nested, a self-wake loops), then takes the next one or waits
//!   idle; it waits only for a hand-off, and each hand-off either wakes an
//!   idle runner (counted under the same lock, so the notify is never lost)
//!   or starts a runner that looks at the queue before it ever waits.
//!
//! Runners live until the child exits; there are never more than the most
//! driver-woken tasks blocked at once, plus one. If no runner can be started
//! (thread creation fails), the task runs on the driver as before: that can
//! block the driver, but it never drops the task.
//!
//! Process-wide state that names a thread (a driver's thread slot, the
//! forker thread) records the [`fork_generation`] it was made in: a slot
//! made in another generation names a thread of an ancestor process, which
//! this process does not have, so it counts as empty.

// A plain counter, not part of a lock-free protocol, and a `static` (loom
// atomics cannot be): so not through `crate::sync`.
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// How many forks led to this process: 0 in a process that was not
/// forked, at least one more in each forked child.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

/// Records that this process is a forked child: from now on unirun's pools
/// run tasks inline and never wait for their (absent) threads, and the
/// [`fork_generation`] is higher than the parent's.
///
/// Called by the process backend in the child, right after `fork`, once per
/// fork; the threads backend also registers it as a `pthread_atfork` child
/// handler when its first pool starts, so that a child forked by any code
/// is marked (a unirun fork then adds two).
///
/// # Examples
///
/// ```
/// // Only a forked child should call `mark_forked_child`.
/// assert!(!unirun_core::in_forked_child());
/// ```
pub fn mark_forked_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    let hook = HOOK.load(Ordering::Acquire);
    if !hook.is_null() {
        // SAFETY: `HOOK` only ever holds null or a `fn()` stored by
        // `on_forked_child` (function and data pointers have one size and
        // representation on every target Rust supports).
        let hook = unsafe { core::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}

/// The function [`mark_forked_child`] calls in each child (null: none).
static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Sets the function [`mark_forked_child`] calls in every forked child
/// from now on, right after the child's [`fork_generation`] went up: the
/// facade uses it to make its threads' cached copies of the parent's
/// shared executor stale. One hook per process (a later call replaces
/// it); it runs on the child's only thread, right after the fork, so it
/// should only touch atomics.
///
/// # Examples
///
/// ```
/// fn forget_caches() {}
/// unirun_core::on_forked_child(forget_caches);
/// ```
pub fn on_forked_child(hook: fn()) {
    HOOK.store(hook as *mut (), Ordering::Release);
}

/// Whether [`mark_forked_child`] was called in this process.
///
/// # Examples
///
/// ```
/// assert!(!unirun_core::in_forked_child());
/// ```
#[inline]
pub fn in_forked_child() -> bool {
    GENERATION.load(Ordering::Relaxed) != 0
}

/// How many unirun forks led to this process (how often
/// [`mark_forked_child`] was called in it and its ancestors): 0 in a
/// process unirun did not fork. The child's copy of a value recorded before
/// a fork keeps the parent's generation, so state that names a thread can
/// record the generation it started the thread in and, when that is not the
/// current one, know that the thread is not in this process.
///
/// # Examples
///
/// ```
/// // A slot that remembers the generation its thread was started in.
/// let started_in = unirun_core::fork_generation();
/// let thread_is_here = started_in == unirun_core::fork_generation();
/// assert!(thread_is_here);
/// ```
#[inline]
pub fn fork_generation() -> usize {
    GENERATION.load(Ordering::Relaxed)
}

/// Runs `runnable` on the calling thread, as a pool does in a forked child
/// (where its workers do not exist). A task that wakes itself while running
/// is run again by the loop that ran it, not by a nested call: 10^6 yields
/// take one stack frame, not 10^6.
///
/// A task woken by another (not while it runs itself) is run right away,
/// nested in the waker's call: deferring it could deadlock a waker that
/// then blocks until that task is done. Such nesting is bounded by the
/// number of distinct tasks waking each other in a chain.
///
/// The exception is a wake-up on a driver thread (see
/// [`mark_driver_thread`]): the task is handed to a runner thread instead
/// (see the `inline` module's `hand_off`), so that the driver goes back to
/// its loop at once.
#[cfg(feature = "std")]
#[cold]
pub(crate) fn run_here(runnable: crate::Runnable, info: async_task::ScheduleInfo) {
    inline::run_here(runnable, info);
}

/// Marks the calling thread as a driver thread (one that delivers
/// wake-ups to everyone, such as a timer or reactor thread): in a forked
/// child a task woken on it is handed to a runner thread instead of being
/// run on it (see the module docs for why). Call it first thing on such a
/// thread; it costs nothing outside a forked child.
///
/// # Examples
///
/// ```
/// std::thread::spawn(|| {
///     unirun_core::mark_driver_thread();
///     // ... the driver's loop ...
/// })
/// .join()
/// .unwrap();
/// ```
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub fn mark_driver_thread() {
    inline::DRIVER.with(|d| d.set(true));
}

/// Sets what a runner thread (see the module docs) runs each task inside,
/// e.g. a reactor's context that a task woken on that reactor's thread had
/// there: `enter` must call its argument exactly once. Set by the facade in
/// a forked child that starts its own reactor; the last call wins.
///
/// # Examples
///
/// ```
/// fn plain(body: &mut dyn FnMut()) {
///     body();
/// }
/// unirun_core::set_runner_context(plain);
/// ```
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub fn set_runner_context(enter: fn(&mut dyn FnMut())) {
    inline::CONTEXT.store(enter as *mut (), core::sync::atomic::Ordering::Release);
}

/// Without `std` there is no fork, and no thread-local to keep a loop in.
#[cfg(not(feature = "std"))]
pub(crate) fn run_here(runnable: crate::Runnable, _info: async_task::ScheduleInfo) {
    crate::task::run(runnable);
}

#[cfg(feature = "std")]
mod inline {
    use core::cell::Cell;

    use core::ptr;
    use core::sync::atomic::{AtomicPtr, Ordering};
    use std::boxed::Box;
    use std::collections::VecDeque;
    use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

    use async_task::ScheduleInfo;

    use crate::abandoned::{key_of, Key};
    use crate::Runnable;

    // Plain `std` thread-locals even under loom: this path runs only in a
    // forked child, never inside a loom model.
    std::thread_local! {
        /// Whether this thread is a driver thread (see
        /// [`mark_driver_thread`](super::mark_driver_thread)).
        pub(super) static DRIVER: Cell<bool> = const { Cell::new(false) };
        /// The task the innermost [`run_here`] loop on this thread is
        /// running now (0: none).
        static RUNNING: Cell<Key> = const { Cell::new(0) };
        /// That task's next turn, when it woke itself while running.
        static AGAIN: Cell<Option<Runnable>> = const { Cell::new(None) };
    }

    /// Puts back the outer loop's task when a run unwinds.
    struct Restore(Key);

    impl Drop for Restore {
        fn drop(&mut self) {
            RUNNING.with(|r| r.set(self.0));
        }
    }

    pub(super) fn run_here(runnable: Runnable, info: ScheduleInfo) {
        let key = key_of(runnable.metadata());
        if info.woken_while_running && RUNNING.with(Cell::get) == key {
            // Called from the tail of this very task's `run`, which the
            // innermost loop below us called: nothing else runs on this
            // thread before that loop takes the turn back (see `run_loop`).
            let previous = AGAIN.with(|a| a.replace(Some(runnable)));
            debug_assert!(previous.is_none(), "one turn per run");
            return;
        }
        if DRIVER.with(Cell::get) {
            hand_off(runnable);
            return;
        }
        run_loop(runnable);
    }

    /// The runners of one process: made in the process's own
    /// [`fork_generation`](super::fork_generation), since a copy inherited
    /// from an ancestor names runner threads this process does not have
    /// (and its lock may have been held by one of them at the fork).
    struct Runners {
        generation: usize,
        queue: Mutex<Queue>,
        ready: Condvar,
    }

    #[derive(Default)]
    struct Queue {
        runnables: VecDeque<Runnable>,
        /// Runners waiting on `ready` that no hand-off has claimed yet.
        idle: usize,
        /// Hand-offs that claimed an idle runner and that it has not yet
        /// seen: a runner leaves its wait only by taking one, so a spurious
        /// wake-up does not count as a claimed runner.
        claimed: usize,
    }

    /// What runners run each task inside (see `set_runner_context`): null,
    /// or a `fn(&mut dyn FnMut())`.
    pub(super) static CONTEXT: AtomicPtr<()> = AtomicPtr::new(ptr::null_mut());

    /// Runs `runnable` as a runner does: inside the runner context, if any.
    fn run_in_context(runnable: Runnable) {
        let enter = CONTEXT.load(Ordering::Acquire);
        if enter.is_null() {
            return run_loop(runnable);
        }
        // SAFETY: a non-null `CONTEXT` was stored by `set_runner_context`
        // from a `fn(&mut dyn FnMut())`, the type it is turned back into.
        let enter: fn(&mut dyn FnMut()) = unsafe { core::mem::transmute(enter) };
        let mut runnable = Some(runnable);
        enter(&mut || {
            if let Some(runnable) = runnable.take() {
                run_loop(runnable);
            }
        });
        // An `enter` that did not call its argument must not lose the task.
        if let Some(runnable) = runnable {
            run_loop(runnable);
        }
    }

    /// This process's runners (never freed: runner threads keep using it
    /// until the process exits, and an ancestor's copy is left alone).
    static RUNNERS: AtomicPtr<Runners> = AtomicPtr::new(ptr::null_mut());

    fn runners() -> &'static Runners {
        let generation = super::fork_generation();
        loop {
            let current = RUNNERS.load(Ordering::Acquire);
            // SAFETY: a non-null pointer in `RUNNERS` came from
            // `Box::into_raw` below and is never freed.
            if let Some(runners) = unsafe { current.as_ref() } {
                if runners.generation == generation {
                    return runners;
                }
            }
            let fresh = Box::into_raw(Box::new(Runners {
                generation,
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
            }));
            match RUNNERS.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
                // The ancestor's copy (if any) is leaked on purpose: its
                // lock may be held by a thread that is not here.
                // SAFETY: just stored from `Box::into_raw`, never freed.
                Ok(_) => return unsafe { &*fresh },
                Err(_) => {
                    // SAFETY: `fresh` was never shared; another thread
                    // installed its own, which the next pass returns.
                    drop(unsafe { Box::from_raw(fresh) });
                }
            }
        }
    }

    fn lock(runners: &Runners) -> MutexGuard<'_, Queue> {
        // A panic never happens under this lock (no user code runs under
        // it), but a poisoned queue is still a valid queue.
        runners.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `runnable` to a runner thread (see the module docs). Returns
    /// without waiting for the task.
    #[cold]
    fn hand_off(runnable: Runnable) {
        let runners = runners();
        let mut queue = lock(runners);
        queue.runnables.push_back(runnable);
        if queue.idle > 0 {
            queue.idle -= 1;
            queue.claimed += 1;
            drop(queue);
            runners.ready.notify_one();
            return;
        }
        drop(queue);
        let started = std::thread::Builder::new()
            .name("unirun-forked-runner".into())
            .spawn(move || run_runner(runners));
        if started.is_err() {
            // No runner: run a queued task here rather than leave it (an
            // idle or busy runner may have taken ours already; then there
            // is nothing left for this hand-off to do).
            let left = lock(runners).runnables.pop_back();
            if let Some(runnable) = left {
                run_loop(runnable);
            }
        }
    }

    /// A runner's loop: runs what is handed off, waits idle when there is
    /// nothing. Never returns (the process exits around it).
    ///
    /// The wait ends: a runner counts itself idle under the queue's lock,
    /// and every later hand-off that finds it idle claims it under the same
    /// lock and notifies.
    fn run_runner(runners: &'static Runners) {
        loop {
            let mut queue = lock(runners);
            let runnable = loop {
                if let Some(runnable) = queue.runnables.pop_front() {
                    break runnable;
                }
                queue.idle += 1;
                while queue.claimed == 0 {
                    queue = runners
                        .ready
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                queue.claimed -= 1;
            };
            drop(queue);
            run_in_context(runnable);
        }
    }

    /// Runs `runnable`, then its next turns while it wakes itself.
    ///
    /// Ends: each pass runs one turn of a task, and a turn is queued only by
    /// that task's own wake-up while it ran; a task that stops waking itself
    /// (finishes, or waits on something else) leaves no next turn.
    fn run_loop(runnable: Runnable) {
        let mut next = Some(runnable);
        while let Some(runnable) = next {
            let key = key_of(runnable.metadata());
            let restore = Restore(RUNNING.with(|r| r.replace(key)));
            crate::task::run(runnable);
            drop(restore);
            // Only this task's own `run` tail can have set it (it was the
            // innermost loop's task until just now).
            next = AGAIN.with(Cell::take);
        }
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use alloc::sync::Arc;
    use core::future::Future;
    use core::pin::Pin;
    use core::sync::atomic::{AtomicBool, Ordering};
    use core::task::{Context, Poll};
    use std::sync::Mutex;

    use super::run_here;
    use crate::Runnable;

    /// Wakes itself and returns `Pending` once.
    struct YieldNow(bool);

    impl Future for YieldNow {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// Runs `body` on a thread with a small stack (a frame per wake-up
    /// would overflow it long before the end) and returns its result.
    fn on_small_stack<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(body)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_task_that_yields_a_million_times_runs_here_in_one_stack_frame() {
        let out = on_small_stack(|| {
            let (runnable, handle) = crate::spawn_with(
                async {
                    for _ in 0..1_000_000u32 {
                        YieldNow(false).await;
                    }
                    7u32
                },
                None,
                run_here,
            );
            runnable.schedule();
            assert!(
                handle.is_finished(),
                "the task ran to its end in `schedule`"
            );
            crate::block_on(handle).unwrap()
        });
        assert_eq!(out, 7);
    }

    /// On a driver thread `run_here` hands the task to a runner and
    /// returns: here the task blocks until the test releases it, which the
    /// test does only after `run_here` returned on the driver.
    #[test]
    fn a_task_woken_on_a_driver_thread_runs_on_a_runner_not_on_the_driver() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (runnable, handle) = crate::spawn_with(
            async move {
                released.recv().unwrap();
                std::thread::current().name().map(std::string::String::from)
            },
            None,
            run_here,
        );
        let (returned, has_returned) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("driver".into())
            .spawn(move || {
                super::mark_driver_thread();
                // Would block until `release` if it ran the task here.
                runnable.schedule();
                returned.send(()).unwrap();
            })
            .unwrap();
        // A watchdog, not a timing: without the hand-off `schedule` never
        // returns (the task waits for `release`, sent only below).
        has_returned
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("`schedule` on the driver returned while the task was blocked");
        release.send(()).unwrap();
        let ran_on = crate::block_on(handle).unwrap();
        assert_eq!(
            ran_on.as_deref(),
            Some("unirun-forked-runner"),
            "ran on a runner"
        );
    }

    /// A task woken by another runs right away, inside the wake: a waker
    /// that then waits for it (a `join` in a task) is not left waiting for
    /// a turn that only comes after it.
    #[test]
    fn a_task_woken_by_another_runs_inside_the_wake() {
        on_small_stack(|| {
            let ran = Arc::new(AtomicBool::new(false));
            let parked: Arc<Mutex<Option<Runnable>>> = Arc::new(Mutex::new(None));
            let (inner, inner_handle) = {
                let ran = ran.clone();
                crate::spawn_with(
                    async move { ran.store(true, Ordering::SeqCst) },
                    None,
                    run_here,
                )
            };
            *parked.lock().unwrap() = Some(inner);
            let (outer, outer_handle) = {
                let (ran, parked) = (ran.clone(), parked.clone());
                crate::spawn_with(
                    async move {
                        // Yield first, so the wake below comes from a turn
                        // the loop runs, not from the first `schedule`.
                        YieldNow(false).await;
                        let inner = parked.lock().unwrap().take().unwrap();
                        inner.schedule();
                        ran.load(Ordering::SeqCst)
                    },
                    None,
                    run_here,
                )
            };
            outer.schedule();
            assert!(
                crate::block_on(outer_handle).unwrap(),
                "ran inside the wake"
            );
            crate::block_on(inner_handle).unwrap();
        });
    }
}
