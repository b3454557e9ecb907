//! Loom models of the lane's counters and wake-ups, run on the real lane
//! code (its locks, condition variables and threads switch to loom's in
//! `sync`). Each model pushes closures while the lane's threads start, run,
//! wait and retire, with the keep-alive firing at any point (a clock thread
//! expires it), and proves every closure runs: a closure left queued with no
//! thread awake or coming for it leaves the main thread waiting forever,
//! which loom reports as a deadlock.
//!
//! - `loom_push_races_a_retiring_thread`: the lane's only thread retires on
//!   its keep-alive while a closure arrives (cap 1).
//! - `loom_burst_grows_wakes_and_retires`: two closures in a row with cap 2,
//!   the keep-alive firing meanwhile.
//! - `loom_queued_behind_a_blocked_closure`: a closure blocks until the next
//!   one has run; the next one must get a thread of its own.
//! - `loom_two_sleepers_woken_one_at_a_time`: with two threads waiting,
//!   two closures arrive one after the other: the wake-up count
//!   (`notified`) must never promise a thread that is not coming. (No clock
//!   here: loom allows five threads per execution, counting retired ones.)
//! - `loom_admission_rule_cap_1` / `_cap_2`: the rule `compat::thread::spawn`
//!   uses to decide whether a closure may wait for a lane thread (right
//!   after the push, `threads - idle + queued <= cap`) or needs a dedicated
//!   thread racing the lane for it. The first closure blocks until the
//!   second has run; whichever way the rule decides, the second runs.
//!
//! Run them with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p unirun-blocking --lib --release loom`;
//! `LOOM_MAX_PREEMPTIONS` overrides each model's preemption bound.

use std::sync::Arc;

use loom::sync::{Condvar, Mutex};
use loom::thread;

use crate::BlockingLane;

/// Runs `f` under loom with at most `preemptions` forced context switches
/// (unless `LOOM_MAX_PREEMPTIONS` says otherwise).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(f);
}

/// Counts closures that ran; the main thread waits on it.
#[derive(Default)]
struct Ran {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Ran {
    fn mark(&self) {
        *self.count.lock().unwrap() += 1;
        self.changed.notify_all();
    }

    fn wait_for(&self, n: usize) {
        let mut count = self.count.lock().unwrap();
        while *count < n {
            count = self.changed.wait(count).unwrap();
        }
    }
}

fn lane(cap: usize) -> Arc<BlockingLane> {
    Arc::new(
        BlockingLane::builder()
            .name("loom")
            .max_threads(cap)
            .build()
            .unwrap(),
    )
}

fn push_marking(lane: &BlockingLane, ran: &Arc<Ran>) {
    let ran = ran.clone();
    drop(lane.spawn_blocking(move || ran.mark()));
}

/// Fires the lane's keep-alive from a thread of its own, at any point loom picks.
fn clock(lane: &Arc<BlockingLane>) -> thread::JoinHandle<()> {
    let lane = lane.clone();
    thread::spawn(move || lane.lane.expire_keep_alive())
}

#[test]
fn loom_push_races_a_retiring_thread() {
    model(3, || {
        let lane = lane(1);
        let ran = Arc::new(Ran::default());
        push_marking(&lane, &ran);
        ran.wait_for(1);
        // The lane's one thread is idle (or about to be) and may retire
        // right as the next closure arrives.
        let clock = clock(&lane);
        push_marking(&lane, &ran);
        ran.wait_for(2);
        clock.join().unwrap();
        lane.shutdown();
        assert_eq!(lane.stats().threads, 0);
    });
}

#[test]
fn loom_burst_grows_wakes_and_retires() {
    model(2, || {
        let lane = lane(2);
        let ran = Arc::new(Ran::default());
        let clock = clock(&lane);
        push_marking(&lane, &ran);
        push_marking(&lane, &ran);
        ran.wait_for(2);
        clock.join().unwrap();
        lane.shutdown();
        assert_eq!(lane.stats().threads, 0);
    });
}

#[test]
fn loom_queued_behind_a_blocked_closure() {
    model(2, || {
        let lane = lane(2);
        let ran = Arc::new(Ran::default());
        let clock = clock(&lane);
        // The first closure blocks until the second has run: the second
        // must not wait behind it.
        let waiter = ran.clone();
        drop(lane.spawn_blocking(move || {
            waiter.wait_for(1);
            waiter.mark();
        }));
        push_marking(&lane, &ran);
        ran.wait_for(2);
        clock.join().unwrap();
        lane.shutdown();
        assert_eq!(lane.stats().threads, 0);
    });
}

#[test]
fn loom_two_sleepers_woken_one_at_a_time() {
    model(2, || {
        let lane = lane(2);
        let ran = Arc::new(Ran::default());
        // Two threads: the first closure waits until the second has run.
        let waiter = ran.clone();
        drop(lane.spawn_blocking(move || {
            waiter.wait_for(1);
            waiter.mark();
        }));
        push_marking(&lane, &ran);
        ran.wait_for(2);
        // Both threads go back to waiting (or are still on their way there)
        // as two closures arrive.
        push_marking(&lane, &ran);
        push_marking(&lane, &ran);
        ran.wait_for(4);
        lane.shutdown();
        assert_eq!(lane.stats().threads, 0);
    });
}

/// The compat spawn's protocol around the lane: push a job that claims the
/// closure, read the stats, and when `threads - idle + queued > cap` start a
/// dedicated thread that races the job for the claim.
fn admission(cap: usize) {
    let lane = lane(cap);
    let ran = Arc::new(Ran::default());
    // The first closure blocks until the second has run.
    let waiter = ran.clone();
    drop(lane.spawn_blocking(move || {
        waiter.wait_for(1);
        waiter.mark();
    }));
    let claimed = Arc::new(Mutex::new(false));
    let claim = {
        let (claimed, ran) = (claimed.clone(), ran.clone());
        move || {
            let mut claimed = claimed.lock().unwrap();
            if !*claimed {
                *claimed = true;
                drop(claimed);
                ran.mark();
            }
        }
    };
    let on_lane = claim.clone();
    drop(lane.spawn_blocking(on_lane));
    let stats = lane.stats();
    let dedicated =
        (stats.threads - stats.idle + stats.queued > stats.cap).then(|| thread::spawn(claim));
    if cap == 1 {
        // The first closure holds the only thread, or is queued ahead.
        assert!(dedicated.is_some(), "{stats:?}");
    }
    // Without a dedicated thread the lane must serve the second closure
    // although the first blocks: else loom reports the wait as a deadlock.
    ran.wait_for(2);
    if let Some(dedicated) = dedicated {
        dedicated.join().unwrap();
    }
    lane.shutdown();
}

#[test]
fn loom_admission_rule_cap_1() {
    model(2, || admission(1));
}

#[test]
fn loom_admission_rule_cap_2() {
    model(2, || admission(2));
}
