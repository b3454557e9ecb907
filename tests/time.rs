//! `unirun::time`: sleep, sleep_until, timeout, interval, on unirun's own
//! timer driver, tokio's and async-io's. Every assertion is about order,
//! completion or cancellation, never about how long something took.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use unirun::time::test_hooks::is_registered;
use unirun::time::{
    interval, interval_at, sleep, sleep_until, timeout, Elapsed, Interval, Sleep, Timeout,
};
use unirun_test_support::watchdog;

/// Tests that reset the process-wide state take this exclusively; every
/// other test holds it shared, so a reset never lands in their middle.
static GLOBAL: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner())
}

fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(future).poll(&mut cx)
}

/// A waker that sends its number on a channel when woken.
struct Report(usize, Mutex<mpsc::Sender<usize>>);

impl Wake for Report {
    fn wake(self: Arc<Self>) {
        let _ = self.1.lock().unwrap().send(self.0);
    }
}

fn reporting_waker(n: usize, tx: &mpsc::Sender<usize>) -> Waker {
    Waker::from(Arc::new(Report(n, Mutex::new(tx.clone()))))
}

/// A deadline far ahead and unique to the caller (`salt`), so tests
/// running in parallel never share a driver key range.
fn far_deadline(salt: u64) -> Instant {
    Instant::now() + Duration::from_secs(10_000) + Duration::from_nanos(salt)
}

#[test]
fn futures_are_send_sync_unpin_and_elapsed_is_an_error() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    fn error<E: std::error::Error + Send + Sync + Clone + PartialEq + Eq + 'static>() {}
    send_sync_unpin::<Sleep>();
    send_sync_unpin::<Interval>();
    send_sync_unpin::<Timeout<std::future::Ready<u8>>>();
    error::<Elapsed>();
    let err: Box<dyn std::error::Error + Send + Sync> = Box::new(
        unirun::block_on(timeout(Duration::ZERO, std::future::pending::<()>())).unwrap_err(),
    );
    assert_eq!(err.to_string(), "deadline has elapsed");
}

#[test]
fn zero_duration_completes_on_the_first_poll_without_a_timer() {
    let _g = shared();
    let mut s = sleep(Duration::ZERO);
    assert!(poll_once(&mut s).is_ready());
    assert!(!is_registered(&s));
}

#[test]
fn a_deadline_in_the_past_is_ready_at_once() {
    let _g = shared();
    let past = Instant::now();
    let mut s = sleep_until(past);
    assert!(poll_once(&mut s).is_ready());
    assert!(!is_registered(&s));
    assert_eq!(unirun::time::test_hooks::entries_at(past), 0);
}

/// `sleep(d)` read the clock when made: its first poll registers without a
/// second read, so a deadline that went by before that poll is reached
/// through the timer, which fires at once, and never lost.
#[test]
fn a_sleep_first_polled_after_its_deadline_completes_through_its_timer() {
    let _g = shared();
    watchdog("late first poll", || {
        let mut s = sleep(Duration::from_micros(1));
        let deadline = s.deadline();
        // Let the deadline go by (a clock wait, not a sleep).
        while Instant::now() <= deadline {
            std::hint::spin_loop();
        }
        let (tx, rx) = mpsc::channel();
        let waker = reporting_waker(7, &tx);
        let mut cx = Context::from_waker(&waker);
        assert!(
            Pin::new(&mut s).poll(&mut cx).is_pending(),
            "the first poll trusts the clock read of `sleep`"
        );
        // The driver finds the entry due and wakes it (no poll needed).
        assert_eq!(rx.recv().unwrap(), 7);
        assert!(!is_registered(&s), "the driver took the fired entry");
        assert!(Pin::new(&mut s).poll(&mut cx).is_ready());
        // A sleep made for a deadline already passed reads the clock and
        // is ready at once.
        let mut again = sleep_until(deadline);
        assert!(poll_once(&mut again).is_ready());
        assert!(!is_registered(&again));
    });
}

/// A cancelled sleep leaves a stale key behind in the driver's queue; they
/// are compacted away long before they pile up, even for deadlines that
/// never come (here, far ahead).
#[test]
fn cancelled_sleeps_do_not_pile_up_in_the_driver() {
    // Exclusive: the bound below counts every test's keys.
    let _g = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
    watchdog("cancelled sleeps", || {
        let cancelled = 20_000;
        for i in 0..cancelled {
            let mut s = sleep_until(far_deadline(i));
            assert!(poll_once(&mut s).is_pending());
            assert!(is_registered(&s));
            drop(s);
        }
        let queued = unirun::time::test_hooks::queued();
        assert!(
            queued < cancelled as usize / 4,
            "{queued} keys still queued after {cancelled} cancelled sleeps"
        );
        // The driver still serves: a sleep registered now completes.
        unirun::block_on(sleep(Duration::from_millis(1)));
    });
}

