//! Which members of a [`JoinSet`](super::JoinSet) were woken since the set
//! last polled them, so `join_next` polls only those.
//!
//! Each member polls its handle with a waker of its own ([`MemberWaker`]);
//! waking it queues the member's slot (once: a queued slot is not queued
//! again until the set takes it) and wakes the task that waits in
//! `join_next`. Everything is under one mutex: the set registers its waker
//! and takes a slot in one critical section, and a member's wake queues its
//! slot and takes the set's waker in one, so a wake either finds the slot
//! for the set to take or wakes the set that will look. The set clears a
//! slot's mark when it takes it, before polling the member, so a wake
//! during or after that poll queues it again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Wake, Waker};

/// The queue of woken slots, shared by a set and its members' wakers.
#[derive(Default)]
pub(super) struct Ready {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<usize>,
    /// Per slot: whether it is in `queue`.
    queued: Vec<bool>,
    /// The waker of the task waiting in `join_next`.
    waiter: Option<Waker>,
}

impl Ready {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new member in `slot`: queued, so its first poll comes from the set.
    pub(super) fn add(&self, slot: usize) {
        let mut state = self.lock();
        if state.queued.len() <= slot {
            state.queued.resize(slot + 1, false);
        }
        if !state.queued[slot] {
            state.queued[slot] = true;
            state.queue.push_back(slot);
        }
    }

    /// Queues `slot` and takes the waiter's waker, for the caller to wake
    /// after unlocking.
    fn wake(&self, slot: usize) -> Option<Waker> {
        let mut state = self.lock();
        if state.queued.get(slot).is_some_and(|q| !q) {
            state.queued[slot] = true;
            state.queue.push_back(slot);
        }
        state.waiter.take()
    }

    /// Takes the next woken slot; with `waiter`, first records it to be
    /// woken by the next member's wake-up.
    pub(super) fn take(&self, waiter: Option<&Waker>) -> Option<usize> {
        let mut state = self.lock();
        let old = match waiter {
            Some(w) if !state.waiter.as_ref().is_some_and(|o| o.will_wake(w)) => {
                state.waiter.replace(w.clone())
            }
            _ => None,
        };
        let slot = state.queue.pop_front();
        if let Some(slot) = slot {
            state.queued[slot] = false;
        }
        drop(state);
        // Dropped after unlocking: dropping a waker may run code.
        drop(old);
        slot
    }
}

/// The waker a member's handle is polled with.
pub(super) struct MemberWaker {
    /// Weak: a waker kept by a task after its set is gone wakes nothing.
    ready: Weak<Ready>,
    slot: usize,
}

impl MemberWaker {
    pub(super) fn waker(ready: &Arc<Ready>, slot: usize) -> Waker {
        Waker::from(Arc::new(MemberWaker {
            ready: Arc::downgrade(ready),
            slot,
        }))
    }
}

impl Wake for MemberWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(ready) = self.ready.upgrade() {
            if let Some(waiter) = ready.wake(self.slot) {
                waiter.wake();
            }
        }
    }
}
