//! The fork guard: no unirun lock is held while unirun forks.
//!
//! `fork` copies a process with only the calling thread. A mutex that
//! another thread held at that instant stays locked in the child forever, so
//! a child that takes it (to reach the shared executor, say) hangs. The
//! guard closes that hole for unirun's own locks:
//!
//! - every unirun lock on state a forked child may reach is taken *inside*
//!   a shared hold of the guard ([`ForkMutex`] does both, in that order);
//! - unirun's fork paths take the guard exclusively ([`exclusive`]) right
//!   before `fork` and release it right after, in the parent and the child.
//!
//! An exclusive hold waits until no thread is inside a shared hold and keeps
//! new ones out, so at the fork no guarded lock is held by any thread and
//! the child finds every one of them free. Shared holds are re-entrant per
//! thread (a thread-local depth), so guarded locks may nest.
//!
//! # Liveness
//!
//! - A shared hold waits only while an exclusive one is held or pending;
//!   that ends because the fork path holds it only around one `fork` call
//!   and takes no guarded lock meanwhile.
//! - An exclusive hold waits for current shared holders to leave; they
//!   leave because a guarded section never waits for a fork to finish: it
//!   must not print (the fork path holds the stdout and stderr locks while
//!   it waits) nor fork. Threads that already hold a shared hold re-enter it
//!   without waiting, so a pending fork cannot wedge a nested lock.
//! - Pending exclusive holds keep new shared holders out (writer
//!   preference), so a thread that takes guarded locks in a loop cannot
//!   starve a fork.
//!
//! Waiting uses a futex on Linux and Android, and yields elsewhere; the
//! state is one atomic word, so the child can release the exclusive hold it
//! inherited without touching anything another thread could have held.

// Under loom only the models use the gate; the guarded API is std-only.
#![cfg_attr(all(loom, not(test)), allow(dead_code))]

#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, Ordering};

/// Set while an exclusive hold is held or being acquired.
const EXCLUSIVE: u32 = 1 << 31;

/// The guard's state machine: bit 31 is "exclusive held or pending", the
/// low bits count threads inside a shared hold.
pub(crate) struct Gate {
    state: AtomicU32,
    /// Under loom, a futex emulated with a mutex and a condition variable
    /// (loom cannot model the system call; spinning would explode the model).
    #[cfg(loom)]
    futex: (loom::sync::Mutex<()>, loom::sync::Condvar),
}

impl Gate {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            futex: (loom::sync::Mutex::new(()), loom::sync::Condvar::new()),
        }
    }

    /// Blocks while the state still holds `expected` (spurious returns are
    /// fine: every caller re-checks).
    #[cfg(not(loom))]
    fn wait(&self, expected: u32) {
        wait(&self.state, expected);
    }

    #[cfg(not(loom))]
    fn wake_all(&self) {
        wake_all(&self.state);
    }

    #[cfg(loom)]
    fn wait(&self, expected: u32) {
        let guard = self.futex.0.lock().unwrap();
        // Checked under the lock every waker takes after changing the
        // state: a change either shows here or its wake comes after.
        if self.state.load(Ordering::SeqCst) == expected {
            drop(self.futex.1.wait(guard).unwrap());
        }
    }

    #[cfg(loom)]
    fn wake_all(&self) {
        drop(self.futex.0.lock().unwrap());
        self.futex.1.notify_all();
    }

    /// Enters a shared hold: waits while an exclusive one is held or pending.
    pub(crate) fn enter_shared(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & EXCLUSIVE != 0 {
                self.wait(state);
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            // Acquire: the last fork (and its release) happens-before us.
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
    }

    /// Leaves a shared hold; wakes a waiting fork when one is pending.
    pub(crate) fn leave_shared(&self) {
        // Release: our critical section happens-before the fork.
        let before = self.state.fetch_sub(1, Ordering::Release);
        if before & EXCLUSIVE != 0 {
            self.wake_all();
        }
    }

    /// Takes the exclusive hold: first claims it (one at a time), then waits
    /// until the only shared holds left are `own` (the caller's own: it may
    /// not wait for itself).
    pub(crate) fn enter_exclusive(&self, own: u32) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & EXCLUSIVE != 0 {
                self.wait(state);
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            match self.state.compare_exchange_weak(
                state,
                state | EXCLUSIVE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        loop {
            // Acquire: pairs with `leave_shared`'s release.
            let state = self.state.load(Ordering::Acquire);
            if state & !EXCLUSIVE <= own {
                return;
            }
            self.wait(state);
        }
    }

    /// Releases the exclusive hold and wakes everyone waiting.
    pub(crate) fn leave_exclusive(&self) {
        self.state.fetch_and(!EXCLUSIVE, Ordering::Release);
        self.wake_all();
    }

    /// Threads inside a shared hold now (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn shared_holders(&self) -> u32 {
        self.state.load(Ordering::SeqCst) & !EXCLUSIVE
    }

    /// Whether an exclusive hold is held or being acquired now.
    #[cfg(not(loom))]
    pub(crate) fn exclusive_pending(&self) -> bool {
        self.state.load(Ordering::SeqCst) & EXCLUSIVE != 0
    }
}

