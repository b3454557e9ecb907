//! [`Member`]: a task's membership in a [`TaskSet`], in one word.
//!
//! Every task carries one, so its size is the size of every task: a
//! foreign executor that allocates tasks in size classes (tokio's are
//! 128 bytes apart) moves a small future to the next class for one word
//! too many. The word holds the set's address while the task runs, and
//! its waker slot's address once it waits (the slot leads back to the set,
//! see [`SlotRef`]), with four flags in the low bits.
//!
//! The member owns one reference count: on the set's owner when the set
//! has one that still lives (see [`TaskSet::owned_by`]), else on the set
//! (its `Arc`). Either keeps the set alive until the member leaves.

use alloc::sync::Arc;
use core::task::Waker;

use crate::task_set::{Owner, SlotRef};
use crate::TaskSet;

/// A task's membership: no set, or a set (or a slot of it) and flags.
///
/// Invariant: with a set, the word's address part is the set's address
/// (`Arc::as_ptr`) or, with `WAITING`, the address of the member's slot in
/// that set; without `WAITING` it may also carry `CLOSED_OUT`. The member
/// owns one strong reference, on the set with `ON_SET`, else on the set's
/// owner.
#[derive(Debug)]
pub(crate) struct Member(*mut ());

// SAFETY: the word is a counted reference to a `TaskSet` (or its owner,
// `Send + Sync` by `owned_by`'s bounds) and an address inside it; all
// access goes through the set's own synchronisation.
unsafe impl Send for Member {}
// SAFETY: as for `Send`; `&Member` only reads the word.
unsafe impl Sync for Member {}

/// The address is the member's waker slot, not the set.
const WAITING: usize = 1;
/// Polled only by the task that holds it, with the same waker each time:
/// the waker is recorded once.
const OWN_TASK: usize = 2;
/// The member's reference is on the set itself.
const ON_SET: usize = 4;
/// The task's future is gone (finished or dropped): kept here so the task
/// needs no `Option` around it. The only flag a member without a set has.
const DONE: usize = 8;
const FLAGS: usize = WAITING | OWN_TASK | ON_SET | DONE;
/// The set's close ended the task unfinished: it leaves counted as the
/// close's (see [`TaskSet::unfinished_since_close`]). Only without
/// `WAITING`: a slot's address has no room for a fifth flag, a set's has
/// (a member is marked only once it waits no more, see
/// [`Member::close_out`]).
const CLOSED_OUT: usize = 16;

// Set and slot addresses leave room for the flags; set addresses for
// `CLOSED_OUT` too.
const _: () = assert!(core::mem::align_of::<TaskSet>() > (FLAGS | CLOSED_OUT));

impl Member {
    /// No set: nothing is counted.
    pub(crate) const NONE: Member = Member(core::ptr::null_mut());

    /// Joins `tasks` (counted live from now) and takes the member's
    /// reference.
    #[inline]
    pub(crate) fn join(tasks: &Arc<TaskSet>, own_task: bool) -> Member {
        tasks.enter();
        let kept_by_owner = tasks.owner.as_ref().is_some_and(|owner| owner.retain());
        if !kept_by_owner {
            // SAFETY: `tasks` is a live `Arc`; the reference is given back
            // in `leave`.
            unsafe { Arc::increment_strong_count(Arc::as_ptr(tasks)) };
        }
        let flags = if own_task { OWN_TASK } else { 0 } | if kept_by_owner { 0 } else { ON_SET };
        let set: *mut () = Arc::as_ptr(tasks).cast_mut().cast();
        Member(set.map_addr(|addr| addr | flags))
    }

    fn flags(&self) -> usize {
        self.0.addr() & FLAGS
    }

    fn address(&self) -> *mut () {
        self.0.map_addr(|addr| addr & !FLAGS)
    }

