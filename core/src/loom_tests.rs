//! Loom models of the crate's lock-free protocols. The `queue_*` models push
//! more runnables than the (loom-sized, 4-slot) local queue holds while other
//! workers steal, and prove every runnable comes out exactly once (popped by
//! the owner, stolen, or found in the injector): overflow, push/pop/steal
//! races and two racing stealers neither lose nor duplicate work.
//! `idle_no_lost_wakeup*` run two workers, looping like `Worker::drive`
//! (`next_task`, `steal_work`, `run_task`, `park`) over the real [`Idle`]
//! protocol, injector and [`Parker`]s, against a producer outside the pool
//! that pushes and then does what `Shared::notify_parked` does, and prove
//! every item is consumed: a lost wake-up leaves all threads blocked, which
//! loom reports as a deadlock. The `parker_*` models prove a token is never
//! lost (unpark before park, racing unpark, two unparks) and that `unpark`
//! happens-before the `park` that consumes its token. The `join_handle_*`
//! model races `abort`, `is_finished` and the task completing, and proves the
//! handle's slot has no data race and the handle resolves to the output or to
//! `cancelled`. The `task_set_*` models prove `close` always wakes a member
//! registering its waker at the same time, a `notify_when_empty` (or a
//! `WaitEmpty` re-polled with a new waker) racing the last `leave` sees the
//! set empty or is woken, and `unfinished_since_close` counts a member that
//! leaves cancelled during its read exactly once (and a task polled while
//! its set closes as cancelled exactly when its handle says so).
//!
//! Three models run the *real* pool (`Pool`, the worker run loop, the thread
//! context and the hand-off) on loom threads, parkers and thread-locals:
//! `handoff_runs_task_queued_behind_blocker` (a task blocks on work queued
//! behind it on its own, only worker: its core goes to a new thread),
//! `shutdown_drains_local_queue_and_lifo_slot` (the pool stops under a running
//! task that then joins tasks in its own LIFO slot and local queue) and
//! `idle_local_push_vs_last_searcher` (a task pushes to its own worker's
//! queue and blocks its thread while the other worker goes to sleep; with
//! the light barrier removed it deadlocks, as does the older rule that only
//! a worker that *was* searching re-checks before it sleeps).
//! `in_place_repoll_vs_remote_wake` runs the real pool too: a task re-polled
//! in place after waking itself stores the waker of that poll and waits,
//! while another thread wakes it.
//! `queue_wraps_around_u16` starts a queue two slots before the `u16`
//! wrap-around and `queue_steal_all_vs_owner` races shutdown's `steal_all`
//! with the owner; `shutdown_vs_steal_in_transit` races it with a thief
//! whose batch is between two queues while both owners are busy.
//! `join_handle_foreign_abort_vs_is_finished` races `abort` with an
//! `is_finished` that asks a foreign handle unlocked: the abort is not lost.
//! `abandoned_table_keeps_two_records_in_one_slot` records two panics for
//! keys of one slot on two threads while a third clears a stale entry of
//! that slot: each handle finds its own. Run them (in about two
//! minutes in release mode) with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p unirun-core --lib --release loom_tests`;
//! the separate target directory keeps the normal build cache, and
//! `LOOM_MAX_PREEMPTIONS` overrides every model's preemption bound.

extern crate std;

use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::atomic::{AtomicBool as StdAtomicBool, AtomicUsize as StdAtomicUsize};

use loom::thread;

use crate::idle::Idle;
use crate::park::{self, Park, Parker, Unpark, Unparker};
use crate::queue::{self, Injector, Local};
use crate::sync::{fence, Arc, AtomicBool, AtomicUsize, Ordering};
use crate::task::Runnable;
use crate::TaskSet;

