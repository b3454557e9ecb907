//! Fork-join on the pool's workers: [`join`], [`scope`] and the adaptive
//! split behind parallel maps, sharing the workers with async tasks.
//!
//! # Shape
//!
//! Each worker's core has a second deque, of *join halves*
//! ([`deque`](self::deque), Chase-Lev, fixed size). `join(a, b)` on a worker
//! puts `b` in a job on its own stack, pushes a pointer to it on that deque
//! (where idle workers can steal it; the push wakes one as a local spawn
//! does), runs `a` inline, then pops the deque: in the common case it gets
//! `b` back and runs it inline too. That costs two deque operations and no
//! allocation; only a stolen half is waited for, on the job's latch. This is
//! rayon's shape. A heartbeat scheme (chili's: forks stay private and only
//! every ~100 us is one promoted where thieves see it) makes a fork a few
//! plain stores, but needs a clock per worker and delays the first steal by a
//! heartbeat; the deque shape keeps the fork visible at once, reuses the
//! pool's sleep protocol unchanged, and keeps the steal-back race in one
//! small loom-checked place.
//!
//! Off a worker (a plain thread, a blocking closure, `block_on`), a join or
//! scope runs on the calling thread holding the pool's guest core (see
//! `guest`), which forks as a worker does. While another thread holds that
//! core, or for a map ([`Pool::run_on_worker`](crate::Pool::run_on_worker)),
//! it goes to the pool as one injected task that runs it on a worker, and
//! the caller sleeps until it is done; that path allocates the task, and if
//! the task is cancelled (the pool shut down), the caller runs the work
//! itself.
//!
//! # The waiting rule
//!
//! **A thread waiting for a stolen half runs only join work**: entries popped
//! from its own core's join deque and halves stolen from other workers' join
//! deques, never an async task (a task that blocked there would bury the join
//! under it; see the core's hand-off, which exists for the same reason).
//! Whenever it finds no join work it first moves the tasks that only it
//! could run (its core's LIFO slot and yielded task: a task woken by the
//! code that forked, or by join work run while waiting) to its local queue
//! and wakes a sleeper, so other workers can steal them. When it finds none
//! for a while it sleeps on the latch, with the wait hook released around
//! the sleep (as `block_on` does): a layer above that serializes code
//! (unirun's gil) lets the awaited half in meanwhile. User code on this
//! path (the hook) may panic: the panic is held until the awaited job is
//! done, then resumed, never unwinding past a job another thread may still
//! run. (A custom `Unpark` that panics aborts the process instead: see
//! [`Unpark`](crate::Unpark).)
//!
//! **Liveness.** The half it waits for was taken out of the deque by exactly
//! one thread (the `top` CAS), which runs it at once, catching its panic,
//! and sets the latch: the wait ends when that half's own work ends. That
//! work is join work, so its own waits end by the same argument, inductively
//! down the (finite) tree of forks: every wait is for a job taken by another
//! thread that is running it, never for a job queued behind the waiter, since
//! a waiter pops its own deque first. A half may also wait for an async
//! task (a `JoinHandle::join` that blocks, handing its core on): that task
//! is in a stealable queue, not in a slot only the waiter serves (the rule
//! above moved it there), so a worker not inside join work, or the thread
//! a blocked half handed its core to, runs it. Two more ways a half leaves
//! a deque:
//!
//! - Its owner's core moved to another thread (a task blocked in `block_on`
//!   inside `a`, handing the core on): the owner can no longer pop, and
//!   sleeps on the latch; the core's new holder runs entries it finds on its
//!   own deque (at the top of its loop, or while it waits in a join of its
//!   own), and thieves may steal them.
//! - The core is dropped (shutdown): every entry left is *returned*: a
//!   join half's latch is set with the closure still inside, and the owner
//!   runs it itself; a scope's spawned closure (nobody waits on it alone)
//!   runs on the thread dropping the core, its panic caught for the scope.
//!
//! So a join always finishes: a panic in either half is resumed only after
//! both ran.
//!
//! **Async tasks beside joins.** A worker inside join work does not serve
//! its async queue meanwhile; other workers steal from it when they look
//! for work, and a worker at the top of its loop prefers async tasks (its
//! own, the injector's, then stolen ones) over stealing join halves. So a
//! worker busy with async tasks is never pulled into a join, and async tasks
//! keep running there while a long join occupies the others. The limit: while
//! *every* worker is inside join work, queued async tasks wait until one of
//! them comes back to its loop (the end of the half it stole).
//!
//! The latch and the deque's steal-back race have loom models
//! (`loom_fork_join_*` in `loom_tests_fork_join.rs`).

