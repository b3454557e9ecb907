//! The elastic blocking lane: threads for closures that may block.
//!
//! The lane starts with no thread and grows while queued closures outnumber
//! five times the idle threads (threads starting or waiting count as idle),
//! up to the cap. Sleeping threads are woken one at a time: a push wakes one
//! only when no awake thread is free to take the closure, and every thread
//! that takes a closure does the same check (and the growth check) before
//! running it. A closure may block for good (closures can wait on each
//! other), so no thread ever leaves queued work behind without another
//! thread awake or coming for it; and a burst of tiny closures wakes only as
//! many threads as it needs. Idle threads retire after the keep-alive. When the OS refuses a thread, the cap shrinks to what the lane
//! has and it keeps serving with those; with no thread at all the closure runs
//! on the caller instead of waiting forever.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use unirun_core::{Runnable, Schedule, ScheduleInfo, TaskSet};

/// The lane grows while queued closures outnumber idle threads this many times over.
const GROWTH_FACTOR: usize = 5;

pub(crate) struct Lane {
    state: Mutex<State>,
    work: Condvar,
    /// Signalled when a reserved thread has been started (or failed to).
    spawned: Condvar,
    name: String,
    keep_alive: Duration,
    stack_size: Option<usize>,
    tasks: Arc<TaskSet>,
}

struct State {
    queue: VecDeque<Runnable>,
    /// Threads alive or starting.
    threads: usize,
    /// Threads not running a closure: starting, waiting, or woken.
    idle: usize,
    /// Threads blocked on `work`.
    waiting: usize,
    /// Wake-ups sent to waiting threads and not yet taken; `notified <= waiting`.
    notified: usize,
    /// Most threads the lane may have; shrinks when the OS refuses one.
    cap: usize,
    next_id: usize,
    shutdown: bool,
    /// Every thread not joined yet, retired ones included.
    handles: Vec<thread::JoinHandle<()>>,
    /// Threads reserved by `grow` whose handle is not in `handles` yet.
    spawning: usize,
    /// Times the OS refused a thread.
    spawn_failures: usize,
}

impl State {
    /// Awake threads that will look at the queue without being woken:
    /// starting, between closures, or notified and on their way.
    fn free_awake(&self) -> usize {
        self.idle - self.waiting + self.notified
    }
}

/// A snapshot of the lane's sizing, for traces and tests.
///
/// # Examples
///
/// ```
/// let pool = unirun_threads::ThreadPool::builder()
///     .workers(1)
///     .max_blocking_threads(4)
///     .build()
///     .unwrap();
/// let before = pool.handle().blocking_stats();
/// assert_eq!(before.threads, 0); // the lane starts empty and grows on demand
///
/// pool.spawn_blocking(|| ()).join().unwrap();
/// let after = pool.handle().blocking_stats();
/// assert!(after.threads >= 1 && after.threads <= after.cap);
/// assert_eq!(after.cap, 4);
/// assert_eq!(after.queued, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaneStats {
    /// Threads alive now.
    pub threads: usize,
    /// Threads waiting for work now.
    pub idle: usize,
    /// The current cap (lower than configured after the OS refused a thread).
    pub cap: usize,
    /// Closures queued and not started.
    pub queued: usize,
    /// Times the OS refused to start a thread.
    pub spawn_failures: usize,
}

