//! What a pool's shutdown waits on: its task set emptying, and its worker
//! threads leaving their loops, each with an optional deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The default of [`Builder::max_handoff_threads`](crate::Builder::max_handoff_threads):
/// most hand-off threads a pool keeps alive at once.
///
/// Each costs a thread (its stack, guard page and signal stack: about four
/// memory maps). On Linux the default limit of 65,530 maps per process runs
/// out near 16,000 threads, and a process that cannot map memory cannot
/// even unwind a panic: it aborts. 10,000 leaves room for the rest of the
/// program while keeping 10,000 nested waits working.
pub const DEFAULT_MAX_HANDOFF_THREADS: usize = 10_000;

/// The hand-off threads a pool started (see `Pool::set_thread_spawner`),
/// and how many of them may live at once.
pub(crate) struct HandoffThreads {
    threads: Mutex<Handles>,
    /// Hand-off threads reserved and not finished.
    live: AtomicUsize,
    /// `max_handoff_threads`.
    cap: usize,
    /// The most `live` may reach: `cap` plus the workers, since each
    /// worker's queue may be served by a hand-off thread that outlived the
    /// wait it was started for (the blocked thread exits when its task
    /// ends, the hand-off thread serves on). So `cap` waits can always be
    /// blocked at once.
    limit: usize,
}

/// The join handles, and the list's length after the last sweep of the
/// finished ones.
#[derive(Default)]
struct Handles {
    list: Vec<thread::JoinHandle<()>>,
    swept: usize,
}

/// One hand-off thread's place under the cap; given back when the thread's
/// closure ends (or is dropped unrun because the thread did not start).
pub(crate) struct HandoffSlot(Arc<HandoffThreads>);

impl Drop for HandoffSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HandoffThreads {
    pub(crate) fn new(cap: usize, workers: usize) -> Self {
        Self {
            threads: Mutex::default(),
            live: AtomicUsize::new(0),
            cap,
            limit: cap.saturating_add(workers),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Handles> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more hand-off thread, or the error naming the cap
    /// when `cap` of them are alive (`pool` names the pool in it).
    pub(crate) fn reserve(self: &Arc<Self>, pool: &str) -> std::io::Result<HandoffSlot> {
        let (cap, limit) = (self.cap, self.limit);
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < limit).then_some(live + 1)
            })
            .map(|_| HandoffSlot(self.clone()))
            .map_err(|live| {
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "pool `{pool}` already runs {live} hand-off threads for tasks blocked \
                         in block_on or join, its cap (max_handoff_threads={cap} beyond the \
                         workers; the default is DEFAULT_MAX_HANDOFF_THREADS=\
                         {DEFAULT_MAX_HANDOFF_THREADS})"
                    ),
                )
            })
    }

    /// Records a new thread; joins the ones that finished once the list has
    /// doubled since the last sweep, so the list stays within twice the
    /// live threads (plus a few) at a constant cost per thread.
    pub(crate) fn push(&self, thread: thread::JoinHandle<()>) {
        let finished: Vec<_> = {
            let mut threads = self.lock();
            threads.list.push(thread);
            if threads.list.len() < 2 * threads.swept.max(8) {
                return;
            }
            let (done, live) = std::mem::take(&mut threads.list)
                .into_iter()
                .partition(thread::JoinHandle::is_finished);
            threads.list = live;
            threads.swept = threads.list.len();
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
            let threads = std::mem::take(&mut self.lock().list);
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
        for thread in std::mem::take(&mut self.lock().list) {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}
