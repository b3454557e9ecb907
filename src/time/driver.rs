//! unirun's own timer driver: one lazily started thread, `unirun-timer`,
//! that wakes sleeps whose deadline has passed. The design, why it loses no
//! wake-up and what it costs are in the `time` module's docs.
//!
//! Fork-aware without a fork guard on the timer path: the state lives in a
//! [`Driver`] made for one fork generation and reached through one atomic
//! pointer. A forked child (another generation) never touches the
//! parent's driver, not even its lock, which a parent thread may have held
//! at the fork: it makes a driver of its own and leaks the parent's copy
//! (its thread is absent, and its wakers name copies of the parent's
//! tasks, which must not run or be freed here). Its first wait starts its
//! own thread. A register or cancel pays one relaxed load of the fork
//! generation and one uncontended mutex, no shared word besides.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Waker;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use unirun_platform::fork_guard;

/// Views into the driver for unirun's own tests (see `time::test_hooks`).
#[cfg(feature = "__test-hooks")]
pub mod test_hooks;

/// The name of the driver thread.
pub(crate) const THREAD_NAME: &str = "unirun-timer";

/// Ids of timer entries; never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The driver of this process's fork generation, once one was needed
/// (null before). Replaced, never freed: a forked child installs its own
/// and leaks the parent's.
static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(std::ptr::null_mut());

/// The timer state of one fork generation.
struct Driver {
    /// The fork generation (`unirun_core::fork_generation`) it was made in.
    generation: usize,
    inner: Mutex<Inner>,
}

/// An entry: its deadline in nanoseconds since [`origin`], then its id
/// (plain integers, which the queue compares fast).
type Key = (u64, u64);

/// Hashes entry ids, which come from a counter: one multiply spreads them
/// over the whole word.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Queue entries beyond twice the live ones (and this many) are compacted
/// away when an entry is cancelled.
const STALE_SLACK: usize = 1024;

/// The instant the driver's deadlines count from: the first time one was
/// needed. A `u64` of nanoseconds from it lasts 584 years, well past
/// `far_future`.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    if let Some(origin) = ORIGIN.get() {
        return *origin;
    }
    // Set inside a fork-guard hold: a fork never copies it half-set (a
    // child would wait forever for the initializing thread).
    let _hold = fork_guard::shared();
    *ORIGIN.get_or_init(Instant::now)
}

/// `instant` in nanoseconds since [`origin`]; 0 for any earlier instant
/// (such a deadline has passed: it is due at once either way).
fn nanos(instant: Instant) -> u64 {
    let since = instant.saturating_duration_since(origin()).as_nanos();
    u64::try_from(since).unwrap_or(u64::MAX)
}

/// The instant of a deadline kept as [`nanos`].
fn instant(nanos: u64) -> Instant {
    origin() + Duration::from_nanos(nanos)
}

/// Invariant: every live entry (a key in `wakers`) is in `queue`; `queue`
/// may also hold stale keys (cancelled entries), which are skipped when
/// they reach its front and compacted away when they pile up.
struct Inner {
    /// Every registered deadline, earliest first (a min-heap).
    queue: BinaryHeap<Reverse<Key>>,
    /// The wakers of the live entries, by id.
    wakers: HashMap<u64, Waker, BuildHasherDefault<IdHasher>>,
    /// The deadline the driver thread parks until (`None`: until unparked).
    planned: Option<Instant>,
    /// The running driver thread, if any.
    thread: Option<(Thread, JoinHandle<()>)>,
    /// Bumped by [`reset`]: a thread started in an older epoch exits.
    epoch: u64,
}

/// This generation's driver, made on first use (see the module docs).
#[inline]
fn driver() -> &'static Driver {
    let generation = unirun_core::fork_generation();
    let current = DRIVER.load(Ordering::Acquire);
    // SAFETY: a non-null `DRIVER` points to a `Driver` leaked by `install`,
    // never freed: it lives for the rest of the process.
    match unsafe { current.as_ref() } {
        Some(driver) if driver.generation == generation => driver,
        _ => install(current, generation),
    }
}

/// Installs a driver for `generation` in place of `seen` (none yet, or a
/// parent's, which is leaked: see the module docs); returns the one
/// installed, ours or a racing thread's.
#[cold]
#[inline(never)]
fn install(seen: *mut Driver, generation: usize) -> &'static Driver {
    let fresh = Box::into_raw(Box::new(Driver {
        generation,
        inner: Mutex::new(Inner {
            queue: BinaryHeap::new(),
            wakers: HashMap::with_hasher(BuildHasherDefault::new()),
            planned: None,
            thread: None,
            epoch: 0,
        }),
    }));
    match DRIVER.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: just leaked from a `Box`; never freed from here on.
        Ok(_) => unsafe { &*fresh },
        Err(_) => {
            // Another thread of this process installed one first: ours was
            // never shared.
            // SAFETY: `fresh` came from `Box::into_raw` above and nobody
            // else saw it.
            drop(unsafe { Box::from_raw(fresh) });
            driver()
        }
    }
}

