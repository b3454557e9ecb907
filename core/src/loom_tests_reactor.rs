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

/// A park that runs foreign code (a task of the runtime a driving park
/// runs, see `Park::runs_foreign_code`): the first time it parks, it runs
/// its job with the flag up, then parks plainly.
struct ForeignPark {
    thread: crate::park::Parker,
    job: Arc<Mutex<Option<Job>>>,
    foreign: core::cell::Cell<bool>,
}

type Job = alloc::boxed::Box<dyn FnOnce() + Send>;

impl crate::Park for ForeignPark {
    fn park(&self) {
        let job = lock(&self.job).take();
        if let Some(job) = job {
            self.foreign.set(true);
            job();
            self.foreign.set(false);
        }
        self.thread.park();
    }

    fn runs_foreign_code(&self) -> bool {
        self.foreign.get()
    }
}

/// Set once; waited for by a blocked thread.
#[derive(Clone)]
struct Latch(Arc<(Mutex<bool>, crate::sync::Condvar)>);

impl Latch {
    fn new() -> Self {
        Self(Arc::new((Mutex::new(false), crate::sync::Condvar::new())))
    }

    fn set(&self) {
        *lock(&self.0 .0) = true;
        self.0 .1.notify_all();
    }

    fn wait(&self) {
        let mut set = lock(&self.0 .0);
        while !*set {
            set = self.0 .1.wait(set).unwrap();
        }
    }
}

/// The real run loop and sleep protocol: worker 0's park runs foreign
/// code that spawns a pool task and then blocks its thread until that task
/// ran, while worker 1 goes to sleep. The worker leaves the sleepers, the
/// task is queued where worker 1 steals it, and worker 1 is woken (or sees
/// it before sleeping): a task stranded on the parked worker, or a wake-up
/// spent on it, leaves every thread blocked, which loom reports as a
/// deadlock.
#[test]
fn loom_reactor_foreign_code_in_a_park_strands_no_task() {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(|| {
        let job = Arc::new(Mutex::new(None::<Job>));
        let (foreign, foreign_unpark) = crate::park::pair();
        let (plain, plain_unpark) = crate::park::pair();
        let parkers: alloc::vec::Vec<(
            alloc::boxed::Box<dyn crate::Park + Send>,
            alloc::sync::Arc<dyn crate::Unpark>,
        )> = alloc::vec![
            (
                alloc::boxed::Box::new(ForeignPark {
                    thread: foreign,
                    job: job.clone(),
                    foreign: core::cell::Cell::new(false),
                }),
                alloc::sync::Arc::new(foreign_unpark),
            ),
            (
                alloc::boxed::Box::new(plain),
                alloc::sync::Arc::new(plain_unpark),
            ),
        ];
        let (pool, workers) = crate::Pool::try_new(parkers).unwrap();
        let done = Latch::new();
        let (inner, finished) = (pool.clone(), done.clone());
        let mut workers = workers.into_iter();
        let first = workers.next().unwrap();
        // The job goes into worker 0's park before its thread starts.
        *lock(&job) = Some(alloc::boxed::Box::new(move || {
            let ran = Latch::new();
            let signal = ran.clone();
            let task = inner.spawn(async move { signal.set() });
            ran.wait();
            drop(task);
            finished.set();
        }));
        let second = workers.next().unwrap();
        let threads = [
            thread::spawn(move || first.run()),
            thread::spawn(move || second.run()),
        ];
        done.wait();
        pool.shutdown();
        for thread in threads {
            thread.join().unwrap();
        }
    });
}
