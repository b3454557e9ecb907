//! Exact, always-on counters: what happened to the tasks of a [`TaskSet`]
//! ([`TaskCounts`]) and what a [`Pool`]'s workers did ([`PoolStats`]).
//!
//! # Where the counts live
//!
//! A task is counted once, when it ends, by how it ended; the tasks still
//! running are the set's `live` count (which the set keeps anyway), so
//! `spawned` is the sum of the two and the spawn path counts nothing.
//!
//! Nothing here touches a cache line that two workers share on the poll
//! path. Each counter is split into shards, one cache-line pair each,
//! summed when read:
//!
//! - **Worker shards**, one per worker of the pool a set is
//!   [bound](TaskSet::for_pool) to. Shard `i` is written only by the thread
//!   that holds worker `i`'s core at that moment (a core is a `Box` held by
//!   exactly one thread; see [`worker`](crate::worker)), so an increment is
//!   a plain load and store (`Release`), no read-modify-write.
//! - **Thread stripes**, for everything else: cancellations by a thread
//!   outside the pool or between tasks or one whose task blocked and
//!   handed its core on, and every count of a set bound to no pool (tokio,
//!   smol and blocking-lane threads). These may have several writers, so
//!   they use `fetch_add`; each thread picks a stripe once (round robin) so
//!   threads rarely share one.
//!
//! # Exactness
//!
//! Every increment is a `Release` write and every read an `Acquire` load,
//! and each count is written before the task leaves its set (a `SeqCst`
//! decrement of the set's `live` count, which a snapshot reads first) and
//! before its outcome is published: so a reader that learned that tasks
//! ended (their `JoinHandle`s resolved, [`TaskSet::wait_empty`] returned,
//! or `live` read 0) sees their counts, and once every task has ended `live` is 0 and `spawned` is
//! exactly the sum of the outcomes. While tasks end, a snapshot (the
//! outcomes, then `live`) may miss the very latest or count one that is
//! ending both as ended and as live; never more ended tasks than spawned.

use alloc::boxed::Box;
use core::fmt;

use crate::cache_padded::CachePadded;
use crate::sync::{AtomicUsize, Ordering};
use crate::TaskSet;

/// How many thread stripes a set has (a power of two).
const STRIPES: usize = 8;

/// One shard of a [`TaskStats`].
#[derive(Default)]
struct TaskShard {
    completed: AtomicUsize,
    panicked: AtomicUsize,
    cancelled: AtomicUsize,
}

/// How a counted task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its future returned a value.
    Completed,
    /// Its future (or the future's destructor) panicked.
    Panicked,
    /// It was dropped before finishing: aborted, or its set was closed, or
    /// its executor shut down.
    Cancelled,
}

impl Outcome {
    /// How a task that failed with `err` ended: stopped from outside
    /// (cancelled, or killed at its deadline) is a cancellation; failed on
    /// its own (a panic, a crashed child process, a broken pipe to it) is
    /// counted with the panics.
    #[inline]
    pub(crate) fn of_error(err: &crate::JoinError) -> Self {
        if err.is_cancelled() || err.is_timeout() {
            Outcome::Cancelled
        } else {
            Outcome::Panicked
        }
    }
}

/// The sharded task counters of one [`TaskSet`] (see the module docs).
pub(crate) struct TaskStats {
    /// The pool whose workers own `workers` (its `Shared`'s address), or 0.
    owner: usize,
    workers: Box<[CachePadded<TaskShard>]>,
    stripes: Box<[CachePadded<TaskShard>]>,
}

impl TaskStats {
    /// Counters with one worker shard per worker of the pool at `owner`
    /// (`Shared`'s address; 0 and `workers == 0` for none).
    pub(crate) fn new(owner: usize, workers: usize) -> Self {
        Self {
            owner,
            workers: (0..workers).map(|_| CachePadded::default()).collect(),
            stripes: (0..STRIPES).map(|_| CachePadded::default()).collect(),
        }
    }

