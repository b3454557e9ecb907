//! The thread context: which pool the calling thread runs, and the core it
//! holds while a task runs; and the hand-off a blocking call performs.
//!
//! A thread running a worker's loop has a [`Context`] for the whole loop,
//! core or not: so [`on_worker_thread`] stays true for a thread whose task
//! blocked and gave its core away (that thread is still one of the pool's,
//! and must not, say, wait for the pool's threads to exit). The core sits in
//! the context only while a task runs; the loop takes it back after each one.
//! See [`worker`](crate::worker) for why handing it off keeps the pool live.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::cell::RefCell;

use crate::pool::Shared;
use crate::task::Runnable;
use crate::worker::Core;

/// A thread's view of the pool whose loop it runs.
pub(crate) struct Context {
    shared: Arc<Shared>,
    /// The core, while a task runs on this thread; `None` between tasks (the
    /// loop holds it) and once a blocking task gave it away.
    core: RefCell<Option<Box<Core>>>,
    /// The guest core while its guest blocks (see `fork_join::guest`): out
    /// of `core`, so nothing the blocked thread polls queues work on it,
    /// and back in `core` when the wait ends ([`Released`]).
    #[cfg(feature = "std")]
    stash: RefCell<Option<Box<Core>>>,
}

impl Context {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            core: RefCell::new(None),
            #[cfg(feature = "std")]
            stash: RefCell::new(None),
        }
    }

    /// Takes the guest core this thread stashed while it blocked, if any.
    #[cfg(feature = "std")]
    pub(crate) fn take_stash(&self) -> Option<Box<Core>> {
        self.stash.borrow_mut().take()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Lends the core to the task about to run.
    #[inline]
    pub(crate) fn put(&self, core: Box<Core>) {
        *self.core.borrow_mut() = Some(core);
    }

    /// Takes the core back; `None` if a task handed it off.
    #[inline]
    pub(crate) fn take(&self) -> Option<Box<Core>> {
        self.core.borrow_mut().take()
    }

    /// Runs `f` on the core if this thread still holds it.
    #[inline]
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&Core) -> R) -> Option<R> {
        self.core.try_borrow().ok()?.as_deref().map(f)
    }
}

/// Queues `runnable` on the calling thread's core when it runs a worker of
/// `shared` and holds its core; gives it back otherwise.
#[inline]
pub(crate) fn schedule_local(
    shared: &Shared,
    runnable: Runnable,
    is_yield: bool,
) -> Option<Runnable> {
    with_current(|cx| match cx {
        Some(cx) if core::ptr::eq(&**cx.shared(), shared) => match cx.core.try_borrow() {
            Ok(core) => match core.as_deref() {
                Some(core) => {
                    core.schedule_local(shared, runnable, is_yield);
                    None
                }
                None => Some(runnable),
            },
            Err(_) => Some(runnable),
        },
        _ => Some(runnable),
    })
}

/// Whether the calling thread is running a worker of any [`Pool`](crate::Pool)
/// (including one whose task blocks after handing its worker on).
///
/// # Examples
///
/// ```
/// assert!(!unirun_core::on_worker_thread());
///
/// let (pool, workers) = unirun_core::Pool::with_workers(1);
/// let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
/// assert!(pool.spawn(async { unirun_core::on_worker_thread() }).join().unwrap());
/// pool.shutdown();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// ```
pub fn on_worker_thread() -> bool {
    with_current(|cx| cx.is_some())
}

/// Called by a blocking wait before it parks: if this thread holds a core,
/// the core goes to a new thread (or, after shutdown, its queues are
/// cancelled), so nothing queued on it waits for this thread.
///
/// # Panics
///
/// When the pool's spawner cannot start the thread; the core then stays
/// with this thread, which goes back to running tasks once the panic has
/// unwound out of the current task.
#[cfg(feature = "std")]
pub(crate) fn release_core() -> Released {
    with_current(|cx| match cx {
        Some(cx) => hand_off(cx),
        None => Released { stashed: false },
    })
}

/// What [`release_core`] did; dropped when the wait ends (or unwinds). A
/// worker's core went to another thread for good; the guest core, which
/// never moves (see `fork_join::guest`), was stashed, and comes back here.
#[cfg(feature = "std")]
#[must_use = "the guest core comes back when this is dropped, after the wait"]
pub(crate) struct Released {
    stashed: bool,
}

