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
//!   asked for serialized closures;
//! - nothing else. When `Gil` comes from the operator
//!   (`UNIRUN_THREAD_MODE=gil` in the environment or a `.env` file),
//!   blocking closures run outside the lock, and the code that mirrors
//!   independent threads (`compat::thread`, `compat::smol::unblock`,
//!   `compat::tokio::task::spawn_blocking`) never takes it, whoever chose
//!   the mode. A closure that sleeps would lend the lock (below), but one
//!   that computes until a sibling tells it to stop never sleeps, and an
//!   operator switch must never turn a working program into a deadlock.
//!
//! # Chosen in code: never lent
//!
//! When the program chose `Gil` in code, at most one of the scope's polls
//! and closures **executes** at any instant, asleep or not: the program
//! asked for exclusion (it may guard state that is not thread-safe), so
//! the lock is let go only when a poll or closure returns, around
//! [`allow_threads`], and in unirun's own waits. A closure that waits for
//! a sibling must wrap the wait in [`allow_threads`].
//!
//! # Under the operator switch: what is serialized, and when it is relaxed
//!
//! At most one holder **runs** at any instant. A holder that is blocked in
//! the kernel (asleep: a std `Barrier` or `Mutex`, a channel receive, a
//! foreign `block_on`, a read) is not running Rust work, and does not keep
//! the others out, as CPython releases its GIL around blocking calls:
//!
//! - the waiter in front (the lowest ticket) looks at the holders every
//!   millisecond while the lock is held. On Linux it reads each holder's
//!   `/proc/self/task/<tid>/stat` (state `S` or `D`, or the thread gone)
//!   and `schedstat` (its time on a CPU so far). When two looks in a row
//!   found every holder asleep, with no holder entering or leaving and
//!   none run for more than a tenth of the interval in between (a wait in
//!   short naps, a `sleep` or `recv_timeout` loop, counts as asleep), it
//!   enters as one more holder: the lock is *lent*. Every hold lets go of
//!   its own entry;
//! - while a holder is running (or waiting for a CPU), nobody enters: a
//!   poll or closure that computes is never overlapped by another;
//! - the overlap a loan allows: the blocked holder wakes while the one it
//!   lent to still runs, and both run until one lets go (the next waiter
//!   enters only when every holder is asleep again). So a task's code
//!   between two blocking points never runs beside another task's code
//!   that entered while it was running;
//! - off Linux (or without `/proc`), the holders' state is unknown and the
//!   look is a switch interval: the waiter in front enters after two looks
//!   5 ms apart found the same holders, so only holds shorter than that are
//!   serialized for sure.
//!
//! What it does not relax: a holder that waits for a sibling without ever
//! sleeping (a pure spin on a flag a sibling sets) is running, and keeps
//! that sibling out for good, as C code that spins holding CPython's GIL
//! does. This is why blocking closures stay outside the operator switch's
//! lock: a closure that computes until a sibling task tells it to stop is
//! ordinary code, and it never sleeps. A poll that spins is outside the
//! async contract (it stalls a one-worker pool without the gil too).
//!
//! # Why every wait ends (liveness)
//!
//! Tickets enter in order, so a waiter first waits for the tickets before
//! it to enter, each of which does by this same argument. In front, it
//! enters when the holders have let go, or when they are all asleep (two
//! looks). A holder that is not asleep is running its own code; under the
//! operator switch every holder is a poll (or a `block_on`'s poll), which
//! returns by the async contract or blocks (and is then lent out).
//! unirun's own blocking waits (`block_on`, `JoinHandle::join`, a scope's
//! shutdown) release the lock outright through the core's
//! [`WaitHook`](unirun_core::WaitHook) while they park, without waiting
//! for a look. So a program that runs without the switch runs with it,
//! unless a poll spins on a sibling (above). When the program chose `Gil`
//! in code, the lock is never lent: a poll or closure lets go when it
//! returns, and [`allow_threads`] and unirun's own waits release it around
//! a wait; a program that waits for a sibling elsewhere while holding the
//! lock it asked for waits for good, as a thread holding a mutex would.
//!
//! The look costs the waiter in front a few reads of `/proc` per
//! millisecond while the lock is held by someone else, and only it looks
//! (the others sleep until a ticket enters). A holder pays nothing more
//! than before: its thread id is read once per thread.
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

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use unirun_core::ForkLocal;

