//! The latch a join's owner waits on: set once by the thread that ran (or
//! returned) the stolen half, probed and, after a while, slept on by the
//! owner.
//!
//! States: `UNSET`, `SLEEPY` (the owner stored its unparker and is asleep or
//! about to be) and `SET`. Only the owner moves `UNSET -> SLEEPY` (CAS), only
//! the setter moves to `SET`. The setter that finds `SLEEPY` clones the
//! unparker *before* storing `SET`: once the owner sees `SET` it may return
//! and free the latch, so the setter's last touch of the latch is that store,
//! and it wakes the owner through its own clone. The owner parks only after
//! its CAS to `SLEEPY` succeeded, so a `SET` that came first is never slept
//! through, and a `SET` that comes after finds `SLEEPY` and unparks (the
//! parker keeps a token given before it parks). Loom models:
//! `loom_fork_join_latch_*`.

use crate::park::{self, Park, Unpark, Unparker};
use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

const UNSET: usize = 0;
const SLEEPY: usize = 1;
const SET: usize = 2;

pub(crate) struct Latch {
    state: AtomicUsize,
    /// Written by the owner before its CAS to `SLEEPY`; read by the setter
    /// only while the state is `SLEEPY` (the owner cannot leave then).
    sleeper: UnsafeCell<Option<Unparker>>,
}

// SAFETY: `sleeper` is written by the owner before it publishes `SLEEPY`
// and read by the setter only after seeing `SLEEPY`, while the owner waits
// (see the module docs); `Unparker` is `Send + Sync`.
unsafe impl Sync for Latch {}

impl Latch {
    pub(crate) fn new() -> Latch {
        Latch {
            state: AtomicUsize::new(UNSET),
            sleeper: UnsafeCell::new(None),
        }
    }

    /// Whether the latch is set; when it is, everything the setter wrote
    /// before setting it is visible.
    #[inline]
    pub(crate) fn probe(&self) -> bool {
        self.state.load(Ordering::Acquire) == SET
    }

    /// Sets the latch and wakes the owner if it sleeps. The latch may be
    /// freed as soon as the state is `SET`: nothing of it is touched after.
    pub(crate) fn set(&self) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            match state {
                UNSET => match self.state.compare_exchange(
                    UNSET,
                    SET,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return,
                    Err(actual) => state = actual,
                },
                SLEEPY => {
                    // SAFETY: the owner wrote `sleeper` before publishing
                    // `SLEEPY` (acquired above) and waits until `SET`.
                    let unparker = self.sleeper.with(|s| unsafe { (*s).clone() });
                    self.state.store(SET, Ordering::Release);
                    if let Some(unparker) = unparker {
                        unparker.unpark();
                    }
                    return;
                }
                _ => {
                    debug_assert!(false, "a join latch was set twice");
                    return;
                }
            }
        }
    }

    /// Sleeps until the latch is set. Only the owner calls it, once.
    pub(crate) fn sleep(&self) {
        let (parker, unparker) = park::pair();
        // SAFETY: only the owner writes `sleeper`, and no setter reads it
        // before the CAS below publishes `SLEEPY`.
        self.sleeper.with_mut(|s| unsafe { *s = Some(unparker) });
        if self
            .state
            .compare_exchange(UNSET, SLEEPY, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Set meanwhile.
            return;
        }
        while !self.probe() {
            parker.park();
        }
    }
}
