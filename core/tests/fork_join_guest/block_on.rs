//! A guest that blocks (`block_on` inside a join's closure, see
//! `fork_join::guest`) puts its core out of reach for the wait: whatever the
//! blocked future schedules on the pool (a spawn, a wake-up of a pool task)
//! goes where the workers take it, not into the guest core's LIFO slot,
//! which nobody serves while its guest is blocked. Found by a fault-finding
//! review; each test runs under a watchdog, so the hang fails it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

use unirun_test_support::watchdog_this_test;

use super::{finish, start};

/// Pending once (waking itself), then ready: the `block_on` around it
/// calls `release_core` after the first poll, and polls again.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Off a worker, `block_on(async { yield; spawn(..).await })` works; as the
/// guest (inside `Pool::join` from a plain thread) the spawn made after the
/// wait started goes to the guest core's LIFO slot and never runs.
#[test]
fn guest_block_on_spawn_after_first_poll_runs() {
    watchdog_this_test(|| {
        let (pool, threads) = start(2);
        let (value, ()) = pool.join(
            || {
                unirun_core::block_on(async {
                    YieldOnce(false).await;
                    pool.spawn(async { 7 }).await.unwrap()
                })
            },
            || (),
        );
        assert_eq!(value, 7);
        finish(pool, threads);
    });
}

/// The same with two spawns, no yield: the first spawn is moved to the
/// injector by the hand-off (it sits in the LIFO slot when `block_on`
/// releases the core); the second, made in a later poll, is stranded.
#[test]
fn guest_block_on_second_spawn_runs() {
    watchdog_this_test(|| {
        let (pool, threads) = start(2);
        let (value, ()) = pool.join(
            || {
                unirun_core::block_on(async {
                    let first = pool.spawn(async { 1 }).await.unwrap();
                    let second = pool.spawn(async { 2 }).await.unwrap();
                    first + second
                })
            },
            || (),
        );
        assert_eq!(value, 3);
        finish(pool, threads);
    });
}

/// A pool task woken from the blocked guest's future (here: a task waiting
/// on a oneshot that the future completes after its first wait) is
/// scheduled into the guest's LIFO slot the same way.
#[test]
fn guest_block_on_wakes_a_pool_task() {
    watchdog_this_test(|| {
        let (pool, threads) = start(2);
        let state = Arc::new(Mutex::new(Slot::default()));
        let waiter = pool.spawn(Receiver(state.clone()));
        // The task ran once and now waits for the value (its waker is
        // stored): it ends only when woken.
        while state.lock().unwrap().waker.is_none() {
            thread::yield_now();
        }
        let (value, ()) = pool.join(
            || {
                unirun_core::block_on(async {
                    YieldOnce(false).await;
                    let waker = {
                        let mut slot = state.lock().unwrap();
                        slot.value = Some(11);
                        slot.waker.take()
                    };
                    waker.expect("the task waits").wake();
                    waiter.await.unwrap()
                })
            },
            || (),
        );
        assert_eq!(value, 11);
        finish(pool, threads);
    });
}

#[derive(Default)]
struct Slot {
    value: Option<u32>,
    waker: Option<Waker>,
}

/// Ready once `Slot::value` is set; stores its waker otherwise.
struct Receiver(Arc<Mutex<Slot>>);

impl Future for Receiver {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut slot = self.0.lock().unwrap();
        match slot.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
