//! The fork server: a process forked by [`init`] while the parent is still
//! single-threaded, which forks pool workers on request.
//!
//! Workers forked by the server start from a snapshot taken before the
//! parent had other threads, so no lock can be stuck in them, and forking
//! them does not copy the parent's later (perhaps large) memory.
//!
//! Protocol over a socket pair, one request at a time:
//! - spawn: `b'S'` + memory limit (u64, `u64::MAX` for none) + CPU seconds
//!   (u64, 0 for none) + nice (i64, `i64::MIN` for none); the server forks
//!   a worker and answers with its pid (i32) and the parent's ends of the
//!   worker's two pipes plus a copy of the request pipe's read end
//!   (`SCM_RIGHTS`), then closes its own copies;
//! - reap: `b'R'` + pid (i32); the server waits for that worker and answers
//!   how it ended: kind (u32: 0 exited, 1 signaled, 2 unknown) + value (i32).
//!
//! Both sides write to the socket with `send_all`/`send_fds`, which never
//! raise `SIGPIPE`: a host that keeps `SIGPIPE` at its default does not die
//! when the server is gone, it gets an error.
//!
//! The server's workers are its children, so the parent kills them directly
//! but asks the server to reap them; a killed worker stays a zombie until
//! then, so its pid is never reused under the parent's feet. The server
//! dies with the parent (`PR_SET_PDEATHSIG`), and its workers with it.
//!
//! Every child unirun forks (a [`fork_call`](crate::fork_call) child, a
//! pool worker) closes its inherited copy of the parent's socket end right
//! after the fork, so stopping the server ([`shutdown`], unirun's `reset`)
//! never waits for such a child to end; a copy held by a fork made by
//! other code is covered by killing the server once its socket is closed
//! (through its pidfd, so even a host that ignores `SIGCHLD` is covered).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, PoisonError};

use unirun_core::JoinError;
use unirun_platform::fork_guard::ForkMutex;
use unirun_platform::process::{self as sys, ExitStatus, Forked, Pid};

use crate::fork::{fork_quiesced, lock_stdio, FORK_LOCK};
use crate::forker::{self, Lease};
use crate::options::ProcessOptions;

/// A running fork server, as the parent holds it. Pools that have workers
/// from it hold it too, so it outlives [`shutdown`](crate::shutdown) until
/// their workers are gone; dropping the last holder closes the socket,
/// which ends the server, and reaps it.
pub(crate) struct Server {
    control: Mutex<Option<OwnedFd>>,
    /// `control`'s descriptor number, for a forked child to close its copy
    /// without taking the mutex (another parent thread may have held it at
    /// the fork).
    control_fd: RawFd,
    pid: Pid,
    /// The server's pidfd, where there are pidfds: opened while the server
    /// could not have ended (it leaves its loop only when `control` closes),
    /// so a kill through it reaches the server and nothing else, whatever
    /// the host chose for `SIGCHLD`.
    handle: Option<sys::ProcessHandle>,
    /// Threads the parent had when the server was forked.
    parent_threads: usize,
    /// The server was forked from the forker thread; it must outlive it.
    _lease: Lease,
}

/// The server new pools use; guarded, since a forked child reads it.
static SERVER: ForkMutex<Option<Arc<Server>>> = ForkMutex::new(None);

/// Without [`init`], the server pools use while the host has its children
/// reaped by the kernel (`SIGCHLD` ignored or `SA_NOCLDWAIT`): started on
/// the first worker needed then, stopped by [`shutdown`]. See "Hosts that
/// ignore `SIGCHLD`" in the `fork` module docs.
static AUTOREAP_SERVER: ForkMutex<Option<Arc<Server>>> = ForkMutex::new(None);

fn current() -> Option<Arc<Server>> {
    SERVER.lock().clone()
}

