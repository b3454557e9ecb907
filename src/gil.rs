//! `ThreadMode::Gil`: the scope-wide lock that serializes a scope's tasks,
//! and [`allow_threads`], which releases it around a closure.
//!
//! # What holds the gil
//!
//! - every poll of the scope's async tasks, and the future of its
//!   `block_on`;
//! - the scope's blocking closures (`spawn_blocking`, `to_thread`,
//!   `run_in_executor`, `Run::map`), **only when the program chose `Gil`
//!   in code** (a scope's config, or [`configure`](crate::configure)): it
//!   asked for serialized closures, and wraps a closure's wait for a
//!   sibling in [`allow_threads`];
//! - nothing else. When `Gil` comes from the operator
//!   (`UNIRUN_THREAD_MODE=gil` in the environment or a `.env` file),
//!   blocking closures run outside the lock, and the code that mirrors
//!   independent threads (`compat::thread`, `compat::smol::unblock`,
//!   `compat::tokio::task::spawn_blocking`) never takes it, whoever chose
//!   the mode. A blocking closure may wait for anything (a channel, a lock,
//!   a socket); a wait unirun cannot see cannot release the lock, and an
//!   operator switch must never turn a working program into a deadlock.
//!
//! # Why a waiter gets the lock (liveness)
//!
//! The lock is a fair ticket lock: a waiter is served after the holders of
//! the tickets before it, so it gets the lock if every holder lets go in
//! finite time. Under the operator switch every holder is a poll (or a
//! `block_on`'s poll). A poll returns, by the async contract; if it waits
//! in one of unirun's blocking waits (`block_on`, `JoinHandle::join`, a
//! scope's shutdown) the wait releases the lock through the core's
//! [`WaitHook`](unirun_core::WaitHook) while it parks. A poll that blocks
//! its thread in a wait unirun cannot see (a `std::sync::mpsc` receive
//! inside `async` code) is outside that contract: it stalls a one-worker
//! pool without the gil too. So a program that runs without the switch
//! runs with it. When the program chose `Gil` in code, a blocking closure
//! holds the lock for its run too, and the program keeps the same
//! promise by releasing it around waits for siblings ([`allow_threads`]).
//!
//! # Taking several
//!
//! The lock is fair: a task that releases and immediately wants it back
//! queues behind the others, so nobody starves. Each thread keeps a stack
//! of the gils it holds:
//!
//! - entering a scope whose gil this thread already holds (a task calling
//!   `run.block_on` on its own scope) does not lock again;
//! - a thread that holds gils and wants another (a task of one serialized
//!   scope calling `block_on` on another) takes them in one global order,
//!   by address: it releases those above the new one, then locks in
//!   ascending order. Two threads nesting two scopes in opposite orders
//!   therefore never wait for each other (no ABBA deadlock);
//! - [`allow_threads`] and unirun's own blocking waits (through the core's
//!   [`WaitHook`](unirun_core::WaitHook)) release everything the thread
//!   holds and take it back, in the same order, before the code that held it
//!   runs again. Waits nest LIFO on a thread, so what was released is kept on
//!   a second stack, one frame per wait.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError};

/// A fair (FIFO) lock with no data: `next` is the next ticket to hand out,
/// `serving` the ticket that holds the lock.
#[derive(Debug, Default)]
pub(crate) struct Gil {
    tickets: Mutex<Tickets>,
    turn: Condvar,
    /// Whether the scope's blocking closures hold it too: the program
    /// chose `Gil` in code (see the module docs).
    blocking: bool,
}

#[derive(Debug, Default)]
struct Tickets {
    next: u64,
    serving: u64,
}

impl Gil {
    /// A gil that polls hold, and blocking closures too when `blocking`.
    pub(crate) fn new(blocking: bool) -> Arc<Self> {
        install_wait_hook();
        Arc::new(Self {
            blocking,
            ..Self::default()
        })
    }