/// Runs `f` under loom, exploring interleavings with at most `preemptions`
/// forced context switches (unless `LOOM_MAX_PREEMPTIONS` says otherwise).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    let iterations = std::sync::Arc::new(StdAtomicUsize::new(0));
    let counter = iterations.clone();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    std::println!(
        "{} interleavings explored",
        iterations.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// `n` runnables whose tasks count how often they ran. The counters are plain
/// std atomics: they are only data to loom, read after every thread joined.
struct Counted {
    runs: std::sync::Arc<Vec<StdAtomicUsize>>,
}

impl Counted {
    fn new(n: usize) -> (Self, Vec<Runnable>) {
        let runs: std::sync::Arc<Vec<StdAtomicUsize>> =
            std::sync::Arc::new((0..n).map(|_| StdAtomicUsize::new(0)).collect());
        let runnables = (0..n)
            .map(|id| {
                let runs = runs.clone();
                let (runnable, task) = async_task::spawn(
                    async move {
                        runs[id].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    },
                    |_: Runnable| {},
                );
                // Detached, so running the runnable polls the future.
                task.detach();
                runnable
            })
            .collect();
        (Self { runs }, runnables)
    }

    /// Runs everything that came out of the queues, then checks each task ran
    /// exactly once.
    fn check(&self, found: impl IntoIterator<Item = Runnable>) {
        for runnable in found {
            runnable.run();
        }
        for (id, runs) in self.runs.iter().enumerate() {
            let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(runs, 1, "runnable {id} came out {runs} times");
        }
    }
}

/// Everything left in `local` and `injector`.
fn drain(local: &Local, injector: &Injector) -> Vec<Runnable> {
    let mut found = Vec::new();
    while let Some(runnable) = local.pop() {
        found.push(runnable);
    }
    while let Some(runnable) = injector.pop() {
        found.push(runnable);
    }
    found
}

/// A thief: steals from `victim` into a fresh local queue `times` times,
/// emptying its own queue after each steal, and returns everything it got.
fn steal(victim: queue::Stealer, times: usize) -> Vec<Runnable> {
    let (dst, _) = queue::local();
    let mut found = Vec::new();
    for _ in 0..times {
        found.extend(victim.steal_into(&dst));
        while let Some(runnable) = dst.pop() {
            found.push(runnable);
        }
    }
    found
}

/// The owner pushes more than the queue holds (the fifth push overflows half
/// the queue into the injector, or goes there directly while a steal is in
/// progress) while another worker steals half into its own queue, twice.
#[test]
fn queue_overflow_with_stealer() {
    model(3, || {
        let (counted, runnables) = Counted::new(6);
        let injector = Arc::new(Injector::new());
        let (local, stealer) = queue::local();

        let overflow = injector.clone();
        let owner = thread::spawn(move || {
            for runnable in runnables {
                local.push_back(runnable, &overflow);
            }
            local
        });
        let thief = thread::spawn(move || steal(stealer, 2));

        let local = owner.join().unwrap();
        let mut found = thief.join().unwrap();
        found.extend(drain(&local, &injector));
        counted.check(found);
    });
}

/// The owner interleaves pushes and pops while another worker steals.
#[test]
fn queue_push_pop_with_stealer() {
    model(3, || {
        let (counted, runnables) = Counted::new(4);
        let injector = Arc::new(Injector::new());
        let (local, stealer) = queue::local();

        let overflow = injector.clone();
        let owner = thread::spawn(move || {
            let mut runnables = runnables.into_iter();
            let mut popped = Vec::new();
            for _ in 0..2 {
                local.push_back(runnables.next().unwrap(), &overflow);
                local.push_back(runnables.next().unwrap(), &overflow);
                popped.extend(local.pop());
            }
            (local, popped)
        });
        let thief = thread::spawn(move || steal(stealer, 1));

        let (local, mut found) = owner.join().unwrap();
        found.extend(thief.join().unwrap());
        found.extend(drain(&local, &injector));
        counted.check(found);
    });
}

/// Two workers steal from a full queue at once while its owner pops and
/// pushes again.
#[test]
fn queue_two_stealers() {
    model(3, || {
        const FULL: usize = queue::LOCAL_QUEUE_CAPACITY;
        let (counted, mut runnables) = Counted::new(FULL + 1);
        let last = runnables.pop().unwrap();
        let injector = Injector::new();
        let (local, stealer) = queue::local();
        for runnable in runnables {
            local.push_back(runnable, &injector);
        }
        assert!(injector.is_empty());
        assert_eq!(local.len(), FULL);

        let first = stealer.clone();
        let thief1 = thread::spawn(move || steal(first, 1));
        let thief2 = thread::spawn(move || steal(stealer, 1));
        let mut found: Vec<Runnable> = local.pop().into_iter().collect();
        local.push_back(last, &injector);

        found.extend(thief1.join().unwrap());
        found.extend(thief2.join().unwrap());
        found.extend(drain(&local, &injector));
        counted.check(found);
    });
}

/// The shared side of the idle model: what `Shared` holds, cut down to the
/// injector and the sleep protocol.
struct IdleModel {
    idle: Idle,
    injector: Injector,
    unparkers: Vec<Unparker>,
    /// Items pushed but not consumed yet.
    remaining: AtomicUsize,
    /// Set once every item was consumed, so all workers stop; it plays the
    /// part of `Shared::shutdown`, which is set and then every worker unparked.
    done: AtomicBool,
}

impl IdleModel {
    /// `Shared::notify_parked`.
    fn notify_parked(&self) {
        fence(Ordering::SeqCst);
        if let Some(index) = self.idle.worker_to_notify() {
            self.unparkers[index].unpark();
        }
    }

    /// `Worker::drive` for worker `index` (with `next_task`, `steal_work`,
    /// `run_task` and `park` inlined) minus the local queues: only the producer
    /// creates work, so there is nothing to steal but the injector.
    fn worker(&self, index: usize, parker: &Parker) {
        // `Worker::searching`.
        let mut searching = false;
        loop {
            if self.done.load(Ordering::Acquire) {
                return;
            }
            // `next_task`, then `steal_work`.
            let mut task = self.injector.pop();
            if task.is_none() && (searching || self.idle.transition_worker_to_searching()) {
                searching = true;
                task = self.injector.pop();
            }
            if let Some(task) = task {
                // `run_task`.
                if core::mem::take(&mut searching) && self.idle.transition_worker_from_searching() {
                    self.notify_parked();
                }
                task.run();
                if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    // All consumed: `Pool::shutdown`.
                    self.done.store(true, Ordering::Release);
                    for unparker in &self.unparkers {
                        unparker.unpark();
                    }
                }
                continue;
            }
            // `park`.
            let was_searching = core::mem::take(&mut searching);
            if self.idle.transition_worker_to_parked(index, was_searching) {
                // The park side's `barrier::store_load`, a `SeqCst` fence
                // under loom.
                crate::barrier::store_load();
                if !self.injector.is_empty() {
                    self.notify_parked();
                }
            }
            loop {
                if self.done.load(Ordering::Acquire) {
                    if !self.idle.unpark_worker_by_id(index) {
                        searching = true;
                    }
                    break;
                }
                parker.park();
                if !self.idle.is_parked(index) {
                    searching = true;
                    break;
                }
            }
        }
    }
}

