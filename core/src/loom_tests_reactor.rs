//! Loom models of the hand-offs by which pool workers drive a reactor. The
//! code lives above the core (`unirun_threads`' context parker, the
//! facade's tokio driver); each model restates one protocol on the same
//! operations and orderings, so a change there must be mirrored here.
//!
//! The park token: the unparker sets the flag, then takes the waker under
//! the slot's lock; the parked side takes the flag, or stores its waker
//! and takes the flag again. No wake-up is lost.
//!
//! Run it with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p unirun-core --lib --release loom_reactor`.

extern crate std;

use loom::thread;

use crate::sync::{fence, lock, Arc, AtomicBool, AtomicUsize, Mutex, Ordering};

#[test]
fn loom_reactor_park_token_loses_no_wakeup() {
    loom::model(|| {
        let notified = Arc::new(AtomicBool::new(false));
        // `Some(false)`: a stored waker; `Some(true)`: it was woken.
        let slot = Arc::new(Mutex::new(None::<bool>));
        let (n, s) = (notified.clone(), slot.clone());
        let unparker = thread::spawn(move || {
            n.swap(true, Ordering::SeqCst);
            let mut waker = lock(&s);
            if let Some(woken) = waker.as_mut() {
                *woken = true;
            }
        });
        // The parked side's poll.
        let ready = notified.swap(false, Ordering::SeqCst) || {
            *lock(&slot) = Some(false);
            notified.swap(false, Ordering::SeqCst)
        };
        unparker.join().unwrap();
        let woken = *lock(&slot) == Some(true);
        assert!(ready || woken, "the wake-up was lost");
    });
}

/// unirun's tokio driver (the facade's `io::driver`): the last worker
/// leaving the driver decrements `parked`, fences, reads `io_sleeping`;
/// the fallback sets `io_sleeping`, fences, reads `parked`. A fallback
/// that sleeps is woken.
#[test]
fn loom_reactor_last_worker_out_wakes_the_sleeping_fallback() {
    loom::model(|| {
        let parked = Arc::new(AtomicUsize::new(1));
        let io_sleeping = Arc::new(AtomicBool::new(false));
        let notified = Arc::new(Mutex::new(false));
        let (p, s, n) = (parked.clone(), io_sleeping.clone(), notified.clone());
        let worker = thread::spawn(move || {
            let was = p.fetch_sub(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if was == 1 && s.load(Ordering::SeqCst) {
                *lock(&n) = true;
            }
        });
        io_sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let sleeps = parked.load(Ordering::SeqCst) > 0;
        worker.join().unwrap();
        assert!(!sleeps || *lock(&notified), "the fallback sleeps forever");
    });
}

/// The driver again: a parking worker takes `parked`, fences, reads
/// `io_driving` and wakes the fallback's turn under the state lock; the
/// fallback sets `io_driving`, fences, and its turn reads `parked` and
/// stores its waker under that lock. The turn ends.
#[test]
fn loom_reactor_a_parking_worker_ends_the_fallbacks_turn() {
    loom::model(|| {
        let parked = Arc::new(AtomicUsize::new(0));
        let io_driving = Arc::new(AtomicBool::new(false));
        // `Some(false)`: the turn's waker; `Some(true)`: it was woken.
        let turn = Arc::new(Mutex::new(None::<bool>));
        let (p, d, t) = (parked.clone(), io_driving.clone(), turn.clone());
        let worker = thread::spawn(move || {
            if p.compare_exchange(0, 1, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                fence(Ordering::SeqCst);
                if d.load(Ordering::SeqCst) {
                    let mut waker = lock(&t);
                    if let Some(woken) = waker.as_mut() {
                        *woken = true;
                    }
                }
            }
        });
        io_driving.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // The turn's poll.
        let ready = {
            let mut waker = lock(&turn);
            if parked.load(Ordering::SeqCst) > 0 {
                true
            } else {
                *waker = Some(false);
                false
            }
        };
        worker.join().unwrap();
        let woken = *lock(&turn) == Some(true);
        assert!(
            ready || woken,
            "the fallback keeps the core from a parked worker"
        );
    });
}