    /// The gil of a scope whose settings resolved to `mode` from `config`,
    /// if it is serialized. Its blocking closures hold it only when the
    /// program set the mode in code, not when it was read from the
    /// environment or a `.env` file (see the module docs).
    pub(crate) fn for_scope(
        mode: crate::ThreadMode,
        config: &crate::RuntimeConfig,
    ) -> Option<Arc<Self>> {
        (mode == crate::ThreadMode::Gil).then(|| Self::new(!config.read_from_env("thread_mode")))
    }

    /// Whether the scope's blocking closures hold this gil while they run.
    pub(crate) fn covers_blocking(&self) -> bool {
        self.blocking
    }

    fn lock(&self) {
        let mut t = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = t.next;
        t.next += 1;
        while t.serving != mine {
            t = self.turn.wait(t).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn unlock(&self) {
        let mut t = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        t.serving += 1;
        drop(t);
        // Every waiter checks whether its ticket came up.
        self.turn.notify_all();
    }
}

thread_local! {
    /// The gils this thread holds, outermost first.
    static HELD: RefCell<Vec<Arc<Gil>>> = const { RefCell::new(Vec::new()) };
    /// What each enclosing wait or `allow_threads` released, innermost last.
    static RELEASED: RefCell<Vec<Vec<Arc<Gil>>>> = const { RefCell::new(Vec::new()) };
}

/// Holds `gil` (unless this thread holds it already) until dropped.
///
/// `!Send`: the thread-local stacks describe the thread that took the lock,
/// so the guard must be dropped there.
#[must_use]
pub(crate) struct Hold {
    gil: Option<Arc<Gil>>,
    _not_send: PhantomData<*const ()>,
}

// `Hold` and `Enter` (which holds one) must never cross threads.
const _: () = {
    trait AmbiguousIfSend<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
    // Compiles only while `Hold` is `!Send` (otherwise the impl is ambiguous).
    let _ = <Hold as AmbiguousIfSend<_>>::check;
};

/// The order gils are taken in when a thread holds several: by address.
fn addr(gil: &Arc<Gil>) -> usize {
    Arc::as_ptr(gil) as usize
}

/// Takes every gil of `wanted` (none held by this thread yet) in the one
/// global order, so two threads can never wait for each other's gils:
/// held gils above the lowest wanted one are released first, then the
/// wanted and the released are locked, lowest address first. Returns the
/// released ones, which the caller puts back in `HELD`.
fn lock_ordered(wanted: &[Arc<Gil>]) -> Vec<Arc<Gil>> {
    let Some(lowest) = wanted.iter().map(addr).min() else {
        return Vec::new();
    };
    let above: Vec<Arc<Gil>> = HELD.with(|h| {
        let mut held = h.borrow_mut();
        let mut above = Vec::new();
        held.retain(|g| {
            let keep = addr(g) < lowest;
            if !keep {
                above.push(g.clone());
            }
            keep
        });
        above
    });
    for gil in above.iter().rev() {
        gil.unlock();
    }
    let mut all: Vec<&Arc<Gil>> = wanted.iter().chain(above.iter()).collect();
    all.sort_by_key(|g| addr(g));
    for gil in all {
        gil.lock();
    }
    above
}

/// Takes `gil` for the current thread; reentrant per thread. A thread that
/// already holds other gils may release and retake some of them (see
/// [`lock_ordered`]): other tasks of those scopes can run meanwhile, as
/// they can during any wait.
pub(crate) fn hold(gil: &Arc<Gil>) -> Hold {
    let held = HELD.with(|h| h.borrow().iter().any(|g| Arc::ptr_eq(g, gil)));
    if held {
        return Hold {
            gil: None,
            _not_send: PhantomData,
        };
    }
    let above = lock_ordered(std::slice::from_ref(gil));
    HELD.with(|h| {
        let mut held = h.borrow_mut();
        held.extend(above);
        held.push(gil.clone());
    });
    Hold {
        gil: Some(gil.clone()),
        _not_send: PhantomData,
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(gil) = self.gil.take() {
            HELD.with(|h| {
                let mut held = h.borrow_mut();
                if let Some(i) = held.iter().rposition(|g| Arc::ptr_eq(g, &gil)) {
                    held.remove(i);
                }
            });
            gil.unlock();
        }
    }
}

/// Releases every gil this thread holds; returns 1 if there were any (a
/// frame was pushed for [`reacquire`]), 0 if not.
fn release() -> usize {
    let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
    if held.is_empty() {
        return 0;
    }
    for gil in held.iter().rev() {
        gil.unlock();
    }
    RELEASED.with(|r| r.borrow_mut().push(held));
    1
}

/// Takes back what the matching [`release`] gave up, in the original order.
fn reacquire(token: usize) {
    if token == 0 {
        return;
    }
    let Some(frame) = RELEASED.with(|r| r.borrow_mut().pop()) else {
        return;
    };
    let above = lock_ordered(&frame);
    HELD.with(|h| {
        let mut held = h.borrow_mut();
        // Anything held now was taken inside the wait and is released by
        // its own `Hold`; ours go underneath, as they were taken first.
        let inner = std::mem::replace(&mut *held, frame);
        held.extend(inner);
        held.extend(above);
    });
}

fn install_wait_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Refused only if someone else installed a hook first; then
        // serialized scopes still work, but a task that blocks on a sibling
        // needs `allow_threads` around the wait.
        unirun_core::set_wait_hook(unirun_core::WaitHook { release, reacquire });
    });
}

