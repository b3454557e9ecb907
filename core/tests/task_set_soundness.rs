//! A task set under the moves and unwinds safe code can put it through:
//! moved out of its `Arc` and back into another, polled by a waker that
//! panics, and waited on by futures that are dropped before it empties.
//!
//! These tests are part of the AddressSanitizer run (`.ci/run`): a member
//! that reaches a set's old address is a use-after-free there.
//!
//! Every test that could hang runs under a watchdog.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use unirun_core::{with_polled_owner, TaskFuture, TaskSet, TickExecutor};
use unirun_test_support::watchdog;

/// A gate a task waits on until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(bool, Option<Waker>)>>);

impl Gate {
    fn open(&self) {
        let waker = {
            let mut state = self.0.lock().unwrap();
            state.0 = true;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Future for Gate {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0.lock().unwrap();
        if state.0 {
            return Poll::Ready(());
        }
        state.1 = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// One member that waits (so its waker takes a slot of the set) and then
/// finishes and leaves.
fn wait_and_leave(ex: &TickExecutor, set: &Arc<TaskSet>) {
    let gate = Gate::default();
    let member = ex.spawn_in(set, gate.clone());
    ex.run_until_stalled();
    assert!(!member.is_finished(), "the member waits for its gate");
    assert_eq!(set.len(), 1);
    gate.open();
    ex.run_until_stalled();
    member.join().unwrap();
    assert_eq!(set.len(), 0);
}

#[test]
fn a_task_set_moved_out_of_its_arc_keeps_members_sound() {
    watchdog("moved set", || {
        let ex = TickExecutor::new();
        let set = Arc::new(TaskSet::new());
        // The member's slot lives in a chunk that names where the set is.
        wait_and_leave(&ex, &set);

        // Safe code moves the set out of its `Arc` (no member refers to it
        // any more) and into a new one. Another set is allocated in between,
        // so the old place is most likely taken: a member that still went
        // there would count against the wrong set (and is a use-after-free
        // under AddressSanitizer wherever it lands).
        let set = Arc::into_inner(set).expect("no member holds the set");
        let squatter = Arc::new(TaskSet::new());
        let set = Arc::new(set);

        // The next member waits in the slot the first one freed, then leaves.
        wait_and_leave(&ex, &set);
        assert_eq!(squatter.len(), 0, "the other set was never joined");
        unirun_core::block_on(set.wait_empty());

        // And once more, after a second move, with two members waiting at
        // once (a fresh slot beside the reused one).
        let set = Arc::new(Arc::into_inner(set).expect("no member holds the set"));
        let (first, second) = (Gate::default(), Gate::default());
        let a = ex.spawn_in(&set, first.clone());
        let b = ex.spawn_in(&set, second.clone());
        ex.run_until_stalled();
        assert_eq!(set.len(), 2);
        set.close();
        ex.run_until_stalled();
        assert!(a.join().unwrap_err().is_cancelled());
        assert!(b.join().unwrap_err().is_cancelled());
        assert_eq!(set.len(), 0);
        drop(squatter);
    });
}

/// A scope-like owner of a task set (see `TaskSet::owned_by`).
struct Scope {
    name: &'static str,
    tasks: Arc<TaskSet>,
}

fn scope(name: &'static str) -> Arc<Scope> {
    Arc::new_cyclic(|owner| Scope {
        name,
        // SAFETY: the scope holds the set for as long as it lives and never
        // moves it out of its `Arc`.
        tasks: Arc::new(unsafe { TaskSet::new().owned_by(owner.clone()) }),
    })
}

fn polled_scope() -> Option<&'static str> {
    with_polled_owner(|scope: Option<&Scope>| scope.map(|scope| scope.name))
}

/// A waker whose `clone` panics (the others do nothing).
fn waker_that_panics_when_cloned() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        panic!("this waker cannot be cloned");
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions ignore the data pointer; `clone`
    // never returns.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

#[test]
fn a_waker_that_panics_inside_a_poll_leaves_the_polled_owner_as_it_was() {
    watchdog("polled owner", || {
        let (outer, inner) = (scope("outer"), scope("inner"));
        // A member of `inner`, polled by hand from inside a task of `outer`
        // with a waker that panics when the member records it.
        let mut member = Box::pin(TaskFuture::new(
            std::future::pending::<()>(),
            Some(&inner.tasks),
        ));
        let task = TaskFuture::new(
            async move {
                assert_eq!(polled_scope(), Some("outer"));
                let waker = waker_that_panics_when_cloned();
                let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = member.as_mut().poll(&mut Context::from_waker(&waker));
                }));
                assert!(
                    unwound.is_err(),
                    "the waker's panic unwinds out of the poll"
                );
                // The outer task is still the one being polled here.
                let seen = polled_scope();
                drop(member);
                seen
            },
            Some(&outer.tasks),
        );
        assert_eq!(unirun_core::block_on(task).unwrap(), Some("outer"));
        // Outside every poll, no owner at all.
        assert_eq!(polled_scope(), None);
        assert!(outer.tasks.is_empty() && inner.tasks.is_empty());
    });
}

/// A waker that does nothing; its count of references tells who keeps it.
struct Quiet;

impl std::task::Wake for Quiet {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_dropped_wait_for_the_set_to_empty_lets_its_waker_go() {
    watchdog("dropped waits", || {
        let ex = TickExecutor::new();
        let set = Arc::new(TaskSet::new());
        let gate = Gate::default();
        let member = ex.spawn_in(&set, gate.clone());
        ex.run_until_stalled();
        // What a loop of timed-out waits does, each in a fresh task: a
        // distinct waker per wait, and the wait dropped unfinished.
        for _ in 0..100_000 {
            let quiet = Arc::new(Quiet);
            let waker = Waker::from(quiet.clone());
            let mut wait = set.wait_empty();
            assert!(Pin::new(&mut wait)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
            assert_eq!(Arc::strong_count(&quiet), 3, "the set keeps a clone");
            drop(wait);
            assert_eq!(Arc::strong_count(&quiet), 2, "and lets it go");
        }
        gate.open();
        ex.run_until_stalled();
        member.join().unwrap();
        assert!(set.is_empty());
    });
}
