//! The lane's engine: a queue of runnables under one lock, and the threads
//! that serve it.
//!
//! # Counters and wake-ups
//!
//! Every counter lives in [`State`] behind one mutex, so each decision below
//! is taken on a consistent view; only the condition-variable signals happen
//! after the lock is released.
//!
//! - `threads`: threads alive or starting; never above `cap`.
//! - `idle`: threads not running a closure (starting, waiting, woken, or
//!   between closures). `threads - idle` are inside a closure.
//! - `waiting`: threads blocked on `work`; `notified <= waiting` are wake-ups
//!   sent to them and not yet taken.
//! - `spawning`: threads reserved by `grow` whose start has not been
//!   reported yet (shutdown waits for it, so it never misses a handle).
//!
//! **No queued closure is left without a thread.** Whoever makes the queue
//! non-empty (a push) or takes a closure from it (a lane thread, about to run
//! something that may block for good) calls `hand_on` before releasing the
//! lock. `hand_on` wakes one waiting thread when no awake thread is free to
//! look at the queue (`free_awake() == 0`: awake threads that are starting,
//! between closures, or woken and on their way), and reserves new threads
//! while the queue outruns the idle ones, up to the cap. A woken thread takes
//! the lock, and if it takes a closure it calls `hand_on` again: wake-ups go
//! out one at a time, so a burst of tiny closures wakes only as many threads
//! as it needs.
//!
//! **Retiring never strands work.** A waiting thread whose keep-alive ran out
//! retires only if, under the lock, the queue is empty. A push that comes
//! later sees the retired thread gone from `idle`/`waiting` and either wakes
//! another one or starts a new thread. A wake-up aimed at a thread that timed
//! out at the same moment is not lost either: the timed-out thread counts the
//! wake-up as taken (`notified -= 1`) and, the queue being non-empty, stays
//! and takes the closure. Leaving `waiting` always drops `notified` with it,
//! so `free_awake()` never counts a wake-up nobody will act on. The loom
//! models in `loom_tests.rs` check this race on the real code.
//!
//! **Threads are accounted for even when a runnable panics.** A panic that
//! escapes `Runnable::run` (the core's tasks catch their own; a foreign
//! runnable given to [`LaneHook`] may not) ends the thread, but a guard first
//! removes it from the counters and hands the queue on, so the lane keeps its
//! capacity.
//!
//! # Shutdown
//!
//! `shutdown` lets queued closures run, then joins every thread. Called on
//! one of the lane's own threads it cannot join its siblings there (one may
//! be waiting for the closure calling it), so the joins move to a helper
//! thread. `shutdown_until` cancels what is queued, waits for idle threads to
//! leave (they run no user code, so they leave at once) and for threads
//! inside a closure until the deadline, and leaves the rest to exit on their
//! own as soon as their closure returns.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use unirun_core::{RunQueue, Runnable, ScheduleInfo, TaskSet};

use crate::sync::{self, thread, Clock, Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
std::thread_local! {
    /// The address of the lane whose loop this thread runs, or 0.
    static CURRENT_LANE: Cell<usize> = const { Cell::new(0) };
}

#[cfg(loom)]
loom::thread_local! {
    static CURRENT_LANE: Cell<usize> = Cell::new(0);
}

/// The lane grows while queued closures outnumber idle threads this many times over.
const GROWTH_FACTOR: usize = 5;

pub(crate) struct Lane {
    state: Mutex<State>,
    /// Waiting threads sleep here until there is work.
    work: Condvar,
    /// Signalled when a reserved thread has started (or failed to) and when
    /// a thread leaves.
    changed: Condvar,
    pub(crate) name: String,
    keep_alive: Duration,
    stack_size: Option<usize>,
    /// The task set of closures spawned without one of their own.
    pub(crate) tasks: Arc<TaskSet>,
    clock: Clock,
    /// The fork generation (`unirun_core::fork_generation`) the lane was
    /// made in: in another one it was inherited through a fork, and its
    /// threads are not in this process.
    generation: usize,
}

struct State {
    queue: VecDeque<Runnable>,
    /// Threads alive or starting.
    threads: usize,
    /// Threads not running a closure: starting, waiting, woken, or between closures.
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
    slots: Vec<Slot>,
    /// Threads reserved by `grow` whose handle is not filed yet.
    spawning: usize,
    /// Times the OS refused a thread.
    spawn_failures: usize,
}

/// One lane thread, from its reservation until it is joined.
struct Slot {
    id: usize,
    /// Filed by the thread that started it; `None` while starting.
    handle: Option<thread::JoinHandle<()>>,
    /// The thread has left its loop (joining it is prompt).
    left: bool,
}

impl State {
    /// Awake threads that will look at the queue without being woken:
    /// starting, between closures, or notified and on their way.
    fn free_awake(&self) -> usize {
        self.idle - self.waiting + self.notified
    }

    fn slot(&mut self, id: usize) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|slot| slot.id == id)
    }

    /// Removes the slots of threads that left and whose handles are filed.
    fn take_left(&mut self) -> Vec<thread::JoinHandle<()>> {
        let mut left = Vec::new();
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].left && self.slots[i].handle.is_some() {
                left.extend(self.slots.swap_remove(i).handle);
            } else {
                i += 1;
            }
        }
        left
    }
}