/// Blocks while `word` still holds `expected` (a futex wait).
#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic for the whole call; a
    // null timeout means no timeout; FUTEX_WAIT only reads the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

#[cfg(all(not(loom), any(target_os = "linux", target_os = "android")))]
fn wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE only wakes
    // threads blocked on it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// Elsewhere: yields (the wait lasts one `fork` call at most).
#[cfg(all(not(loom), not(any(target_os = "linux", target_os = "android"))))]
fn wait(word: &AtomicU32, expected: u32) {
    if word.load(Ordering::Relaxed) == expected {
        std::thread::yield_now();
    }
}

#[cfg(all(not(loom), not(any(target_os = "linux", target_os = "android"))))]
fn wake_all(_word: &AtomicU32) {}

#[cfg(not(loom))]
pub use self::api::*;

#[cfg(not(loom))]
mod api {
    use std::cell::Cell;
    use std::marker::PhantomData;
    use std::ops::{Deref, DerefMut};
    use std::sync::{Mutex, MutexGuard, PoisonError};

    use super::Gate;

    static GATE: Gate = Gate::new();

    thread_local! {
        /// How deep this thread is inside shared holds.
        static DEPTH: Cell<u32> = const { Cell::new(0) };
    }

    /// A shared hold of the fork guard (see [`shared`]); released on drop.
    /// Not `Send`: it counts for the thread that took it.
    #[must_use = "the hold ends when the guard drops"]
    #[derive(Debug)]
    pub struct SharedHold {
        _thread_bound: PhantomData<*const ()>,
    }

    /// Takes a shared hold of the fork guard: until it drops, no unirun fork
    /// path forks (one waits instead). Hold it around every lock on state a
    /// forked child may reach; [`ForkMutex`] does that for you. Re-entrant.
    ///
    /// Inside the hold, never print, fork or wait for a fork (see the
    /// module docs on liveness).
    ///
    /// # Examples
    ///
    /// ```
    /// let outer = unirun_platform::fork_guard::shared();
    /// let inner = unirun_platform::fork_guard::shared(); // nesting is fine
    /// drop(inner);
    /// drop(outer);
    /// ```
    pub fn shared() -> SharedHold {
        let depth = DEPTH.with(Cell::get);
        if depth == 0 {
            GATE.enter_shared();
        }
        DEPTH.with(|d| d.set(depth + 1));
        SharedHold {
            _thread_bound: PhantomData,
        }
    }

    impl Drop for SharedHold {
        fn drop(&mut self) {
            let depth = DEPTH.with(Cell::get);
            DEPTH.with(|d| d.set(depth - 1));
            if depth == 1 {
                GATE.leave_shared();
            }
        }
    }

    /// The exclusive hold a fork path takes around `fork` (see
    /// [`exclusive`]); released on drop, in the parent and in the child
    /// alike.
    #[must_use = "the hold ends when the guard drops"]
    #[derive(Debug)]
    pub struct ExclusiveHold {
        _thread_bound: PhantomData<*const ()>,
    }

