//! The sleep/wake protocol: which worker to wake, and when.
//!
//! # Design
//!
//! Waking threads is the most expensive thing a scheduler does, so the pool
//! wakes **one sleeper at a time** and only when nobody is already looking for
//! work. Two counters, packed in one atomic word, drive it:
//!
//! - `searching`: workers that are out of local work and scanning the injector
//!   and other queues. At most half the workers may search at once, so a burst
//!   of idle workers does not hammer the same queues.
//! - `unparked`: workers not asleep.
//!
//! **Producer side.** After pushing work where others can take it (the
//! injector, or a local queue that grew past its LIFO slot), a thread issues a
//! `SeqCst` fence and reads the word. If some worker is searching, that worker
//! will find the work: nothing to do. If nobody is searching and someone
//! sleeps, it pops one sleeper, counts it as unparked *and* searching, and
//! unparks it.
//!
//! **Consumer side.** A worker that runs dry becomes a searcher (if the cap
//! allows), steals, then checks the injector. When a searcher finds work and
//! it was the *last* searcher, it wakes one more sleeper before running the
//! task: the work it found may not be the only work, and this chains wake-ups
//! one at a time instead of waking everyone. A worker that finds nothing
//! parks: under the sleeper lock it decrements `unparked` (and `searching`)
//! and pushes itself on the sleeper list. If that leaves no searcher, it
//! then re-checks every queue once more and wakes a sleeper if it finds work.
//!
//! **Why no wake-up is lost.** Both sides have the store-buffering shape:
//! the producer stores its work, then loads the idle state; a worker going to
//! sleep updates the idle state, then loads the queues. The memory
//! model lets both loads miss the other side's store unless *both* sides put
//! a `SeqCst` fence between their store and their load (an `Acquire` load
//! after a `SeqCst` RMW is not enough: the RMW orders nothing after it for
//! loads of other locations). So:
//!
//! - a producer pushing to the injector (or waking the next searcher) issues
//!   `fence(SeqCst)` before reading the word (`Idle::worker_to_notify`);
//! - a worker pushing to its *own* local queue issues
//!   `barrier::store_load`, then reads the word
//!   (`Idle::may_need_notify`) and runs the fenced path only if nobody
//!   searches and someone sleeps;
//! - a worker parking updates the word with an RMW; if that leaves no
//!   searcher, it issues `barrier::store_load` and then re-checks every
//!   queue.
//!
//! `barrier::store_load` is a `SeqCst` fence (see `barrier` for why not
//! an asymmetric pair). With a fence on each side, the two fences are ordered
//! in the single total order `S`: if the producer's fence comes first, the
//! parking worker's re-check sees the work and it wakes a sleeper (or does not
//! sleep); if the parking worker's fence comes first, the producer's read sees
//! the worker parked and not searching, and it wakes a sleeper.
//!
//! A worker whose RMW leaves searchers behind skips the re-check: each of
//! them later either parks (and the last one re-checks) or finds work and,
//! as the last searcher, runs the fenced wake-up; their RMWs come after ours
//! in the word's modification order, so they see us asleep. Whether to
//! re-check must not depend on *having been* a searcher: a worker refused
//! the search (half the workers searching) can reach its RMW after the last
//! searcher found work and its wake-up looked for sleepers, and then nobody
//! would look at the queues again (the loom model
//! `idle_local_push_vs_last_searcher` found exactly that). The owner of a local queue is *not* a safety
//! net: it may block in its current poll (a synchronous wait, a long loop)
//! with work queued, so the local path must wake a sleeper just like the
//! injector path. The loom models `idle_no_lost_wakeup*` (remote producer)
//! and `idle_local_push_vs_last_searcher` (the real run loop: a task pushes
//! to its own worker's queue and blocks its thread while the other worker
//! goes to sleep) check this.
//!
//! A worker woken by an `unpark` that did not come from this protocol (the
//! pool shutting down) takes itself off the sleeper list with
//! `Idle::unpark_worker_by_id`; if it is no longer there, a producer already
//! popped it and counted it as searching. A worker never runs a task while it
//! is on the sleeper list or counted as searching without knowing it (a
//! task that blocks hands its worker on instead of driving the pool from
//! inside a poll), so no worker is left counted as a phantom searcher.

use alloc::vec::Vec;

use crate::sync::{AtomicUsize, Ordering, SpinLock};
use crate::PoolError;

/// Most workers a pool may have: the searching count must fit its 16 bits.
pub(crate) const MAX_WORKERS: usize = SEARCH_MASK - 1;

/// Bits of the packed word that count searching workers.
const SEARCH_MASK: usize = (1 << 16) - 1;
/// One unparked worker, in the packed word.
const UNPARK_ONE: usize = 1 << 16;

