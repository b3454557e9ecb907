//! Loom models of the task set. Its slab: a slot freed and reused while the
//! set closes, and a member replacing its waker while the set closes; both
//! prove the member that is still waiting when `close` runs is woken through
//! the waker it holds last, whatever the interleaving, and that the set
//! empties. Its owner (`TaskSet::owned_by`): a member keeps the owner alive
//! until it leaves, and a member that joins as the owner goes gives back
//! whichever reference it took.
//! Run them with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p unirun-core --lib --release loom_tests_task`.

extern crate std;

use core::task::Waker;
use std::sync::atomic::AtomicBool as StdAtomicBool;

use loom::thread;

use crate::TaskSet;

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(f);
}

/// A waker that records that it was woken.
struct Flag(StdAtomicBool);

impl alloc::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn flag_waker() -> (Waker, std::sync::Arc<Flag>) {
    let flag = std::sync::Arc::new(Flag(StdAtomicBool::new(false)));
    (Waker::from(flag.clone()), flag)
}

fn woken(flag: &Flag) -> bool {
    flag.0.load(std::sync::atomic::Ordering::Relaxed)
}

/// One member waits and leaves (freeing its slot), a second registers into
/// the freed slot, while another thread closes the set: the second member,
/// still waiting, is woken, and the first member's waker, gone, is not
/// needed.
#[test]
fn task_set_slot_reuse_during_close() {
    model(3, || {
        let set = std::sync::Arc::new(TaskSet::new());
        let (first, _first_flag) = flag_waker();
        let (second, second_flag) = flag_waker();

        let members = set.clone();
        let member = thread::spawn(move || {
            members.enter();
            let slot = members.register(&first);
            members.leave(Some(slot));
            members.enter();
            let reused = members.register(&second);
            assert_eq!(reused, slot, "a freed slot is reused first");
            reused
        });
        set.close();
        let slot = member.join().unwrap();

        assert!(
            woken(&second_flag),
            "close missed a member in a reused slot"
        );
        set.leave(Some(slot));
        assert!(set.is_empty());
    });
}

/// A member replaces its waker (it is polled by a new waker) while the set
/// closes: its latest waker is woken.
#[test]
fn task_set_update_vs_close() {
    model(3, || {
        let set = std::sync::Arc::new(TaskSet::new());
        let (old, _old_flag) = flag_waker();
        let (latest, latest_flag) = flag_waker();

        let members = set.clone();
        let member = thread::spawn(move || {
            members.enter();
            let slot = members.register(&old);
            members.update(slot, &latest);
            slot
        });
        set.close();
        let slot = member.join().unwrap();

        assert!(woken(&latest_flag), "close missed the latest waker");
        set.leave(Some(slot));
        assert!(set.is_empty());
    });
}

/// An owner that checks, when it goes, that no member that keeps it is
/// left (with `strict`: every member of its set joined while it lived).
struct Owner {
    tasks: std::sync::Arc<TaskSet>,
    dropped: std::sync::Arc<StdAtomicBool>,
    strict: bool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        assert!(
            !self.strict || self.tasks.is_empty(),
            "an owner went while a member lived"
        );
        self.dropped
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn owner(strict: bool) -> (std::sync::Arc<Owner>, std::sync::Arc<StdAtomicBool>) {
    let dropped = std::sync::Arc::new(StdAtomicBool::new(false));
    let owner = std::sync::Arc::new_cyclic(|weak| Owner {
        // SAFETY: the owner holds the set for as long as it lives.
        tasks: std::sync::Arc::new(unsafe { TaskSet::new().owned_by(weak.clone()) }),
        dropped: dropped.clone(),
        strict,
    });
    (owner, dropped)
}

/// A member of an owned set keeps the owner alive: the owner's last
/// outside reference goes while the member leaves on another thread, and
/// whatever the interleaving the owner goes exactly once, after the member
/// left (its destructor asserts the set is empty).
#[test]
fn owned_set_member_keeps_its_owner_until_it_leaves() {
    model(3, || {
        let (owner, dropped) = owner(true);
        let member = crate::TaskFuture::new(async { 1 }, Some(&owner.tasks));
        assert_eq!(owner.tasks.len(), 1);
        let leaving = thread::spawn(move || drop(member));
        drop(owner);
        leaving.join().unwrap();
        assert!(woken_flag(&dropped), "the owner outlived its last member");
    });
}

/// A member joins through the set while the owner goes: it keeps either
/// the owner (joined first) or the set itself (the owner was going; the
/// owner may then go while this member lives, so the check is not
/// strict), and in both cases every reference is given back once it
/// leaves.
#[test]
fn a_member_joining_as_the_owner_goes_balances_its_reference() {
    model(3, || {
        let (owner, dropped) = owner(false);
        let tasks = owner.tasks.clone();
        let joining = thread::spawn(move || {
            let member = crate::TaskFuture::new(async { 1 }, Some(&tasks));
            drop(member);
            tasks
        });
        drop(owner);
        let tasks = joining.join().unwrap();
        assert!(woken_flag(&dropped));
        assert!(tasks.is_empty());
        assert_eq!(std::sync::Arc::strong_count(&tasks), 1);
    });
}

fn woken_flag(flag: &StdAtomicBool) -> bool {
    flag.load(std::sync::atomic::Ordering::Relaxed)
}