    /// Counts a task of the set ending.
    #[inline(always)]
    pub(crate) fn ended(&self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => self.bump(|s| &s.completed),
            Outcome::Panicked => self.bump(|s| &s.panicked),
            Outcome::Cancelled => self.bump(|s| &s.cancelled),
        }
    }

    /// Moves a task counted as completed to `outcome`: for a task whose
    /// value is a `Result` of its own that turned out to be a panic or a
    /// cancellation (a fallible blocking task). Called on the thread, and
    /// in the same poll, that counted it completed, so it writes the same
    /// shard; the completed count drops first, so a snapshot taken in
    /// between shows one ended task too few, never one too many.
    pub(crate) fn reclassify(&self, outcome: Outcome) {
        match outcome {
            Outcome::Completed => {}
            Outcome::Panicked => {
                self.add(|s| &s.completed, usize::MAX);
                self.add(|s| &s.panicked, 1);
            }
            Outcome::Cancelled => {
                self.add(|s| &s.completed, usize::MAX);
                self.add(|s| &s.cancelled, 1);
            }
        }
    }

    #[inline(always)]
    fn bump(&self, counter: impl Fn(&TaskShard) -> &AtomicUsize) {
        self.add(counter, 1);
    }

    /// Adds `n` (wrapping: `usize::MAX` subtracts one) to this thread's
    /// shard of `counter`.
    #[inline(always)]
    fn add(&self, counter: impl Fn(&TaskShard) -> &AtomicUsize, n: usize) {
        if self.owner != 0 {
            // `Some(i)` only while this thread holds core `i` of the owner
            // pool, which makes it the one writer of worker shard `i` until
            // this function returns (it runs no foreign code).
            if let Some(shard) = held_index(self.owner).and_then(|index| self.workers.get(index)) {
                let counter = counter(&shard.0);
                let value = counter.load(Ordering::Relaxed).wrapping_add(n);
                counter.store(value, Ordering::Release);
                return;
            }
        }
        counter(&self.stripes[stripe()].0).fetch_add(n, Ordering::Release);
    }

    /// Sums the shards, then adds the set's `live` tasks (read after
    /// them; see the module docs).
    pub(crate) fn snapshot(&self, live: impl Fn() -> usize) -> TaskCounts {
        // A first read of `live` (a `SeqCst` load of the counter every
        // member decrements after it was counted) synchronizes with the
        // members that left: once it reads 0, every count is visible here,
        // however the caller learned that the tasks ended.
        live();
        let shards = || self.workers.iter().chain(self.stripes.iter()).map(|s| &s.0);
        // Wrapping: a reclassified task may leave one shard at -1.
        let sum = |counter: fn(&TaskShard) -> &AtomicUsize| {
            shards().fold(0usize, |total, shard| {
                total.wrapping_add(counter(shard).load(Ordering::Acquire))
            }) as u64
        };
        let completed = sum(|s| &s.completed);
        let panicked = sum(|s| &s.panicked);
        let cancelled = sum(|s| &s.cancelled);
        let live = live() as u64;
        TaskCounts {
            spawned: completed + panicked + cancelled + live,
            live,
            completed,
            panicked,
            cancelled,
        }
    }
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    /// Which core (pool `Shared` address, worker index) this thread holds:
    /// set by the run loop for as long as it runs, cleared when a blocking
    /// task hands the core to another thread. Only the thread holding core
    /// `i` has `(owner, i)` here, which makes it the one writer of worker
    /// shard `i` of every set bound to `owner`. `(0, 0)`: none.
    static HELD: core::cell::Cell<(usize, usize)> = const { core::cell::Cell::new((0, 0)) };
}

// Loom runs its threads on one OS thread: its own thread-locals keep them
// apart.
#[cfg(all(feature = "std", loom))]
loom::thread_local! {
    static HELD: core::cell::Cell<(usize, usize)> = core::cell::Cell::new((0, 0));
}

/// The worker index this thread holds in the pool at `owner`, if any.
#[cfg(feature = "std")]
#[inline]
fn held_index(owner: usize) -> Option<usize> {
    HELD.try_with(|held| {
        let (pool, index) = held.get();
        (pool == owner).then_some(index)
    })
    .ok()
    .flatten()
}

/// Without thread-locals every count goes to the stripes.
#[cfg(not(feature = "std"))]
#[inline]
fn held_index(_owner: usize) -> Option<usize> {
    None
}

/// Marks this thread as holding a core while the run loop runs it.
pub(crate) struct Held {
    #[cfg(feature = "std")]
    previous: (usize, usize),
}

impl Held {
    #[cfg(feature = "std")]
    pub(crate) fn new(shared: &alloc::sync::Arc<crate::pool::Shared>, index: usize) -> Self {
        let held = (alloc::sync::Arc::as_ptr(shared) as usize, index);
        Held {
            previous: HELD.with(|h| h.replace(held)),
        }
    }

    #[cfg(not(feature = "std"))]
    pub(crate) fn new(_shared: &alloc::sync::Arc<crate::pool::Shared>, _index: usize) -> Self {
        Held {}
    }
}

#[cfg(feature = "std")]
impl Drop for Held {
    fn drop(&mut self) {
        let _ = HELD.try_with(|h| h.set(self.previous));
    }
}

/// The calling thread gives its core away (a hand-off); returns what it
/// held, for [`hold_core`] if the hand-off fails.
#[cfg(feature = "std")]
pub(crate) fn release_core() -> (usize, usize) {
    HELD.with(|h| h.replace((0, 0)))
}

