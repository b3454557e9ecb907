//! The pool's reply watcher: one thread (`unirun-replies`) that waits for
//! the replies of calls whose handles are awaited (or detached, aborted,
//! polled with `is_finished`), so no blocking-lane thread is held per call.
//!
//! # Why
//!
//! A reader on the blocking lane would hold a lane thread blocked on the
//! worker's reply pipe: one lane wake-up per call, and with calls queued
//! behind busy workers one more for the next reader, on top of the
//! worker's round trip. Instead a single thread waits on the reply pipes
//! of every watched call at once (an `epoll` set, Linux; elsewhere such
//! readers go to the lane). When one is readable (the reply is there, or the
//! worker died and the pipe reached end of file), the thread runs that
//! call's reader task in place: the reader reads the reply, hands the
//! worker back (which sends the next queued request on it at once) and
//! completes the handle, which wakes the awaiting task: held while more
//! replies are there, so the tasks of a busy stretch wake together (see
//! `relay`). The critical path
//! per call is then the worker's round trip, as for a pipe echo.
//!
//! # Protocol and liveness
//!
//! [`Replies::watch`] hands over a reader whose request is written, with
//! the reply pipe it will read: under the watcher's mutex it lists the
//! reader under a fresh token and arms the pipe in the `epoll` set for one
//! event carrying that token (`EPOLLONESHOT`: modified if the pipe is in
//! the set from an earlier call, added otherwise). Arming does not wake
//! the thread; the pipe becoming readable does, and the thread then takes
//! the token's reader out of the list, under the same mutex, and runs it.
//! No lock-free handoff: the list is only touched under the mutex, and the
//! kernel checks the pipe when it is armed, so a reply that came before
//! (or while the thread was busy) is reported by the next wait.
//! An armed pipe fires once and is disarmed; a pipe stays in the set
//! (disarmed) until it is closed, so a later call on the same worker only
//! re-arms it. The set is keyed by descriptor and open file, so a new
//! worker's pipe that reuses a closed one's number is added afresh.
//!
//! A watched call ends: its worker replies, or dies (crash, a kill by the
//! deadline watcher, a shutdown), and either makes its pipe readable. Calls
//! whose reader keeps a deadline itself (the deadline watcher could not
//! start) or whose write failed are not watched: they go to the lane. The
//! thread starts with the first watched call; [`Replies::stop`]
//! (the pool's shutdown or drop) makes later calls go to the lane, wakes
//! the thread through a pipe of its own in the set, and joins it; the
//! thread ends once the readers it holds ran (a shutdown kills
//! their workers first, so they end at once). The pool cannot be dropped
//! while the thread holds a reader (each holds the pool). A reply larger
//! than a pipe holds keeps the thread until the worker wrote all of it;
//! other replies wait that long. In a forked child, an inherited pool's
//! readers go to the lane (the thread is not there).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use unirun_core::Runnable;
use unirun_platform::process as sys;

use super::helper::HelperThread;
use super::relay;

/// The token of the thread's own wake pipe; readers' tokens start at 1.
const WAKE: u64 = 0;

/// What the thread and the callers share, under one lock.
struct Watched {
    /// Readers handed over and not yet run, by token.
    readers: Vec<(u64, Runnable)>,
    /// The next reader's token.
    next: u64,
    /// The `epoll` set and the wake pipe, made with the thread.
    set: Option<Set>,
    started: bool,
    /// The thread (or its set) could not be made, or the set failed:
    /// readers go to the lane.
    failed: bool,
    stop: bool,
}

