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
//! and pushes itself on the sleeper list. If it was the last searcher it then
//! re-checks every queue once more and wakes a sleeper if it finds work.
//!
//! **Why no wake-up is lost.** A producer pushes, fences, then reads the
//! counters; a parking worker updates the counters with a `SeqCst` RMW, then
//! re-checks the queues. By the fences, either the producer sees the worker
//! still counted as searching (and the worker's re-check sees the work), or
//! the producer sees no searcher and wakes a sleeper. A worker that parks
//! without being a searcher does so only while others search, and the last of
//! those performs the re-check. The loom model `idle_no_lost_wakeup` checks
//! this with two workers and a remote producer.
//!
//! **Local pushes take a shortcut.** A worker pushing to its own local queue
//! first reads the word without a fence and skips the protocol when it shows
//! nobody asleep (the common case under load: every yield and spawn of a busy
//! worker would otherwise pay a full fence). A stale read can only delay
//! *parallelism*, never lose a task: the owner never parks with a non-empty
//! local queue, so it runs that work itself. Pushes to the injector, which
//! no owner will drain, always take the fenced path.
//!
//! A worker woken by an `unpark` that did not come from this protocol (the
//! future it is blocking on became ready) takes itself off the sleeper list
//! with `Idle::unpark_worker_by_id`; if it is no longer there, a producer
//! already popped it and counted it as searching, and it behaves as a searcher.

use alloc::vec::Vec;

use crate::sync::{AtomicUsize, Ordering, SpinLock};

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
    pub(crate) fn new(num_workers: usize) -> Self {
        assert!(num_workers < SEARCH_MASK, "too many workers");
        Self {
            state: AtomicUsize::new(num_workers * UNPARK_ONE),
            num_workers,
            sleepers: SpinLock::new(Vec::with_capacity(num_workers)),
        }
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

    /// A cheap, unfenced look: could anyone need waking? When this says no,
    /// a worker pushing to its *own* queue may skip the fenced protocol (see
    /// the module docs on local pushes).
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

    /// A worker goes to sleep; returns whether it was the last searcher (then
    /// it must re-check the queues before sleeping).
    pub(crate) fn transition_worker_to_parked(&self, worker: usize, is_searching: bool) -> bool {
        self.sleepers.with(|sleepers| {
            let dec = UNPARK_ONE + usize::from(is_searching);
            let prev = self.state.fetch_sub(dec, Ordering::SeqCst);
            sleepers.push(worker);
            is_searching && searching(prev) == 1
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

    /// Whether `worker` is on the sleeper list.
    pub(crate) fn is_parked(&self, worker: usize) -> bool {
        self.sleepers.with(|sleepers| sleepers.contains(&worker))
    }
}
