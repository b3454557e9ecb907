//! The guest core: fork-join from a thread outside the pool without
//! waiting for a worker to wake.
//!
//! A join (or scope, or map) called from a thread that runs no worker of
//! the pool would go in as one injected task while the caller sleeps: a
//! parked worker's wake-up before any work starts, the caller's at the
//! end, and, on a virtual machine, a worker woken onto the CPU of a thread
//! about to sleep, where it may wait out the whole join. So each pool has
//! one more core than it has workers, the *guest core*, which has a thread
//! only while a caller from outside borrows it. That caller runs its
//! closures itself, as a worker holding that core would: the halves it
//! forks go on the guest core's deque, where workers woken by the fork
//! steal them, and it waits for a stolen half the way a worker does
//! (`wait_until`). One caller at a time: while the core is borrowed,
//! others take the injected path.
//!
//! # Invariants
//!
//! - The core is in [`Shared::guest`] or held by the one thread that took
//!   it there ([`run`]), which puts it back before it returns or unwinds.
//! - Its queues are empty whenever it is in the slot: before putting it
//!   back the guest moves every task queued on it to the injector
//!   ([`Core::hand_tasks_to_pool`]), and each half it forked was popped
//!   back or its latch set before that join returned.
//! - It never parks or searches, and is never handed to another thread: a
//!   guest that blocks (a `block_on` in a closure, see
//!   `context::release_core`) keeps it and moves its tasks to the injector.
//! - While it works, the guest counts as one awake worker in the idle word
//!   (`Idle::guest_arrives`), so its forks wake at most `workers - 1`
//!   sleepers and the machine runs as many threads as the pool has
//!   workers. It stops counting ([`leave`]) when it gives the core back or
//!   blocks, with the re-check of a worker going to sleep: a producer that
//!   skipped a wake-up because it counted the guest is then answered.
//!
//! # Liveness
//!
//! The guest's waits are `wait_until`'s, which end as a worker's do: the
//! awaited half runs on a worker that stole it. A blocking wait inside a
//! closure ends as it would on a worker: what it may wait for is either
//! queued where the awake workers take it (the injector, other queues) or
//! on the guest's deque, which a waking worker's `find_job` and a parking
//! worker's re-check both cover; and after `leave` the guest counts for
//! nothing, so every producer's wake-up reaches a real sleeper. No worker
//! ever waits for the guest core's tasks: none are left on it when the
//! guest stops running them. `guest_return_vs_remote_spawn` and
//! `guest_blocking_on_its_own_task_wakes_the_worker` in the loom models
//! check the two wake-up paths on a one-worker pool.

use alloc::sync::Arc;

use crate::context::{self, Context};
use crate::park::Park;
use crate::pool::Shared;
use crate::sync::Ordering;
use crate::worker::Core;

/// The guest core's parker: never used, the guest core does not park.
pub(crate) struct GuestPark;

impl Park for GuestPark {
    fn park(&self) {}
}

/// Runs `op` on the calling thread holding `shared`'s guest core, if the
/// thread runs no worker and the core is free; gives `op` back otherwise.
pub(crate) fn run<R>(
    shared: &Arc<Shared>,
    op: impl FnOnce() -> R,
) -> Result<R, impl FnOnce() -> R> {
    if context::on_worker_thread()
        || shared.generation != crate::fork_generation()
        || shared.shutdown.load(Ordering::Acquire)
    {
        return Err(op);
    }
    let Some(core) = shared.guest.with(Option::take) else {
        return Err(op);
    };
    arrive(shared);
    let _held = crate::stats::Held::new(shared, core.index);
    let cx = Context::new(Arc::clone(shared));
    let _enter = context::enter(&cx);
    cx.put(core);
    let _back = PutBack { cx: &cx };
    Ok(op())
}

/// Puts the guest core back in its slot, its tasks moved to the pool, when
/// the guest returns or unwinds.
struct PutBack<'a> {
    cx: &'a Context,
}

impl Drop for PutBack<'_> {
    fn drop(&mut self) {
        let shared = self.cx.shared();
        // In the context (a wait's `Released` put it back if it was stashed).
        if let Some(core) = self.cx.take().or_else(|| self.cx.take_stash()) {
            // No longer counted first: the closures below are user code
            // that may wait on the pool (a `block_on` there finds no core
            // in the context to give up, so nothing else would uncount
            // the guest), and a wake-up skipped because the guest counted
            // as awake would leave that wait with no worker to end it.
            leave(shared);
            // Closures a foreign scope spawned from here run now (a scope
            // promised they run); no join half of the guest's own is left.
            super::return_all(&core.join);
            core.hand_tasks_to_pool(shared);
            debug_assert!(
                shared.join_stealers[core.index].is_empty(),
                "a guest left a join half behind"
            );
            shared.guest.with(|guest| *guest = Some(core));
        }
    }
}

/// The guest counts as an awake worker (it borrowed the core, or its wait
/// ended).
pub(crate) fn arrive(shared: &Shared) {
    shared.guest_counted.store(true, Ordering::Relaxed);
    shared.idle.guest_arrives();
}

/// The guest stops counting as an awake worker, if it still does: a
/// producer that counted it may have skipped a wake-up, so, as a worker
/// going to sleep does, it fences and wakes a sleeper if work is queued
/// (see `idle`: the producer's fence and this one are ordered, and
/// whichever comes second sees the other's write).
pub(crate) fn leave(shared: &Shared) {
    if shared.guest_counted.swap(false, Ordering::Relaxed) {
        shared.idle.guest_leaves();
        crate::barrier::store_load();
        if shared.has_stealable_work() {
            shared.notify_parked();
        }
    }
}

/// A blocking guest's check (after [`leave`]) that the pool is not shut
/// down: if it is, the entries on its deque go back now, as those of a
/// worker's core dropped when its task blocks after shutdown: a foreign
/// scope's closure runs here, a join half of the guest's own is run by
/// the guest once its wait ends. No worker would steal them any more, and
/// the wait may be for one of them.
///
/// A shutdown that comes while the guest is blocked is covered by the
/// workers leaving their loops ([`return_left_behind`]). The two sides have
/// the store-buffering shape: the guest pushed its entries, fences (here),
/// then reads the flag; shutdown stores the flag and a worker that saw it
/// fences (in the steal) before it reads the deque. Whichever fence comes
/// second sees the other side's write.
pub(crate) fn return_if_shut_down(core: &Core, shared: &Shared) {
    crate::barrier::store_load();
    if shared.shutdown.load(Ordering::Relaxed) {
        super::return_all(&core.join);
    }
}

/// Called by a worker leaving its loop at shutdown: takes back what a
/// blocked guest left on the guest core's deque for the workers, which no
/// worker will steal any more (see [`return_if_shut_down`]). Each entry is
/// returned as a dropped core's are (`return_all`): a foreign scope's
/// closure runs on this thread, a join half goes back to the guest, which
/// runs it itself. A guest that is not blocked loses nothing by it: it
/// finds the half returned where it would have found it stolen.
pub(crate) fn return_left_behind(shared: &Shared) {
    let Some(stealer) = shared.join_stealers.get(shared.workers) else {
        return;
    };
    // `steal` fences before it reads the deque (the pairing above). A
    // steal that loses its race returns `None`: the winner (another
    // leaving worker, or the guest itself) has the rest.
    while let Some(job) = stealer.steal() {
        // SAFETY: stolen: this thread alone executes it.
        unsafe { job.execute(super::Fate::Return) };
    }
}

/// Whether `core` is its pool's guest core.
pub(crate) fn is_guest(core: &Core, shared: &Shared) -> bool {
    core.index == shared.workers
}
