//! What a pool's shutdown waits on: its task set emptying, and its worker
//! threads leaving their loops, each with an optional deadline.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Wake, Waker};
use std::thread;
use std::time::Instant;

use unirun_core::TaskSet;

/// Parks the calling thread until `tasks` is empty or `deadline` passes;
/// returns whether it emptied.
pub(crate) fn wait_empty(tasks: &TaskSet, deadline: Option<Instant>) -> bool {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    loop {
        if tasks.notify_when_empty(&waker) {
            return true;
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
}

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Counts the pool's threads that have not left their loop yet, so a
/// bounded shutdown can wait for them with a deadline (a `JoinHandle` has
/// no timed join).
#[derive(Debug, Default)]
pub(crate) struct Exits {
    live: Mutex<usize>,
    left: Condvar,
}

/// Held by one thread for as long as it runs; dropped when its closure
/// returns or unwinds (or with the closure, if the thread never started).
#[derive(Debug)]
pub(crate) struct ExitGuard(Arc<Exits>);

impl Exits {
    fn lock(&self) -> MutexGuard<'_, usize> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more thread until the returned guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>) -> ExitGuard {
        *self.lock() += 1;
        ExitGuard(self.clone())
    }

    /// Waits until every counted thread has left, or `deadline` passes;
    /// returns whether they all left.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let mut live = self.lock();
        while *live > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            live = self
                .left
                .wait_timeout(live, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let mut live = self.0.lock();
        *live -= 1;
        if *live == 0 {
            self.0.left.notify_all();
        }
    }
}

/// The hand-off threads a pool started (see `Pool::set_thread_spawner`).
#[derive(Default)]
pub(crate) struct HandoffThreads(Mutex<Vec<thread::JoinHandle<()>>>);

impl HandoffThreads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<thread::JoinHandle<()>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new thread; joins the ones that finished, so the list stays
    /// as long as the number of live threads.
    pub(crate) fn push(&self, thread: thread::JoinHandle<()>) {
        let finished: Vec<_> = {
            let mut threads = self.lock();
            let (done, live) = std::mem::take(&mut *threads)
                .into_iter()
                .partition(thread::JoinHandle::is_finished);
            *threads = live;
            threads.push(thread);
            done
        };
        for thread in finished {
            let _ = thread.join();
        }
    }

    /// Joins every hand-off thread, including those started while joining:
    /// each thread is recorded by its starter before the starter exits, so
    /// once a round finds the list empty, none is left.
    pub(crate) fn join_all(&self) {
        loop {
            let threads = std::mem::take(&mut *self.lock());
            if threads.is_empty() {
                return;
            }
            for thread in threads {
                let _ = thread.join();
            }
        }
    }

    /// The bounded form: joins all when every pool thread has left its loop,
    /// otherwise only those that finished; the rest are detached.
    pub(crate) fn join_finished(&self, all_left: bool) {
        if all_left {
            return self.join_all();
        }
        for thread in std::mem::take(&mut *self.lock()) {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}
