//! Counts the extra core could skew: the idle word counts a working guest
//! as an awake worker and the pool's queue lists have one more entry than
//! it has workers, so `busy_workers` and the parallel map's split budget
//! must count workers, not entries. Found by a fault-finding review; every
//! test runs under a watchdog.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use unirun_core::{park, Park, Pool, Unpark};
use unirun_test_support::watchdog_this_test;

struct CountingPark(park::Parker, Arc<AtomicUsize>);
impl Park for CountingPark {
    fn park(&self) {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.park();
        self.1.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A pool whose workers count themselves while inside `park()`.
pub(crate) fn start(workers: usize) -> (Pool, Vec<thread::JoinHandle<()>>, Arc<AtomicUsize>) {
    let parked = Arc::new(AtomicUsize::new(0));
    let parkers = (0..workers)
        .map(|_| {
            let (parker, unparker) = park::pair();
            (
                Box::new(CountingPark(parker, parked.clone())) as Box<dyn Park + Send>,
                Arc::new(unparker) as Arc<dyn Unpark>,
            )
        })
        .collect();
    let (pool, workers) = Pool::new(parkers);
    let threads = workers
        .into_iter()
        .map(|w| thread::spawn(move || w.run()))
        .collect();
    (pool, threads, parked)
}

/// Two workers, one busy in a task, the other asleep; a guest asks for the
/// busy count: one worker is busy (the guest is no worker, and the
/// commit's own test says it is not counted as an extra busy worker), but
/// the idle word's awake count includes the guest and the clamp to
/// `workers` does not remove it while a worker sleeps.
#[test]
fn guest_busy_workers_with_a_sleeping_worker() {
    watchdog_this_test(|| {
        let (pool, threads, parked) = start(2);
        let (started, is_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let busy_task = pool.spawn(async move {
            started.send(()).unwrap();
            released.recv().unwrap();
        });
        is_started.recv().unwrap();
        // The other worker finds nothing and parks.
        while parked.load(Ordering::SeqCst) < 1 {
            thread::yield_now();
        }
        let outside = pool.stats().busy_workers();
        let (busy, asleep) = pool
            .join(
                || (pool.stats().busy_workers(), parked.load(Ordering::SeqCst)),
                || (),
            )
            .0;
        release.send(()).unwrap();
        busy_task.join().unwrap();
        assert_eq!(outside, 1, "one worker busy, seen from outside");
        assert!(
            busy + asleep <= 2,
            "seen from the guest: {busy} busy workers and {asleep} asleep on a 2-worker pool"
        );
        pool.shutdown();
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
}

/// `map_indexed` on a worker takes its split budget from
/// `shared.stealers.len()`, now `workers + 1`: on a one-worker pool a map
/// inside a task splits into 4 chunks (3 joins) instead of the module
/// docs' `2 * workers` = 2 chunks (1 join). Nobody can steal on a
/// one-worker pool from inside its task, so the count is exact.
#[test]
fn guest_map_split_budget_counts_workers() {
    watchdog_this_test(|| {
        let (pool, threads, _parked) = start(1);
        let joins = pool
            .spawn({
                let pool = pool.clone();
                async move {
                    let before = pool.stats().joins();
                    let out = unirun_core::map_indexed(64, |i| i * 2);
                    assert_eq!(out.len(), 64);
                    pool.stats().joins() - before
                }
            })
            .join()
            .unwrap();
        assert_eq!(joins, 1, "a map on a one-worker pool forks into 2 chunks");
        pool.shutdown();
        threads.into_iter().for_each(|t| t.join().unwrap());
    });
}