pub(crate) struct Idle {
    /// `unparked << 16 | searching`.
    state: AtomicUsize,
    num_workers: usize,
    /// Ids of the parked workers. Every push/pop happens together with the
    /// matching change of `unparked`, under this lock.
    sleepers: SpinLock<Vec<usize>>,
}

fn searching(state: usize) -> usize {
    state & SEARCH_MASK
}

fn unparked(state: usize) -> usize {
    state >> 16
}

impl Idle {
    /// The state of `num_workers` running workers; an error naming the
    /// setting when the count is 0 or above `MAX_WORKERS`.
    pub(crate) fn new(num_workers: usize) -> Result<Self, PoolError> {
        if num_workers == 0 || num_workers > MAX_WORKERS {
            return Err(PoolError::workers(num_workers));
        }
        Ok(Self {
            state: AtomicUsize::new(num_workers * UNPARK_ONE),
            num_workers,
            sleepers: SpinLock::new(Vec::with_capacity(num_workers)),
        })
    }

    /// Called after work was pushed somewhere others can take it: returns the
    /// worker to unpark, if one should be.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        if !self.should_notify() {
            return None;
        }
        self.sleepers.with(|sleepers| {
            // Re-check under the lock: another producer may have woken someone.
            if !self.should_notify() {
                return None;
            }
            let worker = sleepers.pop()?;
            // The woken worker starts out searching.
            self.state.fetch_add(UNPARK_ONE + 1, Ordering::SeqCst);
            Some(worker)
        })
    }

    fn should_notify(&self) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        searching(state) == 0 && unparked(state) < self.num_workers
    }

    /// Could anyone need waking? Called by a worker after pushing to its own
    /// queue and issuing `barrier::store_load`; the fence, not
    /// this load, orders it against a parking worker (see the module docs).
    pub(crate) fn may_need_notify(&self) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        searching(state) == 0 && unparked(state) < self.num_workers
    }

    /// A worker out of local work asks to search; refused when half the
    /// workers already do.
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        if 2 * searching(state) >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// A searching worker found work; returns whether it was the last
    /// searcher (then it must wake another worker).
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(searching(prev) > 0);
        searching(prev) == 1
    }

    /// A worker goes to sleep; returns whether no searcher is left once it
    /// sleeps (it was the last one, or the searchers it counted on finished
    /// meanwhile): then it must issue `barrier::store_load` and re-check the
    /// queues before sleeping.
    pub(crate) fn transition_worker_to_parked(&self, worker: usize, is_searching: bool) -> bool {
        self.sleepers.with(|sleepers| {
            let dec = UNPARK_ONE + usize::from(is_searching);
            let prev = self.state.fetch_sub(dec, Ordering::SeqCst);
            sleepers.push(worker);
            searching(prev) == usize::from(is_searching)
        })
    }

    /// Takes `worker` off the sleeper list if it is still there, counting it as
    /// unparked (not searching). Returns false if a producer already popped it.
    pub(crate) fn unpark_worker_by_id(&self, worker: usize) -> bool {
        self.sleepers.with(|sleepers| {
            let Some(index) = sleepers.iter().position(|&id| id == worker) else {
                return false;
            };
            sleepers.swap_remove(index);
            self.state.fetch_add(UNPARK_ONE, Ordering::SeqCst);
            true
        })
    }

    /// A thread outside the pool borrowed its guest core (see
    /// `fork_join::guest`): it counts as one more awake worker, so the work
    /// it forks wakes at most `num_workers - 1` sleepers and the machine
    /// runs as many threads as the pool has workers.
    #[cfg(feature = "std")]
    pub(crate) fn guest_arrives(&self) {
        self.state.fetch_add(UNPARK_ONE, Ordering::SeqCst);
    }

    /// The guest stops counting as awake (it returns its core, or blocks).
    /// A producer may have skipped a wake-up because it counted the guest:
    /// like a worker going to sleep, the caller then issues
    /// `barrier::store_load` and re-checks the queues.
    #[cfg(feature = "std")]
    pub(crate) fn guest_leaves(&self) {
        self.state.fetch_sub(UNPARK_ONE, Ordering::SeqCst);
    }

    /// Workers that are not parked, and those of them searching for work
    /// (a snapshot, for metrics).
    pub(crate) fn awake(&self) -> (usize, usize) {
        let state = self.state.load(Ordering::Acquire);
        (unparked(state), searching(state))
    }

    /// Whether `worker` is on the sleeper list.
    pub(crate) fn is_parked(&self, worker: usize) -> bool {
        self.sleepers.with(|sleepers| sleepers.contains(&worker))
    }
}