/// Two workers run out of work while a thread outside the pool pushes `items`
/// runnables to the injector, calling `notify_parked` after each. Every one is
/// consumed: a lost wake-up leaves them in the injector with both workers
/// asleep, and loom reports a deadlock.
fn idle_model(items: usize, preemptions: usize) {
    model(preemptions, move || {
        const WORKERS: usize = 2;
        let (counted, mut runnables) = Counted::new(items + 1);
        let (parkers, unparkers): (Vec<Parker>, Vec<Unparker>) =
            (0..WORKERS).map(|_| park::pair()).unzip();
        let shared = Arc::new(IdleModel {
            idle: Idle::new(WORKERS).unwrap(),
            injector: Injector::new(),
            unparkers,
            remaining: AtomicUsize::new(items),
            done: AtomicBool::new(false),
        });

        // Warm the injector up with one push and pop, as in any pool that has
        // run a task. Loom treats a `SeqCst` load as `Acquire`, except that it
        // never returns a `SeqCst` store older than the newest one; but an
        // atomic's initial value is not a `SeqCst` store. On a fresh queue a
        // parking worker's `is_empty` (`SeqCst` loads of the queue's indices)
        // could then return the initial, empty indices after the producer's
        // `SeqCst` push, while the producer's load behind `fence(SeqCst)` missed
        // the worker's `SeqCst` RMW of the idle state. The memory model forbids
        // that: the producer's load is coherence-ordered before the RMW, so it
        // precedes it in the single total order S, the push precedes the load,
        // and the worker's load comes after its RMW, so it must see the push.
        // Loom would report a deadlock that cannot happen.
        shared.injector.push(runnables.pop().unwrap());
        shared.injector.pop().unwrap().run();

        let workers: Vec<_> = parkers
            .into_iter()
            .enumerate()
            .map(|(index, parker)| {
                let shared = shared.clone();
                thread::spawn(move || shared.worker(index, &parker))
            })
            .collect();

        // The producer: `Shared::schedule` from a thread outside the pool.
        for item in runnables {
            shared.injector.push(item);
            shared.notify_parked();
        }

        for worker in workers {
            worker.join().unwrap();
        }
        assert!(shared.injector.is_empty());
        counted.check([]);
    });
}

/// One item: whichever way the workers' searching and parking interleave with
/// the producer, one of them wakes up (or never sleeps) and runs it.
#[test]
fn idle_no_lost_wakeup() {
    idle_model(1, 3);
}

/// Two items: the second push races with a worker that just found the first
/// (and, as the last searcher, wakes another) or is parking again.
#[test]
fn idle_no_lost_wakeup_two_items() {
    idle_model(2, 2);
}

/// A token left by `unpark` makes the next `park` return at once.
#[test]
fn parker_unpark_before_park() {
    model(3, || {
        let (parker, unparker) = park::pair();
        let waker = thread::spawn(move || unparker.unpark());
        waker.join().unwrap();
        parker.park();
    });
}

/// An `unpark` racing with `park` always wakes it.
#[test]
fn parker_concurrent_unpark() {
    model(3, || {
        let (parker, unparker) = park::pair();
        let waker = thread::spawn(move || unparker.unpark());
        parker.park();
        waker.join().unwrap();
    });
}

/// Two racing `unpark`s and one `park`: the park returns, whichever way the
/// tokens merge.
#[test]
fn parker_two_unparks_one_park() {
    model(3, || {
        let (parker, unparker) = park::pair();
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let unparker = unparker.clone();
                thread::spawn(move || unparker.unpark())
            })
            .collect();
        parker.park();
        for waker in wakers {
            waker.join().unwrap();
        }
    });
}

/// `unpark` happens-before the `park` that consumes its token, even when
/// that token merged with an earlier one: a thread that parks until a flag
/// set before an `unpark` is seen never sleeps through it. One waker only
/// unparks (a protocol wake-up); the other sets the flag first (a shutdown).
#[test]
fn parker_unpark_publishes_writes() {
    model(3, || {
        let (parker, unparker) = park::pair();
        let flag = Arc::new(AtomicBool::new(false));
        let plain = unparker.clone();
        let waker = thread::spawn(move || plain.unpark());
        let set_flag = flag.clone();
        let setter = thread::spawn(move || {
            set_flag.store(true, Ordering::Release);
            unparker.unpark();
        });
        while !flag.load(Ordering::Acquire) {
            parker.park();
        }
        waker.join().unwrap();
        setter.join().unwrap();
    });
}

