//! Liveness of a join's wait: what the awaited half waits for is never kept
//! where only the waiting thread could run it. Every test runs under a
//! watchdog, so a hang fails.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use unirun_core::Pool;

fn watchdog<T: Send + 'static>(name: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(body)));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("{name}: hung for 60 s"),
    }
}

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
