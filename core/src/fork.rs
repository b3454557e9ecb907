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
//! Process-wide state that names a thread (a driver's thread slot, the
//! forker thread) records the [`fork_generation`] it was made in: a slot
//! made in another generation names a thread of an ancestor process, which
//! this process does not have, so it counts as empty.

// A plain counter, not part of a lock-free protocol, and a `static` (loom
// atomics cannot be): so not through `crate::sync`.
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// How many unirun forks led to this process: 0 in a process unirun did
/// not fork, one more in each forked child.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

/// Records that this process is a forked child: from now on unirun's pools
/// run tasks inline and never wait for their (absent) threads, and the
/// [`fork_generation`] is one higher than the parent's.
///
/// Called by the process backend in the child, right after `fork`, once per
/// fork.
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
#[cfg(feature = "std")]
#[cold]
pub(crate) fn run_here(runnable: crate::Runnable, info: async_task::ScheduleInfo) {
    inline::run_here(runnable, info);
}

/// Without `std` there is no fork, and no thread-local to keep a loop in.
#[cfg(not(feature = "std"))]
pub(crate) fn run_here(runnable: crate::Runnable, _info: async_task::ScheduleInfo) {
    crate::abandoned::run(runnable);
}

#[cfg(feature = "std")]
mod inline {
    use core::cell::Cell;

    use async_task::ScheduleInfo;

    use crate::abandoned::{self, key_of, Key};
    use crate::Runnable;

    // Plain `std` thread-locals even under loom: this path runs only in a
    // forked child, never inside a loom model.
    std::thread_local! {
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
        run_loop(runnable);
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
            abandoned::run(runnable);
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