#[cfg(feature = "std")]
impl Drop for Released {
    fn drop(&mut self) {
        if self.stashed {
            with_current(|cx| {
                if let Some(cx) = cx {
                    if let Some(core) = cx.take_stash() {
                        crate::fork_join::guest::arrive(cx.shared());
                        cx.put(core);
                    }
                }
            });
        }
    }
}

#[cfg(feature = "std")]
fn hand_off(cx: &Context) -> Released {
    use std::sync::Mutex;

    let Some(core) = cx
        .core
        .try_borrow_mut()
        .ok()
        .and_then(|mut core| core.take())
    else {
        // Not inside a task of this loop, or handed off already.
        return Released { stashed: false };
    };
    let shared = cx.shared();
    if crate::fork_join::guest::is_guest(&core, shared) {
        // The guest core stays with its guest (see `fork_join::guest`), but
        // out of reach while it waits: what is queued on it goes to the
        // pool, the guest stops counting as an awake worker (the pool's
        // sleepers must run what it leaves, even on a one-worker pool), and
        // the halves on its deque stay where workers steal them (or, once
        // the pool is shut down, go back as a dropped core's do).
        core.hand_tasks_to_pool(shared);
        crate::fork_join::guest::leave(shared);
        crate::fork_join::guest::return_if_shut_down(&core, shared);
        *cx.stash.borrow_mut() = Some(core);
        return Released { stashed: true };
    }
    // This thread no longer holds the core: its counts go to the stripes.
    let held = crate::stats::release_core();
    if shared.shutdown.load(crate::sync::Ordering::Acquire) {
        // Nobody will run these queues again: cancel them now, so a task we
        // wait for that sits in them resolves instead of hanging.
        drop(core);
        return Released { stashed: false };
    }
    let index = core.index;
    // The job finds the core here; if the thread cannot start, we take it back.
    let slot = Arc::new(Mutex::new(Some(crate::Worker {
        shared: shared.clone(),
        core,
    })));
    let job_slot = slot.clone();
    let job: Box<dyn FnOnce() + Send> = Box::new(move || {
        let worker = job_slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            worker.run();
        }
    });
    let started = match shared.spawner.get() {
        Some(spawn) => spawn(index, job),
        None => spawn_default(index, job),
    };
    if let Err(err) = started {
        let worker = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            cx.put(worker.core);
            crate::stats::hold_core(held);
        }
        panic!(
            "unirun: a task blocked worker {index} (block_on or join inside a task), and no \
             thread could be started to take over the worker's queue: {err}"
        );
    }
    Released { stashed: false }
}

/// Without a spawner: a detached thread named like the blocked one.
#[cfg(feature = "std")]
fn spawn_default(index: usize, job: Box<dyn FnOnce() + Send>) -> std::io::Result<()> {
    use alloc::string::String;

    let name = std::thread::current()
        .name()
        .map_or_else(|| alloc::format!("unirun-worker-{index}"), String::from);
    std::thread::Builder::new().name(name).spawn(job).map(drop)
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    static CURRENT: core::cell::Cell<*const Context> = const { core::cell::Cell::new(core::ptr::null()) };
}

// Loom runs its threads on one OS thread: its own thread-locals keep them
// apart (and start fresh in every execution).
#[cfg(all(feature = "std", loom))]
loom::thread_local! {
    static CURRENT: core::cell::Cell<*const Context> = core::cell::Cell::new(core::ptr::null());
}

/// Restores the previous context when dropped.
pub(crate) struct Enter {
    #[cfg(feature = "std")]
    previous: *const Context,
}

#[cfg(feature = "std")]
pub(crate) fn enter(cx: &Context) -> Enter {
    Enter {
        previous: CURRENT.with(|c| c.replace(cx)),
    }
}

#[cfg(feature = "std")]
impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

#[cfg(feature = "std")]
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    let ptr = CURRENT.try_with(|c| c.get()).unwrap_or(core::ptr::null());
    // SAFETY: `CURRENT` is non-null only while an `Enter` guard for that
    // context lives on this thread's stack (inside `worker::run`), and the
    // context outlives its guard.
    f(unsafe { ptr.as_ref() })
}

/// Without `std` there are no thread-locals: every spawn goes through the
/// injector, which is correct, just not as fast.
#[cfg(not(feature = "std"))]
pub(crate) fn enter(_cx: &Context) -> Enter {
    Enter {}
}

#[cfg(not(feature = "std"))]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    f(None)
}