#[test]
fn duration_max_is_never_and_does_not_overflow() {
    let _g = shared();
    let before = Instant::now();
    let mut s = sleep(Duration::MAX);
    assert!(s.deadline() >= unirun::time::far_future(before));
    assert!(poll_once(&mut s).is_pending());
    assert!(is_registered(&s));
    drop(s);
    let out = unirun::block_on(timeout(Duration::MAX, async { 5 }));
    assert_eq!(out, Ok(5));
    // A never-ending timeout around a future that needs a few polls.
    let out = unirun::block_on(timeout(
        Duration::MAX,
        unirun::spawn(async {
            futures_lite::future::yield_now().await;
            6
        }),
    ));
    assert_eq!(out.map(Result::unwrap), Ok(6));
    let mut every = interval_at(Instant::now(), Duration::MAX);
    assert!(poll_once(&mut Box::pin(every.tick())).is_ready());
    assert!(poll_once(&mut Box::pin(every.tick())).is_pending());
}

#[test]
fn timeout_is_err_for_a_pending_future_and_ok_for_a_ready_one() {
    let _g = shared();
    watchdog("timeout", || {
        let out = unirun::block_on(timeout(
            Duration::from_millis(1),
            std::future::pending::<()>(),
        ));
        assert!(matches!(out, Err(Elapsed { .. })));
        // Ready futures win even against a zero deadline, and touch no timer.
        let mut t = timeout(Duration::ZERO, std::future::ready("ready"));
        assert_eq!(poll_once(&mut t), Poll::Ready(Ok("ready")));
    });
}

#[test]
fn dropping_a_pending_sleep_removes_its_entry() {
    let _g = shared();
    let deadline = far_deadline(1);
    let mut s = sleep_until(deadline);
    assert!(poll_once(&mut s).is_pending());
    assert!(is_registered(&s));
    assert_eq!(unirun::time::test_hooks::entries_at(deadline), 1);
    // Polling again refreshes the entry rather than adding one.
    assert!(poll_once(&mut s).is_pending());
    assert_eq!(unirun::time::test_hooks::entries_at(deadline), 1);
    drop(s);
    assert_eq!(unirun::time::test_hooks::entries_at(deadline), 0);

    // Same through a timeout.
    let deadline = far_deadline(2);
    let mut t = Box::pin(unirun::time::timeout_at(
        deadline,
        std::future::pending::<()>(),
    ));
    assert!(poll_once(&mut t).is_pending());
    assert_eq!(unirun::time::test_hooks::entries_at(deadline), 1);
    drop(t);
    assert_eq!(unirun::time::test_hooks::entries_at(deadline), 0);
}

#[test]
fn resetting_a_sleep_releases_its_entry_and_takes_the_new_deadline() {
    let _g = shared();
    let deadline = far_deadline(3);
    let mut s = sleep_until(deadline);
    assert!(poll_once(&mut s).is_pending());
    assert_eq!(unirun::time::test_hooks::entries_at(deadline), 1);
    let now = Instant::now();
    s.reset(now);
    assert_eq!(unirun::time::test_hooks::entries_at(deadline), 0);
    assert_eq!(s.deadline(), now);
    assert!(poll_once(&mut s).is_ready());
    s.reset(deadline);
    assert!(poll_once(&mut s).is_pending());
    assert!(is_registered(&s));
}

#[test]
fn a_completed_sleep_leaves_no_entry() {
    let _g = shared();
    watchdog("completed sleep", || {
        let mut s = sleep(Duration::from_millis(2));
        let deadline = s.deadline();
        unirun::block_on(&mut s);
        assert!(!is_registered(&s));
        assert_eq!(unirun::time::test_hooks::entries_at(deadline), 0);
    });
}

#[test]
fn the_driver_wakes_distinct_deadlines_in_deadline_order() {
    let _g = shared();
    watchdog("wake order", || {
        const N: usize = 64;
        let (tx, rx) = mpsc::channel();
        let base = Instant::now() + Duration::from_millis(5);
        // Registered in a scrambled order; deadline i is base + i * 100 µs.
        let mut sleeps: Vec<(usize, Sleep)> = (0..N)
            .map(|i| (i * 37) % N)
            .map(|i| (i, sleep_until(base + Duration::from_micros(100 * i as u64))))
            .collect();
        for (i, s) in &mut sleeps {
            let waker = reporting_waker(*i, &tx);
            let mut cx = Context::from_waker(&waker);
            // Pending unless this thread was descheduled past the deadline.
            if Pin::new(s).poll(&mut cx).is_ready() {
                tx.send(usize::MAX).unwrap();
            }
        }
        let mut woken = Vec::new();
        for _ in 0..N {
            woken.push(rx.recv().unwrap());
        }
        if !woken.contains(&usize::MAX) {
            let mut sorted = woken.clone();
            sorted.sort();
            assert_eq!(woken, sorted, "the driver woke out of deadline order");
        }
        for (_, s) in &mut sleeps {
            assert!(poll_once(s).is_ready());
        }
    });
}

