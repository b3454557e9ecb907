//! The worker run loop and the per-worker state it drives.
//!
//! The pool owns no threads: whoever has threads (the threads backend, or an
//! embedded loop) calls [`Worker::run`] on each worker. A worker looks for its
//! next task in this order: every 61st tick the injector first (so remote
//! work is not starved by a busy local queue), then its LIFO slot (at most
//! [`MAX_LIFO_POLLS`] in a row), its local queue, the injector, and finally
//! half of a random victim's queue. With nothing found it parks following the
//! protocol in [`idle`](crate::idle).
//!
//! # Self-wakes and the fairness bound
//!
//! A task that wakes itself while it is being polled (a yield) is polled
//! again in place, right after its poll returns, instead of going through
//! the back of the local queue: at most [`MAX_SELF_REPOLLS`] such re-polls
//! per *turn*, a turn being one task taken from the queues plus what runs
//! after it before the loop looks at the queues again (its in-place re-polls
//! and at most [`MAX_LIFO_POLLS`] tasks from the LIFO slot, each with their
//! own in-place re-polls, out of the same budget). Once the budget is spent a
//! yield goes to the back of the local queue as usual.
//!
//! **Bound:** a turn polls futures at most
//! `1 + MAX_LIFO_POLLS + MAX_SELF_REPOLLS` times, so a task at position `p`
//! of a worker's local queue is polled after at most `p` turns of that worker
//! (fewer if another worker steals it), plus one turn every
//! 61 ticks for the injector: a task yielding in a loop delays the others by
//! a bounded number of polls, never indefinitely. The in-place re-poll is
//! what `futures`' thread pool does without a bound; the bound is the price
//! of fairness, and the same idea as the LIFO cap.
//!
//! # Cores and the hand-off
//!
//! A worker's per-thread state (its local queue, LIFO slot, parker, index,
//! search flag) is a [`Core`], a box that a thread *holds* and can *give
//! away*. While a task runs, the run loop leaves the core in the thread's
//! [context](crate::context), so the task's spawns and wake-ups reach the
//! local queue. When that task blocks its thread in
//! [`block_on`](crate::block_on) (or [`JoinHandle::join`](crate::JoinHandle::join)),
//! the blocking call takes the core out of the context and hands it to a new
//! thread that runs this same loop on it, then parks on its thread's cached
//! parker until its future is ready. When the task's poll returns, the run
//! loop finds the context empty and returns: that thread has no core left,
//! and its job is done.
//!
//! **Every core always has a running thread.** A core moves only between two
//! run loops: from the blocking thread to the thread started for it, in one
//! step, before the blocking thread parks. A thread gives its core away only
//! while it is inside a task polled by the loop that holds it, and never runs
//! a task again after that. So the queues of a blocked thread's worker keep
//! being served, and a task waiting for work queued behind it on its own
//! worker (or for anything another task will do) is not waiting on itself.
//! If the thread cannot be started, the blocking call panics instead (its
//! task's `JoinHandle` reports the error) and the core stays where it was.
//!
//! **The stack depth is bounded.** No task ever runs on top of a blocked
//! frame: a blocked thread parks, it does not drive the pool. Each thread's
//! stack holds one run loop, one task's poll and whatever that poll calls,
//! as on a worker that never blocks. The cost is one thread per concurrently
//! blocked task, which is the minimum: each blocked frame needs a stack.
//!
//! At shutdown a core's queues are dropped (cancelling their tasks) by the
//! thread holding it: when its loop sees the flag, or at once when its task
//! blocks, so a task joining one queued behind it is cancelled instead of
//! waited for.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::Cell;

use crate::context::{self, Context};
use crate::park::Park;
use crate::pool::Shared;
use crate::queue::Local;
use crate::sync::Ordering;
use crate::task::Runnable;

/// How often (in tasks run) a worker checks the injector before its own queue.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;

/// How many tasks in a row may run from the LIFO slot before the slot's task
/// goes to the back of the queue: message-passing tasks ping-ponging through
/// the slot must not starve the rest of the queue.
pub const MAX_LIFO_POLLS: u32 = 3;