struct Shared {
    watched: Mutex<Watched>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Watched> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// See the module docs.
pub(super) struct Replies {
    shared: Arc<Shared>,
    thread: HelperThread,
    /// The process that made it: in a forked child the thread does not
    /// exist and its lock may be held, so readers go to the lane there.
    owner: sys::Pid,
}

impl Replies {
    pub(super) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                watched: Mutex::new(Watched {
                    readers: Vec::new(),
                    next: WAKE + 1,
                    set: None,
                    started: false,
                    failed: false,
                    stop: false,
                }),
            }),
            thread: HelperThread::new(),
            owner: sys::getpid(),
        }
    }

    /// Hands `reader`, whose reply comes on `fd`, to the watcher thread
    /// (started on first use); gives it back when the watcher is stopped
    /// or cannot run, for the caller to schedule on its lane.
    pub(super) fn watch(&self, fd: RawFd, reader: Runnable) -> Result<(), Runnable> {
        if unirun_core::in_forked_child() && sys::getpid() != self.owner {
            return Err(reader);
        }
        let mut watched = self.shared.lock();
        if watched.stop || watched.failed {
            return Err(reader);
        }
        if !watched.started && !self.start(&mut watched) {
            watched.failed = true;
            return Err(reader);
        }
        let token = watched.next;
        let Some(set) = &watched.set else {
            unreachable!("a started watcher has its set");
        };
        if set.arm_once(fd, token).is_err() {
            return Err(reader);
        }
        watched.next += 1;
        watched.readers.push((token, reader));
        Ok(())
    }

    /// Makes the set and its wake pipe and starts the thread; whether it
    /// runs.
    fn start(&self, watched: &mut Watched) -> bool {
        let Ok(set) = Set::new() else {
            return false;
        };
        let raw = set.raw();
        watched.set = Some(set);
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("unirun-replies".into())
            .spawn(move || watch_loop(&shared, raw));
        match spawned {
            Ok(thread) => {
                watched.started = true;
                self.thread.started(thread);
                true
            }
            Err(_) => {
                watched.set = None;
                false
            }
        }
    }

    /// Stops taking readers and joins the thread once it ran those it
    /// holds (unless called on the thread itself: it then ends on its own
    /// after this).
    pub(super) fn stop(&self) {
        {
            let mut watched = self.shared.lock();
            if !watched.stop {
                watched.stop = true;
                if let Some(set) = &watched.set {
                    set.wake();
                }
            }
        }
        self.thread.join();
    }

    /// Stops taking readers and gives back those held and not run yet, for
    /// the caller to drop (a retired pool let go of their calls); the
    /// thread then ends at once, or after the reader it runs now, and
    /// [`stop`](Self::stop) joins it.
    pub(super) fn release(&self) -> Vec<Runnable> {
        let mut watched = self.shared.lock();
        if !watched.stop {
            watched.stop = true;
            if let Some(set) = &watched.set {
                set.wake();
            }
        }
        // Their pipes stay armed with tokens nobody holds now: an event
        // for one is ignored.
        std::mem::take(&mut watched.readers)
            .into_iter()
            .map(|(_, reader)| reader)
            .collect()
    }

    /// Whether the watcher thread runs (for tests).
    #[cfg(test)]
    pub(super) fn running(&self) -> bool {
        self.thread.running()
    }
}