/// Starts the fork server that [`ProcessPool`](crate::ProcessPool) workers
/// are forked from. Call it at the top of `main`, before anything starts
/// threads: the workers then start from a single-threaded snapshot, where
/// no lock can be held by a thread that does not exist.
///
/// Calling it again, or inside a forked child, does nothing. Without it
/// (or if the server cannot start), pools fork their workers directly from
/// a thread of the parent and still work; [`ProcessPool::origin`](crate::ProcessPool::origin)
/// says which happened. Returns whether a server is running.
/// [`shutdown`](crate::shutdown) stops it; `init` may then start another.
///
/// # Examples
///
/// ```
/// // At the top of `main`, while single-threaded:
/// unirun_process::init();
/// let pool = unirun_process::ProcessPool::new(2, Default::default());
/// assert_eq!(pool.call(|x: u32| x + 1, 1).unwrap(), 2);
/// assert!(pool.origin().starts_with("fork server"));
/// ```
pub fn init() -> bool {
    if unirun_core::in_forked_child() {
        return false;
    }
    if current().is_some() {
        return true;
    }
    // Counted before the forker thread exists: it is the caller's state that
    // matters for what the server inherits.
    let parent_threads = unirun_platform::thread_count().unwrap_or(1);
    // Forked from the forker thread rather than from `main`:
    // `PR_SET_PDEATHSIG` is tied to the forking thread, and on virtual
    // machines workers descended from the main thread were measured
    // answering pipe round trips up to 20x slower (pool_call 15-26x the
    // echo floor, against 1.3x). `main` waits for the job meanwhile and
    // holds no lock, so the fork still sees a quiescent process.
    let Some(server) = launch(parent_threads) else {
        return false;
    };
    let mut slot = SERVER.lock();
    if slot.is_none() {
        *slot = Some(server);
    }
    // Else a racing `init` won; dropping ours (after the lock) ends it.
    true
}

/// Forks a server from the forker thread.
fn launch(parent_threads: usize) -> Option<Arc<Server>> {
    // No forker thread (thread creation failed): no server, as for a
    // failed fork; callers fork workers their own way or report it.
    let lease = forker::lease().ok()?;
    let (control, pid) = lease.run(start).ok()?;
    Some(Arc::new(Server {
        control_fd: control.as_raw_fd(),
        control: Mutex::new(Some(control)),
        handle: sys::ProcessHandle::open(pid).ok(),
        pid,
        parent_threads,
        _lease: lease,
    }))
}

/// The server for pool workers while the host reaps children itself and
/// there is no [`init`] server; started now if needed.
fn autoreap_server() -> Option<Arc<Server>> {
    if let Some(server) = AUTOREAP_SERVER.lock().clone() {
        return Some(server);
    }
    // Launched without the slot's lock: it is fork-guarded, and the fork
    // waits until no guarded lock is held.
    let threads = unirun_platform::thread_count().unwrap_or(1);
    let server = launch(threads)?;
    let mut slot = AUTOREAP_SERVER.lock();
    match &*slot {
        // A racing launch won; ours ends when dropped (after the lock, as
        // in `init`).
        Some(winner) => {
            let winner = winner.clone();
            drop(slot);
            drop(server);
            Some(winner)
        }
        None => {
            *slot = Some(server.clone());
            Some(server)
        }
    }
}

/// Stops what this crate keeps running in the background: the fork server
/// started by [`init`], or the one started for pools while this process
/// ignores `SIGCHLD` (pools that still have workers from one keep it until
/// those workers are gone) and, once no pool needs it, the `unirun-forker`
/// thread that pool workers are forked from. Pools shut down with
/// [`ProcessPool::shutdown_now`](crate::ProcessPool::shutdown_now) or
/// dropped release that thread; when the last one does, it is joined.
///
/// Returns whether the forker thread is gone now (false while some pool
/// still holds it). Later pools and [`init`] start what they need again.
/// In a forked child it does nothing and returns true (nothing there is
/// this process's to stop). unirun's `reset` calls it. It never waits for
/// a forked child: children close their copy of the server's socket, and
/// the server is killed once its socket is closed.
///
/// # Examples
///
/// ```
/// let pool = unirun_process::ProcessPool::new(1, Default::default());
/// assert_eq!(pool.call(|x: u8| x, 1).unwrap(), 1);
/// pool.shutdown_now(); // the pool lets go of the forker thread
/// assert!(unirun_process::shutdown());
/// ```
pub fn shutdown() -> bool {
    if unirun_core::in_forked_child() {
        return true;
    }
    let server = SERVER.lock().take();
    drop(server);
    let server = AUTOREAP_SERVER.lock().take();
    drop(server);
    !forker::running()
}