/// How many times per turn a task that woke itself while being polled is
/// polled again in place, before its yield sends it to the back of the
/// queue. A turn (one task taken from the queues, its in-place re-polls and
/// at most [`MAX_LIFO_POLLS`] tasks from the LIFO slot) therefore polls at
/// most `1 + MAX_LIFO_POLLS + MAX_SELF_REPOLLS` futures: a task yielding in
/// a loop delays the tasks queued behind it by a bounded number of polls.
pub const MAX_SELF_REPOLLS: u32 = 16;

/// One thread's share of a [`Pool`](crate::Pool): its local queue, LIFO slot
/// and parker.
///
/// `Send` but not `Sync`: move it to the thread that drives it, then call
/// [`run`](Self::run) there. Sharing one between threads does not compile:
///
/// ```compile_fail
/// fn shared<T: Sync>(_: &T) {}
/// let (_pool, workers) = unirun_core::Pool::with_workers(1);
/// shared(&workers[0]);
/// ```
///
/// # Blocking on a worker
///
/// A task that blocks its thread through [`block_on`](crate::block_on) or
/// [`JoinHandle::join`](crate::JoinHandle::join) gives this worker's queues
/// to a new thread (started by the pool's
/// [spawner](crate::Pool::set_thread_spawner)) and parks; its thread leaves
/// `run` once that task's poll returns. No task runs nested under a blocked
/// one, so blocking never deadlocks the pool or grows the stack.
pub struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) core: Box<Core>,
}

/// A worker's movable state; see the module docs.
pub(crate) struct Core {
    pub(crate) index: usize,
    pub(crate) local: Local,
    /// Join halves forked on this core, stealable (see `fork_join`).
    #[cfg(feature = "std")]
    pub(crate) join: crate::fork_join::JobDeque,
    /// The task to run next (woken by the running task). Not stealable.
    pub(crate) lifo: Cell<Option<Runnable>>,
    /// A task that woke itself while running on this core, to be polled
    /// again in place (see the module docs). Not stealable.
    pub(crate) yielded: Cell<Option<Runnable>>,
    pub(crate) tick: Cell<u32>,
    /// Whether this core counts itself in `Idle`'s searching count.
    pub(crate) searching: Cell<bool>,
    pub(crate) rng: Cell<u32>,
    pub(crate) park: Box<dyn Park + Send>,
}

impl Worker {
    /// This worker's index in its pool, from 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_pool, workers) = unirun_core::Pool::with_workers(2);
    /// assert_eq!(workers[0].index(), 0);
    /// assert_eq!(workers[1].index(), 1);
    /// ```
    pub fn index(&self) -> usize {
        self.core.index
    }

    /// Runs tasks until the pool shuts down, or until a task blocks this
    /// thread and the worker moves on to another thread (see
    /// [blocking on a worker](Self#blocking-on-a-worker)).
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, mut workers) = unirun_core::Pool::with_workers(1);
    /// let worker = workers.pop().unwrap();
    /// let thread = std::thread::Builder::new()
    ///     .name("my-worker".into())
    ///     .spawn(move || worker.run())
    ///     .unwrap();
    ///
    /// // Tasks run on the thread that called `run`.
    /// let name = pool.spawn(async { std::thread::current().name().map(String::from) });
    /// assert_eq!(name.join().unwrap().as_deref(), Some("my-worker"));
    ///
    /// pool.shutdown();
    /// thread.join().unwrap(); // `run` returned
    /// ```
    pub fn run(self) {
        let Worker { shared, core } = self;
        run(shared, core);
    }
}

/// The run loop: drives `core` until shutdown or until it is handed off.
/// Returning drops the core if this thread still holds it, which cancels
/// whatever is left in its queues.
pub(crate) fn run(shared: Arc<Shared>, mut core: Box<Core>) {
    let _held = crate::stats::Held::new(&shared, core.index);
    let cx = Context::new(shared);
    let _enter = context::enter(&cx);
    let shared = cx.shared();
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            // What a blocked guest left for the workers has nobody else
            // to take it now (see `fork_join::guest`).
            #[cfg(feature = "std")]
            crate::fork_join::guest::return_left_behind(shared);
            return;
        }
        match core.next_task(shared).or_else(|| core.steal_work(shared)) {
            Some(task) => match run_task(&cx, core, task) {
                Some(back) => core = back,
                // A task blocked this thread and handed the core on.
                None => return,
            },
            #[cfg(feature = "std")]
            None => match crate::fork_join::find_job(&core, shared) {
                Some(job) => match run_join_job(&cx, core, job) {
                    Some(back) => core = back,
                    None => return,
                },
                None => core.park(shared),
            },
            #[cfg(not(feature = "std"))]
            None => core.park(shared),
        }
    }
}