/// Polls `future` once with a no-op waker.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// `abort` and `is_finished` race on the handle's task slot while the task
/// completes on a third thread.
#[test]
fn join_handle_abort_is_finished_complete() {
    model(3, || {
        // Woken tasks run right where they are woken; this one never is.
        let (runnable, handle) = crate::spawn_with(async { 7_u32 }, None, |r: Runnable, _| {
            r.run();
        });
        let handle = Arc::new(handle);

        let aborting = handle.clone();
        let aborter = thread::spawn(move || aborting.abort());
        let watching = handle.clone();
        let watcher = thread::spawn(move || watching.is_finished());
        let runner = thread::spawn(move || {
            runnable.run();
        });

        aborter.join().unwrap();
        watcher.join().unwrap();
        runner.join().unwrap();

        let mut handle = Arc::try_unwrap(handle).unwrap_or_else(|_| panic!("handle still shared"));
        assert!(handle.is_finished());
        match poll_once(&mut handle) {
            Poll::Ready(Ok(7)) => {}
            Poll::Ready(Err(err)) => assert!(err.is_cancelled(), "{err:?}"),
            other => panic!("unexpected {other:?}"),
        }
    });
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

/// `close` races with a member registering its waker for the first time: the
/// waker is always called.
#[test]
fn task_set_close_wakes_registering_member() {
    model(3, || {
        let set = std::sync::Arc::new(TaskSet::new());
        set.enter();
        let (waker, flag) = flag_waker();

        let member_set = set.clone();
        let member = thread::spawn(move || member_set.register(&waker));
        set.close();
        let slot = member.join().unwrap();

        assert!(woken(&flag), "a closing set missed a registering member");
        // What the member does once woken: it sees the set closed and leaves.
        set.leave(Some(slot));
        assert!(set.is_empty());
    });
}

/// The same race through a real task: its first poll returns `Pending` while
/// the set closes. Whatever the interleaving, running what was scheduled
/// afterwards resolves its handle to `cancelled` and empties the set.
#[test]
fn task_set_close_cancels_pending_task() {
    model(3, || {
        let set = std::sync::Arc::new(TaskSet::new());
        let scheduled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let queue = scheduled.clone();
        let (runnable, mut handle) = crate::spawn_with(
            core::future::pending::<()>(),
            Some(&set),
            move |r: Runnable, _| queue.lock().unwrap().push(r),
        );

        let member = thread::spawn(move || {
            runnable.run();
        });
        set.close();
        member.join().unwrap();

        loop {
            let next = scheduled.lock().unwrap().pop();
            match next {
                Some(runnable) => {
                    runnable.run();
                }
                None => break,
            }
        }
        match poll_once(&mut handle) {
            Poll::Ready(Err(err)) => assert!(err.is_cancelled(), "{err:?}"),
            other => panic!("member not woken by close: {other:?}"),
        }
        assert!(set.is_empty());
    });
}

/// A member the close cancelled leaves while the owner counts what did not
/// finish since the close: the count is exact whatever the interleaving (the
/// leaving member is counted live or cancelled, never both or neither), and
/// a member that leaves finished at the same time is counted only while live.
#[test]
fn task_set_close_out_vs_unfinished_since_close() {
    model(3, || {
        let set = std::sync::Arc::new(TaskSet::new());
        set.enter(); // cancelled by the close
        set.enter(); // finishes after the close
        set.enter(); // still live
        set.close();

        let cancelled_set = set.clone();
        let cancelled = thread::spawn(move || cancelled_set.leave_closed_out());
        let finished_set = set.clone();
        let finished = thread::spawn(move || finished_set.leave(None));
        let seen = set.unfinished_since_close();
        cancelled.join().unwrap();
        finished.join().unwrap();

        assert!(seen == 2 || seen == 3, "counted {seen} of 2 or 3");
        assert_eq!(set.unfinished_since_close(), 2);
        set.leave(None);
        assert_eq!(set.unfinished_since_close(), 1);
    });
}

/// A task is polled while its set closes: it finishes (its poll saw the set
/// open) or is cancelled, and the set counts it as cancelled exactly when
/// its handle says so.
#[test]
fn task_set_close_counts_what_it_cancelled() {
    model(3, || {
        let set = std::sync::Arc::new(TaskSet::new());
        let scheduled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let queue = scheduled.clone();
        let (runnable, mut handle) =
            crate::spawn_with(async { 7 }, Some(&set), move |r: Runnable, _| {
                queue.lock().unwrap().push(r)
            });

        let member = thread::spawn(move || {
            runnable.run();
        });
        set.close();
        member.join().unwrap();
        assert!(scheduled.lock().unwrap().is_empty());

        let cancelled = match poll_once(&mut handle) {
            Poll::Ready(Ok(value)) => {
                assert_eq!(value, 7);
                0
            }
            Poll::Ready(Err(err)) => {
                assert!(err.is_cancelled(), "{err:?}");
                1
            }
            Poll::Pending => panic!("the task neither finished nor was cancelled"),
        };
        assert!(set.is_empty());
        assert_eq!(set.unfinished_since_close(), cancelled);
    });
}

/// The last member leaves while someone asks to be told when the set is
/// empty: it sees the set empty or is woken.
#[test]
fn task_set_leave_vs_notify_when_empty() {
    model(3, || {
        let set = std::sync::Arc::new(TaskSet::new());
        set.enter();
        let (waker, flag) = flag_waker();

        let member_set = set.clone();
        let member = thread::spawn(move || member_set.leave(None));
        let empty = set.notify_when_empty(&waker);
        member.join().unwrap();

        assert!(empty || woken(&flag), "wait_empty would hang");
    });
}

/// The last member leaves while a `WaitEmpty` is polled, and polled again
/// with another waker (which replaces the first in its entry): it is ready,
/// or the waker of its latest poll is woken.
#[test]
fn task_set_leave_vs_wait_empty_changing_waker() {
    model(3, || {
        let set = std::sync::Arc::new(TaskSet::new());
        set.enter();
        let (first, _) = flag_waker();
        let (second, flag) = flag_waker();

        let member_set = set.clone();
        let member = thread::spawn(move || member_set.leave(None));
        let mut wait = set.wait_empty();
        let ready = Pin::new(&mut wait)
            .poll(&mut Context::from_waker(&first))
            .is_ready()
            || Pin::new(&mut wait)
                .poll(&mut Context::from_waker(&second))
                .is_ready();
        member.join().unwrap();

        assert!(ready || woken(&flag), "wait_empty would hang");
        drop(wait);
    });
}

/// The owner pushes and pops across the `u16` wrap-around of the queue's
/// positions (the queue starts two slots before it) while another worker
/// steals: every runnable still comes out exactly once.
#[test]
fn queue_wraps_around_u16() {
    model(3, || {
        let (counted, runnables) = Counted::new(5);
        let injector = Arc::new(Injector::new());
        let (local, stealer) = queue::local_at(u16::MAX - 1);

        let overflow = injector.clone();
        let owner = thread::spawn(move || {
            let mut runnables = runnables.into_iter();
            let mut popped = Vec::new();
            for runnable in runnables.by_ref().take(3) {
                local.push_back(runnable, &overflow);
            }
            popped.extend(local.pop());
            for runnable in runnables {
                local.push_back(runnable, &overflow);
            }
            (local, popped)
        });
        let thief = thread::spawn(move || steal(stealer, 2));

        let (local, mut found) = owner.join().unwrap();
        found.extend(thief.join().unwrap());
        found.extend(drain(&local, &injector));
        counted.check(found);
    });
}

/// Shutdown's `steal_all` takes a local queue while its owner pushes to it
/// (with overflow) and pops: every runnable comes out exactly once.
#[test]
fn queue_steal_all_vs_owner() {
    model(3, || {
        let (counted, runnables) = Counted::new(5);
        let injector = Injector::new();
        let (local, stealer) = queue::local();

        let shutdown = thread::spawn(move || stealer.steal_all(false));
        let mut found = Vec::new();
        for runnable in runnables {
            local.push_back(runnable, &injector);
        }
        found.extend(local.pop());

        found.extend(shutdown.join().unwrap());
        found.extend(drain(&local, &injector));
        counted.check(found);
    });
}

/// Shutdown races a steal in transit (issue 19): a thief claims half of a
/// queue whose owner is busy (it never pops again) and copies it into its
/// own queue while the pool stops. `steal_all` waits out the thief's claim
/// and takes the rest of the victim's queue; the thief, once its batch is
/// published, sees the stop (and cancels the batch with its queue, as its
/// core's drop does) or else shutdown's `steal_all` of the thief's queue
/// finds the batch, and the thief runs the one task it kept and stays busy
/// in it. Every runnable comes out exactly once without either busy
/// worker draining its own queue.
#[test]
fn shutdown_vs_steal_in_transit() {
    model(3, || {
        let (counted, runnables) = Counted::new(3);
        let injector = Injector::new();
        let (victim, victim_stealer) = queue::local();
        for runnable in runnables {
            victim.push_back(runnable, &injector);
        }
        let (thief_local, thief_stealer) = queue::local();
        let flag = Arc::new(AtomicBool::new(false));

        let stealer = victim_stealer.clone();
        let stopped = flag.clone();
        let thief = thread::spawn(move || {
            let mut handled = Vec::new();
            if let Some(task) = stealer.steal_into(&thief_local) {
                handled.push(task);
                if crate::pool::stop_seen_after_steal(&stopped) {
                    // `Core`'s drop, once the run loop returns.
                    while let Some(runnable) = thief_local.pop() {
                        handled.push(runnable);
                    }
                }
                // Else it runs `task` and is busy in it from now on.
            }
            (handled, thief_local)
        });

        // `Pool::shutdown`.
        crate::pool::stop(&flag);
        let mut found = victim_stealer.steal_all(false);
        found.extend(thief_stealer.steal_all(false));

        let (handled, thief_local) = thief.join().unwrap();
        found.extend(handled);
        counted.check(found);
        drop((victim, thief_local));
    });
}

/// A one-shot signal a loom thread can block on.
#[derive(Clone)]
struct Latch(Arc<(crate::sync::Mutex<bool>, crate::sync::Condvar)>);

impl Latch {
    fn new() -> Self {
        Self(Arc::new((
            crate::sync::Mutex::new(false),
            crate::sync::Condvar::new(),
        )))
    }

    fn set(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    fn wait(&self) {
        let mut set = self.0 .0.lock().unwrap();
        while !*set {
            set = self.0 .1.wait(set).unwrap();
        }
    }
}

/// Pending once (waking itself), then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if core::mem::replace(&mut self.0, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A gate a future can wait on. Its waker goes through a loom mutex, so loom
/// sees the waiter's writes (its parker) happen before the opener wakes it;
/// a `JoinHandle` would pass the waker through async-task's atomics, which
/// loom does not track.
#[derive(Clone)]
struct Gate(Arc<crate::sync::Mutex<(bool, Option<Waker>)>>);

impl Gate {
    fn new() -> Self {
        Self(Arc::new(crate::sync::Mutex::new((false, None))))
    }

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

/// A real pool of `n` workers on loom parkers, each worker on its own loom
/// thread, and a spawner that starts hand-off threads as loom threads.
struct LoomPool {
    pool: crate::Pool,
    threads: Arc<crate::sync::Mutex<Vec<thread::JoinHandle<()>>>>,
}

impl LoomPool {
    fn new(n: usize) -> Self {
        let parkers = (0..n)
            .map(|_| {
                let (parker, unparker) = park::pair();
                (
                    alloc::boxed::Box::new(parker) as alloc::boxed::Box<dyn Park + Send>,
                    alloc::sync::Arc::new(unparker) as alloc::sync::Arc<dyn Unpark>,
                )
            })
            .collect();
        // Create this thread's cached `block_on` parker before any worker
        // thread exists: loom cannot see async-task's own synchronization,
        // through which a worker later reaches the parker (by our waker).
        crate::block_on(YieldOnce(false));
        let (pool, workers) = crate::Pool::try_new(parkers).unwrap();
        let threads = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let started = threads.clone();
        pool.set_thread_spawner(move |_, job| {
            started.lock().unwrap().push(thread::spawn(job));
            Ok(())
        });
        for worker in workers {
            threads
                .lock()
                .unwrap()
                .push(thread::spawn(move || worker.run()));
        }
        Self { pool, threads }
    }

    /// Shuts the pool down and joins every thread, hand-off threads included.
    fn finish(self) {
        self.pool.shutdown();
        loop {
            let next = self.threads.lock().unwrap().pop();
            match next {
                Some(thread) => thread.join().unwrap(),
                None => break,
            }
        }
    }
}

/// The real run loop's blocker path: with one worker, a task blocks in
/// `block_on` on a gate that only a task queued behind it in its own LIFO
/// slot opens. The blocking call hands the core to a new thread, which runs
/// the queued task; the blocked task then finishes and its thread leaves the
/// loop. A task nested under the blocked frame, or a core left without a
/// thread, would deadlock.
#[test]
fn handoff_runs_task_queued_behind_blocker() {
    model(3, || {
        let pool = LoomPool::new(1);
        let inner = pool.pool.clone();
        let outer = pool.pool.spawn(async move {
            let gate = Gate::new();
            let opener = gate.clone();
            let queued = inner.spawn(async move { opener.open() });
            crate::block_on(gate);
            drop(queued);
            8
        });
        assert_eq!(crate::block_on(outer).unwrap(), 8);
        pool.finish();
    });
}

/// Shutdown drains the worker's own queues: a task spawns one task (to the
/// LIFO slot), lets the pool stop, spawns another (racing the stop: moved to
/// the local queue while `shutdown` takes the local queues, or refused), then
/// joins both. Both resolve cancelled and the worker exits.
#[test]
fn shutdown_drains_local_queue_and_lifo_slot() {
    model(3, || {
        let pool = LoomPool::new(1);
        let (ready, stopped) = (Latch::new(), Latch::new());
        let (is_ready, is_stopped) = (ready.clone(), stopped.clone());
        let inner = pool.pool.clone();
        let task = pool.pool.spawn(async move {
            let first = inner.spawn(async { 1 });
            is_ready.set();
            let second = inner.spawn(async { 2 });
            is_stopped.wait();
            (crate::block_on(first), crate::block_on(second))
        });
        ready.wait();
        pool.pool.shutdown();
        stopped.set();
        let (first, second) = crate::block_on(task).unwrap();
        assert!(first.unwrap_err().is_cancelled());
        assert!(second.unwrap_err().is_cancelled());
        pool.finish();
    });
}

/// A local push races the last searcher going to sleep (issue 8, defect 3):
/// a task on one worker spawns two tasks (the first moves from the LIFO slot
/// to the local queue, with the light barrier and the cheap check) and then
/// blocks its thread until the first one ran. Only the other worker can run
/// it, so it must not sleep through the push: a lost wake-up leaves every
/// thread blocked, which loom reports as a deadlock.
#[test]
fn idle_local_push_vs_last_searcher() {
    model(2, || {
        let pool = LoomPool::new(2);
        let inner = pool.pool.clone();
        let task = pool.pool.spawn(async move {
            let ran = Latch::new();
            let signal = ran.clone();
            let first = inner.spawn(async move { signal.set() });
            let second = inner.spawn(async {});
            // A synchronous wait: this worker cannot run `first` itself.
            ran.wait();
            drop((first, second));
        });
        crate::block_on(task).unwrap();
        pool.finish();
    });
}

/// A thread outside the pool forks on the guest core of a one-worker pool
/// (counted as the awake worker, so nothing wakes the sleeping one) while
/// another thread spawns a task: the spawn's wake-up may be skipped because
/// of the guest, so the guest, when it gives the core back, must re-check
/// the queues and wake the worker. A lost wake-up leaves the task queued
/// and the main thread asleep in `block_on`, which loom reports.
#[test]
fn guest_return_vs_remote_spawn() {
    model(2, || {
        let pool = LoomPool::new(1);
        let spawner = pool.pool.clone();
        let remote = thread::spawn(move || spawner.spawn(async { 5 }));
        assert_eq!(pool.pool.join(|| 1, || 2), (1, 2));
        let task = remote.join().unwrap();
        assert_eq!(crate::block_on(task).unwrap(), 5);
        pool.finish();
    });
}

/// The guest blocks on a task it spawned (queued on the guest core, which
/// nobody else runs) on a one-worker pool: the blocking call moves the task
/// to the injector and stops counting the guest as awake, so the worker
/// wakes, runs it, and steals the half the guest left on its deque.
#[test]
fn guest_blocking_on_its_own_task_wakes_the_worker() {
    model(2, || {
        let pool = LoomPool::new(1);
        let inner = pool.pool.clone();
        let joined = pool.pool.join(
            move || crate::block_on(inner.spawn(async { 3 })).unwrap(),
            || 4,
        );
        assert_eq!(joined, (3, 4));
        pool.finish();
    });
}

/// The guest blocks twice on a one-worker pool: after the first wait it
/// counts as awake again (its `Released` brings the core back), so the
/// second block's `leave` fences and re-checks the queues: the half it
/// forked (offered without a fence, and not at all while the guest counts
/// as the awake worker) is on its deque, and the worker must wake for it,
/// since `a` blocks until `b` runs. Found by the fault-finding review
/// against a version that uncounted the guest for good at its first block.
#[test]
fn guest_second_block_vs_parking_worker() {
    model(2, || {
        let pool = LoomPool::new(1);
        let value = pool.pool.in_worker(|| {
            crate::block_on(YieldOnce(false));
            let gate = Gate::new();
            let opener = gate.clone();
            crate::join(move || crate::block_on(gate), move || opener.open());
            7
        });
        assert_eq!(value, 7);
        pool.finish();
    });
}

/// The guest gives its core back with an outer scope's closure on its
/// deque, and that closure blocks on a task of the one-worker pool. The
/// closure runs on the guest's thread with no core in its context (its
/// `block_on` has nothing to give up), so the guest must count for nothing
/// by then: counted as the awake worker, it made the spawn skip the
/// sleeping worker, and the wait never ended (loom reports the deadlock).
#[test]
fn guest_return_runs_a_scope_closure_blocking_on_the_pool() {
    model(2, || {
        let pool = LoomPool::new(1);
        let inner = pool.pool.clone();
        let ran = Arc::new(AtomicBool::new(false));
        let done = ran.clone();
        crate::fork_join::scope(|outer| {
            pool.pool.join(
                || (),
                move || {
                    outer.spawn(move |_| {
                        // Through a gate, not the task's handle: loom does
                        // not see async-task's synchronization.
                        let gate = Gate::new();
                        let opener = gate.clone();
                        inner.spawn(async move { opener.open() }).detach();
                        crate::block_on(gate);
                        done.store(true, Ordering::Relaxed);
                    })
                },
            );
        });
        assert!(ran.load(Ordering::Relaxed));
        pool.finish();
    });
}

/// The guest blocks on what an outer scope's closure on its deque will do
/// while another thread shuts the one-worker pool down: the worker may
/// leave its loop before it steals the closure, and nobody else would run
/// it. The guest's check of the flag when it blocks and the leaving
/// worker's look at the guest's deque are the two sides of a
/// store-buffering pair (see `guest::return_if_shut_down`): one of them
/// returns the closure, which runs, whatever the order.
#[test]
fn guest_blocked_vs_shutdown_returns_its_deque() {
    model(2, || {
        let pool = LoomPool::new(1);
        let stopper = pool.pool.clone();
        let stop = thread::spawn(move || stopper.shutdown());
        let gate = Gate::new();
        crate::fork_join::scope(|outer| {
            pool.pool.join(
                || {
                    let opener = gate.clone();
                    outer.spawn(move |_| opener.open());
                    crate::block_on(gate);
                },
                || (),
            );
        });
        stop.join().unwrap();
        pool.finish();
    });
}

/// The in-place re-poll of a task that woke itself (see `repoll`) racing a
/// wake-up from outside: on one worker, a task yields twice (its second
/// yield is re-polled in place, through the borrowed waker) and then waits
/// on a gate, storing the waker it was given during that in-place poll,
/// while the main thread opens the gate. The stored waker must be the
/// task's real one, still valid after the poll returned, and the wake-up
/// must not be lost whichever side comes first: the task finishes.
#[test]
fn in_place_repoll_vs_remote_wake() {
    model(2, || {
        let pool = LoomPool::new(1);
        let gate = Gate::new();
        let waited = gate.clone();
        let task = pool.pool.spawn(async move {
            YieldOnce(false).await;
            YieldOnce(false).await;
            waited.await;
            YieldOnce(false).await;
            5
        });
        gate.open();
        assert_eq!(crate::block_on(task).unwrap(), 5);
        pool.finish();
    });
}

/// Task counts (issue 10) stay exact across their shards: a task spawned
/// from outside the pool is counted on a stripe; the task it spawns from
/// the worker on the worker's own shard (a plain load and store); then the
/// outer task blocks, handing the core to a new thread, which runs the
/// inner task and counts its end on the worker shard while the blocked
/// thread, no longer holding the core, counts the outer end on a stripe.
/// Two writers on the worker shard would lose an increment; a reader
/// racing all of it never sees a task counted twice.
#[test]
fn task_counts_exact_across_shards_and_handoff() {
    model(2, || {
        let pool = LoomPool::new(1);
        let set = alloc::sync::Arc::new(TaskSet::for_pool(&pool.pool));
        let (inner_pool, inner_set) = (pool.pool.clone(), set.clone());
        let outer = pool.pool.spawn_in(&set, async move {
            // Blocks on a gate (its waker goes through a loom mutex) that
            // only the task queued behind this one opens.
            let gate = Gate::new();
            let opener = gate.clone();
            let inner = inner_pool.spawn_in(&inner_set, async move { opener.open() });
            crate::block_on(gate);
            inner
        });
        let reader_set = set.clone();
        let reader = thread::spawn(move || {
            let counts = reader_set.counts();
            assert!(counts.completed() <= 2 && counts.live() <= 2);
            assert_eq!(counts.panicked() + counts.cancelled(), 0);
        });
        let inner = crate::block_on(outer).unwrap();
        crate::block_on(inner).unwrap();
        reader.join().unwrap();
        let counts = set.counts();
        assert_eq!(
            (counts.spawned(), counts.completed(), counts.live()),
            (2, 2, 0)
        );
        pool.finish();
    });
}

/// The abandoned-panic table (loom-sized: 4 entries, 2 slots): two tasks'
/// panics are recorded on two threads for keys in the same slot while a
/// third thread's spawn clears a stale key of that slot and another key
/// misses; each handle, once it learns (through a flag, as through
/// async-task's state) that its task was cancelled, finds its own panic,
/// and nothing is left behind.
#[test]
fn abandoned_table_keeps_two_records_in_one_slot() {
    use crate::abandoned::{slot, Table};
    use crate::JoinError;

    model(3, || {
        // Odd keys, as no task's aligned metadata address is.
        let in_slot = |s: usize| (1..).step_by(2).filter(move |&k| slot(k) == s);
        let mut keys = in_slot(0);
        let (a, b, stale) = (
            keys.next().unwrap(),
            keys.next().unwrap(),
            keys.next().unwrap(),
        );
        let table = Arc::new(Table::new());
        drop(table.record(stale, JoinError::cancelled()));
        let recorded = Arc::new(AtomicBool::new(false));

        let (t, done) = (table.clone(), recorded.clone());
        let first = thread::spawn(move || {
            drop(t.record(a, JoinError::panicked(alloc::boxed::Box::new("a"), None)));
            done.store(true, Ordering::Release);
        });
        let t = table.clone();
        let second = thread::spawn(move || {
            drop(t.record(b, JoinError::panicked(alloc::boxed::Box::new("b"), None)));
        });
        // A spawn reusing the stale key's address, and one with no entry.
        assert!(table.take(stale).is_some_and(|e| e.is_cancelled()));
        assert!(table.take(in_slot(1).next().unwrap()).is_none());
        while !recorded.load(Ordering::Acquire) {
            loom::thread::yield_now();
        }
        let err = table.take(a).expect("a's record, seen after its flag");
        assert_eq!(err.panic_message(), Some("a"));
        first.join().unwrap();
        second.join().unwrap();
        let err = table.take(b).expect("b's record, after its thread joined");
        assert_eq!(err.panic_message(), Some("b"));
        assert!(!table.holds(a) && !table.holds(b) && !table.holds(stale));
    });
}

/// `abort` races `is_finished` on a foreign task's handle (whose check runs
/// with the slot's lock released): the abort is never lost, and reaches the
/// foreign handle exactly once; the handle resolves to `cancelled`.
#[test]
fn join_handle_foreign_abort_vs_is_finished() {
    use crate::{ForeignJoin, JoinError, JoinHandle};

    struct Never(std::sync::Arc<StdAtomicUsize>);

    impl ForeignJoin<u32> for Never {
        fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u32, JoinError>> {
            Poll::Pending
        }

        fn is_finished(&self) -> bool {
            false
        }

        fn abort(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    model(3, || {
        let aborted = std::sync::Arc::new(StdAtomicUsize::new(0));
        let handle = Arc::new(JoinHandle::from_foreign(Never(aborted.clone())));
        let watching = handle.clone();
        let watcher = thread::spawn(move || {
            watching.is_finished();
            watching.is_finished();
        });
        handle.abort();
        watcher.join().unwrap();
        assert_eq!(aborted.load(std::sync::atomic::Ordering::SeqCst), 1);
        let mut handle = Arc::try_unwrap(handle).unwrap_or_else(|_| panic!("handle still shared"));
        assert!(handle.is_finished());
        match poll_once(&mut handle) {
            Poll::Ready(Err(err)) => assert!(err.is_cancelled(), "{err:?}"),
            other => panic!("unexpected {other:?}"),
        }
    });
}
