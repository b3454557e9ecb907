//! Fork-join and parallel maps on unirun's workers, next to the async
//! tasks: [`join`], [`scope`], [`par_map`], [`par_for_each`] and the
//! [`Handle`]/[`Run`](crate::Run) forms.
//!
//! On a worker thread (inside a task, or inside join work) they fork onto
//! that worker's pool without allocating per join. Elsewhere a join or
//! scope runs on the calling thread as the target pool's *guest* (the
//! shared default's for the free functions): it forks there as a worker
//! would, and the pool's workers steal what it forks; while another caller
//! is the guest, or for a map, the whole call runs on the pool's workers
//! as one task while the caller waits. A scope whose backend has
//! no unirun workers (tokio, smol) or that runs in
//! [`ThreadMode::Gil`](crate::ThreadMode::Gil) runs the closures on the
//! caller, one after the other; so do the free functions called from a
//! poll or closure that holds a `Gil` scope's lock. The machinery and its waiting rule are
//! documented in `unirun_core`'s `fork_join` module.

mod source;

pub use unirun_core::Scope;

use self::source::Source;

use crate::Handle;

/// Runs `a` and `b`, in parallel when a worker is free, and returns both
/// results. Both closures may borrow from the caller's stack.
///
/// On a unirun worker thread `b` is offered to that pool's idle workers
/// while `a` runs here, and taken back if nobody took it (no allocation);
/// inside a [`Run`](crate::Run) scope's `block_on` or blocking closure the
/// join forks onto the scope's workers, anywhere else onto the shared
/// default pool's, with `a` on the calling thread (see the module docs).
///
/// Called inside a scope (its task, `block_on` or blocking closure), both
/// closures run inside it wherever they run: "here"
/// ([`Handle::current`], [`spawn`](crate::spawn)) is that scope in them,
/// as in the caller, and with `tokio-backend` they see the tokio context
/// the scope's tasks see (a `Flavor::Tokio` scope's runtime, a thread
/// pool's reactor: see [`crate::io`]), so `tokio::spawn`, timers and
/// sockets made in them reach the same runtime. Elsewhere they see what
/// the thread they run on sees.
///
/// # Panics
///
/// If either closure panics, the other still runs to its end, then the panic
/// resumes here (`a`'s if both did).
///
/// # Examples
///
/// ```
/// fn fib(n: u64) -> u64 {
///     if n < 12 {
///         return (1..=n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0;
///     }
///     let (a, b) = unirun::join(|| fib(n - 1), || fib(n - 2));
///     a + b
/// }
/// assert_eq!(fib(25), 75_025);
/// ```
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if crate::gil::holds_any() {
        return unirun_core::sequentially(|| unirun_core::join(a, b));
    }
    crate::scope::with_current_or_none(|here| {
        // On a worker this thread is inside `here` already, and so is `b`
        // when it runs here (popped back, the common case): only a `b`
        // that another thread runs enters the scope there, and the
        // scope's runtime context if the workers are not in it (a tokio
        // scope's `block_on` called in a pool's task, or a join nested in
        // a tokio scope's closures on the shared default's workers). The
        // scope outlives the join (see `with_current_or_none`), and the
        // join outlives both closures.
        let b = move |moved: bool| {
            let scope = here.filter(|_| moved);
            let _here = scope.map(crate::scope::ScopeState::enter_unlocked);
            let _context = scope.and_then(|scope| enter_context(scope, needs_context(scope)));
            b()
        };
        let (a, b) = match unirun_core::try_join_on_worker(a, b) {
            Ok(joined) => return joined,
            Err(closures) => closures,
        };
        if unirun_core::on_worker_core() {
            // A worker inside `sequentially`: in turn, here, as
            // `unirun_core::join` runs them there (this thread is inside
            // `here` already), without going through (or starting) a pool.
            return unirun_core::join(a, || b(false));
        }
        match here {
            None => crate::get_executor().join(a, || b(false)),
            Some(scope) => {
                let context = needs_context(scope);
                let a = || {
                    let _here = scope.enter_unlocked();
                    let _context = enter_context(scope, context);
                    a()
                };
                let b = || {
                    let _here = scope.enter_unlocked();
                    let _context = enter_context(scope, context);
                    b(false)
                };
                fork_off_worker(Handle::current(), |here| here.join(a, b))
            }
        }
    })
}