#[test]
fn earlier_deadlines_registered_from_many_threads_all_complete() {
    // Each registration is earlier than the last one of its thread, so
    // most of them move the driver's planned wake-up and race its park.
    let _g = shared();
    watchdog("racing registrations", || {
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    let base = Instant::now() + Duration::from_millis(3);
                    let mut sleeps: Vec<Sleep> = (0..200u64)
                        .rev()
                        .map(|i| sleep_until(base + Duration::from_micros(i * 10 + t)))
                        .collect();
                    for s in &mut sleeps {
                        let _ = poll_once(s);
                    }
                    unirun::block_on(async {
                        for s in &mut sleeps {
                            s.await;
                        }
                    });
                    sleeps.iter().filter(|s| is_registered(s)).count()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 0, "a completed sleep kept its entry");
        }
    });
}

#[test]
fn many_concurrent_sleeps_all_complete_on_the_threads_backend() {
    let _g = shared();
    watchdog("many sleeps", || {
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Threads)
            .build()
            .unwrap();
        let done = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..1000u64)
            .map(|i| {
                let done = done.clone();
                run.spawn(async move {
                    let s = sleep(Duration::from_micros(i % 50 * 100));
                    s.await;
                    done.lock().unwrap().push(i);
                })
            })
            .collect();
        run.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        let mut done = done.lock().unwrap().clone();
        done.sort();
        assert_eq!(done, (0..1000).collect::<Vec<_>>());
        run.shutdown();
    });
}

#[test]
fn sleeps_in_threads_tasks_and_block_on_use_the_driver() {
    let _g = shared();
    watchdog("driver choice", || {
        let in_task = unirun::block_on(unirun::spawn(async {
            let mut s = sleep_until(far_deadline(4));
            std::future::poll_fn(|cx| {
                let _ = Pin::new(&mut s).poll(cx);
                Poll::Ready(())
            })
            .await;
            format!("{s:?}")
        }))
        .unwrap();
        assert!(in_task.contains("\"unirun\""), "{in_task}");
    });
}

#[test]
fn interval_first_tick_is_immediate_and_ticks_are_monotonic() {
    let _g = shared();
    watchdog("interval", || {
        let period = Duration::from_millis(1);
        let start = Instant::now();
        let mut every = interval_at(start, period);
        assert_eq!(poll_once(&mut Box::pin(every.tick())), Poll::Ready(start));
        let mut last = start;
        for n in 1..=5u32 {
            let tick = unirun::block_on(every.tick());
            assert_eq!(tick, start + period * n);
            assert!(tick > last);
            last = tick;
        }
        assert_eq!(every.period(), period);
        let mut plain = interval(period);
        assert!(poll_once(&mut Box::pin(plain.tick())).is_ready());
    });
}

#[test]
fn missed_interval_ticks_come_in_a_burst() {
    let _g = shared();
    watchdog("burst", || {
        let period = Duration::from_millis(1);
        let start = Instant::now();
        let mut every = interval_at(start, period);
        // Let five periods pass (waiting on the timer itself).
        unirun::block_on(sleep_until(start + period * 5));
        for n in 0..=5u32 {
            assert_eq!(
                poll_once(&mut Box::pin(every.tick())),
                Poll::Ready(start + period * n),
                "tick {n} should be due at once"
            );
        }
    });
}

#[test]
#[should_panic(expected = "the period must be non-zero, got 0ns")]
fn a_zero_interval_panics_naming_the_period() {
    let _ = interval(Duration::ZERO);
}

/// Names of this process's threads (called only where
/// `lists_threads()` said the platform lists them).
fn thread_names() -> Vec<String> {
    unirun_test_support::thread_names().expect("guarded by lists_threads()")
}

