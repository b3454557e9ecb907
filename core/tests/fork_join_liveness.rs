//! Liveness of a join's wait: what the awaited half waits for is never kept
//! where only the waiting thread could run it. Every test runs under a
//! watchdog, so a hang fails.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

use unirun_core::Pool;
use unirun_test_support::watchdog;

fn start(workers: usize) -> (Pool, Vec<thread::JoinHandle<()>>) {
    let (pool, workers) = Pool::with_workers(workers);
    let threads = workers
        .into_iter()
        .map(|w| thread::spawn(move || w.run()))
        .collect();
    (pool, threads)
}

/// A one-shot signal a task awaits; `registered` says it is waiting.
#[derive(Default)]
struct Signal(Mutex<(bool, Option<Waker>)>);

impl Signal {
    fn set(&self) {
        let waker = {
            let mut state = self.0.lock().unwrap();
            state.0 = true;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn registered(&self) -> bool {
        self.0.lock().unwrap().1.is_some()
    }
}

struct Wait(Arc<Signal>);

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = (self.0).0.lock().unwrap();
        if state.0 {
            Poll::Ready(())
        } else {
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// A task wakes task X (X goes to its worker's LIFO slot, which no other
/// worker serves), then joins; the stolen half blocks on X's `JoinHandle`.
/// The forking worker, waiting for that half, must let X run elsewhere.
#[test]
fn a_task_in_the_waiters_lifo_slot_runs_while_a_stolen_half_waits_for_it() {
    let got = watchdog("lifo", || {
        let (pool, threads) = start(2);
        let signal = Arc::new(Signal::default());
        let x = pool.spawn({
            let signal = signal.clone();
            async move {
                Wait(signal).await;
                42u32
            }
        });
        // No notification for "X polled and pending": wait for its waker.
        while !signal.registered() {
            thread::yield_now();
        }
        let stolen = Arc::new(AtomicBool::new(false));
        let forker = pool.spawn(async move {
            signal.set(); // X -> this worker's LIFO slot
            let stolen_b = stolen.clone();
            let ((), got) = unirun_core::join(
                || {
                    // Keep the forking worker busy until `b` is stolen.
                    while !stolen.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                },
                move || {
                    stolen_b.store(true, Ordering::SeqCst);
                    x.join().unwrap()
                },
            );
            got
        });
        let got = forker.join().unwrap();
        pool.shutdown();
        threads.into_iter().for_each(|t| t.join().unwrap());
        got
    });
    assert_eq!(got, 42);
}

/// Ready at its second poll (wakes itself once): a `block_on` of it blocks.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A scope body on the only worker spawns a closure, then shuts the pool
/// down and blocks: the core (holding the queued closure and a join half)
/// is dropped. The closure still runs and the scope ends without a panic.
#[test]
fn a_scope_closure_queued_on_a_core_dropped_at_shutdown_still_runs() {
    let (spawned_ran, b_ran, outcome) = watchdog("scope at shutdown", || {
        let (pool, threads) = start(1);
        let stopper = pool.clone();
        let out = pool
            .spawn(async move {
                let spawned_ran = AtomicBool::new(false);
                let b_ran = AtomicBool::new(false);
                let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                    unirun_core::scope(|s| {
                        s.spawn(|_| spawned_ran.store(true, Ordering::SeqCst));
                        unirun_core::join(
                            || {
                                stopper.shutdown();
                                unirun_core::block_on(YieldOnce(false));
                            },
                            || b_ran.store(true, Ordering::SeqCst),
                        );
                    })
                }));
                (
                    spawned_ran.load(Ordering::SeqCst),
                    b_ran.load(Ordering::SeqCst),
                    outcome.map_err(|p| {
                        p.downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    }),
                )
            })
            .join()
            .unwrap();
        threads.into_iter().for_each(|t| t.join().unwrap());
        out
    });
    assert_eq!(outcome, Ok(()));
    assert!(b_ran, "the join half was not run by its owner");
    assert!(spawned_ran, "the scope's closure was cancelled at shutdown");
}

/// Panics when dropped.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("capture dropped");
    }
}

/// The same shutdown, with a queued closure whose capture panics when
/// dropped: the scope still counts it finished and resumes that panic,
/// instead of waiting forever for it.
#[test]
fn a_scope_closure_whose_capture_panics_on_drop_at_shutdown_ends_the_scope() {
    let outcome = watchdog("panicking capture at shutdown", || {
        let (pool, threads) = start(1);
        let stopper = pool.clone();
        let out = pool
            .spawn(async move {
                let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                    unirun_core::scope(|s| {
                        let capture = PanicOnDrop;
                        s.spawn(move |_| {
                            let _capture = capture;
                        });
                        unirun_core::join(
                            || {
                                stopper.shutdown();
                                unirun_core::block_on(YieldOnce(false));
                            },
                            || (),
                        );
                    })
                }));
                outcome.map_err(|p| {
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                })
            })
            .join()
            .unwrap();
        threads.into_iter().for_each(|t| t.join().unwrap());
        out
    });
    assert_eq!(outcome, Err("capture dropped".to_string()));
}