/// Runs a join half found by the loop (stolen, or left on this core by a
/// thread that lost it), with the core in the context as for a task;
/// returns the core, or `None` if the half blocked and handed it on.
#[cfg(feature = "std")]
fn run_join_job(cx: &Context, core: Box<Core>, job: crate::fork_join::JobRef) -> Option<Box<Core>> {
    let shared = cx.shared();
    if core.searching.replace(false) && shared.idle.transition_worker_from_searching() {
        shared.notify_parked();
    }
    cx.put(core);
    // SAFETY: `find_job` took it out of a deque: this thread alone runs it.
    unsafe { job.execute(crate::fork_join::Fate::Run) };
    cx.take()
}

/// Runs `task` and then, in one turn, its in-place re-polls and up to
/// [`MAX_LIFO_POLLS`] tasks from the LIFO slot (see the module docs), with
/// the core in the context; returns the core, or `None` if a task handed it
/// to another thread.
fn run_task(cx: &Context, core: Box<Core>, task: Runnable) -> Option<Box<Core>> {
    let shared = cx.shared();
    if core.searching.replace(false) && shared.idle.transition_worker_from_searching() {
        // The last searcher found work: there may be more, so hand the
        // search on to one sleeper.
        shared.notify_parked();
    }
    crate::repoll::start_turn(MAX_SELF_REPOLLS);
    cx.put(core);
    crate::task::run(task);
    let mut lifo_left = MAX_LIFO_POLLS;
    loop {
        // A task that woke itself goes first (the budget was charged when
        // it was parked in `yielded`), then the LIFO slot while its cap lasts.
        let next = cx.with_core(|core| match core.yielded.take() {
            Some(task) => Some((task, true)),
            None if lifo_left > 0 => {
                lifo_left -= 1;
                core.lifo.take().map(|task| (task, false))
            }
            None => None,
        })?;
        match next {
            Some((next, woke_itself)) => {
                if woke_itself {
                    // Its own future may re-poll in place (see `repoll`).
                    crate::repoll::arm();
                    crate::task::run(next);
                    crate::repoll::take_armed();
                } else {
                    crate::task::run(next);
                }
            }
            None => break,
        }
    }
    let core = cx.take()?;
    // The LIFO slot had its turn; its task queues behind the others.
    if let Some(next) = core.lifo.take() {
        core.local.push_back(next, &shared.injector);
        shared.notify_parked_local();
    }
    Some(core)
}

impl Core {
    pub(crate) fn new(
        index: usize,
        local: Local,
        #[cfg(feature = "std")] join: crate::fork_join::JobDeque,
        park: Box<dyn Park + Send>,
    ) -> Self {
        Core {
            index,
            local,
            #[cfg(feature = "std")]
            join,
            lifo: Cell::new(None),
            yielded: Cell::new(None),
            tick: Cell::new(0),
            searching: Cell::new(false),
            rng: Cell::new(0x9E37_79B9 ^ (index as u32).wrapping_mul(0x85EB_CA6B) | 1),
            park,
        }
    }

    /// Moves every task queued on this core (its LIFO slot, a yielded task,
    /// its local queue) to the injector and wakes a sleeper to take them:
    /// the guest core does so before it goes back to its slot, and when
    /// the guest blocks, so that no task waits for a core nobody runs.
    #[cfg(feature = "std")]
    pub(crate) fn hand_tasks_to_pool(&self, shared: &Shared) {
        let slots = [self.yielded.take(), self.lifo.take()];
        let mut moved = false;
        for task in slots.into_iter().flatten() {
            shared.injector.push(task);
            moved = true;
        }
        while let Some(task) = self.local.pop() {
            shared.injector.push(task);
            moved = true;
        }
        if moved {
            shared.notify_parked();
        }
    }