mod deque;
pub(crate) mod guest;
mod job;
mod latch;
mod map;
mod scope;

use std::panic::{self, AssertUnwindSafe};

pub(crate) use self::deque::{deque, JobDeque, JobStealer};
pub(crate) use self::guest::GuestPark;
pub(crate) use self::job::{Fate, JobRef, StackJob};
pub(crate) use self::latch::Latch;
pub use self::map::map_indexed;
pub use self::scope::{scope, Scope};

use crate::context::{self, Context};
use crate::pool::Shared;
use crate::worker::Core;

/// Runs `a` and `b`, possibly in parallel, and returns both results.
///
/// On a worker thread of a [`Pool`](crate::Pool) (inside a task or another
/// join), `b` is offered to the pool's other workers while `a` runs on this
/// thread, and taken back if nobody took it: no allocation. Anywhere else
/// both run here, one after the other; [`Pool::join`](crate::Pool::join)
/// sends them to a pool instead.
///
/// If either closure panics, the other still runs to its end, then the panic
/// resumes here (`a`'s if both panicked).
///
/// # Examples
///
/// ```
/// fn fib(n: u64) -> u64 {
///     if n < 10 {
///         return (1..=n).fold((0, 1), |(a, b), _| (b, a + b)).0;
///     }
///     let (x, y) = unirun_core::join(|| fib(n - 1), || fib(n - 2));
///     x + y
/// }
///
/// let (pool, workers) = unirun_core::Pool::with_workers(2);
/// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
/// assert_eq!(pool.spawn(async { fib(20) }).join().unwrap(), 6765);
/// assert_eq!(fib(15), 610); // off a worker: sequential
/// pool.shutdown();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// ```
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    join_context(a, move |_| b())
}

/// Whether the calling thread holds a worker's core right now (runs a task
/// or join work of a pool), so that [`join`] and [`scope`] fork onto that
/// worker's pool.
///
/// # Examples
///
/// ```
/// assert!(!unirun_core::on_worker_core());
/// let (pool, workers) = unirun_core::Pool::with_workers(1);
/// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
/// assert!(pool.spawn(async { unirun_core::on_worker_core() }).join().unwrap());
/// pool.shutdown();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// ```
pub fn on_worker_core() -> bool {
    context::with_current(|cx| cx.is_some_and(|cx| is_own(cx) && cx.with_core(|_| ()).is_some()))
}

/// [`join`] if the calling thread holds a worker's core (where
/// [`on_worker_core`] is true, and not inside [`sequentially`]); otherwise
/// the closures come back untouched, for the caller to run elsewhere. One
/// look at the thread's worker instead of two, for a layer above that
/// sends joins off a worker somewhere else.
///
/// `b` is told whether it runs on another thread than the caller (stolen by
/// another worker, or left on a core that moved): the common case, `b`
/// popped back and run here, can skip whatever only another thread needs
/// (unirun enters the caller's scope there).
///
/// # Examples
///
/// ```
/// fn pair() -> Result<(u8, bool), ()> {
///     unirun_core::try_join_on_worker(|| 1, |moved| moved)
///         .map(|(one, moved)| (one, moved))
///         .map_err(|_closures| ())
/// }
/// // Off a worker: both closures come back unrun.
/// assert!(pair().is_err());
///
/// let (pool, workers) = unirun_core::Pool::with_workers(1);
/// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
/// // One worker: nobody steals `b`, so it ran here (`moved` is false).
/// assert_eq!(pool.spawn(async { pair() }).join().unwrap(), Ok((1, false)));
/// pool.shutdown();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// ```
#[inline]
pub fn try_join_on_worker<A, B, RA, RB>(a: A, b: B) -> Result<(RA, RB), (A, B)>
where
    A: FnOnce() -> RA + Send,
    B: FnOnce(bool) -> RB + Send,
    RA: Send,
    RB: Send,
{
    with_worker(|cx| match cx {
        Some(cx) => Ok(join_on_worker(cx, a, b)),
        None => Err((a, b)),
    })
}

/// [`join`], telling `b` whether it runs on another thread than the caller
/// (stolen, or left on a core that moved); adaptive splitting uses it.
pub(crate) fn join_context<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce(bool) -> RB + Send,
    RA: Send,
    RB: Send,
{
    context::with_current(|cx| match cx.filter(|cx| is_own(cx) && !in_sequential()) {
        Some(cx) => join_on_worker(cx, a, b),
        None => join_sequential(a, || b(false)),
    })
}