#[test]
fn reset_stops_the_driver_thread_and_waiting_sleeps_still_complete() {
    let _g = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
    watchdog("reset", || {
        let (tx, rx) = mpsc::channel();
        let deadline = far_deadline(5);
        let mut waiting = sleep_until(deadline);
        let waker = reporting_waker(7, &tx);
        assert!(Pin::new(&mut waiting)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert!(unirun::time::test_hooks::driver_running());
        if unirun_test_support::lists_threads() {
            assert!(thread_names().iter().any(|n| n == "unirun-timer"));
        }

        unirun::reset();
        assert!(!unirun::time::test_hooks::driver_running());
        if unirun_test_support::lists_threads() {
            assert!(!thread_names().iter().any(|n| n == "unirun-timer"));
        }
        // The waiting sleep was woken, holds no entry and registers again.
        assert_eq!(rx.recv().unwrap(), 7);
        assert_eq!(unirun::time::test_hooks::entries_at(deadline), 0);
        // Registering again starts a new driver (a deadline far enough
        // that the poll cannot find it passed, however slow the build).
        waiting.reset(far_deadline(5));
        assert!(Pin::new(&mut waiting)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert!(unirun::time::test_hooks::driver_running());
        waiting.reset(Instant::now());
        unirun::block_on(&mut waiting);

        // And timers work on the shared default after the reset.
        let out = unirun::block_on(unirun::spawn(async {
            sleep(Duration::from_millis(1)).await;
            timeout(Duration::from_millis(1), std::future::pending::<()>()).await
        }));
        assert!(out.unwrap().is_err());
        unirun::reset();
        assert!(!unirun::time::test_hooks::driver_running());
    });
}

#[cfg(feature = "tokio-backend")]
#[test]
fn on_a_tokio_scope_sleeps_use_tokio_timer() {
    let _g = shared();
    watchdog("tokio", || {
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Tokio)
            .build()
            .unwrap();
        let handles: Vec<_> = (0..100u64)
            .map(|i| {
                run.spawn(async move {
                    sleep(Duration::from_micros(i * 10)).await;
                    let t = timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
                    assert!(t.is_err());
                    let never = timeout(Duration::MAX, futures_lite::future::yield_now()).await;
                    assert!(never.is_ok());
                    let mut s = sleep_until(far_deadline(6));
                    let _ = futures_lite::future::poll_once(&mut s).await;
                    format!("{s:?}")
                })
            })
            .collect();
        let kinds = run.block_on(async {
            let mut kinds = Vec::new();
            for h in handles {
                kinds.push(h.await.unwrap());
            }
            kinds
        });
        assert!(kinds.iter().all(|k| k.contains("\"tokio\"")), "{kinds:?}");
        run.shutdown();
    });
}

#[cfg(feature = "tokio-backend")]
#[test]
fn inside_a_borrowed_tokio_runtime_sleeps_use_unirun_driver() {
    let _g = shared();
    watchdog("ambient tokio", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let kind = rt.block_on(async {
            sleep(Duration::from_millis(1)).await;
            let mut s = sleep_until(far_deadline(7));
            let _ = futures_lite::future::poll_once(&mut s).await;
            format!("{s:?}")
        });
        // It may have been built without timers: unirun's driver is safe.
        assert!(kind.contains("\"unirun\""), "{kind}");

        // A Tokio scope borrowing a runtime built without timers: sleeps
        // work (on unirun's driver) instead of panicking in tokio.
        let no_timers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let run = {
            let _inside = no_timers.enter();
            unirun::Run::builder()
                .flavor(unirun::Flavor::Tokio)
                .build()
                .unwrap()
        };
        assert_eq!(run.trace().resolved(), unirun::Flavor::Tokio);
        let task = run.spawn(async {
            sleep(Duration::from_millis(1)).await;
            let t = timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
            let mut s = sleep_until(far_deadline(9));
            let _ = futures_lite::future::poll_once(&mut s).await;
            (t.is_err(), format!("{s:?}"))
        });
        let (elapsed, kind) = run.block_on(task).unwrap();
        assert!(elapsed);
        assert!(kind.contains("\"unirun\""), "{kind}");
        run.shutdown();
    });
}

#[cfg(feature = "smol-backend")]
#[test]
fn on_a_smol_scope_sleeps_use_async_io_timer() {
    let _g = shared();
    watchdog("smol", || {
        let run = unirun::Run::builder()
            .flavor(unirun::Flavor::Smol)
            .build()
            .unwrap();
        let handles: Vec<_> = (0..100u64)
            .map(|i| {
                run.spawn(async move {
                    sleep(Duration::from_micros(i * 10)).await;
                    let t = timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
                    assert!(t.is_err());
                    let never = timeout(Duration::MAX, futures_lite::future::yield_now()).await;
                    assert!(never.is_ok());
                    let mut s = sleep_until(far_deadline(8));
                    let _ = futures_lite::future::poll_once(&mut s).await;
                    format!("{s:?}")
                })
            })
            .collect();
        let kinds = run.block_on(async {
            let mut kinds = Vec::new();
            for h in handles {
                kinds.push(h.await.unwrap());
            }
            kinds
        });
        assert!(
            kinds.iter().all(|k| k.contains("\"async-io\"")),
            "{kinds:?}"
        );
        run.shutdown();
    });
}