    /// Whether the task's future is gone.
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.flags() & DONE != 0
    }

    /// Records that the task's future is gone.
    #[inline]
    pub(crate) fn set_done(&mut self) {
        self.0 = self.0.map_addr(|addr| addr | DONE);
    }

    /// The set, if any.
    #[inline]
    pub(crate) fn set(&self) -> Option<&TaskSet> {
        if self.address().is_null() {
            return None;
        }
        // SAFETY: by the invariant the member keeps the set alive while it
        // exists, and `&self` borrows the member.
        Some(unsafe { &*self.set_ptr() })
    }

    fn set_ptr(&self) -> *const TaskSet {
        match self.slot() {
            Some(slot) => slot.set(),
            // The set's own address: `CLOSED_OUT` is masked off as well.
            None => self
                .0
                .map_addr(|addr| addr & !(FLAGS | CLOSED_OUT))
                .cast_const()
                .cast(),
        }
    }

    /// The member's waker slot, once it waited.
    fn slot(&self) -> Option<SlotRef> {
        (self.flags() & WAITING != 0).then(|| {
            // SAFETY: with `WAITING` the address is a slot the member holds.
            unsafe { SlotRef::from_addr(self.address()) }
        })
    }

    /// Records the waker of a member that returned `Pending`: once for an
    /// own task, else whenever it changes.
    #[inline]
    pub(crate) fn waits(&mut self, waker: &Waker) {
        let Some(set) = self.set() else { return };
        match self.slot() {
            Some(slot) => {
                if self.flags() & OWN_TASK == 0 {
                    // Whoever polls us may change: keep the latest waker.
                    set.update(slot, waker);
                }
            }
            // A no-op waker (a `block_on`'s first poll) wakes nobody: wait
            // for a real one.
            None if waker.will_wake(Waker::noop()) => {}
            None => {
                let slot = set.register(waker);
                let flags = WAITING | (self.flags() & (OWN_TASK | ON_SET | DONE));
                self.0 = slot.addr().map_addr(|addr| addr | flags);
            }
        }
    }

    /// Marks a member whose task the set's close ended unfinished (its
    /// future is gone), so that it leaves counted as the close's. Frees
    /// its waker slot first, if it has one: the task waits no more, and
    /// the word then holds the set's address, which has room for the mark.
    #[cold]
    #[inline(never)]
    pub(crate) fn close_out(&mut self) {
        if self.address().is_null() {
            return;
        }
        let set = self.set_ptr();
        if let Some(slot) = self.slot() {
            // SAFETY: our reference keeps the set alive; the slot is ours
            // and freed this once (the word forgets it just below).
            unsafe { &*set }.free(slot);
        }
        let flags = self.flags() & !WAITING;
        self.0 = set
            .cast_mut()
            .cast::<()>()
            .map_addr(|addr| addr | flags | CLOSED_OUT);
    }

    /// Leaves the set (freeing the slot, waking who waits for the set to
    /// empty) and gives back the member's reference. Afterwards the member
    /// has no set (and keeps `DONE`).
    #[inline]
    pub(crate) fn leave(&mut self) {
        if self.address().is_null() {
            return;
        }
        let slot = self.slot();
        // Marked by the close (`CLOSED_OUT` is a flag only without a slot):
        // tested there alone, one bit test, and handled out of line, so the
        // path every finished task takes stays as it was (callgrind,
        // executors bench, `spawn_remote`).
        if slot.is_none() && self.0.addr() & CLOSED_OUT != 0 {
            return self.leave_closed_out();
        }
        let set = self.set_ptr();
        let on_set = self.flags() & ON_SET != 0;
        let done = self.flags() & DONE;
        self.0 = core::ptr::null_mut::<()>().map_addr(|_| done);
        // SAFETY: our reference keeps the set alive until given back below.
        unsafe { &*set }.leave(slot);
        // SAFETY: the reference `join` took, given back this once; the set
        // is not touched afterwards.
        unsafe { give_back(set, on_set) };
    }

    /// [`leave`](Self::leave) for a member [closed out](Self::close_out):
    /// it holds no slot (`close_out` freed it) and leaves counted as the
    /// close's.
    #[cold]
    #[inline(never)]
    fn leave_closed_out(&mut self) {
        let set = self.set_ptr();
        let on_set = self.flags() & ON_SET != 0;
        let done = self.flags() & DONE;
        self.0 = core::ptr::null_mut::<()>().map_addr(|_| done);
        // SAFETY: our reference keeps the set alive until given back below.
        unsafe { &*set }.leave_closed_out();
        // SAFETY: the reference `join` took, given back this once; the set
        // is not touched afterwards.
        unsafe { give_back(set, on_set) };
    }
}

/// Gives back a leaving member's reference: on the set with `on_set`, else
/// on its owner.
///
/// # Safety
///
/// `set` is the set the member joined, which its reference still keeps
/// alive; the reference is given back once, and neither the set nor its
/// owner is touched by the caller afterwards (this may drop both).
#[inline(always)]
unsafe fn give_back(set: *const TaskSet, on_set: bool) {
    if on_set {
        // SAFETY: the reference `join` took on the set, given back once;
        // the set is not touched afterwards.
        unsafe { Arc::decrement_strong_count(set) };
    } else {
        // SAFETY: the member's reference keeps the set alive until here.
        let release = unsafe { &*set }
            .owner
            .as_ref()
            .expect("a member kept by an owner")
            .releaser();
        // SAFETY: the reference `join` took on the owner, given back
        // once. It may drop the owner and with it the set: neither is
        // touched afterwards (`releaser` copied what it needs).
        unsafe { release.run() };
    }
}