impl Lane {
    pub(crate) fn new(
        name: String,
        cap: usize,
        keep_alive: Duration,
        stack_size: Option<usize>,
        tasks: Arc<TaskSet>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                waiting: 0,
                notified: 0,
                cap,
                next_id: 0,
                shutdown: false,
                handles: Vec::new(),
                spawning: 0,
                spawn_failures: 0,
            }),
            work: Condvar::new(),
            spawned: Condvar::new(),
            name,
            keep_alive,
            stack_size,
            tasks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> LaneStats {
        let state = self.lock();
        LaneStats {
            threads: state.threads,
            idle: state.waiting,
            cap: state.cap,
            queued: state.queue.len(),
            spawn_failures: state.spawn_failures,
        }
    }

    fn push(self: &Arc<Self>, runnable: Runnable) {
        if unirun_core::in_forked_child() {
            // The lane's threads were not copied by `fork` (and its lock may
            // have been held by one of them): run the closure here.
            runnable.run();
            return;
        }
        let mut state = self.lock();
        if state.shutdown {
            drop(state);
            // The lane is gone: dropping the runnable cancels its task.
            drop(runnable);
            return;
        }
        state.queue.push_back(runnable);
        self.hand_on(state);
    }

    /// Makes sure queued work has a thread coming for it: when no awake
    /// thread is free, wakes one sleeper (one at a time: the woken thread
    /// repeats this when it takes a closure), and grows the lane while the
    /// queue outruns the idle threads. Releases the lock.
    fn hand_on(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        let wake =
            !state.queue.is_empty() && state.free_awake() == 0 && state.waiting > state.notified;
        if wake {
            state.notified += 1;
        }
        let start = self.grow(&mut state);
        drop(state);
        if wake {
            self.work.notify_one();
        }
        self.start_threads(start);
    }

    /// Reserves new threads while the queue outruns the idle ones; returns the
    /// ids to start once the lock is released.
    fn grow(&self, state: &mut State) -> Vec<usize> {
        let mut start = Vec::new();
        if state.shutdown {
            return start;
        }
        while state.threads < state.cap && state.queue.len() > state.idle * GROWTH_FACTOR {
            state.threads += 1;
            state.idle += 1;
            state.spawning += 1;
            start.push(state.next_id);
            state.next_id += 1;
        }
        start
    }

    fn start_threads(self: &Arc<Self>, ids: Vec<usize>) {
        if ids.is_empty() {
            return;
        }
        // Reap retired threads while we are here, so `handles` stays small.
        let finished = extract_finished(&mut self.lock().handles);
        for handle in finished {
            let _ = handle.join();
        }
        for id in ids {
            self.start_thread(id);
        }
    }

    fn start_thread(self: &Arc<Self>, id: usize) {
        let mut builder = thread::Builder::new().name(format!("{}-blocking-{id}", self.name));
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        let lane = self.clone();
        match builder.spawn(move || lane.serve()) {
            Ok(handle) => {
                let mut state = self.lock();
                state.handles.push(handle);
                state.spawning -= 1;
                drop(state);
                self.spawned.notify_all();
            }
            Err(_) => {
                let mut state = self.lock();
                state.spawning -= 1;
                self.spawned.notify_all();
                state.threads -= 1;
                state.idle -= 1;
                state.spawn_failures += 1;
                state.cap = state.threads.max(1);
                if state.threads == 0 {
                    // Nobody will come for the queue: serve it here.
                    let queued: Vec<_> = state.queue.drain(..).collect();
                    drop(state);
                    for runnable in queued {
                        runnable.run();
                    }
                }
            }
        }
    }

    /// A lane thread's loop. The thread starts out counted as idle.
    fn serve(self: &Arc<Self>) {
        let mut state = self.lock();
        loop {
            if let Some(runnable) = state.queue.pop_front() {
                state.idle -= 1;
                // This closure may block for good: leave a thread for the rest.
                self.hand_on(state);
                runnable.run();
                state = self.lock();
                state.idle += 1;
                continue;
            }
            if state.shutdown {
                break;
            }
            state.waiting += 1;
            let (guard, timeout) = self
                .work
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            state.waiting -= 1;
            if state.notified > 0 {
                state.notified -= 1;
            }
            if timeout.timed_out() && state.queue.is_empty() && !state.shutdown {
                break;
            }
        }
        state.idle -= 1;
        state.threads -= 1;
    }

    /// Stops the lane: queued closures still run (they are cancelled already
    /// if the task set was closed), then every thread is joined. Closures
    /// scheduled afterwards are cancelled.
    pub(crate) fn shutdown(&self) {
        let handles = {
            let mut state = self.lock();
            state.shutdown = true;
            // A thread reserved just before may not have its handle filed yet.
            while state.spawning > 0 {
                state = self
                    .spawned
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::take(&mut state.handles)
        };
        self.work.notify_all();
        for handle in handles {
            let _ = handle.join();
        }
    }

    /// Whether the calling thread is one of this lane's threads.
    pub(crate) fn is_lane_thread(&self) -> bool {
        let me = thread::current().id();
        self.lock().handles.iter().any(|h| h.thread().id() == me)
    }
}

fn extract_finished(handles: &mut Vec<thread::JoinHandle<()>>) -> Vec<thread::JoinHandle<()>> {
    let mut finished = Vec::new();
    let mut i = 0;
    while i < handles.len() {
        if handles[i].is_finished() {
            finished.push(handles.swap_remove(i));
        } else {
            i += 1;
        }
    }
    finished
}

/// The lane seen as a schedule hook: blocking tasks are polled once, on a lane thread.
pub(crate) struct LaneHook(pub(crate) Arc<Lane>);

impl Schedule for LaneHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        self.0.push(runnable);
    }

    fn task_set(&self) -> Option<&Arc<TaskSet>> {
        Some(&self.0.tasks)
    }
}
