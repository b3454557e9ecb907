//! [`ForkLocal`]: a value of which each fork generation has its own copy.

use alloc::boxed::Box;
use core::fmt;

use crate::sync::{AtomicPtr, Ordering};

/// A value of which each fork generation has its own copy, made on first
/// use in that generation (see [`fork_generation`](crate::fork_generation)).
///
/// State shared by a process's threads (a lock, a queue of waiters) is
/// inherited by a forked child as the parent left it, mid-operation
/// included: a mutex may be held by a thread the child does not have, and
/// the waiters it records are not in the child. A `ForkLocal` gives the
/// child a fresh value on its first access instead, and never touches the
/// parent's: that one is left allocated (never dropped, never freed), since
/// dropping it could block or run on state that is no longer consistent.
/// Each fork thus leaks one value, the parent's, in the child.
///
/// # Invariants
///
/// `current` is never null and always holds a pointer from
/// [`Box::into_raw`]. The slot it points to is freed only by `Drop`; one
/// replaced by a newer generation is never freed. So a `&T` handed out by
/// [`get`](Self::get) stays valid for as long as the `ForkLocal` lives.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
/// use unirun_core::ForkLocal;
///
/// let waiters: ForkLocal<Mutex<Vec<u32>>> = ForkLocal::new(Mutex::default);
/// waiters.get().lock().unwrap().push(7);
/// // In this process (fork generation unchanged) it is the same value.
/// assert_eq!(*waiters.get().lock().unwrap(), [7]);
/// ```
pub struct ForkLocal<T> {
    /// The slot of the newest fork generation that used this value.
    current: AtomicPtr<Slot<T>>,
    /// Makes the value of a generation that has none yet.
    make: fn() -> T,
}

/// One generation's value.
struct Slot<T> {
    /// The fork generation `value` belongs to.
    generation: usize,
    value: T,
}

// SAFETY: a `ForkLocal` hands out `&T` to any thread that has a
// `&ForkLocal` (so `T: Sync`), and a value made by one thread may be
// dropped by another (so `T: Send`).
unsafe impl<T: Send + Sync> Sync for ForkLocal<T> {}
// SAFETY: as for `Sync`: moving the `ForkLocal` moves ownership of its
// values to another thread.
unsafe impl<T: Send + Sync> Send for ForkLocal<T> {}

impl<T> ForkLocal<T> {
    /// A `ForkLocal` whose values `make` creates: the current generation's
    /// now, each later generation's on its first [`get`](Self::get).
    pub fn new(make: fn() -> T) -> Self {
        Self::new_in(crate::fork_generation(), make)
    }

    fn new_in(generation: usize, make: fn() -> T) -> Self {
        let slot = Box::new(Slot {
            generation,
            value: make(),
        });
        Self {
            current: AtomicPtr::new(Box::into_raw(slot)),
            make,
        }
    }

    /// This fork generation's value, made on the first call in a forked
    /// child.
    #[inline]
    pub fn get(&self) -> &T {
        self.get_in(crate::fork_generation())
    }

    /// `generation`'s value: the generations of one process only ever go
    /// up, so a slot of another generation belongs to an ancestor.
    fn get_in(&self, generation: usize) -> &T {
        let mut seen = self.current.load(Ordering::Acquire);
        loop {
            // SAFETY: `current` is never null and what it ever pointed to
            // lives as long as `self` (the invariant above); the Acquire
            // load pairs with the Release of the exchange that published it.
            let slot = unsafe { &*seen };
            if slot.generation == generation {
                return &slot.value;
            }
            let fresh = Box::into_raw(Box::new(Slot {
                generation,
                value: (self.make)(),
            }));
            match self
                .current
                .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // The older generation's slot is left allocated (see the
                // type's docs).
                // SAFETY: `fresh` is published now, so it lives until `Drop`.
                Ok(_) => return unsafe { &(*fresh).value },
                Err(now) => {
                    // Another thread of this generation published first:
                    // take its slot, drop ours.
                    // SAFETY: `fresh` came from `Box::into_raw` above and
                    // was never shared.
                    drop(unsafe { Box::from_raw(fresh) });
                    seen = now;
                }
            }
        }
    }
}

impl<T> Drop for ForkLocal<T> {
    fn drop(&mut self) {
        // `&mut self`: no other thread can touch `current` now.
        let slot = self.current.load(Ordering::Relaxed);
        // SAFETY: `current` holds a pointer from `Box::into_raw` (the
        // invariant above), and `&mut self` means no `&T` handed out by
        // `get` is alive.
        drop(unsafe { Box::from_raw(slot) });
    }
}

impl<T: fmt::Debug> fmt::Debug for ForkLocal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ForkLocal").field(self.get()).finish()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::ForkLocal;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;

    fn make() -> AtomicUsize {
        AtomicUsize::new(0)
    }

    /// Two threads of a new generation race to make its value: both get
    /// the one that was published, which keeps what either wrote, and the
    /// parent's value is left as it was.
    #[test]
    fn loom_fork_local_threads_of_a_child_share_one_fresh_value() {
        loom::model(|| {
            let local = Arc::new(ForkLocal::new_in(0, make));
            let parent = local.get_in(0) as *const AtomicUsize as usize;
            local.get_in(0).store(9, Ordering::Relaxed);
            let other = {
                let local = local.clone();
                loom::thread::spawn(move || {
                    let v = local.get_in(1);
                    v.fetch_add(1, Ordering::Relaxed);
                    v as *const AtomicUsize as usize
                })
            };
            let mine = local.get_in(1);
            mine.fetch_add(1, Ordering::Relaxed);
            let theirs = other.join().unwrap();
            assert_eq!(mine as *const AtomicUsize as usize, theirs);
            assert_ne!(theirs, parent);
            assert_eq!(local.get_in(1).load(Ordering::Relaxed), 2);
            // A grandchild gets a fresh value again.
            assert_eq!(local.get_in(2).load(Ordering::Relaxed), 0);
        });
    }
}