/// Forks the server (on the forker thread); the parent's socket end and
/// the server's pid.
fn start() -> std::io::Result<(OwnedFd, Pid)> {
    unirun_core::install_panic_hook();
    let parent = sys::getpid();
    let stdio = lock_stdio();
    let guard = FORK_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let (ours, theirs) = sys::socket_pair()?;
    // SAFETY: the server runs its own loop over its socket and leaves with
    // `_exit`; see the module docs and the crate docs on forking. We hold
    // `stdio` and `FORK_LOCK`.
    match unsafe { fork_quiesced() }? {
        Forked::Child => {
            drop(guard);
            drop(stdio);
            drop(ours);
            serve(parent, theirs)
        }
        Forked::Parent(pid) => Ok((ours, pid)),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let control = self
            .control
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if unirun_core::in_forked_child() {
            // Not our child: the server was inherited through a fork.
            drop(control);
            return;
        }
        // End of file on its socket: the server leaves its loop at once
        // (no request is in flight: requests hold the server). unirun's
        // forked children close their copy of this end (see
        // `close_in_child`), but a fork made by other code may still hold
        // one: the kill makes the wait below end whoever holds it (the
        // server keeps no state to lose). It goes through the pidfd, or by
        // pid only while the pid is provably the server's (a child that
        // ends stays a zombie until reaped, unless the host has children
        // reaped by the kernel).
        drop(control);
        match &self.handle {
            Some(handle) => {
                let _ = handle.signal(libc::SIGKILL);
                // Ends: the server was killed. Then reap it, unless the
                // kernel did (`ECHILD`, ignored).
                // Through the pidfd, never by pid: with children reaped
                // by the kernel the pid may name another child by now.
                let _ = handle.wait_ended();
                let _ = handle.reap();
            }
            None => {
                if !sys::children_autoreaped() {
                    let _ = sys::kill(self.pid, libc::SIGKILL);
                }
                let _ = sys::wait_pid(self.pid, true);
            }
        }
    }
}

/// In a forked child, right after the fork: closes the child's copy of the
/// parent's end of the fork server's socket and its copy of the server's
/// pidfd, and forgets the server, so the server sees end of file as soon
/// as the parent lets go of it, however long this child runs, and the
/// child holds no descriptor of it (the child never talks to it: [`spawn`]
/// and [`reap`] refuse in a forked child). Touches only the fork-guarded
/// slot and `close`.
pub(crate) fn close_in_child() {
    for slot in [&SERVER, &AUTOREAP_SERVER] {
        let Some(server) = slot.lock().take() else {
            continue;
        };
        // `control_fd` is the child's inherited copy of the server's socket,
        // owned by the `OwnedFd` inside `server`; that `OwnedFd` is never
        // dropped in this process (the `Arc` is forgotten below, so its count
        // never reaches zero and `Server::drop` never runs here).
        // SAFETY: so the number is closed exactly once, here.
        unsafe { libc::close(server.control_fd) };
        // The server's pidfd too: a child never signals or reaps the
        // server, and every fork_call child and pool worker would keep one
        // more descriptor open for its whole run.
        if let Some(handle) = &server.handle {
            // SAFETY: the child's inherited copy of the pidfd, owned by the
            // `ProcessHandle` inside `server`, which is forgotten below with
            // the rest: closed exactly once, never used after.
            unsafe { libc::close(handle.as_fd().as_raw_fd()) };
        }
        std::mem::forget(server);
    }
}

