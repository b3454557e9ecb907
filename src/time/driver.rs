//! unirun's own timer driver: one lazily started thread, `unirun-timer`,
//! that wakes sleeps whose deadline has passed. The design, why it loses no
//! wake-up and what it costs are in the `time` module's docs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

/// The name of the driver thread.
pub(crate) const THREAD_NAME: &str = "unirun-timer";

/// Ids of timer entries; never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

static DRIVER: Mutex<Inner> = Mutex::new(Inner {
    entries: BTreeMap::new(),
    planned: None,
    thread: None,
    epoch: 0,
});

/// An entry's place in the map: its deadline in nanoseconds since
/// [`origin`], then its id. Plain integers: the map compares keys many
/// times per insert, and two `u64`s compare faster than an `Instant` and an
/// id.
type Key = (u64, u64);

/// The instant the driver's deadlines count from: the first time one was
/// needed. A `u64` of nanoseconds from it lasts 584 years, well past
/// `far_future`.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
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

struct Inner {
    entries: BTreeMap<Key, Waker>,
    /// The deadline the driver thread parks until (`None`: until unparked).
    planned: Option<Instant>,
    /// The running driver thread, if any.
    thread: Option<(Thread, JoinHandle<()>)>,
    /// Bumped by [`reset`]: a thread started in an older epoch exits.
    epoch: u64,
}

fn lock() -> MutexGuard<'static, Inner> {
    // No code under this lock panics (map operations and waker clones
    // aside, which leave the map consistent), so a poisoned lock is sound.
    DRIVER.lock().unwrap_or_else(|e| e.into_inner())
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
    /// not have passed when the caller looked.
    pub(crate) fn register(&mut self, deadline: Instant, waker: &Waker) {
        let key = *self
            .key
            .get_or_insert_with(|| (nanos(deadline), NEXT_ID.fetch_add(1, Ordering::Relaxed)));
        debug_assert_eq!(key.0, nanos(deadline), "an entry serves one deadline");
        let mut inner = lock();
        match inner.entries.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if !e.get().will_wake(waker) {
                    e.insert(waker.clone());
                }
                // Already registered: the thread already plans for it.
                return;
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(waker.clone());
            }
        }
        if inner.thread.is_none() {
            let epoch = inner.epoch;
            inner.planned = Some(deadline);
            match thread::Builder::new()
                .name(THREAD_NAME.into())
                .spawn(move || run(epoch))
            {
                Ok(handle) => inner.thread = Some((handle.thread().clone(), handle)),
                Err(e) => {
                    drop(inner);
                    panic!("unirun::time: cannot start the timer thread `{THREAD_NAME}`: {e}");
                }
            }
            return;
        }
        if inner.planned.is_none_or(|p| deadline < p) {
            inner.planned = Some(deadline);
            let thread = inner.thread.as_ref().map(|(t, _)| t.clone());
            drop(inner);
            if let Some(t) = thread {
                t.unpark();
            }
        }
    }

    /// Removes the entry, if registered.
    pub(crate) fn cancel(&mut self) {
        if let Some(key) = self.key.take() {
            lock().entries.remove(&key);
        }
    }

    /// Whether this entry is registered now.
    pub(crate) fn is_registered(&self) -> bool {
        self.key
            .is_some_and(|key| lock().entries.contains_key(&key))
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
            while let Some(entry) = inner.entries.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            let next = inner.entries.first_key_value().map(|(k, _)| instant(k.0));
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
    let (thread, entries) = {
        let mut inner = lock();
        inner.epoch += 1;
        inner.planned = None;
        (inner.thread.take(), std::mem::take(&mut inner.entries))
    };
    if let Some((t, handle)) = thread {
        t.unpark();
        if t.id() != thread::current().id() {
            let _ = handle.join();
        }
    }
    for waker in entries.into_values() {
        waker.wake();
    }
}

/// How many entries are registered at `deadline`.
pub(crate) fn entries_at(deadline: Instant) -> usize {
    let at = nanos(deadline);
    lock().entries.range((at, 0)..=(at, u64::MAX)).count()
}

/// Whether the driver thread runs.
pub(crate) fn is_running() -> bool {
    lock().thread.is_some()
}
