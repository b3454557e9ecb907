//! [`TaskSet`]: the live tasks of an executor or scope, so shutdown can wait
//! for them or cancel them.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::sync::{AtomicBool, AtomicUsize, Ordering, SpinLock};

/// Counts the live tasks spawned into it and remembers the wakers of those
/// that are waiting, so that an owner can [wait](Self::wait_empty) for all of
/// them to finish or [close](Self::close) the set to cancel them.
///
/// Membership costs a task nothing until it first returns `Pending`; then its
/// waker is recorded once. A closed set cancels each member at its next poll
/// (it resolves to `Err(cancelled)` without polling the future again), and
/// closing wakes every waiting member so that poll comes promptly. Tasks
/// spawned into a closed set are cancelled before they start.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{TaskSet, TickExecutor};
///
/// let ex = TickExecutor::new();
/// let set = Arc::new(TaskSet::new());
/// let handle = ex.spawn_in(&set, std::future::pending::<()>());
/// ex.run_until_stalled();
/// assert_eq!(set.len(), 1);
/// set.close();
/// ex.run_until_stalled();
/// assert_eq!(set.len(), 0);
/// assert!(unirun_core::block_on(handle).unwrap_err().is_cancelled());
/// ```
pub struct TaskSet {
    /// Bumped on every spawn and completion: kept off the line that every
    /// poll reads (`closed`), so polls do not miss the cache on it.
    live: CachePadded<AtomicUsize>,
    closed: CachePadded<AtomicBool>,
    /// Wakers of members that returned `Pending`, by slot; `free` lists empty slots.
    waiting: SpinLock<Slots>,
    /// Wakers to call when `live` drops to zero.
    on_empty: SpinLock<Vec<Waker>>,
}

/// Aligns a value to its own cache line pair (adjacent-line prefetch on x86
/// pulls lines in pairs, hence 128).
#[repr(align(128))]
struct CachePadded<T>(T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A slab of wakers in fixed-size chunks: growing never copies or doubles,
/// so a set with many waiting tasks wastes at most one chunk.
#[derive(Default)]
struct Slots {
    chunks: Vec<Box<[Option<Waker>; CHUNK]>>,
    /// Slots handed out so far (the high-water mark).
    used: usize,
    free: Vec<usize>,
}

const CHUNK: usize = 256;

impl Slots {
    fn insert(&mut self, waker: Waker) -> usize {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.used == self.chunks.len() * CHUNK {
                    self.chunks.push(Box::new([const { None }; CHUNK]));
                }
                self.used += 1;
                self.used - 1
            }
        };
        self.chunks[slot / CHUNK][slot % CHUNK] = Some(waker);
        slot
    }

    fn remove(&mut self, slot: usize) {
        self.chunks[slot / CHUNK][slot % CHUNK] = None;
        self.free.push(slot);
    }

    fn take_all(&mut self) -> Vec<Waker> {
        self.chunks
            .iter_mut()
            .flat_map(|chunk| chunk.iter_mut())
            .filter_map(Option::take)
            .collect()
    }
}

impl TaskSet {
    /// Creates an empty, open set.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = unirun_core::TaskSet::new();
    /// assert!(set.is_empty());
    /// assert!(!set.is_closed());
    /// ```
    pub fn new() -> Self {
        Self {
            live: CachePadded(AtomicUsize::new(0)),
            closed: CachePadded(AtomicBool::new(false)),
            waiting: SpinLock::new(Slots::default()),
            on_empty: SpinLock::new(Vec::new()),
        }
    }

