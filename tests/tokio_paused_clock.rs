//! A paused tokio clock (`#[tokio::test(start_paused = true)]`,
//! `tokio::time::pause()`) reaches a service's timers when its tasks run
//! on a unirun scope built inside the test: an `Auto` scope borrows the
//! test's runtime, and `unirun::spawn` / `compat::tokio::spawn` inside the
//! scope's tasks stay on that scope. An hour of sleeps passes at once.
#![cfg(feature = "tokio-backend")]

mod common;

use std::future::Future;
use std::time::Duration;

use unirun::{Flavor, Run};

/// A "server" whose every request waits on timers before it answers.
async fn serve(requests: u32) -> u32 {
    let mut answered = 0;
    for _ in 0..requests {
        // Its own tasks, spawned the unirun way and the tokio way.
        let a = unirun::spawn(async { tokio::time::sleep(Duration::from_secs(600)).await });
        let b = unirun::compat::tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(600)).await;
        });
        a.await.unwrap();
        b.await.unwrap();
        answered += 1;
    }
    answered
}

/// Runs `body` on a current-thread runtime like `#[tokio::test]`'s (its
/// clock paused from the start with `paused`), under the watchdog: a clock
/// that does not reach the timers would sleep for real, and fail there.
fn tokio_test<F>(paused: bool, body: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    common::watchdog_this_test(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(paused)
            .build()
            .unwrap();
        rt.block_on(body());
    });
}

#[test]
fn a_paused_clock_reaches_the_timers_of_a_scopes_tasks() {
    tokio_test(true, || async {
        let run = Run::builder().name("paused").build().unwrap();
        assert_eq!(run.trace().resolved(), Flavor::Tokio, "{}", run.trace());
        let start = tokio::time::Instant::now();
        let answered = run.spawn(serve(6)).await.unwrap();
        assert_eq!(answered, 6);
        // An hour of tokio time went by.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(3600), "{elapsed:?}");
    });
}

#[test]
fn tokio_time_pause_in_the_test_reaches_them_too() {
    tokio_test(false, || async {
        tokio::time::pause();
        let run = Run::builder().name("paused-later").build().unwrap();
        let start = tokio::time::Instant::now();
        let answered = run.spawn(serve(1)).await.unwrap();
        assert_eq!(answered, 1);
        assert!(start.elapsed() >= Duration::from_secs(600));
    });
}
