//! Load that would expose lost tasks, lost wake-ups or dying workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use unirun_threads::ThreadPool;

/// Keeps the 10,000 deliberate panics below off stderr, letting others through.
fn quiet_deliberate_panics() {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let deliberate = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.starts_with("deliberate"));
            if !deliberate {
                previous(info);
            }
        }));
    });
}

#[test]
fn a_million_tiny_tasks_all_complete() {
    let pool = ThreadPool::builder()
        .workers(2)
        .name("million")
        .build()
        .unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    const TASKS: usize = 1_000_000;
    const BATCH: usize = 10_000;
    for _ in 0..TASKS / BATCH {
        let batch: Vec<_> = (0..BATCH)
            .map(|_| {
                let done = done.clone();
                pool.spawn(async move {
                    done.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        let results = unirun::block_on(unirun::gather(batch));
        assert!(results.iter().all(Result::is_ok));
    }
    assert_eq!(done.load(Ordering::Relaxed), TASKS);
}

#[test]
fn tasks_spawned_from_inside_tasks_all_complete() {
    let pool = ThreadPool::builder()
        .workers(2)
        .name("fanout")
        .build()
        .unwrap();
    let handle = pool.handle();
    let total = pool.spawn(async move {
        let children: Vec<_> = (0..100_000u64)
            .map(|i| handle.spawn(async move { i }))
            .collect();
        let mut sum = 0;
        for child in children {
            sum += child.await.unwrap();
        }
        sum
    });
    assert_eq!(total.join().unwrap(), (0..100_000u64).sum::<u64>());
}

#[test]
fn ten_thousand_panicking_tasks_then_normal_ones_complete() {
    quiet_deliberate_panics();
    let pool = ThreadPool::builder()
        .workers(2)
        .name("panicky")
        .build()
        .unwrap();
    let panics: Vec<_> = (0..10_000)
        .map(|i| {
            if i % 2 == 0 {
                pool.spawn(async { panic!("deliberate async panic") })
            } else {
                pool.spawn_blocking(|| panic!("deliberate blocking panic"))
            }
        })
        .collect();
    for result in unirun::block_on(unirun::gather(panics)) {
        let err = result.unwrap_err();
        assert!(err.is_panic());
        assert!(err.panic_message().unwrap().starts_with("deliberate"));
    }
    let normal: Vec<_> = (0..10_000usize)
        .map(|i| pool.spawn(async move { i }))
        .collect();
    let sum: usize = unirun::block_on(unirun::gather(normal))
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(sum, (0..10_000).sum::<usize>());
}

#[test]
fn many_threads_spawning_at_once_lose_nothing() {
    let pool = ThreadPool::builder()
        .workers(2)
        .name("contend")
        .build()
        .unwrap();
    let handle = pool.handle();
    let spawners: Vec<_> = (0..8)
        .map(|t| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let tasks: Vec<_> = (0..20_000u64)
                    .map(|i| handle.spawn(async move { t * i }))
                    .collect();
                unirun::block_on(unirun::gather(tasks))
                    .into_iter()
                    .map(Result::unwrap)
                    .sum::<u64>()
            })
        })
        .collect();
    let total: u64 = spawners.into_iter().map(|s| s.join().unwrap()).sum();
    let expected: u64 = (0..8u64)
        .map(|t| (0..20_000u64).map(|i| t * i).sum::<u64>())
        .sum();
    assert_eq!(total, expected);
}

#[test]
fn ping_pong_and_yields_do_not_lose_wakeups() {
    let pool = ThreadPool::builder()
        .workers(2)
        .name("pingpong")
        .build()
        .unwrap();
    let handle = pool.handle();
    let rounds = pool.spawn(async move {
        for round in 0..20_000u32 {
            let (tx, rx) = async_channel_pair();
            let echo = handle.spawn(async move { rx.await + 1 });
            tx.send(round);
            assert_eq!(echo.await.unwrap(), round + 1);
        }
    });
    rounds.join().unwrap();
    let yielders: Vec<_> = (0..200)
        .map(|_| {
            pool.spawn(async {
                for _ in 0..1_000 {
                    futures_lite_yield().await;
                }
            })
        })
        .collect();
    assert!(unirun::block_on(unirun::gather(yielders))
        .iter()
        .all(Result::is_ok));
}

/// A one-shot slot: the receiver future resolves once `send` stores a value.
fn async_channel_pair() -> (Tx, Rx) {
    let slot = Arc::new(std::sync::Mutex::new((None, None::<std::task::Waker>)));
    (Tx(slot.clone()), Rx(slot))
}

struct Tx(Arc<std::sync::Mutex<(Option<u32>, Option<std::task::Waker>)>>);
struct Rx(Arc<std::sync::Mutex<(Option<u32>, Option<std::task::Waker>)>>);

impl Tx {
    fn send(self, value: u32) {
        let mut slot = self.0.lock().unwrap();
        slot.0 = Some(value);
        if let Some(waker) = slot.1.take() {
            waker.wake();
        }
    }
}

impl std::future::Future for Rx {
    type Output = u32;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<u32> {
        let mut slot = self.0.lock().unwrap();
        match slot.0.take() {
            Some(value) => std::task::Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

async fn futures_lite_yield() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}