/// Which owner the member being polled on this thread keeps alive, for
/// [`with_polled_owner`].
#[cfg(all(feature = "std", not(loom)))]
mod polled {
    use core::cell::Cell;

    use crate::task_set::Owner;

    std::thread_local! {
        /// The owner kept alive by the member this thread polls, or null.
        /// Invariant: non-null only while that member's poll runs (it puts
        /// the previous value back), so the owner lives.
        static POLLED: Cell<*const Owner> = const { Cell::new(core::ptr::null()) };
    }

    #[inline]
    pub(crate) fn set(owner: *const Owner) -> *const Owner {
        POLLED
            .try_with(|p| p.replace(owner))
            .unwrap_or(core::ptr::null())
    }

    #[inline]
    pub(crate) fn get() -> *const Owner {
        POLLED.try_with(Cell::get).unwrap_or(core::ptr::null())
    }
}

#[cfg(not(all(feature = "std", not(loom))))]
mod polled {
    use crate::task_set::Owner;

    #[inline]
    pub(crate) fn set(_owner: *const Owner) -> *const Owner {
        core::ptr::null()
    }
}

/// Publishes the owner `member` keeps alive (if any) as the polled one;
/// the guard puts the previous one back when it is dropped: by
/// [`unpublish`] once the poll is over, or by unwinding if something in
/// the poll panics past the task's own capture (a waker whose `clone` or
/// `wake` panics while the member records it), so a thread never keeps
/// pointing at an owner it is no longer polling.
#[inline(always)]
pub(crate) fn publish(member: &Member, set: Option<&TaskSet>) -> Published {
    if member.flags() & ON_SET != 0 {
        return Published(None);
    }
    Published(
        set.and_then(|set| set.owner.as_ref())
            .map(|owner| polled::set(owner as *const Owner)),
    )
}

/// What [`publish`] replaced; dropping it puts it back.
#[must_use = "dropping the guard ends the publication"]
pub(crate) struct Published(Option<*const Owner>);

impl Drop for Published {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(previous) = self.0 {
            polled::set(previous);
        }
    }
}

/// Ends what [`publish`] began (the guard's drop does the work).
#[inline(always)]
pub(crate) fn unpublish(published: Published) {
    drop(published);
}

/// Calls `f` with the owner (see [`TaskSet::owned_by`]) of the set whose
/// member this thread is polling right now, if there is one, the member
/// keeps it alive, and it is a `T`; else with `None`.
///
/// The owner stays alive for the whole call: the member being polled keeps
/// it. This is how code running inside a task reaches what its set belongs
/// to without holding a reference of its own (unirun's scopes enter
/// themselves around each poll this way).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{with_polled_owner, TaskSet, TickExecutor};
///
/// struct Scope {
///     name: &'static str,
///     tasks: Arc<TaskSet>,
/// }
///
/// let scope = Arc::new_cyclic(|owner| Scope {
///     name: "outer",
///     // SAFETY: the scope holds the set for as long as it lives.
///     tasks: Arc::new(unsafe { TaskSet::new().owned_by(owner.clone()) }),
/// });
/// let ex = TickExecutor::new();
/// let name = ex.spawn_in(&scope.tasks, async {
///     with_polled_owner(|scope: Option<&Scope>| scope.map(|s| s.name))
/// });
/// ex.run_until_stalled();
/// assert_eq!(name.join().unwrap(), Some("outer"));
/// assert!(with_polled_owner(|scope: Option<&Scope>| scope.is_none())); // not in a task
/// ```
#[cfg(feature = "std")]
#[inline(always)]
pub fn with_polled_owner<T: 'static, R>(f: impl FnOnce(Option<&T>) -> R) -> R {
    #[cfg(not(loom))]
    let owner = polled::get();
    #[cfg(loom)]
    let owner: *const crate::task_set::Owner = core::ptr::null();
    if owner.is_null() {
        return f(None);
    }
    // SAFETY: by `POLLED`'s invariant the member being polled keeps the
    // owner alive, and with it the set that holds this `Owner`, until its
    // poll returns, which is after `f` returns.
    let owner = unsafe { &*owner };
    match owner.get::<T>() {
        // SAFETY: as above: the owner, a `T`, lives for the whole call.
        Some(owner) => f(Some(unsafe { &*owner })),
        None => f(None),
    }
}