/// A fair (FIFO) lock with no data, lent out while every holder is asleep
/// in the kernel (see the module docs).
///
/// # In a forked child
///
/// `fork` copies only the calling thread: the holders and waiters recorded
/// in the parent are threads the child does not have, and the state's own
/// mutex may have been held by one of them at the fork (a foreign fork is
/// not kept out of it). So each fork generation has its own [`Lock`] (a
/// [`ForkLocal`]; the parent's is left untouched in the child). A hold
/// taken before the fork lets go of the parent's lock only, which is a
/// no-op in the child; the child's own threads serialize on the child's
/// lock.
#[derive(Debug)]
pub(crate) struct Gil {
    /// This fork generation's lock state.
    lock: ForkLocal<Lock>,
    /// Whether the scope's blocking closures hold it too: the program
    /// chose `Gil` in code (see the module docs).
    blocking: bool,
}

/// The gil's state in one fork generation.
#[derive(Debug, Default)]
struct Lock {
    state: Mutex<State>,
    turn: Condvar,
}

impl Lock {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct State {
    /// The next ticket to hand out.
    next: u64,
    /// The ticket that enters next: every ticket below it holds the lock or
    /// has let go of it, every ticket from it up waits. Tickets enter in
    /// order, one at a time.
    entering: u64,
    /// Who holds the lock: one entry, or more while it is lent.
    holders: Vec<Holder>,
    /// Bumped whenever a holder enters or leaves: two observations of the
    /// holders with the same count saw the same holders throughout.
    changes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Holder {
    ticket: u64,
    /// The holder's kernel thread id (0 when unknown).
    tid: u32,
}

/// How long the first waiter sleeps between two looks at the holders
/// while their kernel state is at hand (Linux with `/proc`, every holder's
/// thread id known): a holder is lent out after two looks that both found
/// it asleep.
const LOOK_EVERY: Duration = Duration::from_millis(1);
/// Without it, the switch interval: a holder is lent out after holding
/// through two looks (as CPython asks for its GIL after 5 ms).
const SWITCH_INTERVAL: Duration = Duration::from_millis(5);

/// How long the waiter in front waits before its next look at `holders`:
/// [`LOOK_EVERY`] when each one's state can be read, else the
/// [`SWITCH_INTERVAL`] (one unknown holder counts as asleep at every look,
/// so a short interval would lend a running holder's lock within 2 ms).
fn look_interval(holders: &[Holder]) -> Duration {
    if proc_shows_threads() && holders.iter().all(|h| h.tid != 0) {
        LOOK_EVERY
    } else {
        SWITCH_INTERVAL
    }
}

/// Whether `/proc` shows this process's threads (never off Linux: the
/// `/proc` readers below compile everywhere, and run only where this holds).
fn proc_shows_threads() -> bool {
    static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    cfg!(target_os = "linux")
        && *PROC.get_or_init(|| std::path::Path::new("/proc/self/task").is_dir())
}

impl Gil {
    /// A gil that polls hold, and blocking closures too when `blocking`.
    pub(crate) fn new(blocking: bool) -> Arc<Self> {
        install_wait_hook();
        Arc::new(Self {
            lock: ForkLocal::new(Lock::default),
            blocking,
        })
    }