/// How the workers of a new pool are forked, as [`ProcessPool::origin`](crate::ProcessPool::origin) says.
pub(crate) fn origin() -> String {
    match current() {
        Some(server) if server.parent_threads <= 1 => {
            "fork server (unirun::process::init, while the parent was single-threaded)".to_string()
        }
        Some(server) => format!(
            "fork server (unirun::process::init, when the parent had {} threads)",
            server.parent_threads
        ),
        None if sys::children_autoreaped() => {
            "fork server (started because this process ignores SIGCHLD; no unirun::process::init)"
                .to_string()
        }
        None => match unirun_platform::thread_count() {
            Some(threads) => format!(
                "forked directly (no unirun::process::init; the parent had {threads} threads)"
            ),
            None => "forked directly (no unirun::process::init)".to_string(),
        },
    }
}

/// The server's worker, as the parent holds it.
pub(crate) struct Spawned {
    pub(crate) pid: Pid,
    pub(crate) requests: OwnedFd,
    pub(crate) replies: OwnedFd,
    /// The parent's copy of the request pipe's read end (see the pool's
    /// `Worker::request_reader`).
    pub(crate) request_reader: OwnedFd,
    /// The server it belongs to (which reaps it), kept alive by the worker.
    pub(crate) server: Arc<Server>,
}

/// Asks the server for a worker; `None` when there is no server (and the
/// host keeps its children's exit status: then the pool forks directly).
/// One `sigaction` query per worker started without [`init`].
pub(crate) fn spawn(options: &ProcessOptions) -> Option<Result<Spawned, JoinError>> {
    if unirun_core::in_forked_child() {
        return None;
    }
    let server = match current() {
        Some(server) => server,
        None if sys::children_autoreaped() => autoreap_server()?,
        None => return None,
    };
    let mut request = vec![b'S'];
    request.extend_from_slice(&options.get_memory_limit().unwrap_or(u64::MAX).to_le_bytes());
    request.extend_from_slice(&options.cpu_seconds().unwrap_or(0).to_le_bytes());
    let nice = options.get_nice().map_or(i64::MIN, i64::from);
    request.extend_from_slice(&nice.to_le_bytes());
    let control = server
        .control
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let control = control.as_ref()?;
    let fail = |err: std::io::Error| JoinError::transport("fork server", err.to_string());
    let reply = sys::send_all(control.as_fd(), &request).and_then(|()| {
        let mut buf = [0u8; 4];
        let (n, fds) = sys::recv_fds(control.as_fd(), &mut buf)?;
        let rest = read_exact(control.as_fd(), &mut buf[n..]);
        rest.map(|()| (i32::from_le_bytes(buf), fds))
    });
    Some(match reply {
        Ok((pid, fds)) if pid > 0 && fds.len() == 3 => {
            let mut fds = fds.into_iter();
            let mut next = || fds.next().expect("three descriptors, checked above");
            let (requests, replies, request_reader) = (next(), next(), next());
            Ok(Spawned {
                pid,
                requests,
                replies,
                request_reader,
                server: server.clone(),
            })
        }
        Ok((errno, _)) => Err(fail(std::io::Error::from_raw_os_error(-errno))),
        Err(err) => Err(fail(err)),
    })
}

/// Asks `server` to reap its worker `pid` (already killed or exiting).
pub(crate) fn reap(server: &Server, pid: Pid) -> Option<ExitStatus> {
    if unirun_core::in_forked_child() {
        return None;
    }
    let mut request = vec![b'R'];
    request.extend_from_slice(&pid.to_le_bytes());
    let control = server
        .control
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let control = control.as_ref()?;
    sys::send_all(control.as_fd(), &request).ok()?;
    let mut buf = [0u8; 8];
    read_exact(control.as_fd(), &mut buf).ok()?;
    let value = i32::from_le_bytes(buf[4..].try_into().unwrap());
    match u32::from_le_bytes(buf[..4].try_into().unwrap()) {
        0 => Some(ExitStatus::Exited(value)),
        1 => Some(ExitStatus::Signaled(value)),
        _ => None,
    }
}