    fn next_task(&self, shared: &Shared) -> Option<Runnable> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % GLOBAL_QUEUE_INTERVAL == 0 {
            if let Some(task) = shared.injector.pop() {
                return Some(task);
            }
        }
        // `yielded` is empty here unless a task ran a runnable of this pool
        // by hand and the core was then handed to this thread mid-turn.
        self.yielded
            .take()
            .or_else(|| self.lifo.take())
            .or_else(|| self.local.pop())
            .or_else(|| shared.injector.pop())
    }

    fn steal_work(&self, shared: &Shared) -> Option<Runnable> {
        if !self.searching.get() {
            if !shared.idle.transition_worker_to_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let stealers = &shared.stealers;
        let n = stealers.len();
        let start = self.next_random() as usize % n;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            if let Some(task) = stealers[victim].steal_into(&self.local) {
                shared.stats.steal(self.index);
                if shared.stop_seen_after_steal() {
                    // The pool stopped while the batch was in transit: the
                    // run loop returns and this core's drop cancels the
                    // rest of the batch with its queue.
                    crate::task::cancel(task);
                    return None;
                }
                return Some(task);
            }
        }
        shared.injector.pop()
    }

    /// Queues a task spawned or woken by the task running on this core.
    pub(crate) fn schedule_local(&self, shared: &Shared, runnable: Runnable, is_yield: bool) {
        if is_yield {
            if crate::repoll::charge() {
                // Polled again in place by `run_task`: nothing new to steal.
                match self.yielded.replace(Some(runnable)) {
                    None => return,
                    Some(previous) => self.local.push_back(previous, &shared.injector),
                }
            } else {
                self.local.push_back(runnable, &shared.injector);
            }
        } else {
            match self.lifo.replace(Some(runnable)) {
                None => return,
                Some(previous) => self.local.push_back(previous, &shared.injector),
            }
        }
        // The local queue grew: let a sleeper come and steal.
        shared.notify_parked_local();
    }

    /// Moves the tasks only this core's holder can run (the LIFO slot and a
    /// task that yielded) to the local queue, where other workers steal
    /// them, and wakes a sleeper to come and look. A thread about to wait
    /// for join work calls it: a task it would otherwise keep out of reach
    /// may be what the awaited work waits for.
    #[cfg(feature = "std")]
    pub(crate) fn share_private_tasks(&self, shared: &Shared) {
        let slots = [self.yielded.take(), self.lifo.take()];
        let mut moved = false;
        for task in slots.into_iter().flatten() {
            self.local.push_back(task, &shared.injector);
            moved = true;
        }
        if moved {
            shared.notify_parked_local();
        }
    }

    fn park(&self, shared: &Shared) {
        let idle = &shared.idle;
        let was_searching = self.searching.replace(false);
        shared.stats.park(self.index);
        if idle.transition_worker_to_parked(self.index, was_searching) {
            // No searcher left to look: pairs with every producer's fence
            // (see `idle`).
            crate::barrier::store_load();
            if shared.has_stealable_work() {
                shared.notify_parked();
            }
        }
        loop {
            if shared.shutdown.load(Ordering::Acquire) {
                // Leave the sleeper list so the counts stay true; if a
                // producer popped us already, it counted us as searching.
                if !idle.unpark_worker_by_id(self.index) {
                    self.searching.set(true);
                }
                return;
            }
            crate::park::park_or_abort(&*self.park);
            if !idle.is_parked(self.index) {
                // A producer popped us and counted us as searching.
                self.searching.set(true);
                return;
            }
        }
    }

    pub(crate) fn next_random(&self) -> u32 {
        // xorshift32: enough to spread victims.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Cancel what is left; the pool has shut down or is being dropped.
        let slots = [self.yielded.take(), self.lifo.take()];
        for task in slots.into_iter().flatten() {
            crate::task::cancel(task);
        }
        while let Some(task) = self.local.pop() {
            crate::task::cancel(task);
        }
        // Join halves left by threads that lost this core go back to them.
        #[cfg(feature = "std")]
        crate::fork_join::return_all(&self.join);
    }
}

impl core::fmt::Debug for Worker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.core.index)
            .finish_non_exhaustive()
    }
}