/// Runs `f` with the current serialized scope's lock released, so the
/// scope's other tasks may run meanwhile; takes the lock back before
/// returning. Outside a [`ThreadMode::Gil`](crate::ThreadMode::Gil) scope it
/// just calls `f`.
///
/// What holds the lock: every poll of a serialized scope's async tasks;
/// its blocking closures only when the program chose `Gil` in code (read
/// from `UNIRUN_THREAD_MODE`, the mode leaves blocking closures outside the
/// lock, so the operator switch cannot turn a working program into a
/// deadlock); the compat modules' threads never. unirun's own blocking
/// waits release it while they park, so a holder always lets go unless it
/// blocks in a wait unirun cannot see: that is what this function is for.
///
/// The counterpart of releasing the GIL around blocking I/O in CPython.
/// unirun's own blocking waits (`block_on`, `JoinHandle::join`, scope
/// shutdown) do this by themselves; wrap other blocking calls (a socket
/// read, `std::sync::mpsc::Receiver::recv`, a sleep) that may wait for a
/// sibling task.
///
/// # Examples
///
/// ```
/// use unirun::{Flavor, Run, RuntimeConfig, ThreadMode};
///
/// let run = Run::builder()
///     .flavor(Flavor::Threads)
///     .config(RuntimeConfig::default().thread_mode(ThreadMode::Gil))
///     .build()?;
/// let (tx, rx) = std::sync::mpsc::channel();
/// // Without allow_threads the receiver would hold the scope's lock while
/// // it waits, and the sender could never run.
/// let receiver = run.spawn_blocking(move || unirun::allow_threads(|| rx.recv().unwrap()));
/// let sender = run.spawn_blocking(move || tx.send("hello").unwrap());
/// sender.join().unwrap();
/// assert_eq!(receiver.join().unwrap(), "hello");
/// # Ok::<(), unirun::Error>(())
/// ```
pub fn allow_threads<R>(f: impl FnOnce() -> R) -> R {
    struct Reacquire(usize);
    impl Drop for Reacquire {
        fn drop(&mut self) {
            reacquire(self.0);
        }
    }
    let _reacquire = Reacquire(release());
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_is_reentrant_and_allow_threads_lets_others_in() {
        let gil = Gil::new(true);
        let outer = hold(&gil);
        let inner = hold(&gil);
        assert!(inner.gil.is_none());
        let other = gil.clone();
        let entered = allow_threads(|| {
            std::thread::spawn(move || {
                let _h = hold(&other);
                true
            })
            .join()
            .unwrap()
        });
        assert!(entered);
        assert_eq!(HELD.with(|h| h.borrow().len()), 1);
        drop(inner);
        drop(outer);
        assert_eq!(HELD.with(|h| h.borrow().len()), 0);
    }

    #[test]
    fn release_with_nothing_held_is_a_no_op() {
        assert_eq!(release(), 0);
        reacquire(0);
        assert_eq!(allow_threads(|| 5), 5);
    }
}