/// Runs `op` with a [`Scope`] whose spawned closures may borrow from the
/// caller's stack, and returns once `op` and all of them finished (like
/// `std::thread::scope`, on the pool's workers instead of new threads).
///
/// # Panics
///
/// After everything finished: with `op`'s panic, else with the first panic
/// of a spawned closure.
///
/// # Examples
///
/// ```
/// let mut totals = [0u64; 3];
/// let data = [1u64, 2, 3, 4, 5, 6];
/// unirun::scope(|s| {
///     for (total, part) in totals.iter_mut().zip(data.chunks(2)) {
///         s.spawn(move |_| *total = part.iter().sum());
///     }
/// });
/// assert_eq!(totals, [3, 7, 11]);
/// ```
pub fn scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R + Send,
    R: Send,
{
    if crate::gil::holds_any() {
        return unirun_core::sequentially(|| unirun_core::scope(op));
    }
    if unirun_core::on_worker_core() {
        return unirun_core::scope(op);
    }
    crate::get_executor().fork_scope(op)
}

/// Maps `f` over `input` (a slice, a `Vec`, or a range of integers) on the
/// workers and returns the results in input order.
///
/// Items are split adaptively: into about two chunks per worker, and
/// further only when a worker runs out of work and steals; a chunk runs its
/// items in a plain loop, with no lock or allocation per item. Runs where
/// [`join`] runs, and like `join`'s closures, `f` runs inside the caller's
/// scope (if any) wherever it runs.
///
/// # Panics
///
/// Every item runs even if some panic; then the panic of the lowest index
/// that panicked resumes here (the results are dropped).
///
/// # Examples
///
/// ```
/// let squares = unirun::par_map(0..5u64, |i| i * i);
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
///
/// let words = vec!["fork", "join"];
/// assert_eq!(unirun::par_map(&words, |w| w.len()), [4, 4]);
///
/// let caught = std::panic::catch_unwind(|| {
///     unirun::par_map(0..10u32, |i| if i == 3 || i == 7 { panic!("item {i}") } else { i })
/// });
/// assert_eq!(caught.unwrap_err().downcast_ref::<String>().unwrap(), "item 3");
/// ```
pub fn par_map<I, R, F>(input: I, f: F) -> Vec<R>
where
    I: ParallelInput,
    R: Send,
    F: Fn(I::Item) -> R + Sync + Send,
{
    if crate::gil::holds_any() {
        return unirun_core::sequentially(|| map_here(input, f));
    }
    crate::scope::with_current_or_none(|here| match here {
        None if unirun_core::on_worker_core() => map_here(input, f),
        None => crate::get_executor().par_map(input, f),
        Some(scope) => {
            let on_worker = unirun_core::on_worker_core();
            // On a worker too: items other workers take need the scope's
            // runtime context as much as `join`'s moved `b` (see there).
            let context = needs_context(scope);
            // As in `join`: the scope outlives the map and its items.
            let f = |item: I::Item| {
                let _here = scope.enter_unlocked();
                let _context = enter_context(scope, context);
                f(item)
            };
            if on_worker {
                map_here(input, f)
            } else {
                fork_off_worker(Handle::current(), |here| here.par_map(input, f))
            }
        }
    })
}

/// Runs `f` on every item of `input` in parallel; see [`par_map`] for the
/// splitting and the panic rule.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let sum = AtomicU64::new(0);
/// unirun::par_for_each(1..=100u64, |i| {
///     sum.fetch_add(i, Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 5050);
/// ```
pub fn par_for_each<I, F>(input: I, f: F)
where
    I: ParallelInput,
    F: Fn(I::Item) + Sync + Send,
{
    par_map(input, f);
}

/// The map itself, on the calling thread's worker (or sequentially).
fn map_here<I, R, F>(input: I, f: F) -> Vec<R>
where
    I: ParallelInput,
    R: Send,
    F: Fn(I::Item) -> R + Sync,
{
    let source = input.into_source();
    let len = source.len();
    // SAFETY: `map_indexed` calls its closure once for each index below
    // `len`.
    unirun_core::map_indexed(len, |i| f(unsafe { source.take(i) }))
}

/// Runs `fork` (the free [`join`] or [`par_map`] inside a scope, off a
/// worker) where it belongs: on the scope's own workers; on a `Gil` scope
/// itself (its closures run in turn); else (a scope without unirun
/// workers, such as a tokio or smol one) on the shared default's workers,
/// the closures still inside the scope and its runtime context (see
/// [`needs_context`]). In a task of a tokio runtime the
/// wait for them runs in `block_in_place`, so the runtime's worker is free
/// for the scope's tasks the closures may wait for; in a task of a
/// current-thread runtime, whose only thread this is, or in a `LocalSet`,
/// the closures run here in turn instead.
fn fork_off_worker<R>(current: Handle, fork: impl FnOnce(&Handle) -> R) -> R {
    let gil = current.scope().is_some_and(|scope| scope.gil.is_some());
    if gil || current.backend().core_pool().is_some() {
        return fork(&current);
    }
    #[cfg(feature = "tokio-backend")]
    if tokio::task::try_id().is_some() {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let drives = runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
                && !crate::io::entered_by_unirun();
            if drives {
                return fork(&current);
            }
            // tokio refuses `block_in_place` in a `LocalSet` (and in a task
            // of a current-thread runtime under unirun's reactor): this
            // thread runs the set's tasks, so the closures run here in
            // turn, as on a current-thread runtime.
            let mut fork = Some(fork);
            let forked = crate::entry::block_in_place(|| {
                let fork = fork.take().expect("the fork runs once");
                fork(&crate::get_executor())
            });
            return match forked {
                Some(output) => output,
                None => {
                    let fork = fork.take().expect("tokio refused before the fork ran");
                    fork(&current)
                }
            };
        }
    }
    fork(&crate::get_executor())
}