    /// Waits until no other thread holds a unirun lock guarded by the fork
    /// guard, and keeps them out until the returned hold drops. Take it
    /// right before `fork` and drop it right after, on both sides; nothing
    /// else should wait while it is held.
    ///
    /// A thread that itself holds a shared hold does not wait for itself,
    /// but the locks it holds stay held in its child: fork paths should hold
    /// none.
    ///
    /// # Examples
    ///
    /// ```
    /// let hold = unirun_platform::fork_guard::exclusive();
    /// // ... `fork` here: no guarded unirun lock is held by another thread ...
    /// drop(hold);
    /// let shared = unirun_platform::fork_guard::shared(); // free again
    /// # drop(shared);
    /// ```
    pub fn exclusive() -> ExclusiveHold {
        let own = u32::from(DEPTH.with(Cell::get) > 0);
        GATE.enter_exclusive(own);
        ExclusiveHold {
            _thread_bound: PhantomData,
        }
    }

    /// Whether a fork path holds the exclusive hold or waits for it now (a
    /// moment's view). For tests that hold a guarded lock and must learn,
    /// without a timing guess, that a fork is waiting for them to let go.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_platform::fork_guard;
    ///
    /// let hold = fork_guard::exclusive();
    /// assert!(fork_guard::exclusive_pending());
    /// drop(hold);
    /// ```
    #[doc(hidden)]
    pub fn exclusive_pending() -> bool {
        GATE.exclusive_pending()
    }

    impl Drop for ExclusiveHold {
        fn drop(&mut self) {
            // In the child too: the state is one word, and no other thread
            // was inside a shared hold at the fork.
            GATE.leave_exclusive();
        }
    }

    /// A `Mutex` that is never held across one of unirun's forks: locking
    /// takes a [`shared`] hold of the fork guard first, and the hold ends
    /// after the lock is released. For process-wide state that a forked
    /// child may touch. Poisoning is ignored (the data is handed back).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_platform::fork_guard::ForkMutex;
    ///
    /// static COUNT: ForkMutex<u32> = ForkMutex::new(0);
    /// *COUNT.lock() += 1;
    /// assert_eq!(*COUNT.lock(), 1);
    /// ```
    #[derive(Debug, Default)]
    pub struct ForkMutex<T> {
        inner: Mutex<T>,
    }

    impl<T> ForkMutex<T> {
        /// A new, unlocked mutex around `value`.
        ///
        /// # Examples
        ///
        /// ```
        /// let m = unirun_platform::fork_guard::ForkMutex::new(vec![1]);
        /// assert_eq!(m.lock().len(), 1);
        /// ```
        pub const fn new(value: T) -> Self {
            Self {
                inner: Mutex::new(value),
            }
        }

