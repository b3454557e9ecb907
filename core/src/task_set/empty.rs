//! Waiting for a set to empty: [`TaskSet::wait_empty`], its future
//! [`WaitEmpty`], and [`TaskSet::notify_when_empty`] for callers that
//! cannot await, all over one list of waiters.

use alloc::boxed::Box;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use super::TaskSet;

/// Who waits for a set to empty: a list whose nodes are allocated before
/// the lock is taken (and freed after it is released), each with an id by
/// which a [`WaitEmpty`] finds its own entry again, to keep its latest
/// waker there and to remove it when it is dropped.
pub(super) struct EmptyList {
    head: Option<Box<EmptyNode>>,
    /// The id of the next node linked (never reused: 2^64 links).
    next_id: u64,
}

/// One entry of [`EmptyList`].
struct EmptyNode {
    waker: Waker,
    id: u64,
    next: Option<Box<EmptyNode>>,
}

impl EmptyList {
    /// No waiters.
    pub(super) const fn new() -> EmptyList {
        EmptyList {
            head: None,
            next_id: 0,
        }
    }

    /// Links `node` first; returns the id it got.
    fn link(&mut self, mut node: Box<EmptyNode>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        node.id = id;
        node.next = self.head.take();
        self.head = Some(node);
        id
    }

    fn find(&mut self, id: u64) -> Option<&mut EmptyNode> {
        let mut node = self.head.as_deref_mut();
        while let Some(entry) = node {
            if entry.id == id {
                return Some(entry);
            }
            node = entry.next.as_deref_mut();
        }
        None
    }

    /// Takes the node `id` out of the list (alone: its `next` is cleared),
    /// for the caller to drop after unlocking.
    fn unlink(&mut self, id: u64) -> Option<Box<EmptyNode>> {
        let mut cursor = &mut self.head;
        while cursor.as_ref().is_some_and(|node| node.id != id) {
            cursor = &mut cursor.as_mut().expect("checked just above").next;
        }
        let mut node = cursor.take()?;
        *cursor = node.next.take();
        Some(node)
    }

    /// How many wakers wait.
    #[cfg(all(test, not(loom)))]
    fn len(&self) -> usize {
        core::iter::successors(self.head.as_deref(), |node| node.next.as_deref()).count()
    }
}

impl Drop for EmptyList {
    fn drop(&mut self) {
        // One node at a time: a long list must not recurse as deep.
        let mut list = self.head.take();
        while let Some(mut node) = list {
            list = node.next.take();
        }
    }
}

impl TaskSet {
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
        WaitEmpty {
            set: self,
            entry: None,
        }
    }

    /// Registers `waker` to be woken when the set becomes empty; returns
    /// whether it is empty already. For callers that cannot await.
    ///
    /// The waker is kept until the set empties; calling again with a waker
    /// that wakes the same task keeps one entry. A caller that may give up
    /// waiting before then (or waits with changing wakers) should poll
    /// [`wait_empty`](Self::wait_empty) instead, whose future keeps one
    /// entry, its latest waker, and removes it when dropped.
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
        let known = self.on_empty.with(|list| {
            let mut node = list.head.as_deref();
            while let Some(entry) = node {
                if entry.waker.will_wake(waker) {
                    return true;
                }
                node = entry.next.as_deref();
            }
            false
        });
        if !known {
            // Cloned and allocated before locking; linked under the lock.
            let node = Box::new(EmptyNode {
                waker: waker.clone(),
                id: 0,
                next: None,
            });
            self.on_empty.with(|list| list.link(node));
        }
        self.is_empty()
    }

    /// Keeps `waker` as the latest waker of a [`WaitEmpty`]'s entry `entry`
    /// (linking a new entry if it has none, or if the set emptied and took
    /// it since); returns the entry's id.
    fn wait_for_empty(&self, entry: Option<u64>, waker: &Waker) -> u64 {
        let mut spare = None;
        if let Some(id) = entry {
            // Compares pointers only: nothing is called under the lock.
            let held = self
                .on_empty
                .with(|list| list.find(id).map(|node| node.waker.will_wake(waker)));
            match held {
                Some(true) => return id,
                Some(false) => {
                    let mut fresh = Some(waker.clone());
                    // The replaced waker is dropped after unlocking.
                    let replaced = self.on_empty.with(|list| {
                        list.find(id).map(|node| {
                            core::mem::replace(&mut node.waker, fresh.take().expect("one waker"))
                        })
                    });
                    if let Some(replaced) = replaced {
                        drop(replaced);
                        return id;
                    }
                    // The set emptied meanwhile and took the entry: link
                    // a new one below (the caller checks for empty after).
                    spare = fresh;
                }
                None => {}
            }
        }
        let node = Box::new(EmptyNode {
            waker: spare.unwrap_or_else(|| waker.clone()),
            id: 0,
            next: None,
        });
        self.on_empty.with(|list| list.link(node))
    }

    /// Removes a dropped [`WaitEmpty`]'s entry, if the set did not take it.
    fn forget_empty_waiter(&self, id: u64) {
        // Dropped (with its waker) after unlocking.
        drop(self.on_empty.with(|list| list.unlink(id)));
    }

    /// How many wakers wait for the set to empty.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn empty_waiters(&self) -> usize {
        self.on_empty.with(|list| list.len())
    }

    /// The last member left: wakes those waiting for the set to empty.
    #[inline(never)]
    pub(super) fn emptied(&self) {
        let mut list = self.on_empty.with(|list| list.head.take());
        while let Some(node) = list {
            let EmptyNode { waker, next, .. } = *node;
            waker.wake();
            list = next;
        }
    }
}