/// Whether fork-join closures called inside `scope` enter its runtime
/// context themselves where they may run outside it: a scope without
/// unirun workers (tokio, smol) forks onto workers that are not in its
/// context (the shared default's, see [`fork_off_worker`], or, when its
/// `block_on` runs in a pool's task, that pool's), and a `Gil` scope's
/// closures run on the caller (a blocking closure, which runs outside it).
/// A thread pool's workers are inside its reactor for their whole life,
/// and every pool's reactor is unirun's own runtime (see `crate::io`).
#[inline]
fn needs_context(scope: &crate::scope::ScopeState) -> bool {
    scope.gil.is_some() || scope.backend.core_pool().is_none()
}

/// Enters `scope`'s runtime context (a tokio scope's runtime, a thread
/// pool's reactor: what its tasks see) when `needed`, until the guard
/// drops.
#[inline]
fn enter_context(
    scope: &crate::scope::ScopeState,
    needed: bool,
) -> Option<crate::backend::BackendContext<'_>> {
    if needed {
        scope.backend.enter()
    } else {
        None
    }
}

impl Handle {
    /// The core pool fork-join runs on for this handle, if any: none for a
    /// backend without unirun workers, or a `Gil` scope (whose closures must
    /// not run at the same instant).
    fn fork_pool(&self) -> Option<&unirun_core::Pool> {
        if self.scope().is_some_and(|scope| scope.gil.is_some()) {
            return None;
        }
        self.backend().core_pool()
    }

    /// [`join`] on this handle's workers: on any unirun worker thread it
    /// forks there, elsewhere it forks onto this executor's workers from
    /// the calling thread (see the module docs). On tokio, smol or a `Gil`
    /// scope, `a` then `b` run on the caller. Either way the closures run
    /// inside the runtime context the handle's tasks see (with
    /// `tokio-backend`: a tokio scope's runtime, a thread pool's reactor).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// let (a, b) = run.handle().join(|| "left", || "right");
    /// assert_eq!((a, b), ("left", "right"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        match self.fork_pool() {
            Some(pool) => {
                let _context = self.guest_context();
                pool.join(a, b)
            }
            None => {
                let _context = self.backend().enter();
                unirun_core::sequentially(|| unirun_core::join(a, b))
            }
        }
    }

    /// The runtime context (a thread pool's reactor) for closures a join
    /// from off a worker runs on the calling thread, as the pool's guest
    /// (see the module docs): the pool's workers entered it when they
    /// started, so the closures see it wherever they run. Nothing on a
    /// worker, which is inside it already.
    fn guest_context(&self) -> Option<crate::backend::BackendContext<'_>> {
        if unirun_core::on_worker_core() {
            None
        } else {
            self.backend().enter()
        }
    }

    /// [`scope`] on this handle's workers (see [`join`](Self::join) for
    /// where it runs); public as [`Run::scope`](crate::Run::scope).
    pub(crate) fn fork_scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        match self.fork_pool() {
            Some(pool) => {
                let _context = self.guest_context();
                pool.scope(op)
            }
            None => {
                let _context = self.backend().enter();
                unirun_core::sequentially(|| unirun_core::scope(op))
            }
        }
    }

    /// [`par_map`] on this handle's workers (see [`join`](Self::join) for
    /// where it runs).
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// assert_eq!(run.handle().par_map(1..4u32, |i| i * 10), [10, 20, 30]);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn par_map<I, R, F>(&self, input: I, f: F) -> Vec<R>
    where
        I: ParallelInput,
        R: Send,
        F: Fn(I::Item) -> R + Sync + Send,
    {
        match self.fork_pool() {
            Some(pool) => pool.run_on_worker(move || map_here(input, f)),
            None => {
                let _context = self.backend().enter();
                unirun_core::sequentially(|| map_here(input, f))
            }
        }
    }
}

/// What [`par_map`] and [`par_for_each`] take: slices, `&Vec`s and
/// arrays (items by reference, `&T`), `Vec`s (items by value, `T`) and
/// ranges of integers (`Range` and `RangeInclusive` of every integer type,
/// items by value). `I::Item` is the type the closure is called with.
///
/// Sealed: the inputs are the ones listed (the map splits them by index).
pub trait ParallelInput: Send + source::IntoSource {}

impl<I: Send + source::IntoSource> ParallelInput for I {}
