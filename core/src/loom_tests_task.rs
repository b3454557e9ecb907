//! Loom models of the task set's slab: a slot freed and reused while the set
//! closes, and a member replacing its waker while the set closes. Both prove
//! the member that is still waiting when `close` runs is woken through the
//! waker it holds last, whatever the interleaving, and that the set empties.
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