/// Future returned by [`TaskSet::wait_empty`].
///
/// The future keeps one entry in the set's list of waiters, with the waker
/// of its latest poll, and removes it when it is dropped: a loop that gives
/// up waiting again and again (a `timeout` around `wait_empty`) or polls it
/// with changing wakers keeps the list as short as the number of live
/// `WaitEmpty` futures.
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
    /// Its entry's id, once it registered.
    entry: Option<u64>,
}

impl Future for WaitEmpty<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.set.is_empty() {
            return Poll::Ready(());
        }
        let entry = self.set.wait_for_empty(self.entry, cx.waker());
        self.entry = Some(entry);
        // Checked after linking: the last member leaves first and then
        // takes the list, so either this sees it empty or the list it
        // takes holds this waker.
        if self.set.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for WaitEmpty<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.entry.take() {
            self.set.forget_empty_waiter(id);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;

    use alloc::sync::Arc;
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Waker};
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::super::TaskSet;

    struct Flag(AtomicBool);

    impl alloc::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flag() -> (Waker, Arc<Flag>) {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        (Waker::from(flag.clone()), flag)
    }

    #[test]
    fn a_hundred_thousand_abandoned_waits_leave_the_waiter_list_empty() {
        let set = TaskSet::new();
        set.enter();
        for _ in 0..100_000 {
            // A distinct task's waker each time, as a loop of timed-out
            // waits in fresh tasks (or `block_on`s) has.
            let (waker, _flag) = flag();
            let mut wait = set.wait_empty();
            assert!(Pin::new(&mut wait)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            assert_eq!(set.empty_waiters(), 1);
            drop(wait);
            assert_eq!(set.empty_waiters(), 0);
        }
        set.leave(None);
    }

    #[test]
    fn a_wait_polled_with_changing_wakers_keeps_one_entry_and_wakes_the_latest() {
        let set = TaskSet::new();
        set.enter();
        let mut wait = set.wait_empty();
        let mut flags = alloc::vec::Vec::new();
        for _ in 0..1000 {
            let (waker, flag) = flag();
            assert!(Pin::new(&mut wait)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            assert_eq!(set.empty_waiters(), 1);
            flags.push(flag);
        }
        set.leave(None);
        let (latest, older) = flags.split_last().unwrap();
        assert!(latest.0.load(Ordering::SeqCst), "the latest waker is woken");
        assert!(older.iter().all(|flag| Arc::strong_count(flag) == 1));
        assert!(Pin::new(&mut wait)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready());
        drop(wait);
        assert_eq!(set.empty_waiters(), 0);
    }

    #[test]
    fn notify_when_empty_keeps_one_entry_per_task_until_the_set_empties() {
        let set = TaskSet::new();
        set.enter();
        let (waker, woken) = flag();
        for _ in 0..10 {
            assert!(!set.notify_when_empty(&waker.clone()));
        }
        assert_eq!(set.empty_waiters(), 1);
        set.leave(None);
        assert!(woken.0.load(Ordering::SeqCst));
        assert_eq!(set.empty_waiters(), 0);
        assert!(set.notify_when_empty(&waker));
    }

    #[test]
    fn a_wait_whose_entry_the_emptying_set_took_registers_again() {
        let set = TaskSet::new();
        set.enter();
        let (first, woken) = flag();
        let mut wait = set.wait_empty();
        let mut other = set.wait_empty();
        assert!(Pin::new(&mut wait)
            .poll(&mut Context::from_waker(&first))
            .is_pending());
        // The set empties (taking both entries) and fills again.
        let (second, _) = flag();
        assert!(Pin::new(&mut other)
            .poll(&mut Context::from_waker(&second))
            .is_pending());
        set.leave(None);
        set.enter();
        assert!(woken.0.load(Ordering::SeqCst));
        assert_eq!(set.empty_waiters(), 0);
        // Polled again with another waker: a new entry, woken next time.
        let (third, woken_again) = flag();
        assert!(Pin::new(&mut wait)
            .poll(&mut Context::from_waker(&third))
            .is_pending());
        assert_eq!(set.empty_waiters(), 1);
        // Dropping the other future (its entry is gone) removes nothing else.
        drop(other);
        assert_eq!(set.empty_waiters(), 1);
        set.leave(None);
        assert!(woken_again.0.load(Ordering::SeqCst));
        drop(wait);
        assert_eq!(set.empty_waiters(), 0);
    }
}
