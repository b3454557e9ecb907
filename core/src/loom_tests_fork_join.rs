//! Loom models of fork-join's lock-free parts: the join latch, and the
//! steal-back race of a join half between its owner (popping it back) and
//! thieves, over the real deque, stack job and waiting loop.
//!
//! - `loom_fork_join_latch_set_vs_sleep`: a setter publishes a result and
//!   sets the latch while the owner goes to sleep on it: the owner is never
//!   left asleep (loom reports a deadlock) and sees the result.
//! - `loom_fork_join_steal_back`: the owner pushes a half, then pops it back
//!   while a thief steals: the half runs exactly once, and the owner gets its
//!   result (inline, or through the latch after waiting).
//! - `loom_fork_join_two_thieves_wrap_around`: two halves through a 2-entry
//!   deque that has wrapped around, two thieves and the owner: each half runs
//!   once. (Without the `SeqCst` fence in the owner's pop this model fails:
//!   a thief and the owner both take the second half.)
//! - `loom_fork_join_returned_half`: the core holding a half is dropped
//!   (returning it) while a thief steals it: the forking thread, which only
//!   waits, gets it run exactly once.
//!
//! Run with the other models:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p unirun-core --lib --release loom_fork_join`.

extern crate std;

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::Arc as StdArc;

use loom::thread;

use crate::fork_join::{deque, wait_until, Fate, JobRef, Latch, StackJob};
use crate::sync::{Arc, UnsafeCell};

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(f);
}

#[test]
fn loom_fork_join_latch_set_vs_sleep() {
    model(3, || {
        struct Shared {
            latch: Latch,
            value: UnsafeCell<u32>,
        }
        // SAFETY: `value` is written before `latch.set` and read after the
        // latch is seen set (the protocol under test).
        unsafe impl Sync for Shared {}
        unsafe impl Send for Shared {}
        let shared = Arc::new(Shared {
            latch: Latch::new(),
            value: UnsafeCell::new(0),
        });
        let setter = {
            let shared = shared.clone();
            thread::spawn(move || {
                // SAFETY: the owner reads only after the latch is set.
                shared.value.with_mut(|v| unsafe { *v = 7 });
                shared.latch.set();
            })
        };
        if !shared.latch.probe() {
            shared.latch.sleep();
        }
        assert!(shared.latch.probe());
        // SAFETY: the latch is set: the setter's write is visible and done.
        assert_eq!(shared.value.with(|v| unsafe { *v }), 7);
        setter.join().unwrap();
    });
}

/// A half that counts its runs and returns 5.
fn counted_half(runs: &StdArc<StdAtomicUsize>) -> StackJob<impl FnOnce(bool) -> u32 + Send, u32> {
    let runs = runs.clone();
    StackJob::new(move |_stolen| {
        runs.fetch_add(1, StdOrdering::SeqCst);
        5
    })
}

/// What a thief does: take the oldest entry and run it.
fn thief(stealer: crate::fork_join::JobStealer) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        if let Some(job) = stealer.steal() {
            // SAFETY: stolen: this thread alone executes it.
            unsafe { job.execute(Fate::Run) };
        }
    })
}

/// The owner's end of a join after `a` ran: pop the half back, run it
/// inline if it is ours, else wait for the thief and take its result.
fn take_back<F: FnOnce(bool) -> u32 + Send>(
    owner: &crate::fork_join::JobDeque,
    job: &StackJob<F, u32>,
) -> u32 {
    let ours: JobRef = job.as_job_ref();
    if owner.pop() != Some(ours) {
        assert!(wait_until(&job.latch).is_ok());
    }
    // SAFETY: popped back, or the latch is set.
    match unsafe { job.take_func() } {
        Some(f) => f(false),
        // SAFETY: the latch is set.
        None => unsafe { job.take_result() }.unwrap().unwrap(),
    }
}

#[test]
fn loom_fork_join_steal_back() {
    model(3, || {
        let runs = StdArc::new(StdAtomicUsize::new(0));
        let (owner, stealer) = deque();
        let job = counted_half(&runs);
        owner.push(job.as_job_ref()).unwrap();
        let thief = thief(stealer);
        assert_eq!(take_back(&owner, &job), 5);
        thief.join().unwrap();
        assert_eq!(runs.load(StdOrdering::SeqCst), 1);
    });
}

#[test]
fn loom_fork_join_two_thieves_wrap_around() {
    model(2, || {
        let runs = StdArc::new(StdAtomicUsize::new(0));
        let (owner, stealer) = deque();
        // Cross the wrap-around of the 2-entry loom deque first.
        for _ in 0..3 {
            let warm = counted_half(&runs);
            owner.push(warm.as_job_ref()).unwrap();
            assert_eq!(owner.pop(), Some(warm.as_job_ref()));
        }
        let outer = counted_half(&runs);
        let inner = counted_half(&runs);
        owner.push(outer.as_job_ref()).unwrap();
        owner.push(inner.as_job_ref()).unwrap();
        // Full: a third half would run inline.
        assert!(owner.push(inner.as_job_ref()).is_err());
        let thieves = [thief(stealer.clone()), thief(stealer)];
        assert_eq!(take_back(&owner, &inner), 5);
        assert_eq!(take_back(&owner, &outer), 5);
        for t in thieves {
            t.join().unwrap();
        }
        assert_eq!(runs.load(StdOrdering::SeqCst), 2);
    });
}

#[test]
fn loom_fork_join_returned_half() {
    // The forking thread lost its core (a task in `a` blocked and handed it
    // on): the core's new holder drops it at shutdown and returns the half
    // while a thief may steal it; the forking thread only waits, then runs
    // a returned half itself. It runs exactly once, and nobody hangs.
    model(3, || {
        let runs = StdArc::new(StdAtomicUsize::new(0));
        let (owner, stealer) = deque();
        let job = counted_half(&runs);
        owner.push(job.as_job_ref()).unwrap();
        let thief = thief(stealer);
        let holder = thread::spawn(move || crate::fork_join::return_all(&owner));
        assert!(wait_until(&job.latch).is_ok());
        // SAFETY: the latch is set: the job is this thread's again.
        let value = match unsafe { job.take_func() } {
            Some(f) => f(false),
            // SAFETY: as above.
            None => unsafe { job.take_result() }.unwrap().unwrap(),
        };
        assert_eq!(value, 5);
        thief.join().unwrap();
        holder.join().unwrap();
        assert_eq!(runs.load(StdOrdering::SeqCst), 1);
    });
}