    /// Number of live tasks: spawned and not yet finished or cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// let a = ex.spawn_in(&set, async { 1 });
    /// let b = ex.spawn_in(&set, async { 2 });
    /// assert_eq!(set.len(), 2); // members from the moment they are spawned
    /// ex.run_until_stalled();
    /// assert_eq!(set.len(), 0);
    /// # drop((a, b));
    /// ```
    pub fn len(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Whether no task is live.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// assert!(set.is_empty());
    /// let task = ex.spawn_in(&set, async {});
    /// assert!(!set.is_empty());
    /// ex.run_until_stalled();
    /// assert!(set.is_empty());
    /// # drop(task);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = unirun_core::TaskSet::new();
    /// assert!(!set.is_closed());
    /// set.close();
    /// assert!(set.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Cancels every member at its next poll and wakes those that wait, so
    /// their handles resolve to `Err(cancelled)` as soon as their executor
    /// polls them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// let waiting = ex.spawn_in(&set, std::future::pending::<()>());
    /// ex.run_until_stalled(); // the member is now waiting
    /// set.close();
    /// ex.run_until_stalled(); // closing woke it: its next poll cancels it
    /// assert!(waiting.join().unwrap_err().is_cancelled());
    ///
    /// // Tasks spawned into a closed set never start.
    /// let late = ex.spawn_in(&set, async { unreachable!() });
    /// ex.run_until_stalled();
    /// assert!(late.join().unwrap_err().is_cancelled());
    /// ```
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self.waiting.with(Slots::take_all);
        // Woken outside the lock: a wake may run a schedule function.
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves when no task is live.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// for i in 0..3 {
    ///     ex.spawn_in(&set, async move { i * 2 }).detach();
    /// }
    /// let watched = set.clone();
    /// let waiter = ex.spawn(async move {
    ///     watched.wait_empty().await;
    ///     watched.len()
    /// });
    /// ex.run_until_stalled();
    /// assert_eq!(waiter.join().unwrap(), 0);
    /// ```
    pub fn wait_empty(&self) -> WaitEmpty<'_> {
        WaitEmpty { set: self }
    }

    /// Registers `waker` to be woken when the set becomes empty; returns
    /// whether it is empty already. For callers that cannot await.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::task::{Wake, Waker};
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// struct Flag(AtomicBool);
    ///
    /// impl Wake for Flag {
    ///     fn wake(self: Arc<Self>) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    /// }
    ///
    /// let ex = TickExecutor::new();
    /// let set = Arc::new(TaskSet::new());
    /// ex.spawn_in(&set, async {}).detach();
    ///
    /// let flag = Arc::new(Flag(AtomicBool::new(false)));
    /// let waker = Waker::from(flag.clone());
    /// assert!(!set.notify_when_empty(&waker)); // one member is still live
    /// ex.run_until_stalled();
    /// assert!(flag.0.load(Ordering::SeqCst)); // woken when it finished
    /// assert!(set.notify_when_empty(&waker));
    /// ```
    pub fn notify_when_empty(&self, waker: &Waker) -> bool {
        self.on_empty.with(|wakers| {
            if !wakers.iter().any(|w| w.will_wake(waker)) {
                wakers.push(waker.clone());
            }
        });
        self.is_empty()
    }

    pub(crate) fn enter(&self) {
        self.live.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn leave(&self, slot: Option<usize>) {
        if let Some(slot) = slot {
            self.waiting.with(|slots| {
                slots.remove(slot);
            });
        }
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            let wakers = self.on_empty.with(core::mem::take);
            for waker in wakers {
                waker.wake();
            }
        }
    }

    /// Records a waiting member's waker; returns its slot.
    pub(crate) fn register(&self, waker: &Waker) -> usize {
        let slot = self.waiting.with(|slots| slots.insert(waker.clone()));
        // `close` may have collected the wakers just before we registered.
        if self.is_closed() {
            waker.wake_by_ref();
        }
        slot
    }
}

impl Default for TaskSet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSet")
            .field("live", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Future returned by [`TaskSet::wait_empty`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{TaskSet, TickExecutor};
///
/// let ex = TickExecutor::new();
/// let set = Arc::new(TaskSet::new());
/// let watched = set.clone();
/// let waiter = ex.spawn(async move { watched.wait_empty().await });
/// let member = ex.spawn_in(&set, async {});
///
/// assert!(ex.try_tick()); // the waiter runs first and finds a live member
/// assert!(!waiter.is_finished());
/// ex.run_until_stalled(); // the member finishes and wakes the waiter
/// assert!(waiter.is_finished());
/// # drop(member);
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WaitEmpty<'a> {
    set: &'a TaskSet,
}

impl Future for WaitEmpty<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.is_empty() || self.set.notify_when_empty(cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