    /// The lock of the calling thread's fork generation.
    fn lock_here(&self) -> &Lock {
        self.lock.get()
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

    /// Enters, as the only holder or as one the blocked holders lend the
    /// lock to; returns the ticket that [`unlock`](Self::unlock) lets go.
    ///
    /// Why the wait ends: tickets enter in order, so a waiter first waits
    /// for the tickets before it to enter, each of which does by this same
    /// argument. At the front, it waits (looking every [`LOOK_EVERY`]) until
    /// no one holds the lock, or every holder was found asleep by two looks
    /// in a row with no holder entering or leaving in between (off Linux:
    /// every holder held through two looks). A holder that is not asleep is
    /// running its own code, and lets go when that code returns or blocks.
    fn lock(&self) -> Ticket {
        let tid = thread_id();
        // Read on this thread before the lock: a fork changes the
        // generation only in the child, where this thread does not exist.
        let generation = unirun_core::fork_generation();
        let this = self.lock_here();
        let mut s = this.state();
        let mine = s.next;
        s.next += 1;
        let mut looks = Looks::default();
        loop {
            if s.entering != mine {
                // Woken when a ticket enters (then the next one is in front).
                s = this.turn.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            if s.holders.is_empty() {
                break;
            }
            if self.blocking {
                // Chosen in code: the gil is never lent; a holder lets go
                // when its poll or closure returns, or through
                // `allow_threads` and unirun's own waits (see the module
                // docs). Woken when a holder leaves.
                s = this.turn.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // In front, and the lock is held: look at the holders now and
            // then. Woken early when a holder leaves.
            let interval = look_interval(&s.holders);
            s = this
                .turn
                .wait_timeout(s, interval)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if s.holders.is_empty() {
                break;
            }
            let changes = s.changes;
            looks.tids.clear();
            looks.tids.extend(s.holders.iter().map(|h| h.tid));
            // Read the holders' state without the lock: they may let go
            // meanwhile (then `changes` moves and this look does not count).
            drop(s);
            let look = looks.take(changes);
            s = this.state();
            if look && s.changes == changes {
                break;
            }
        }
        s.entering += 1;
        s.holders.push(Holder { ticket: mine, tid });
        s.changes += 1;
        let waiting = s.next != s.entering;
        drop(s);
        if waiting {
            // The next ticket is in front now and starts looking.
            this.turn.notify_all();
        }
        Ticket {
            number: mine,
            generation,
        }
    }

    /// Lets go of the hold that entered with `ticket`. A hold taken before
    /// this process was forked held the parent's lock: nothing to do here.
    fn unlock(&self, ticket: Ticket) {
        if ticket.generation != unirun_core::fork_generation() {
            return;
        }
        let this = self.lock_here();
        let ticket = ticket.number;
        let mut s = this.state();
        if let Some(i) = s.holders.iter().position(|h| h.ticket == ticket) {
            s.holders.swap_remove(i);
            s.changes += 1;
        }
        let waiting = s.next != s.entering;
        drop(s);
        if waiting {
            // The waiter in front checks whether it may enter.
            this.turn.notify_all();
        }
    }
}

/// The most time on a CPU (nanoseconds, as `schedstat` counts) a holder
/// may have had between two looks that found it asleep and still count as
/// asleep throughout: a tenth of [`LOOK_EVERY`].
const RAN_LITTLE_NS: u64 = LOOK_EVERY.as_nanos() as u64 / 10;

/// What the waiter in front saw of the holders at its last look.
#[derive(Default)]
struct Looks {
    /// The holders' thread ids, copied for this look.
    tids: Vec<u32>,
    /// The holders' time on a CPU at the last look, if every one was
    /// asleep then, with the `changes` count it was taken at.
    asleep: Option<(u64, Vec<u64>)>,
}

impl Looks {
    /// Looks at the holders in `tids`; true when this look and the one
    /// before both found every one asleep, with the same holders (the same
    /// `changes`) and none of them run in between.
    fn take(&mut self, changes: u64) -> bool {
        let mut ran = Vec::with_capacity(self.tids.len());
        for &tid in &self.tids {
            match asleep(tid) {
                Some(on_cpu) => ran.push(on_cpu),
                None => {
                    self.asleep = None;
                    return false;
                }
            }
        }
        // A holder that waits in short naps (a `sleep` or `recv_timeout`
        // loop) wakes between two looks: it counts as asleep when it ran
        // for less than a tenth of the interval in between.
        let confirmed = self.asleep.as_ref().is_some_and(|(was, before)| {
            *was == changes
                && before.len() == ran.len()
                && before
                    .iter()
                    .zip(&ran)
                    .all(|(b, r)| r.saturating_sub(*b) < RAN_LITTLE_NS)
        });
        self.asleep = Some((changes, ran));
        confirmed
    }
}

/// This thread's kernel id, or 0 where there is none to look up.
fn thread_id() -> u32 {
    thread_local! {
        /// The fork generation the id was read in, and the id (a forked
        /// child's thread has a new one).
        static TID: Cell<Option<(usize, u32)>> = const { Cell::new(None) };
    }
    let generation = unirun_core::fork_generation();
    TID.with(|t| match t.get() {
        Some((read_in, tid)) if read_in == generation => tid,
        _ => {
            let tid = read_thread_id();
            t.set(Some((generation, tid)));
            tid
        }
    })
}

/// Reads the calling thread's id from `/proc/thread-self` (a link to
/// `<pid>/task/<tid>`), once per thread; 0 off Linux.
fn read_thread_id() -> u32 {
    if !cfg!(target_os = "linux") {
        return 0;
    }
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| link.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// Whether thread `tid` of this process is asleep in the kernel (or gone):
/// its time on a CPU so far if so (0 where it cannot be read), `None` if it
/// runs or waits for a CPU. Reads `/proc/self/task/<tid>/stat` (state `S`
/// or `D`) and `schedstat` into stack buffers: no allocation.
///
/// Without a thread id or `/proc`, every holder counts as asleep with no
/// progress, and the lock turns into a switch interval: a holder is lent
/// out after holding through two looks.
fn asleep(tid: u32) -> Option<u64> {
    use std::io::Write;
    if tid == 0 || !proc_shows_threads() {
        return Some(0);
    }
    let mut path = [0u8; 64];
    let mut read = |file: &str, buf: &mut [u8]| -> Result<usize, std::io::Error> {
        let mut cursor = std::io::Cursor::new(&mut path[..]);
        write!(cursor, "/proc/self/task/{tid}/{file}")?;
        let len = cursor.position() as usize;
        let path = std::str::from_utf8(&path[..len]).map_err(std::io::Error::other)?;
        // `File::open` builds the C path on the stack for a path this short.
        let mut file = std::fs::File::open(path)?;
        let mut filled = 0;
        while filled < buf.len() {
            match std::io::Read::read(&mut file, &mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    };
    let mut stat = [0u8; 1024];
    let len = match read("stat", &mut stat) {
        Ok(len) => len,
        // The thread ended (with the lock held, it will never let go).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(0),
        Err(_) => return None,
    };
    // `<tid> (<name>) <state> ...`: the name may hold anything, so the
    // state is the byte after the last `) `.
    let stat = &stat[..len];
    let close = stat.iter().rposition(|&b| b == b')')?;
    match stat.get(close + 2)? {
        b'S' | b'D' | b'Z' | b'X' => {}
        _ => return None,
    }
    let mut sched = [0u8; 128];
    let on_cpu = read("schedstat", &mut sched)
        .ok()
        .and_then(|len| {
            let text = std::str::from_utf8(&sched[..len]).ok()?;
            text.split_ascii_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0);
    Some(on_cpu)
}

/// A hold on a gil: its ticket, in the fork generation it was taken in.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    number: u64,
    generation: usize,
}

/// A gil this thread holds, and the ticket it entered with.
struct Held {
    gil: Arc<Gil>,
    ticket: Ticket,
}

thread_local! {
    /// The gils this thread holds.
    static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
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
/// wanted and the released are locked, lowest address first, and all of
/// them are recorded in `HELD`.
fn lock_ordered(wanted: &[Arc<Gil>]) {
    let Some(lowest) = wanted.iter().map(addr).min() else {
        return;
    };
    let above: Vec<Held> = HELD.with(|h| {
        let mut held = h.borrow_mut();
        let mut above = Vec::new();
        let mut i = 0;
        while i < held.len() {
            if addr(&held[i].gil) < lowest {
                i += 1;
            } else {
                above.push(held.remove(i));
            }
        }
        above
    });
    for held in above.iter().rev() {
        held.gil.unlock(held.ticket);
    }
    let mut all: Vec<Arc<Gil>> = wanted
        .iter()
        .cloned()
        .chain(above.into_iter().map(|h| h.gil))
        .collect();
    all.sort_by_key(addr);
    for gil in all {
        let ticket = gil.lock();
        HELD.with(|h| h.borrow_mut().push(Held { gil, ticket }));
    }
}

/// Takes `gil` for the current thread; reentrant per thread. A thread that
/// already holds other gils may release and retake some of them (see
/// [`lock_ordered`]): other tasks of those scopes can run meanwhile, as
/// they can during any wait.
pub(crate) fn hold(gil: &Arc<Gil>) -> Hold {
    let held = HELD.with(|h| h.borrow().iter().any(|h| Arc::ptr_eq(&h.gil, gil)));
    if held {
        return Hold {
            gil: None,
            _not_send: PhantomData,
        };
    }
    lock_ordered(std::slice::from_ref(gil));
    Hold {
        gil: Some(gil.clone()),
        _not_send: PhantomData,
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(gil) = self.gil.take() {
            let held = HELD.with(|h| {
                let mut held = h.borrow_mut();
                let i = held.iter().rposition(|h| Arc::ptr_eq(&h.gil, &gil))?;
                Some(held.remove(i))
            });
            if let Some(held) = held {
                held.gil.unlock(held.ticket);
            }
        }
    }
}

/// Run in a forked child, on its only thread (the one that called `fork`),
/// right after the fork (through [`crate::global`]'s hook for
/// `unirun_core::mark_forked_child`): the holds this thread took before the
/// fork are on the parent's locks, which the child's threads do not use
/// (each fork generation has a lock of its own). Each is taken again on the
/// child's fresh lock, and its record now names that ticket, so the
/// thread's code that held the gil before the fork holds it in the child
/// too, and its `Hold`'s drop lets go of the child's lock.
///
/// Never waits: no other thread exists yet to hold the fresh locks. A
/// unirun fork marks the child twice: the second call takes the locks of
/// the newer generation the same way (the first ones are never used again).
/// It allocates (the fresh lock), as every closure a forked child runs does.
pub(crate) fn retake_after_fork() {
    let _ = HELD.try_with(|held| {
        // Borrowed only inside this module's own calls, never across a fork.
        let Ok(mut held) = held.try_borrow_mut() else {
            return;
        };
        for record in held.iter_mut() {
            record.ticket = record.gil.lock();
        }
    });
}

/// Whether this thread holds a gil: it runs a poll or closure of a
/// serialized scope, whose fork-join must not fork.
pub(crate) fn holds_any() -> bool {
    HELD.with(|h| !h.borrow().is_empty())
}

/// Releases every gil this thread holds; returns 1 if there were any (a
/// frame was pushed for [`reacquire`]), 0 if not.
fn release() -> usize {
    let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
    if held.is_empty() {
        return 0;
    }
    for h in held.iter().rev() {
        h.gil.unlock(h.ticket);
    }
    RELEASED.with(|r| {
        r.borrow_mut()
            .push(held.into_iter().map(|h| h.gil).collect())
    });
    1
}

/// Takes back what the matching [`release`] gave up.
fn reacquire(token: usize) {
    if token == 0 {
        return;
    }
    let Some(frame) = RELEASED.with(|r| r.borrow_mut().pop()) else {
        return;
    };
    // Anything held now was taken inside the wait and is released by its
    // own `Hold`; the order of `HELD` does not matter (locks are always
    // taken by address).
    lock_ordered(&frame);
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
/// waits release it while they park, and a holder asleep in any other
/// wait lends it to the next waiter after two looks a millisecond apart
/// (see the module docs); this function releases it at once, and
/// everywhere (off Linux the loan is only a 5 ms switch interval).
///
/// The counterpart of releasing the GIL around blocking I/O in CPython.
/// unirun's own blocking waits (`block_on`, `JoinHandle::join`, scope
/// shutdown) do this by themselves; wrap other blocking calls (a socket
/// read, `std::sync::mpsc::Receiver::recv`, a sleep) that wait for a
/// sibling task, or a stretch of work that needs no serializing.
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
/// // The receiver lets go of the scope's lock while it waits, so the
/// // sender runs at once (without allow_threads, only once the receiver
/// // was seen asleep).
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

    /// A holder whose thread id could not be read counts as asleep at every
    /// look; the waiter then uses the switch interval, not the 1 ms look.
    #[test]
    fn a_holder_with_no_known_thread_id_gets_the_switch_interval() {
        let unknown = Holder { ticket: 0, tid: 0 };
        assert_eq!(look_interval(&[unknown]), SWITCH_INTERVAL);
        let known = Holder {
            ticket: 1,
            tid: thread_id(),
        };
        let expected = if proc_shows_threads() && known.tid != 0 {
            LOOK_EVERY
        } else {
            SWITCH_INTERVAL
        };
        assert_eq!(look_interval(&[known]), expected);
        assert_eq!(look_interval(&[known, unknown]), SWITCH_INTERVAL);
    }

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

    /// The holder blocks in `recv` until the main thread has entered, so
    /// the main thread's `hold` returns while the holder still holds: it
    /// was lent the lock.
    #[test]
    fn a_holder_asleep_in_the_kernel_lends_the_lock() {
        // The operator switch's gil (polls only): the one that lends.
        let gil = Gil::new(false);
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (holding_tx, holding) = std::sync::mpsc::channel::<()>();
        let holder = {
            let gil = gil.clone();
            std::thread::spawn(move || {
                let _h = hold(&gil);
                holding_tx.send(()).unwrap();
                entered.recv().unwrap();
            })
        };
        holding.recv().unwrap();
        let lent = hold(&gil);
        assert_eq!(gil.lock_here().state().holders.len(), 2);
        entered_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(gil.lock_here().state().holders.len(), 1);
        drop(lent);
        assert!(gil.lock_here().state().holders.is_empty());
    }

    #[test]
    fn a_running_thread_is_not_seen_asleep() {
        if !proc_shows_threads() {
            eprintln!("skipped: /proc does not show this process's threads here");
            return;
        }
        let tid = thread_id();
        assert_ne!(tid, 0);
        assert_eq!(asleep(tid), None);
    }

    #[test]
    fn release_with_nothing_held_is_a_no_op() {
        assert_eq!(release(), 0);
        reacquire(0);
        assert_eq!(allow_threads(|| 5), 5);
    }
}