/// `a` then `b` on this thread, with the panic rule of a forked join: `b`
/// runs even if `a` panicked, then `a`'s panic (else `b`'s) resumes.
fn join_sequential<RA, RB>(a: impl FnOnce() -> RA, b: impl FnOnce() -> RB) -> (RA, RB) {
    let ra = panic::catch_unwind(AssertUnwindSafe(a));
    let rb = panic::catch_unwind(AssertUnwindSafe(b));
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(payload), _) | (Ok(_), Err(payload)) => panic::resume_unwind(payload),
    }
}

/// Wakes a sleeping worker to steal a half just pushed, if the idle word
/// says one sleeps and nobody searches. Unlike a task's push this takes no
/// fence: a sleeper that misses the push costs parallelism, not liveness,
/// since the forking thread pops the half back itself (and the next push
/// looks again).
#[inline]
pub(crate) fn offer(shared: &Shared) {
    if shared.idle.may_need_notify() {
        shared.notify_parked();
    }
}

/// Runs `f` with the calling thread's context if it holds that context's
/// core and forks there (not inside [`sequentially`]), `None` otherwise.
#[inline]
fn with_worker<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    context::with_current(|cx| {
        let cx = cx.filter(|cx| is_own(cx) && cx.with_core(|_| ()).is_some() && !in_sequential());
        f(cx)
    })
}

std::thread_local! {
    /// Inside [`sequentially`] on this thread.
    static SEQUENTIAL: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

#[inline]
fn in_sequential() -> bool {
    SEQUENTIAL.with(core::cell::Cell::get)
}

/// Runs `f` with fork-join turned off on this thread: every [`join`],
/// [`scope`] and [`map_indexed`] inside it runs its closures here, one after
/// the other, as off a worker (with the same panic rules), even on a
/// worker thread. For code whose closures must not run at the same instant
/// (unirun's `ThreadMode::Gil` scopes).
///
/// # Examples
///
/// ```
/// let (pool, workers) = unirun_core::Pool::with_workers(2);
/// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
/// let same = pool
///     .spawn(async {
///         unirun_core::sequentially(|| {
///             let here = std::thread::current().id();
///             let (a, b) = unirun_core::join(
///                 || std::thread::current().id(),
///                 || std::thread::current().id(),
///             );
///             a == here && b == here
///         })
///     })
///     .join()
///     .unwrap();
/// assert!(same);
/// pool.shutdown();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// ```
pub fn sequentially<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SEQUENTIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SEQUENTIAL.with(|s| s.replace(true)));
    f()
}

/// Whether `cx`'s pool was made in this process: in a forked child the
/// context a worker thread had at the fork is still there, but the pool's
/// other workers (and whatever locks they held) are not, so fork-join runs
/// sequentially there.
#[inline]
fn is_own(cx: &Context) -> bool {
    cx.shared().generation == crate::fork_generation()
}

