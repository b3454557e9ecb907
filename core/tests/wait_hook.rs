//! The wait hook is called around blocking waits, in pairs, and not at all
//! for futures that are ready at once. One process-wide hook: this binary
//! installs it once and every test here shares it.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use unirun_core::{block_on, Pool, WaitHook};

thread_local! {
    /// Stands in for a lock this thread holds while its code runs.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
    static RELEASES: Cell<usize> = const { Cell::new(0) };
}

static INSTALL: Once = Once::new();
static UNBALANCED: AtomicUsize = AtomicUsize::new(0);

fn release() -> usize {
    RELEASES.with(|r| r.set(r.get() + 1));
    HOLDING.with(|h| h.replace(false)) as usize
}

fn reacquire(token: usize) {
    if HOLDING.with(Cell::get) {
        // Reacquiring while holding: calls did not pair up.
        UNBALANCED.fetch_add(1, Ordering::SeqCst);
    }
    HOLDING.with(|h| h.set(token == 1));
}

fn install() {
    INSTALL.call_once(|| assert!(unirun_core::set_wait_hook(WaitHook { release, reacquire })));
}

#[test]
fn a_second_hook_is_refused() {
    install();
    assert!(!unirun_core::set_wait_hook(WaitHook { release, reacquire }));
}

#[test]
fn ready_futures_never_call_the_hook() {
    install();
    HOLDING.with(|h| h.set(true));
    assert_eq!(block_on(async { 3 }), 3);
    assert_eq!(RELEASES.with(Cell::get), 0);
    assert!(HOLDING.with(Cell::get));
}

#[test]
fn a_parked_wait_releases_and_reacquires() {
    install();
    HOLDING.with(|h| h.set(true));
    let mut polls = 0;
    let mut polled_while_holding = true;
    let out = block_on(std::future::poll_fn(|cx| {
        polled_while_holding &= HOLDING.with(Cell::get);
        polls += 1;
        if polls < 3 {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(9)
    }));
    assert_eq!(out, 9);
    // Poll 1 is the ready check, poll 2 starts the wait, poll 3 follows
    // the one park.
    assert_eq!(RELEASES.with(Cell::get), 1);
    assert!(
        polled_while_holding,
        "the future is polled with the lock held"
    );
    assert!(HOLDING.with(Cell::get), "held again after the wait");
    assert_eq!(UNBALANCED.load(Ordering::SeqCst), 0);
}

#[test]
fn a_wait_on_a_worker_releases_while_it_runs_other_tasks() {
    install();
    let (pool, workers) = Pool::with_workers(1);
    let worker = std::thread::spawn(move || workers.into_iter().for_each(|w| w.run()));
    let inner = pool.clone();
    let observed = pool
        .spawn(async move {
            HOLDING.with(|h| h.set(true));
            // Queued behind us on the only worker: it runs inside our wait.
            let queued = inner.spawn(async { HOLDING.with(Cell::get) });
            let held_by_queued = block_on(queued).unwrap();
            let held_after = HOLDING.with(|h| h.replace(false));
            (held_by_queued, held_after)
        })
        .join()
        .unwrap();
    assert_eq!(observed, (false, true));
    assert_eq!(UNBALANCED.load(Ordering::SeqCst), 0);
    pool.shutdown();
    worker.join().unwrap();
}