/// The hand-off failed: the calling thread holds `held` again.
#[cfg(feature = "std")]
pub(crate) fn hold_core(held: (usize, usize)) {
    HELD.with(|h| h.set(held));
}

/// This thread's stripe: picked round robin on first use.
#[cfg(all(feature = "std", not(loom)))]
#[inline]
fn stripe() -> usize {
    use core::cell::Cell;
    static NEXT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    std::thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE
        .try_with(|s| {
            let mut stripe = s.get();
            if stripe == usize::MAX {
                stripe = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed) % STRIPES;
                s.set(stripe);
            }
            stripe
        })
        .unwrap_or(0)
}

/// Without thread-locals (or under loom, whose threads share one OS
/// thread) every thread uses the first stripe: still exact, `fetch_add`.
#[cfg(any(not(feature = "std"), loom))]
#[inline]
fn stripe() -> usize {
    0
}

/// What happened to the tasks of a [`TaskSet`] so far: a snapshot from
/// [`TaskSet::counts`].
///
/// Counts are exact: once every task spawned into the set has ended,
/// `spawned() == completed() + panicked() + cancelled()` and `live() == 0`.
/// While tasks end, a snapshot may miss the very latest outcome or count a
/// task that is ending at that instant both as ended and as live.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{TaskSet, TickExecutor};
///
/// let ex = TickExecutor::new();
/// let set = Arc::new(TaskSet::new());
/// let ok = ex.spawn_in(&set, async { 1 });
/// let boom = ex.spawn_in(&set, async { panic!("boom") });
/// let stuck = ex.spawn_in(&set, std::future::pending::<()>());
/// ex.run_until_stalled();
/// stuck.abort();
/// ex.run_until_stalled();
/// # drop((ok, boom));
///
/// let counts = set.counts();
/// assert_eq!(counts.spawned(), 3);
/// assert_eq!(counts.completed(), 1);
/// assert_eq!(counts.panicked(), 1);
/// assert_eq!(counts.cancelled(), 1);
/// assert_eq!(counts.live(), 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskCounts {
    spawned: u64,
    live: u64,
    completed: u64,
    panicked: u64,
    cancelled: u64,
}

impl TaskCounts {
    /// Tasks spawned into the set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_core::TaskSet::new().counts().spawned(), 0);
    /// ```
    pub fn spawned(&self) -> u64 {
        self.spawned
    }

    /// Tasks whose future returned a value.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_core::TaskSet::new().counts().completed(), 0);
    /// ```
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Tasks whose future (or its destructor) panicked, and fallible
    /// blocking tasks that failed on their own (a crashed child process).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_core::TaskSet::new().counts().panicked(), 0);
    /// ```
    pub fn panicked(&self) -> u64 {
        self.panicked
    }

    /// Tasks dropped before they finished: aborted, cancelled by closing
    /// the set, or by their executor's shutdown; and fallible blocking
    /// tasks stopped at their deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_core::TaskSet::new().counts().cancelled(), 0);
    /// ```
    pub fn cancelled(&self) -> u64 {
        self.cancelled
    }

    /// Tasks spawned and not ended yet.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_core::TaskSet::new().counts().live(), 0);
    /// ```
    pub fn live(&self) -> u64 {
        self.live
    }
}

/// The per-worker counters of a pool: steals and parks, each worker's on
/// its own cache-line pair, written only by the thread holding that
/// worker's core (plain load and store).
pub(crate) struct WorkerStats {
    workers: Box<[CachePadded<WorkerShard>]>,
}

#[derive(Default)]
struct WorkerShard {
    steals: AtomicUsize,
    parks: AtomicUsize,
    joins: AtomicUsize,
    stolen_joins: AtomicUsize,
}

impl WorkerStats {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            workers: (0..workers).map(|_| CachePadded::default()).collect(),
        }
    }

    /// Worker `index` stole a batch. Only the holder of core `index` calls it.
    #[inline]
    pub(crate) fn steal(&self, index: usize) {
        bump_owned(&self.workers[index].0.steals);
    }

    /// Worker `index` went to sleep. Only the holder of core `index` calls it.
    #[inline]
    pub(crate) fn park(&self, index: usize) {
        bump_owned(&self.workers[index].0.parks);
    }

    /// Worker `index` forked a join. Only the holder of core `index` calls it.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn join(&self, index: usize) {
        bump_owned(&self.workers[index].0.joins);
    }

    /// Worker `index` stole a join half. Only the holder of core `index`
    /// calls it.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn stolen_join(&self, index: usize) {
        bump_owned(&self.workers[index].0.stolen_joins);
    }

    fn sum(&self, counter: fn(&WorkerShard) -> &AtomicUsize) -> u64 {
        self.workers
            .iter()
            .map(|w| counter(&w.0).load(Ordering::Acquire) as u64)
            .sum()
    }
}

