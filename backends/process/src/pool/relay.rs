//! [`Relay`]: the waker an awaited call hands its reader task, so the reply
//! watcher can hold the wake-ups of the tasks it completes until it has
//! run every reader whose reply is there (see `replies`).
//!
//! # Why
//!
//! The watcher completes calls one reply at a time, and each completion
//! wakes the task awaiting it, on an executor thread that is usually
//! parked: one cross-thread wake-up (and context switch) per call, which
//! competes for the CPUs with the workers and the watcher itself. Held
//! while the watcher still has replies to read, the wake-ups of a busy
//! stretch go out together when it is about to wait, and the executor's
//! threads run those tasks in one turn.
//!
//! # Liveness
//!
//! Wakes are held only on a thread that called [`hold`] (the watcher,
//! from its start), and only until that thread calls [`release`], which it
//! does before each blocking wait, once a batch reaches [`MAX_HELD`], and
//! before it ends. A relay woken anywhere else wakes its task at once.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};

/// Most wakes held at once: a long busy stretch still lets its tasks run.
pub(super) const MAX_HELD: usize = 32;

thread_local! {
    /// The wakes held on this thread; `None` where wakes are not held.
    static HELD: RefCell<Option<Vec<Waker>>> = const { RefCell::new(None) };
}

/// Holds the wakes of relays woken on this thread until [`release`].
pub(super) fn hold() {
    HELD.with(|held| {
        held.borrow_mut().get_or_insert_with(Vec::new);
    });
}

/// How many wakes this thread holds.
pub(super) fn held() -> usize {
    HELD.with(|held| held.borrow().as_ref().map_or(0, Vec::len))
}

/// Wakes every task whose wake this thread holds (and any held while
/// doing so); wakes are still held afterwards, until the next `release`.
///
/// A waker that panics is contained: the rest are still woken and the
/// calling thread (the reply watcher, which every later awaited call
/// needs) goes on. Its task is not woken again, as with a panicking wake
/// anywhere else.
pub(super) fn release() {
    loop {
        let wakers = HELD.with(|held| held.borrow_mut().as_mut().map(std::mem::take));
        match wakers {
            Some(wakers) if !wakers.is_empty() => {
                for waker in wakers {
                    wake_contained(waker);
                }
            }
            _ => return,
        }
    }
}

/// Wakes the task of a call that completed, on a thread of the pool's own
/// (the reply watcher, a detached call's reader) that must go on whatever
/// the waker does: a waker that panics is contained and said on stderr,
/// its task not woken again (as with a panicking wake anywhere else).
pub(super) fn wake_contained(waker: Waker) {
    let woken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
    if woken.is_err() {
        // Not `eprintln!`: it panics when stderr is gone.
        let _ = writeln!(
            std::io::stderr(),
            "unirun: a task's waker panicked when its process call completed"
        );
    }
}

/// Wakes what this thread holds and stops holding wakes on it.
pub(super) fn stop_holding() {
    release();
    HELD.with(|held| held.borrow_mut().take());
}

/// Forwards a wake to the awaiting task's current waker, or holds it (see
/// the module docs).
#[derive(Default)]
pub(super) struct Relay {
    target: Mutex<Option<Waker>>,
}

impl Relay {
    /// Makes `waker` the one woken from now on (unless it wakes the same
    /// task as the one kept).
    pub(super) fn set(&self, waker: &Waker) {
        let mut target = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        if !target.as_ref().is_some_and(|kept| kept.will_wake(waker)) {
            *target = Some(waker.clone());
        }
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(waker) = self
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        // Decided first, woken after: the wake may run code that wakes
        // another relay on this thread.
        let waker = HELD.with(|held| match held.borrow_mut().as_mut() {
            Some(list) => {
                list.push(waker);
                None
            }
            None => Some(waker),
        });
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Panics;

    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("a waker that panics");
        }
    }

    #[test]
    fn a_panicking_waker_is_contained_and_the_other_held_wakes_still_go_out() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let (panics, counts) = (Arc::new(Relay::default()), Arc::new(Relay::default()));
        panics.set(&Waker::from(Arc::new(Panics)));
        counts.set(&Waker::from(count.clone()));
        hold();
        Waker::from(panics).wake_by_ref();
        Waker::from(counts).wake_by_ref();
        assert_eq!(held(), 2);
        release();
        assert_eq!((count.0.load(Ordering::SeqCst), held()), (1, 0));
        stop_holding();
    }

    #[test]
    fn a_relay_wakes_at_once_where_wakes_are_not_held_and_later_where_they_are() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let relay = Arc::new(Relay::default());
        relay.set(&Waker::from(count.clone()));
        let waker = Waker::from(relay);
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        hold();
        waker.wake_by_ref();
        assert_eq!((count.0.load(Ordering::SeqCst), held()), (1, 1));
        release();
        assert_eq!((count.0.load(Ordering::SeqCst), held()), (2, 0));
        waker.wake_by_ref();
        stop_holding();
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 4);
    }
}
