//! [`scope`]: spawn closures that borrow from the caller's stack; the scope
//! returns once all of them finished.

use alloc::boxed::Box;
use core::any::Any;
use core::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use super::job::{Fate, HeapJob};
use super::latch::Latch;
use super::with_worker;
use crate::sync::{AtomicUsize, Ordering};

/// A fork-join scope: closures spawned into it may borrow anything that
/// outlives `'scope`, and [`scope`] returns only once every one finished.
///
/// Made by [`scope`] (or [`Pool::scope`](crate::Pool::scope)).
pub struct Scope<'scope> {
    /// Spawned closures not finished yet, plus one for the scope's body.
    /// The thread that brings it to 0 sets `done`.
    pending: AtomicUsize,
    done: Latch,
    /// The first panic of a spawned closure, resumed when the scope ends.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Invariant in `'scope`, like `std::thread::Scope`.
    _scope: PhantomData<&'scope mut &'scope ()>,
}

/// A scope pointer a job can carry to another thread.
struct ScopeRef(*const Scope<'static>);

// SAFETY: `Scope` is `Sync` (atomics, a latch and a mutex), and the scope
// outlives every job that points at it: `scope` waits for all of them.
unsafe impl Send for ScopeRef {}

impl<'scope> Scope<'scope> {
    /// Spawns `f` into the scope: on a worker it is queued where idle
    /// workers can steal it (or runs later on this thread); elsewhere it
    /// runs at once, here. It may spawn more closures into the same scope.
    ///
    /// A panic in `f` is caught; the scope still waits for every other
    /// closure, then resumes the first panic (the body's, if it panicked).
    ///
    /// Closures may run one after another, on one thread (off a worker, on
    /// a one-worker pool, inside [`sequentially`](crate::sequentially)):
    /// closures that wait for one another deadlock there. Use channels or
    /// tasks for closures that must run at the same time.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut parts = [0u64; 4];
    /// unirun_core::scope(|s| {
    ///     for (i, part) in parts.iter_mut().enumerate() {
    ///         s.spawn(move |_| *part = (i as u64 + 1) * 10);
    ///     }
    /// });
    /// assert_eq!(parts, [10, 20, 30, 40]);
    /// ```
    pub fn spawn<F>(&self, f: F)
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let scope = ScopeRef((self as *const Scope<'scope>).cast());
        let job = HeapJob::boxed(move |_fate: Fate| {
            let scope = scope;
            // SAFETY: the scope waits for this job before it returns (see
            // `ScopeRef`), so the pointer is valid while the job runs.
            let this: &Scope<'scope> = unsafe { &*scope.0.cast() };
            // Run or `Return` (the core it was queued on is dropped at
            // shutdown): it runs here either way, on the thread dropping the
            // core in the second case, as a returned join half runs on its
            // owner; the scope promised every spawned closure runs. Its
            // captures are dropped inside the catch too.
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(this)));
            if let Err(payload) = outcome {
                this.record_panic(payload);
            }
            this.finish_one();
        });
        let pushed = with_worker(|cx| {
            let cx = cx?;
            let pushed = cx.with_core(|core| core.join.push(job).is_ok())?;
            if pushed {
                super::offer(cx.shared());
            }
            Some(pushed)
        });
        if pushed != Some(true) {
            // No worker here, or its deque is full: run it now.
            // SAFETY: the job was never queued: this thread alone has it.
            unsafe { job.execute(Fate::Run) };
        }
    }

    fn record_panic(&self, payload: Box<dyn Any + Send>) {
        let mut first = self
            .panic
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if first.is_none() {
            *first = Some(payload);
        }
    }

    /// One closure (or the body) finished; the last one sets the latch, and
    /// touches the scope no more.
    fn finish_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.set();
        }
    }
}

/// Runs `op` with a [`Scope`] whose spawned closures may borrow from the
/// caller's stack, and returns once `op` and every closure spawned into the
/// scope finished. On a worker thread the closures are offered to the pool's
/// other workers; elsewhere they run on the caller, in turn
/// ([`Pool::scope`](crate::Pool::scope) sends the scope to a pool instead).
///
/// # Panics
///
/// After everything finished, with `op`'s panic, else with the first panic
/// of a spawned closure.
///
/// # Examples
///
/// ```
/// let words = ["fork", "join", "scope"];
/// let lengths = std::sync::Mutex::new(Vec::new());
/// unirun_core::scope(|s| {
///     for word in &words {
///         let lengths = &lengths;
///         s.spawn(move |_| lengths.lock().unwrap().push(word.len()));
///     }
/// });
/// let mut lengths = lengths.into_inner().unwrap();
/// lengths.sort();
/// assert_eq!(lengths, [4, 4, 5]);
/// ```
pub fn scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R + Send,
    R: Send,
{
    let scope = Scope {
        pending: AtomicUsize::new(1),
        done: Latch::new(),
        panic: Mutex::new(None),
        _scope: PhantomData,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| op(&scope)));
    scope.finish_one();
    let held = super::wait_until(&scope.done);
    let spawned_panic = scope
        .panic
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match (result, spawned_panic, held) {
        (Err(payload), _, _) | (Ok(_), Some(payload), _) | (Ok(_), None, Err(payload)) => {
            panic::resume_unwind(payload)
        }
        (Ok(value), None, Ok(())) => value,
    }
}

impl crate::Pool {
    /// [`scope`] on this pool: on any pool's worker thread it runs there;
    /// elsewhere on the calling thread as the pool's guest, or on one of
    /// this pool's workers while the caller sleeps (see
    /// [`Pool::join`](crate::Pool::join)).
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(2);
    /// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
    ///
    /// let mut halves = [0u32; 2];
    /// let (low, high) = halves.split_at_mut(1);
    /// pool.scope(|s| {
    ///     s.spawn(|_| low[0] = 1);
    ///     s.spawn(|_| high[0] = 2);
    /// });
    /// assert_eq!(halves, [1, 2]);
    ///
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        self.in_worker(move || scope(op))
    }
}

impl core::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scope")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