/// An increment by the counter's only writer.
#[inline]
fn bump_owned(counter: &AtomicUsize) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// A snapshot of a [`Pool`](crate::Pool)'s scheduler, from
/// [`Pool::stats`](crate::Pool::stats).
///
/// # Examples
///
/// ```
/// let (pool, workers) = unirun_core::Pool::with_workers(2);
/// let stats = pool.stats();
/// assert_eq!(stats.workers(), 2);
/// assert_eq!(stats.queued(), 0);
/// assert_eq!(stats.steals(), 0);
/// assert_eq!(stats.parks(), 0);
/// # drop(workers);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    workers: usize,
    busy: usize,
    queued: usize,
    steals: u64,
    parks: u64,
    joins: u64,
    stolen_joins: u64,
}

impl PoolStats {
    /// Worker count.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(3);
    /// assert_eq!(pool.stats().workers(), 3);
    /// ```
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Workers awake and not searching for work: running a task (or about
    /// to look for the next one, or to go to sleep).
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(2);
    /// assert!(pool.stats().busy_workers() <= 2);
    /// ```
    pub fn busy_workers(&self) -> usize {
        self.busy
    }

    /// Tasks waiting to run: in the injector and in the workers' local
    /// queues (not counting each worker's one LIFO slot).
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(1);
    /// let _task = pool.spawn(async {}); // no worker runs: it waits
    /// assert_eq!(pool.stats().queued(), 1);
    /// ```
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Batches stolen from another worker's queue, all workers together.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(1);
    /// assert_eq!(pool.stats().steals(), 0);
    /// ```
    pub fn steals(&self) -> u64 {
        self.steals
    }

    /// Times a worker found nothing to do and went to sleep.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(1);
    /// assert_eq!(pool.stats().parks(), 0);
    /// ```
    pub fn parks(&self) -> u64 {
        self.parks
    }

    /// Joins forked on a worker (each `join` there, whether or not its
    /// second half was stolen), all workers together.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(1);
    /// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
    /// pool.join(|| 1, || 2);
    /// assert_eq!(pool.stats().joins(), 1);
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn joins(&self) -> u64 {
        self.joins
    }

    /// Join halves another worker stole and ran, all workers together.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(1);
    /// assert_eq!(pool.stats().stolen_joins(), 0);
    /// ```
    pub fn stolen_joins(&self) -> u64 {
        self.stolen_joins
    }
}

impl crate::pool::Shared {
    /// Reads the pool's counters and queue lengths.
    pub(crate) fn stats(&self) -> PoolStats {
        let queued = self.injector.len() + self.stealers.iter().map(|s| s.len()).sum::<usize>();
        let (awake, searching) = self.idle.awake();
        // A working guest counts as awake (see `fork_join::guest`): it is
        // not one of the workers.
        #[cfg(feature = "std")]
        let awake = awake.saturating_sub(usize::from(
            self.guest_counted.load(crate::sync::Ordering::Relaxed),
        ));
        PoolStats {
            workers: self.workers,
            busy: awake.saturating_sub(searching),
            queued,
            steals: self.stats.sum(|w| &w.steals),
            parks: self.stats.sum(|w| &w.parks),
            joins: self.stats.sum(|w| &w.joins),
            stolen_joins: self.stats.sum(|w| &w.stolen_joins),
        }
    }
}

impl TaskSet {
    /// An empty, open set whose task counters have one shard per worker
    /// of `pool` (see [`counts`](Self::counts)): spawns and outcomes on
    /// those workers touch no cache line another worker writes. A set from
    /// [`new`](Self::new) counts as exactly, through shared stripes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{Pool, TaskSet};
    ///
    /// let (pool, workers) = Pool::with_workers(2);
    /// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
    /// let set = Arc::new(TaskSet::for_pool(&pool));
    /// let tasks: Vec<_> = (0..10).map(|i| pool.spawn_in(&set, async move { i })).collect();
    /// for task in tasks {
    ///     task.join().unwrap();
    /// }
    /// assert_eq!(set.counts().completed(), 10);
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn for_pool(pool: &crate::Pool) -> Self {
        Self::with_stats(TaskStats::new(
            alloc::sync::Arc::as_ptr(&pool.shared) as usize,
            pool.num_workers(),
        ))
    }

    /// What happened to this set's tasks so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// let task = ex.spawn_in(&set, async { 1 });
    /// assert_eq!(set.counts().live(), 1);
    /// ex.run_until_stalled();
    /// assert_eq!(set.counts().completed(), 1);
    /// # drop(task);
    /// ```
    pub fn counts(&self) -> TaskCounts {
        self.stats.snapshot(|| self.len())
    }
}

impl fmt::Debug for TaskStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStats").finish_non_exhaustive()
    }
}