/// The join on a worker thread (`cx` is its context; it may not hold a core
/// any more, if a task blocked and handed it on: then both run here).
fn join_on_worker<A, B, RA, RB>(cx: &Context, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce(bool) -> RB + Send,
    RA: Send,
    RB: Send,
{
    let shared = cx.shared();
    let job = StackJob::new(b);
    let job_ref = job.as_job_ref();
    let pushed = cx
        .with_core(|core| {
            shared.stats.join(core.index);
            core.join.push(job_ref).is_ok()
        })
        .unwrap_or(false);
    // Never unwind past a pushed job: its stack slot must outlive the deque
    // entry. The wake-up reaches a user `Unpark` (whose panic aborts, see
    // `Unpark`); any other panic there is held until the join finished,
    // like the halves' own.
    let mut offered = if pushed {
        panic::catch_unwind(AssertUnwindSafe(|| offer(shared)))
    } else {
        Ok(())
    };
    let ra = panic::catch_unwind(AssertUnwindSafe(a));
    let popped = if pushed {
        // `None` when this thread no longer holds a core (a task in `a`
        // blocked and handed it on): the entry stays for the core's holder.
        cx.with_core(|core| core.join.pop()).flatten()
    } else {
        None
    };
    let back = !pushed || popped == Some(job_ref);
    if !back {
        if let Some(other) = popped {
            // Not ours, so ours was stolen (thieves take the oldest first):
            // run this one, it is join work, then wait.
            // SAFETY: popped from the deque: this thread alone executes it.
            unsafe { other.execute(Fate::Run) };
        }
        hold(&mut offered, wait_until(&job.latch));
    }
    // SAFETY: the job was popped back (or never pushed), or its latch is
    // set: no other thread touches it any more.
    let rb = match unsafe { job.take_func() } {
        // Never left this thread, or was returned unrun.
        Some(b) => {
            if ra.is_ok() {
                Ok(b(!back))
            } else {
                panic::catch_unwind(AssertUnwindSafe(|| b(!back)))
            }
        }
        // SAFETY: as above; the latch is set.
        None => unsafe { job.take_result() }.expect("a run join half leaves its result"),
    };
    match (ra, rb, offered) {
        (Ok(ra), Ok(rb), Ok(())) => (ra, rb),
        (Err(payload), _, _) | (Ok(_), Err(payload), _) | (Ok(_), Ok(_), Err(payload)) => {
            panic::resume_unwind(payload)
        }
    }
}

/// A panic of user code that ran while a job was queued or awaited (the
/// wait hook): held until the job is done, then
/// resumed, since unwinding earlier would free a job another thread runs.
pub(crate) type Held = Result<(), std::boxed::Box<dyn core::any::Any + Send>>;

/// Waits for `latch` by the waiting rule (see the module docs): join work
/// only, then sleep. Returns the first panic of user code it ran on the way
/// (see [`Held`]); the caller resumes it once it is done with the job.
pub(crate) fn wait_until(latch: &Latch) -> Held {
    /// Rounds of finding no join work before the waiter sleeps (loom
    /// explores one).
    #[cfg(not(loom))]
    const SPINS: u32 = 64;
    #[cfg(loom)]
    const SPINS: u32 = 1;
    let mut held = Ok(());
    let mut idle_rounds = 0u32;
    while !latch.probe() {
        let found = with_worker(|cx| {
            let cx = cx?;
            cx.with_core(|core| core.join.pop().or_else(|| steal(core, cx.shared())))
                .flatten()
        });
        match found {
            Some(job) => {
                // SAFETY: taken out of a deque: this thread alone executes it.
                unsafe { job.execute(Fate::Run) };
                idle_rounds = 0;
            }
            None => {
                // Tasks only this thread could run (a task woken by the
                // one that forked, or by join work run here) go where the
                // other workers find them: the awaited half may wait for
                // one of them. The wake-up may call a user `Unpark` (whose
                // panic aborts), so it is caught all the same.
                let shared = panic::catch_unwind(AssertUnwindSafe(|| {
                    with_worker(|cx| {
                        if let Some(cx) = cx {
                            cx.with_core(|core| core.share_private_tasks(cx.shared()));
                        }
                    })
                }));
                hold(&mut held, shared);
                if idle_rounds < SPINS {
                    idle_rounds += 1;
                    #[cfg(not(loom))]
                    if idle_rounds % 16 == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    crate::sync::spin_loop();
                } else {
                    // A layer above (unirun's gil) lets go of what it holds
                    // while this thread sleeps: the awaited half may need it.
                    let mut waiting = crate::wait::Waiting::new();
                    hold(
                        &mut held,
                        panic::catch_unwind(AssertUnwindSafe(|| waiting.release())),
                    );
                    latch.sleep();
                    hold(
                        &mut held,
                        panic::catch_unwind(AssertUnwindSafe(|| waiting.reacquire())),
                    );
                }
            }
        }
    }
    held
}

/// Keeps the first panic in `held`.
fn hold(held: &mut Held, outcome: Held) {
    if held.is_ok() {
        *held = outcome;
    }
}

/// Takes a half from another worker's join deque, starting at a random one.
fn steal(core: &Core, shared: &Shared) -> Option<JobRef> {
    let stealers = &shared.join_stealers;
    let n = stealers.len();
    if n < 2 {
        return None;
    }
    let start = core.next_random() as usize % n;
    for i in 0..n {
        let victim = (start + i) % n;
        if victim == core.index {
            continue;
        }
        if let Some(job) = stealers[victim].steal() {
            shared.stats.stolen_join(core.index);
            return Some(job);
        }
    }
    None
}

/// For the run loop, once it found no async task: a half left on its own
/// deque (by a thread that lost this core), or one stolen from another
/// worker.
pub(crate) fn find_job(core: &Core, shared: &Shared) -> Option<JobRef> {
    core.join.pop().or_else(|| steal(core, shared))
}

/// Hands every entry of a core's deque back to its owner (the core is being
/// dropped: nobody will run them here).
pub(crate) fn return_all(deque: &JobDeque) {
    while let Some(job) = deque.pop() {
        // SAFETY: popped: this thread alone executes it.
        unsafe { job.execute(Fate::Return) };
    }
}

impl crate::Pool {
    /// [`join`] on this pool: on any pool's worker thread it forks there;
    /// elsewhere the calling thread borrows the pool's guest core and forks
    /// as a worker would (see `guest`), or, while another caller holds it,
    /// both closures run on one of this pool's workers, as one injected
    /// task (one allocation), while the caller sleeps. If the pool is shut
    /// down (or shuts down before the task starts), the caller runs both
    /// itself.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(2);
    /// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
    ///
    /// let data = vec![1u64, 2, 3, 4];
    /// let (left, right) = data.split_at(2);
    /// let (a, b) = pool.join(|| left.iter().sum::<u64>(), || right.iter().sum::<u64>());
    /// assert_eq!(a + b, 10);
    ///
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        self.in_worker(move || join(a, b))
    }

    /// Runs `op` holding one of this pool's cores and returns its result:
    /// here if the caller holds a worker's core already, or here on the
    /// guest core, else on a worker; see [`join`](Self::join) for the path
    /// off a worker.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(1);
    /// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
    /// assert!(pool.in_worker(unirun_core::on_worker_core));
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn in_worker<F, R>(&self, op: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        if on_worker_core() {
            return op();
        }
        match guest::run(&self.shared, op) {
            Ok(value) => value,
            Err(op) => self.run_on_worker(op),
        }
    }

    /// Runs `op` on one of this pool's workers and returns its result; `op`
    /// runs here only if the caller holds one of the pool's cores already
    /// (a worker's, or the guest core inside a join), or if the pool is
    /// shut down (or shuts down before the task starts).
    ///
    /// Unlike [`in_worker`](Self::in_worker), a caller from outside the
    /// pool never runs `op` itself (on the guest core): a parallel map
    /// goes this way, so that its output is allocated by a worker, as
    /// rayon's `collect` does. A caller that allocates and frees a large
    /// output and input on its own thread on every call makes the C
    /// allocator return and fault those pages in again each time (glibc's
    /// main heap trims above a threshold): measured at 20x the page faults
    /// and twice the time per item on the `par_map` bench row.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(1);
    /// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
    /// let here = std::thread::current().id();
    /// assert_ne!(pool.run_on_worker(|| std::thread::current().id()), here);
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn run_on_worker<F, R>(&self, op: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        if on_worker_core() {
            return op();
        }
        let job = StackJob::new(move |_| op());
        let injected = Injected(Some(job.as_job_ref()));
        // From the spawn until the latch is set the task holds a pointer to
        // `job`, on this stack: nothing may unwind out of this frame. The
        // spawn and the wait hook (user code) may panic (a user `Unpark`
        // in the spawn's wake-up aborts instead); such a panic is held
        // until the job is done. A spawn that panics before queueing drops
        // the task, which returns the job.
        let spawned = panic::catch_unwind(AssertUnwindSafe(|| {
            self.spawn(async move {
                let mut injected = injected;
                if let Some(job) = injected.0.take() {
                    // SAFETY: the task holds the only reference; the caller
                    // sleeps until the latch is set.
                    unsafe { job.execute(Fate::Run) };
                }
            })
            .detach();
        }));
        let mut waiting = crate::wait::Waiting::new();
        let released = panic::catch_unwind(AssertUnwindSafe(|| waiting.release()));
        job.latch.sleep();
        let reacquired = panic::catch_unwind(AssertUnwindSafe(|| waiting.reacquire()));
        // SAFETY: the latch is set: the job is this thread's again.
        let result = match unsafe { job.take_func() } {
            // The task was cancelled before it ran: run it here.
            Some(op) => panic::catch_unwind(AssertUnwindSafe(|| op(false))),
            // SAFETY: as above.
            None => unsafe { job.take_result() }.expect("a run job leaves its result"),
        };
        match (result, spawned.and(released).and(reacquired)) {
            (Ok(value), Ok(())) => value,
            (Err(payload), _) | (Ok(_), Err(payload)) => panic::resume_unwind(payload),
        }
    }
}

/// The injected task's hold on its job: executed when the task runs,
/// returned when the task is dropped unrun (cancelled).
struct Injected(Option<JobRef>);

impl Drop for Injected {
    fn drop(&mut self) {
        if let Some(job) = self.0.take() {
            // SAFETY: the task held the only reference and never ran it.
            unsafe { job.execute(Fate::Return) };
        }
    }
}
