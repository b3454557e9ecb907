//! Jobs as the deques see them: a [`JobRef`] points at a [`Header`] that
//! starts a job living elsewhere (on the stack of the thread that forked it,
//! for a join's second half; in a box, for a scope's spawn), and the header
//! says how to run it.

use core::ptr::NonNull;
use std::panic::{self, AssertUnwindSafe};
use std::thread;

use super::latch::Latch;
use crate::sync::UnsafeCell;

/// What becomes of a job taken out of a deque.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Run it here (a thief, or a worker that found it left on its core).
    Run,
    /// Nobody will run it from its deque (its core is being dropped): a
    /// join half goes back to its owner, who runs it itself; a scope's
    /// spawn runs on the thread dropping the core.
    Return,
}

/// The first field of every job (`#[repr(C)]`), so a pointer to the header
/// is a pointer to the job.
pub(crate) struct Header {
    /// Runs or returns the job the header starts.
    ///
    /// # Safety
    ///
    /// Called at most once per job, with the pointer of that job's header,
    /// by the thread that took the job out of a deque (or the guard of an
    /// injected task), while the job is alive.
    execute: unsafe fn(NonNull<Header>, Fate),
}

/// A pointer to a queued job. Whoever takes it out of a deque must
/// [`execute`](Self::execute) it exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobRef(NonNull<Header>);

// SAFETY: a job is `Send` by construction (its closure and result are), and
// the deque hands each `JobRef` to exactly one thread.
unsafe impl Send for JobRef {}

impl JobRef {
    pub(crate) fn from_non_null(ptr: NonNull<Header>) -> JobRef {
        JobRef(ptr)
    }

    pub(crate) fn as_ptr(self) -> *mut Header {
        self.0.as_ptr()
    }

    /// Runs (or returns) the job.
    ///
    /// # Safety
    ///
    /// The caller took this reference out of a deque (or owns the injected
    /// task that holds it), so no other thread executes it, and the job is
    /// alive: its owner does not return before the job's latch is set.
    #[inline]
    pub(crate) unsafe fn execute(self, fate: Fate) {
        // SAFETY: the header is alive (the caller's contract) and `execute`
        // is called once for it.
        unsafe { ((*self.0.as_ptr()).execute)(self.0, fate) }
    }
}

/// A join's second half, on the stack of the thread that forked it: the
/// closure, its result and the latch the owner waits on.
///
/// Invariant: `func` is `Some` until exactly one thread takes it (the owner
/// running it inline, or the thread that executes the job); `result` is
/// written once, by that thread, before `latch` is set; the owner reads both
/// only after it popped the job back or saw the latch set.
#[repr(C)]
pub(crate) struct StackJob<F, R> {
    header: Header,
    pub(crate) latch: Latch,
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<thread::Result<R>>>,
}

impl<F, R> StackJob<F, R>
where
    F: FnOnce(bool) -> R + Send,
    R: Send,
{
    pub(crate) fn new(func: F) -> Self {
        StackJob {
            header: Header {
                execute: Self::execute,
            },
            latch: Latch::new(),
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(None),
        }
    }

    /// The job as a deque entry. The caller must keep `self` in place until
    /// the job is popped back or its latch is set.
    pub(crate) fn as_job_ref(&self) -> JobRef {
        JobRef(NonNull::from(&self.header))
    }

    /// # Safety
    ///
    /// See [`Header::execute`]: `header` starts a live `StackJob<F, R>`.
    unsafe fn execute(header: NonNull<Header>, fate: Fate) {
        // SAFETY: `#[repr(C)]` puts the header first, so the header's
        // address is the job's; the job is alive (the caller's contract).
        let this = unsafe { &*header.cast::<Self>().as_ptr() };
        if fate == Fate::Run {
            // SAFETY: this thread executes the job, so it alone takes the
            // closure (the owner takes it only if it popped the job back).
            let func = this.func.with_mut(|func| unsafe { (*func).take() });
            if let Some(func) = func {
                let result = panic::catch_unwind(AssertUnwindSafe(|| func(true)));
                // SAFETY: the result is written by this thread only, before
                // the latch is set; the owner reads it after.
                this.result.with_mut(|slot| unsafe { *slot = Some(result) });
            }
        }
        // The last touch of `this`: the owner may free it from now on.
        this.latch.set();
    }

    /// Takes the closure back, if nobody ran it: after the owner popped the
    /// job back, or after the latch was set by a [`Fate::Return`].
    ///
    /// # Safety
    ///
    /// Only the owner calls it, after popping the job back or seeing the
    /// latch set (so no other thread touches the job any more).
    pub(crate) unsafe fn take_func(&self) -> Option<F> {
        // SAFETY: the caller's contract: no other thread touches the job.
        self.func.with_mut(|func| unsafe { (*func).take() })
    }

    /// The result the executing thread left.
    ///
    /// # Safety
    ///
    /// Only the owner calls it, after seeing the latch set.
    pub(crate) unsafe fn take_result(&self) -> Option<thread::Result<R>> {
        // SAFETY: the caller saw the latch set, which the writer set after
        // its last write (acquire/release through the latch).
        self.result.with_mut(|slot| unsafe { (*slot).take() })
    }
}

/// A boxed job (a scope's spawn): runs once and frees itself.
#[repr(C)]
pub(crate) struct HeapJob<F> {
    header: Header,
    func: F,
}

impl<F: FnOnce(Fate) + Send> HeapJob<F> {
    /// Boxes `func` as a job; `func` is called exactly once, with the job's
    /// fate, by whoever executes it.
    pub(crate) fn boxed(func: F) -> JobRef {
        let job = std::boxed::Box::new(HeapJob {
            header: Header {
                execute: Self::execute,
            },
            func,
        });
        let ptr = std::boxed::Box::into_raw(job);
        // SAFETY: `Box::into_raw` is never null; `#[repr(C)]` puts the
        // header first.
        JobRef(unsafe { NonNull::new_unchecked(ptr.cast::<Header>()) })
    }

    /// # Safety
    ///
    /// See [`Header::execute`]: `header` starts a `HeapJob<F>` made by
    /// [`boxed`](Self::boxed), executed once.
    unsafe fn execute(header: NonNull<Header>, fate: Fate) {
        // SAFETY: the box was leaked by `boxed` and is reclaimed once, here.
        let job = unsafe { std::boxed::Box::from_raw(header.cast::<Self>().as_ptr()) };
        (job.func)(fate);
    }
}