        /// Takes a shared hold of the fork guard, then the lock.
        ///
        /// # Examples
        ///
        /// ```
        /// let m = unirun_platform::fork_guard::ForkMutex::new(String::new());
        /// m.lock().push_str("hi");
        /// assert_eq!(*m.lock(), "hi");
        /// ```
        pub fn lock(&self) -> ForkMutexGuard<'_, T> {
            let hold = shared();
            let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            ForkMutexGuard { guard, _hold: hold }
        }
    }

    /// The lock of a [`ForkMutex`]; releases the lock, then the hold.
    #[derive(Debug)]
    #[must_use = "the lock is released when the guard drops"]
    pub struct ForkMutexGuard<'a, T> {
        // Declared first: dropped (unlocked) before the hold ends.
        guard: MutexGuard<'a, T>,
        _hold: SharedHold,
    }

    impl<T> Deref for ForkMutexGuard<'_, T> {
        type Target = T;

        fn deref(&self) -> &T {
            &self.guard
        }
    }

    impl<T> DerefMut for ForkMutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.guard
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::sync::mpsc;
        use std::time::Duration;

        /// The exclusive hold waits for a shared one on another thread and
        /// keeps new shared holds out until it drops.
        #[test]
        fn exclusive_waits_for_shared_holders_and_excludes_new_ones() {
            // Run on its own gate-free thread layout: the static gate is
            // shared with the other tests, so only relative facts are checked.
            let (held_tx, held_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let holder = std::thread::spawn(move || {
                let hold = shared();
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                drop(hold);
            });
            held_rx.recv().unwrap();
            assert!(GATE.shared_holders() >= 1);
            let (forked_tx, forked_rx) = mpsc::channel();
            let forker = std::thread::spawn(move || {
                let hold = exclusive();
                assert_eq!(GATE.shared_holders(), 0, "no shared hold during a fork");
                forked_tx.send(()).unwrap();
                drop(hold);
            });
            // The forker cannot get through while the holder holds.
            assert!(forked_rx.recv_timeout(Duration::from_millis(50)).is_err());
            release_tx.send(()).unwrap();
            forked_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the fork path got the guard once the holder left");
            holder.join().unwrap();
            forker.join().unwrap();
        }

        #[test]
        fn shared_holds_nest_while_a_fork_is_pending() {
            let outer = shared();
            let (tx, rx) = mpsc::channel();
            let forker = std::thread::spawn(move || {
                let hold = exclusive();
                tx.send(()).unwrap();
                drop(hold);
            });
            // Whether or not the forker is already pending, nesting never waits.
            let inner = shared();
            let m = ForkMutex::new(1);
            assert_eq!(*m.lock(), 1);
            drop(inner);
            drop(outer);
            rx.recv_timeout(Duration::from_secs(60))
                .expect("the fork path proceeds once the thread leaves");
            forker.join().unwrap();
        }

        #[test]
        fn a_thread_holding_shared_may_take_exclusive() {
            let hold = shared();
            let ex = exclusive();
            drop(ex);
            drop(hold);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::Gate;
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::Arc;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// A fork racing a shared holder: the fork never sees the holder inside
    /// its critical section, the holder never enters during the fork, and
    /// both finish (no lost wake-up on either side).
    #[test]
    fn loom_exclusive_excludes_shared() {
        model(|| {
            let gate = Arc::new(Gate::new());
            let inside = Arc::new(AtomicBool::new(false));
            let forking = Arc::new(AtomicBool::new(false));
            let reader = {
                let (gate, inside, forking) = (gate.clone(), inside.clone(), forking.clone());
                loom::thread::spawn(move || {
                    gate.enter_shared();
                    assert!(!forking.load(Ordering::Relaxed), "entered during a fork");
                    inside.store(true, Ordering::Relaxed);
                    inside.store(false, Ordering::Relaxed);
                    gate.leave_shared();
                })
            };
            gate.enter_exclusive(0);
            forking.store(true, Ordering::Relaxed);
            assert!(
                !inside.load(Ordering::Relaxed),
                "a holder inside at the fork"
            );
            forking.store(false, Ordering::Relaxed);
            gate.leave_exclusive();
            reader.join().unwrap();
        });
    }

    /// Two forks race: they take turns, and the second is woken.
    #[test]
    fn loom_two_forks_take_turns() {
        model(|| {
            let gate = Arc::new(Gate::new());
            let inside = Arc::new(AtomicBool::new(false));
            let other = {
                let (gate, inside) = (gate.clone(), inside.clone());
                loom::thread::spawn(move || {
                    gate.enter_exclusive(0);
                    assert!(!inside.swap(true, Ordering::Relaxed));
                    inside.store(false, Ordering::Relaxed);
                    gate.leave_exclusive();
                })
            };
            gate.enter_exclusive(0);
            assert!(!inside.swap(true, Ordering::Relaxed));
            inside.store(false, Ordering::Relaxed);
            gate.leave_exclusive();
            other.join().unwrap();
        });
    }

    /// A thread inside a shared hold forks: it does not wait for itself.
    #[test]
    fn loom_a_holder_may_fork() {
        model(|| {
            let gate = Arc::new(Gate::new());
            let reader = {
                let gate = gate.clone();
                loom::thread::spawn(move || {
                    gate.enter_shared();
                    gate.leave_shared();
                })
            };
            gate.enter_shared();
            gate.enter_exclusive(1);
            gate.leave_exclusive();
            gate.leave_shared();
            reader.join().unwrap();
        });
    }
}