fn read_exact(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match sys::read_until(fd, &mut buf[got..], None)? {
            Some(0) | None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Some(n) => got += n,
        }
    }
    Ok(())
}

/// The server's loop; leaves when the parent's end closes.
fn serve(parent: Pid, control: OwnedFd) -> ! {
    unirun_core::mark_forked_child();
    // Another server's socket, inherited if one was running: not ours to
    // hold open.
    close_in_child();
    // Whatever the host chose for `SIGCHLD`, our workers stay zombies until
    // we reap them, with their full status: a worker's pid stays its own
    // until the parent asks for the reap, and a crash names its signal.
    if !sys::die_with_parent(parent) || sys::keep_children_status().is_err() {
        sys::exit_now(111);
    }
    let me = sys::getpid();
    loop {
        let mut kind = [0u8; 1];
        if read_exact(control.as_fd(), &mut kind).is_err() {
            sys::exit_now(0);
        }
        match kind[0] {
            b'S' => {
                let mut buf = [0u8; 24];
                if read_exact(control.as_fd(), &mut buf).is_err() {
                    sys::exit_now(0);
                }
                let word = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
                let mut options = ProcessOptions::default();
                if word(0) != u64::MAX {
                    options = options.memory_limit(word(0));
                }
                if word(8) != 0 {
                    options = options.cpu_time_limit(std::time::Duration::from_secs(word(8)));
                }
                let nice = word(16) as i64;
                if nice != i64::MIN {
                    options = options.nice(nice as i32);
                }
                if spawn_worker(me, &control, &options).is_err() {
                    sys::exit_now(1);
                }
            }
            b'R' => {
                let mut buf = [0u8; 4];
                if read_exact(control.as_fd(), &mut buf).is_err() {
                    sys::exit_now(0);
                }
                let (kind, value) = match sys::wait_pid(i32::from_le_bytes(buf), true) {
                    Ok(Some(ExitStatus::Exited(code))) => (0u32, code),
                    Ok(Some(ExitStatus::Signaled(signal))) => (1, signal),
                    _ => (2, 0),
                };
                let mut reply = kind.to_le_bytes().to_vec();
                reply.extend_from_slice(&value.to_le_bytes());
                if sys::send_all(control.as_fd(), &reply).is_err() {
                    sys::exit_now(1);
                }
            }
            _ => sys::exit_now(2),
        }
    }
}

/// Forks one worker and sends the parent its pid and pipe ends.
fn spawn_worker(me: Pid, control: &OwnedFd, options: &ProcessOptions) -> std::io::Result<()> {
    let pipes = sys::pipe().and_then(|a| sys::pipe().map(|b| (a, b)));
    let ((req_read, req_write), (rep_read, rep_write)) = match pipes {
        Ok(pipes) => pipes,
        Err(err) => return send_error(control, &err),
    };
    // SAFETY: the server is single-threaded; the worker runs its loop.
    match unsafe { sys::fork() } {
        Ok(Forked::Child) => {
            drop(req_write);
            drop(rep_read);
            crate::pool::worker_main(me, options, req_read, rep_write)
        }
        Ok(Forked::Parent(pid)) => {
            drop(rep_write);
            sys::send_fds(
                control.as_fd(),
                &pid.to_le_bytes(),
                &[req_write.as_fd(), rep_read.as_fd(), req_read.as_fd()],
            )
        }
        Err(err) => send_error(control, &err),
    }
}

fn send_error(control: &OwnedFd, err: &std::io::Error) -> std::io::Result<()> {
    let code = -err.raw_os_error().unwrap_or(libc::EIO);
    sys::send_all(control.as_fd(), &code.to_le_bytes())
}