/// The thread: waits for armed pipes and runs their readers; ends when
/// stopped and holding none, closing the set. `set` is the `epoll`
/// descriptor, open until then (only this thread drops a started set).
///
/// The wakes of the tasks awaiting the calls it completes are held (see
/// `relay`) while more replies are there, and released before it waits
/// for more, once [`relay::MAX_HELD`] are held, and before it ends.
fn watch_loop(shared: &Shared, set: RawFd) {
    relay::hold();
    let mut tokens: Vec<u64> = Vec::new();
    let mut ready: Vec<Runnable> = Vec::new();
    loop {
        let idle = {
            let mut watched = shared.lock();
            if watched.readers.is_empty() && (watched.stop || watched.failed) {
                // Nothing uses the set after this (`watch` gives readers
                // back once stopped or failed): its descriptors close now,
                // before `stop` joins the thread, not with the pool.
                let set = watched.set.take();
                drop(watched);
                drop(set);
                relay::stop_holding();
                return;
            }
            watched.readers.is_empty()
        };
        if idle {
            // No reply to wait for: nothing to hold the wakes for.
            relay::release();
        }
        tokens.clear();
        // With wakes held, a look first: replies already there are read
        // before those tasks run; none there, the wakes go out and the
        // thread waits.
        let mut waited = Set::wait(set, &mut tokens, relay::held() == 0);
        if waited.is_ok() && tokens.is_empty() && relay::held() > 0 {
            relay::release();
            waited = Set::wait(set, &mut tokens, true);
        }
        if waited.is_err() {
            // The set failed: no more readers come here, and those held
            // read their replies in turn (each read ends as a watched
            // call does).
            let held = {
                let mut watched = shared.lock();
                watched.failed = true;
                std::mem::take(&mut watched.readers)
            };
            for (_, reader) in held {
                reader.run();
            }
            relay::release();
            continue;
        }
        {
            let mut watched = shared.lock();
            for &token in &tokens {
                if token == WAKE {
                    if let Some(set) = &watched.set {
                        set.drain_wake();
                    }
                    continue;
                }
                if let Some(at) = watched.readers.iter().position(|&(t, _)| t == token) {
                    ready.push(watched.readers.swap_remove(at).1);
                }
            }
        }
        for reader in ready.drain(..) {
            // The reply (or end of file) is there: the read waits at most
            // for the rest of a frame the worker is writing.
            reader.run();
        }
        if relay::held() >= relay::MAX_HELD {
            relay::release();
        }
    }
}

/// An `epoll` set with a wake pipe in it (token [`WAKE`]).
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
struct Set {
    epoll: OwnedFd,
    wake: (OwnedFd, OwnedFd),
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Set {
    fn new() -> std::io::Result<Self> {
        // SAFETY: `epoll_create1` takes no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned open by `epoll_create1` and is
        // owned by nothing else.
        let epoll = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let wake = sys::pipe()?;
        let set = Self { epoll, wake };
        set.control(
            libc::EPOLL_CTL_ADD,
            set.wake.0.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE,
        )?;
        Ok(set)
    }

    fn raw(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    fn control(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> std::io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a live `epoll_event` for the call; the set is
        // open (owned by `self`); a closed or wrong `fd` is an error, not
        // undefined behaviour.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Arms `fd` for one readable (or hang-up) event carrying `token`.
    fn arm_once(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        let events = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
        match self.control(libc::EPOLL_CTL_MOD, fd, events, token) {
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                self.control(libc::EPOLL_CTL_ADD, fd, events, token)
            }
            done => done,
        }
    }

    /// Waits for events on `set` (only looks, unless `block`); pushes
    /// their tokens.
    fn wait(set: RawFd, tokens: &mut Vec<u64>, block: bool) -> std::io::Result<()> {
        const MAX: usize = 16;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX];
        loop {
            // SAFETY: `events` is a live, writable array of `MAX` events;
            // `set` is open (see `watch_loop`).
            let n = unsafe {
                libc::epoll_wait(
                    set,
                    events.as_mut_ptr(),
                    MAX as libc::c_int,
                    if block { -1 } else { 0 },
                )
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            tokens.extend(events[..n as usize].iter().map(|event| event.u64));
            return Ok(());
        }
    }

    /// Makes the thread's wait return (once).
    fn wake(&self) {
        // One byte; written once per stop, so it never fills the pipe.
        let _ = sys::write_all(self.wake.1.as_fd(), &[1]);
    }

    /// Takes the wake byte back (level-triggered: it would fire again).
    fn drain_wake(&self) {
        let mut byte = [0u8; 1];
        let _ = sys::read_until(self.wake.0.as_fd(), &mut byte, None);
    }
}

/// Without `epoll` the set cannot be made: readers go to the lane.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Set {
    fn new() -> std::io::Result<Self> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    fn raw(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    fn arm_once(&self, _fd: RawFd, _token: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    fn wait(_set: RawFd, _tokens: &mut Vec<u64>, _block: bool) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    fn wake(&self) {}

    fn drain_wake(&self) {}
}
