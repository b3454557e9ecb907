//! The parallel maps: input order, the panic rule, items moved out of a
//! `Vec` exactly once, and the path `Run::map` takes by the scope's hints.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{message, watchdog_this_test};
use unirun::{Flavor, Run, RuntimeConfig};

fn mix(i: u64) -> u64 {
    (0..8).fold(i, |x, r| (x ^ r).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[test]
fn par_map_keeps_input_order_for_every_input() {
    watchdog_this_test(|| {
        let expected: Vec<u64> = (0..100_000u64).map(mix).collect();
        assert_eq!(unirun::par_map(0..100_000u64, mix), expected);
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(2)
            .build()
            .unwrap();
        let handle = run.handle();
        assert_eq!(handle.par_map(0..100_000u64, mix), expected);
        let inputs: Vec<u64> = (0..100_000).collect();
        assert_eq!(handle.par_map(&inputs, |&i| mix(i)), expected);
        assert_eq!(handle.par_map(inputs.as_slice(), |&i| mix(i)), expected);
        assert_eq!(handle.par_map(inputs, mix), expected);
        assert_eq!(
            unirun::par_map(-3..=3i32, |i| i * 2),
            [-6, -4, -2, 0, 2, 4, 6]
        );
        assert_eq!(unirun::par_map(i8::MIN..=i8::MAX, |i| i).len(), 256);
        assert!(unirun::par_map(5..5u32, |i| i).is_empty());
        // Inside a task: on that worker.
        let inner = run
            .spawn(async { unirun::par_map(0..1000u64, mix) })
            .join()
            .unwrap();
        assert_eq!(inner, expected[..1000]);
        run.shutdown();
    });
}

#[test]
fn every_item_runs_and_the_lowest_panic_resumes() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(2)
            .build()
            .unwrap();
        let ran = AtomicUsize::new(0);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            run.handle().par_map(0..10_000u32, |i| {
                ran.fetch_add(1, Ordering::SeqCst);
                if i == 7_000 || i == 4_321 || i == 9_999 {
                    panic!("item {i}");
                }
                i
            })
        }));
        assert_eq!(message(&*caught.unwrap_err()), "item 4321");
        assert_eq!(ran.load(Ordering::SeqCst), 10_000);
        run.shutdown();
    });
}

#[test]
fn vec_items_are_moved_out_once_and_results_dropped_once() {
    watchdog_this_test(|| {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let items: Vec<Counted> = (0..5_000).map(|_| Counted(drops.clone())).collect();
        let out = unirun::par_map(items, |item| item);
        assert_eq!(out.len(), 5_000);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(out);
        assert_eq!(drops.load(Ordering::SeqCst), 5_000);
        // A panic drops the results made so far, each once.
        let made = Arc::new(AtomicUsize::new(0));
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            unirun::par_map(0..3_000u32, |i| {
                if i == 1_500 {
                    panic!("stop");
                }
                Counted(made.clone())
            })
        }));
        assert!(caught.is_err());
        assert_eq!(made.load(Ordering::SeqCst), 2_999);
    });
}

/// Names of the threads that ran `run.map`'s items.
fn map_threads(run: &Run) -> Vec<String> {
    let mut names = run.map(0..64u32, |_| {
        std::thread::current().name().unwrap_or("").to_string()
    });
    names.sort();
    names.dedup();
    names
}

#[test]
fn run_map_takes_the_workers_only_in_a_cpu_bound_scope() {
    watchdog_this_test(|| {
        let cpu = Run::builder()
            .flavor(Flavor::Threads)
            .name("cpuwork")
            .max_workers(2)
            .config(RuntimeConfig::default().cpu_bound(true))
            .build()
            .unwrap();
        assert!(
            map_threads(&cpu).iter().all(|n| !n.contains("blocking")),
            "{:?}",
            map_threads(&cpu)
        );
        assert!(
            cpu.trace().to_string().contains("map on the workers"),
            "{}",
            cpu.trace()
        );
        let before = cpu.metrics().joins();
        cpu.map(0..1000u32, |i| i);
        assert!(cpu.metrics().joins() > before);
        cpu.shutdown();

        let plain = Run::builder()
            .flavor(Flavor::Threads)
            .name("plainwork")
            .build()
            .unwrap();
        assert!(
            map_threads(&plain)
                .iter()
                .all(|n| n.starts_with("plainwork-blocking")),
            "{:?}",
            map_threads(&plain)
        );
        assert!(
            plain
                .trace()
                .to_string()
                .contains("map on the blocking lane"),
            "{}",
            plain.trace()
        );
        plain.shutdown();

        let io = Run::builder()
            .flavor(Flavor::Threads)
            .name("iowork")
            .config(RuntimeConfig::default().io_bound(true))
            .build()
            .unwrap();
        assert!(
            map_threads(&io)
                .iter()
                .all(|n| n.starts_with("iowork-blocking")),
            "{:?}",
            map_threads(&io)
        );
        assert!(
            io.trace().to_string().contains("map on the blocking lane"),
            "{}",
            io.trace()
        );
        io.shutdown();
    });
}

/// An unhinted scope's `Run::map` keeps its items off the workers: an item
/// that blocks on a std channel fed by a task of the same one-worker scope
/// (spawned by the item itself, so queued behind it) gets its value.
#[test]
fn run_map_items_that_block_on_a_task_of_a_one_worker_scope_finish() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(1)
            .build()
            .unwrap();
        let handle = run.handle().clone();
        let got = run.map(vec![5u32], move |value| {
            let (tx, rx) = std::sync::mpsc::channel();
            let sender = handle.spawn(async move { tx.send(value * 2).unwrap() });
            let got = rx.recv().unwrap();
            sender.join().unwrap();
            got
        });
        assert_eq!(got, [10]);
        run.shutdown();
    });
}

static GIL_ITEM_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Counts its drops in [`GIL_ITEM_DROPS`].
struct GilItem(usize);

impl Drop for GilItem {
    fn drop(&mut self) {
        GIL_ITEM_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// On a `Gil` scope the map and the join run on the caller, in turn, with
/// the forked form's panic rules: every `Vec` item runs (and is dropped)
/// after one panics, and a join runs `b` after `a` panicked.
#[test]
fn sequential_paths_run_every_item_and_both_halves_after_a_panic() {
    watchdog_this_test(|| {
        let run = Run::builder()
            .flavor(Flavor::Threads)
            .max_workers(2)
            .config(RuntimeConfig::default().thread_mode(unirun::ThreadMode::Gil))
            .build()
            .unwrap();
        let ran = AtomicUsize::new(0);
        let items: Vec<GilItem> = (0..8).map(GilItem).collect();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            run.handle().par_map(items, |item| {
                ran.fetch_add(1, Ordering::SeqCst);
                if item.0 == 0 {
                    panic!("item 0");
                }
                item.0
            })
        }));
        assert_eq!(message(&*caught.unwrap_err()), "item 0");
        assert_eq!(ran.load(Ordering::SeqCst), 8);
        assert_eq!(GIL_ITEM_DROPS.load(Ordering::SeqCst), 8);

        let b_ran = std::sync::atomic::AtomicBool::new(false);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            run.join(|| panic!("a"), || b_ran.store(true, Ordering::SeqCst))
        }));
        assert_eq!(message(&*caught.unwrap_err()), "a");
        assert!(b_ran.load(Ordering::SeqCst));
        run.shutdown();
    });
}