/// A snapshot of the lane's sizing, for traces and tests.
///
/// # Examples
///
/// ```
/// let lane = unirun_blocking::BlockingLane::builder().max_threads(4).build().unwrap();
/// let before = lane.stats();
/// assert_eq!(before.threads, 0); // the lane starts empty and grows on demand
///
/// lane.spawn_blocking(|| ()).join().unwrap();
/// let after = lane.stats();
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
                slots: Vec::new(),
                spawning: 0,
                spawn_failures: 0,
            }),
            work: Condvar::new(),
            changed: Condvar::new(),
            name,
            keep_alive,
            stack_size,
            tasks,
            clock: Clock::new(),
            generation: unirun_core::fork_generation(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    /// Whether the lane was inherited through a fork (made in an ancestor
    /// process): its threads are not in this process.
    pub(crate) fn is_inherited(&self) -> bool {
        self.generation != unirun_core::fork_generation()
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

    pub(crate) fn push(self: &Arc<Self>, runnable: Runnable) {
        if self.is_inherited() {
            // The lane's threads were not copied by `fork` (and its lock may
            // have been held by one of them): run the closure here. A lane
            // made in a forked child has threads of its own.
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
        let start = grow(&mut state);
        let reap = if start.is_empty() {
            Vec::new()
        } else {
            // Reap retired threads while we are here, so `slots` stays small.
            state.take_left()
        };
        drop(state);
        if wake {
            self.work.notify_one();
        }
        for handle in reap {
            let _ = handle.join();
        }
        for id in start {
            self.start_thread(id);
        }
    }

    fn start_thread(self: &Arc<Self>, id: usize) {
        let mut builder = thread::Builder::new().name(format!("{}-blocking-{id}", self.name));
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        let lane = self.clone();
        let spawned = builder.spawn(move || lane.serve(id));
        let mut state = self.lock();
        state.spawning -= 1;
        match spawned {
            Ok(handle) => {
                if let Some(slot) = state.slot(id) {
                    slot.handle = Some(handle);
                }
                drop(state);
                self.changed.notify_all();
            }
            Err(_) => {
                state.slots.retain(|slot| slot.id != id);
                state.threads -= 1;
                state.idle -= 1;
                state.spawn_failures += 1;
                state.cap = state.threads.max(1);
                let queued: Vec<_> = if state.threads == 0 {
                    // Nobody will come for the queue: serve it here.
                    state.queue.drain(..).collect()
                } else {
                    Vec::new()
                };
                drop(state);
                self.changed.notify_all();
                for runnable in queued {
                    runnable.run();
                }
            }
        }
    }

    /// A lane thread's loop. The thread starts out counted as idle.
    fn serve(self: &Arc<Self>, id: usize) {
        // The lane outlives this loop (the thread holds an `Arc` to it), so
        // the address cannot name another lane while it is set.
        CURRENT_LANE.with(|current| current.set(Arc::as_ptr(self) as usize));
        let mut state = self.lock();
        loop {
            if let Some(runnable) = state.queue.pop_front() {
                state.idle -= 1;
                // This closure may block for good: leave a thread for the rest.
                self.hand_on(state);
                let running = Running { lane: self, id };
                runnable.run();
                std::mem::forget(running);
                state = self.lock();
                state.idle += 1;
                continue;
            }
            if state.shutdown {
                break;
            }
            state.waiting += 1;
            let (guard, timed_out) = self.clock.wait(&self.work, state, self.keep_alive);
            state = guard;
            state.waiting -= 1;
            if state.notified > 0 {
                state.notified -= 1;
            }
            if timed_out && state.queue.is_empty() && !state.shutdown {
                break;
            }
        }
        state.idle -= 1;
        self.leave(state, id);
    }

    /// Removes the calling thread from the lane; it exits right after.
    fn leave(&self, mut state: MutexGuard<'_, State>, id: usize) {
        state.threads -= 1;
        if let Some(slot) = state.slot(id) {
            slot.left = true;
        }
        drop(state);
        self.changed.notify_all();
        CURRENT_LANE.with(|current| current.set(0));
    }

    /// Marks the lane shut down once all reserved threads have filed their
    /// handles, and wakes every waiting thread. With `cancel_queued`, the
    /// queued runnables are returned, to be dropped (cancelled) by the caller
    /// outside the lock.
    fn close(&self, cancel_queued: bool) -> VecDeque<Runnable> {
        let mut state = self.lock();
        state.shutdown = true;
        let queued = if cancel_queued {
            std::mem::take(&mut state.queue)
        } else {
            VecDeque::new()
        };
        // A thread reserved just before may not have its handle filed yet;
        // its starter only needs the lock to file it.
        while state.spawning > 0 {
            state = sync::wait(&self.changed, state);
        }
        drop(state);
        self.work.notify_all();
        queued
    }

    /// Stops the lane: queued closures still run (they are cancelled already
    /// if their task set was closed), then every thread is joined. Closures
    /// scheduled afterwards are cancelled. On one of the lane's own threads
    /// the joins move to a helper thread.
    pub(crate) fn shutdown(self: &Arc<Self>) {
        self.close(false);
        let slots = std::mem::take(&mut self.lock().slots);
        let handles: Vec<_> = slots.into_iter().filter_map(|slot| slot.handle).collect();
        if handles.is_empty() {
            return;
        }
        if self.is_lane_thread() {
            // A sibling may be waiting for the closure that called us:
            // joining it here could wait forever.
            let helper = thread::Builder::new().name(format!("{}-blocking-stop", self.name));
            let helper = match self.stack_size {
                Some(size) => helper.stack_size(size),
                None => helper,
            };
            // Without a helper the threads are left detached: each exits
            // once its queue is served and its closure returned.
            let _ = helper.spawn(move || join_all(handles));
            return;
        }
        join_all(handles);
    }

    /// Stops the lane within `deadline`: queued closures are cancelled,
    /// threads not running a closure leave at once and are joined, threads
    /// inside a closure are waited for until `deadline` and otherwise left
    /// to exit as soon as their closure returns. Returns whether every
    /// thread (other than the caller's own) was joined.
    pub(crate) fn shutdown_until(&self, deadline: Instant) -> bool {
        let queued = self.close(true);
        // Cancelling runs the closures' destructors: outside the lock.
        drop(queued);
        // The caller's own thread (inside a closure) cannot leave while we wait.
        let own = usize::from(self.is_lane_thread());
        let mut state = self.lock();
        loop {
            if state.threads == own {
                break;
            }
            let past = Instant::now() >= deadline;
            // Idle threads run no user code: they leave promptly, deadline or not.
            state = match (past, state.idle > 0) {
                (true, false) => break,
                (true, true) => sync::wait(&self.changed, state),
                (false, _) => sync::wait_until(&self.changed, state, deadline),
            };
        }
        let all_left = state.threads == own;
        let slots = std::mem::take(&mut state.slots);
        drop(state);
        for slot in slots {
            match slot.handle {
                Some(handle) if slot.left => {
                    let _ = handle.join();
                }
                // Still inside a closure (or our own thread): dropping the
                // handle detaches it, and it exits once the closure returns.
                _ => {}
            }
        }
        all_left
    }

    /// Fires the keep-alive of every idle thread, now and later (loom models only).
    #[cfg(all(loom, test))]
    pub(crate) fn expire_keep_alive(&self) {
        self.clock.expire(&self.state, &self.work);
    }

    /// Whether the calling thread is one of this lane's threads. A thread
    /// marks itself when it starts serving, so this holds from its first
    /// closure on, even before its starter has filed its handle.
    pub(crate) fn is_lane_thread(&self) -> bool {
        CURRENT_LANE.with(Cell::get) == self as *const Lane as usize
    }
}

/// Reserves new threads while the queue outruns the idle ones; returns the
/// ids to start once the lock is released.
fn grow(state: &mut State) -> Vec<usize> {
    let mut start = Vec::new();
    if state.shutdown {
        return start;
    }
    while state.threads < state.cap && state.queue.len() > state.idle * GROWTH_FACTOR {
        let id = state.next_id;
        state.next_id += 1;
        state.threads += 1;
        state.idle += 1;
        state.spawning += 1;
        state.slots.push(Slot {
            id,
            handle: None,
            left: false,
        });
        start.push(id);
    }
    start
}

fn join_all(handles: Vec<thread::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.join();
    }
}

/// Armed while a lane thread runs a runnable; dropped only when the runnable
/// panics out of `run`. Takes the dying thread out of the counters and hands
/// the queue on, so the lane keeps its capacity.
struct Running<'a> {
    lane: &'a Arc<Lane>,
    id: usize,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.lane.lock();
        state.threads -= 1;
        CURRENT_LANE.with(|current| current.set(0));
        // The thread ends with the panic: someone else must serve the queue.
        // (It is not marked as left yet, so `hand_on` cannot reap, and join,
        // this very thread.)
        self.lane.hand_on(state);
        let mut state = self.lane.lock();
        if let Some(slot) = state.slot(self.id) {
            slot.left = true;
        }
        drop(state);
        self.lane.changed.notify_all();
    }
}

/// The lane seen as a run queue: each runnable is run once, on a lane thread.
pub(crate) struct LaneHook(pub(crate) Arc<Lane>);

impl RunQueue for LaneHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        self.0.push(runnable);
    }

    fn task_set(&self) -> Option<&Arc<TaskSet>> {
        Some(&self.0.tasks)
    }
}