fn lock() -> MutexGuard<'static, Inner> {
    // Poisoning is ignored: no code under this lock panics (map operations
    // and waker clones aside, which leave the map consistent).
    driver()
        .inner
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A registration with the driver: the entry's key, once the sleep has
/// registered (kept until it is removed, so the next poll can refresh it).
/// An entry serves one deadline: a sleep that moves its deadline takes a
/// new one.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    key: Option<Key>,
}

impl Entry {
    /// Registers (or refreshes) the waker to wake at `deadline`, which must
    /// not have passed when the caller looked. Returns whether the driver
    /// thread runs to wake it: `false` when the OS refused that thread
    /// (the entry stays registered, and the next registration tries to
    /// start the thread again); the caller must then see to its own
    /// wake-up (see `Sleep::poll`).
    #[must_use]
    pub(crate) fn register(&mut self, deadline: Instant, waker: &Waker) -> bool {
        let key = *self
            .key
            .get_or_insert_with(|| (nanos(deadline), NEXT_ID.fetch_add(1, Ordering::Relaxed)));
        debug_assert_eq!(key.0, nanos(deadline), "an entry serves one deadline");
        let mut inner = lock();
        match inner.wakers.entry(key.1) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let old = (!e.get().will_wake(waker)).then(|| e.insert(waker.clone()));
                if inner.thread.is_some() {
                    drop(inner);
                    // Dropped outside the lock: a waker's drop may run foreign
                    // code, which must not run under the driver's lock.
                    drop(old);
                    // Already registered: the thread already plans for it.
                    return true;
                }
                // Registered while the OS refused the thread: try again.
                let started = start_thread(inner, deadline);
                drop(old);
                return started;
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(waker.clone());
            }
        }
        // Deadlines mostly arrive in order: a push then sifts up one step.
        inner.queue.push(Reverse(key));
        if inner.thread.is_none() {
            return start_thread(inner, deadline);
        }
        if inner.planned.is_none_or(|p| deadline < p) {
            inner.planned = Some(deadline);
            let thread = inner.thread.as_ref().map(|(t, _)| t.clone());
            drop(inner);
            if let Some(t) = thread {
                t.unpark();
            }
        }
        true
    }

    /// Removes the entry, if registered.
    pub(crate) fn cancel(&mut self) {
        let Some((_, id)) = self.key.take() else {
            return;
        };
        let mut inner = lock();
        // Its queue entry goes stale; a fired one is gone from both.
        let waker = inner.wakers.remove(&id);
        if inner.queue.len() > 2 * inner.wakers.len() + STALE_SLACK {
            let Inner { queue, wakers, .. } = &mut *inner;
            queue.retain(|Reverse((_, id))| wakers.contains_key(id));
        }
        drop(inner);
        // Dropped outside the lock: a waker's drop may run foreign code.
        drop(waker);
    }
}

/// Starts the driver thread, which plans from the whole queue on its first
/// pass (`deadline` is only what it is known to wait for at least).
/// Returns `false`, starting nothing, when the OS refuses the thread.
/// Cold: once per process (and per reset or fork), or while the OS
/// refuses threads.
#[cold]
#[inline(never)]
fn start_thread(mut inner: MutexGuard<'static, Inner>, deadline: Instant) -> bool {
    let epoch = inner.epoch;
    match thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            // In a forked child, tasks it wakes go to runner threads: it
            // must never block inside one.
            unirun_core::mark_driver_thread();
            run(epoch)
        }) {
        Ok(handle) => {
            inner.planned = Some(deadline);
            inner.thread = Some((handle.thread().clone(), handle));
            true
        }
        Err(_) => false,
    }
}

/// The driver thread's loop (see the module docs).
fn run(epoch: u64) {
    let mut due = Vec::new();
    loop {
        let next = {
            let mut inner = lock();
            if inner.epoch != epoch {
                return;
            }
            let now = nanos(Instant::now());
            let Inner { queue, wakers, .. } = &mut *inner;
            // Fire what is due and drop stale keys until a live entry that
            // is not due yet leads the queue: its deadline is the plan.
            let next = loop {
                let Some(&Reverse((deadline, id))) = queue.peek() else {
                    break None;
                };
                if deadline > now && wakers.contains_key(&id) {
                    break Some(instant(deadline));
                }
                queue.pop();
                if let Some(waker) = wakers.remove(&id) {
                    due.push(waker);
                }
            };
            inner.planned = next;
            next
        };
        for waker in due.drain(..) {
            // A waker that panics must not stop the driver for everyone.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
        }
        match next {
            Some(deadline) => {
                let now = Instant::now();
                if deadline > now {
                    thread::park_timeout(deadline - now);
                }
            }
            None => thread::park(),
        }
    }
}

/// Stops the driver thread (joining it) and wakes every registered sleep,
/// which registers again, on a new thread, when polled.
pub(crate) fn reset() {
    let (thread, wakers) = {
        let mut inner = lock();
        inner.epoch += 1;
        inner.planned = None;
        inner.queue.clear();
        (inner.thread.take(), std::mem::take(&mut inner.wakers))
    };
    if let Some((t, handle)) = thread {
        t.unpark();
        if t.id() != thread::current().id() {
            let _ = handle.join();
        }
    }
    for waker in wakers.into_values() {
        waker.wake();
    }
}
