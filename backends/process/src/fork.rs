//! Fork per call: [`fork_call`] runs a closure in a child and waits for its
//! reply; [`spawn`] and [`spawn_on`] do the waiting on a blocking lane.
//!
//! # Hosts that ignore `SIGCHLD`
//!
//! A daemon or supervisor may ignore `SIGCHLD` (`SIG_IGN`) or set
//! `SA_NOCLDWAIT`. The kernel then reaps every child as it ends and
//! discards its status: `waitpid` only fails with `ECHILD`, and the pid is
//! free for reuse at once, so a kill by pid may reach a stranger. What we
//! do about it, per kind of child:
//!
//! - **Pool workers** are made immune: they are forked by a fork server
//!   (the one [`init`](crate::init) starts, or, without `init`, one started
//!   for them as soon as a worker is needed while the host reaps children
//!   itself). The server is our own process and restores `SIGCHLD`'s
//!   default for itself, so its workers stay zombies until the parent asks
//!   it to reap them, with their full status: a crash names its signal, and
//!   a pid the parent kills (deadline, shutdown) is still that worker's.
//!   This costs one `sigaction` query per worker started without `init`,
//!   nothing per call.
//! - **[`fork_call`] children** must be forked from the caller (they run the
//!   caller's closure on its memory), so they cannot be made immune. Each
//!   call asks `sigaction` once (the whole cost on a host with the
//!   default). When children are reaped by the kernel, the child first
//!   waits for a go byte on a pipe of its own, the parent opens its pidfd
//!   (it cannot have ended yet, so the pid is still its own) and sends the
//!   byte: every signal to it (deadline, scope shutdown) goes through the
//!   pidfd and cannot reach another process, and its end is awaited on
//!   the pidfd instead of `waitpid`. A result received whole is returned
//!   whatever the status; a child that ended without one gets a transport
//!   error that says its status was made unknowable by `SIGCHLD` being
//!   ignored (a crash cannot be told from an exit), never a misleading
//!   one. Without pidfds (Linux before 5.3, other unixes) signals go by
//!   pid, as before.
//!
//! # `SIGPIPE`
//!
//! A host may keep `SIGPIPE` at its default, which kills on a write to a
//! pipe or socket whose reader is gone. The parent's writes to its
//! children never raise it: the parent keeps its own copy of each pool
//! worker's request-pipe read end, so a request pipe always has a reader
//! (a dead worker shows as end of file on its reply pipe, and the request
//! left unread says it never ran), the fork server's socket is written
//! with `MSG_NOSIGNAL` on both sides, and the go byte above through
//! `write_all_no_sigpipe` (a signal mask around the write: one per call
//! of a host that ignores `SIGCHLD`). A child's writes to the parent (its
//! result) need no care: the parent closes its end only once it stopped
//! waiting for the result (the child is killed, or the outcome is decided
//! already).

use std::io::{StderrLock, StdoutLock, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use unirun_core::{Executor, JoinError, JoinHandle, RunQueue, TaskSet};
use unirun_platform::fork_guard;
use unirun_platform::process::{self as sys, ExitStatus, Forked, Limit};

use crate::children::{self, Registered};
use crate::options::ProcessOptions;
use crate::wire::{self, Read, Reply};

/// Held from creating a call's pipe until the parent closed its write end,
/// so no other call's child inherits that write end (it would hold the pipe
/// open and hide a crash behind a missing end of file).
///
/// Lock order on every fork path: [`lock_stdio`], then this, then the fork
/// guard's exclusive hold (inside [`fork_quiesced`]).
pub(crate) static FORK_LOCK: Mutex<()> = Mutex::new(());

/// The standard streams, locked by a fork path so that no other thread is
/// half-way through a write (and holding their locks) at the fork. Dropped
/// right after the fork on both sides.
pub(crate) struct Stdio {
    _out: StdoutLock<'static>,
    _err: StderrLock<'static>,
}

/// Locks stdout (flushing what it buffered, so a child that prints does
/// not print the parent's pending partial line again) and stderr. Taken
/// before [`FORK_LOCK`]: a thread that holds a stream's lock while it calls
/// a fork path re-enters it (the locks are re-entrant) instead of
/// deadlocking.
pub(crate) fn lock_stdio() -> Stdio {
    let mut out = std::io::stdout().lock();
    let _ = out.flush();
    let err = std::io::stderr().lock();
    Stdio {
        _out: out,
        _err: err,
    }
}

/// Forks inside the exclusive hold of unirun's fork guard, so no unirun
/// lock guarded by it is held by another thread at the fork, and releases
/// the hold on both sides (the hold is one atomic word: releasing it in the
/// child touches nothing another thread could have held).
///
/// # Safety
///
/// As [`sys::fork`]. The caller holds [`Stdio`] and [`FORK_LOCK`] and no
/// guarded lock.
pub(crate) unsafe fn fork_quiesced() -> std::io::Result<Forked> {
    let hold = fork_guard::exclusive();
    // SAFETY: forwarded to the caller.
    let forked = unsafe { sys::fork() };
    drop(hold);
    forked
}

/// Runs `f` in a forked child and blocks the calling thread until its
/// result is back (see the crate docs for what `f` may do).
///
/// Prefer [`spawn`], which waits on a blocking lane and returns a
/// [`JoinHandle`]; this is the building block.
///
/// # Errors
///
/// A [`JoinError`] that is: panicked (message and location from the child),
/// timed out (the child was killed and reaped), crashed (signal number and
/// name), cancelled (a scope shutdown killed it), or a transport failure
/// (`fork`/`pipe` failed, or the reply was truncated or of another type).
///
/// When this process ignores `SIGCHLD` (or sets `SA_NOCLDWAIT`), a result
/// received whole is still returned, signals reach only the child (through
/// its pidfd), and a child that ended without a result is a transport error
/// saying its exit status was discarded because `SIGCHLD` is ignored (a
/// crash cannot be told from an exit then).
///
/// # Examples
///
/// ```
/// use unirun_process::{fork_call, ProcessOptions};
///
/// let table = vec![1u64, 2, 3]; // captured: the child sees a copy-on-write snapshot
/// let sum = fork_call(&ProcessOptions::default(), move || table.iter().sum::<u64>());
/// assert_eq!(sum.unwrap(), 6);
///
/// let err = fork_call(&ProcessOptions::default(), || -> u8 { panic!("bad row") }).unwrap_err();
/// assert_eq!(err.panic_message(), Some("bad row"));
/// ```
pub fn fork_call<T, F>(options: &ProcessOptions, f: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T,
    T: Serialize + DeserializeOwned,
{
    fork_call_in(options, None, f)
}

pub(crate) fn fork_call_in<T, F>(
    options: &ProcessOptions,
    tasks: Option<&Arc<TaskSet>>,
    f: F,
) -> Result<T, JoinError>
where
    F: FnOnce() -> T,
    T: Serialize + DeserializeOwned,
{
    // Installed here, not in the child: installing takes the hook lock,
    // which another thread may hold at the fork.
    unirun_core::install_panic_hook();
    let parent = sys::getpid();
    let started = Instant::now();
    // See "Hosts that ignore SIGCHLD" in the module docs: one `sigaction`
    // query per call; the handshake below only when it says so.
    let autoreaped = sys::children_autoreaped();
    let stdio = lock_stdio();
    let guard = FORK_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let (read, write) = sys::pipe().map_err(|err| JoinError::transport("pipe", err.to_string()))?;
    let go = match autoreaped.then(sys::pipe).transpose() {
        Ok(go) => go,
        Err(err) => return Err(JoinError::transport("pipe", err.to_string())),
    };
    // The child runs only the forking thread's own state: `f` (the caller's
    // closure, whose contract the crate docs state), the pipe, unirun's
    // fork-guarded state, and async-signal-safe calls until `f` runs.
    // SAFETY: as above; the child leaves with `_exit`; we hold `stdio` and `FORK_LOCK`.
    let forked = unsafe { fork_quiesced() };
    match forked {
        Ok(Forked::Child) => {
            // This thread owns the locks in the child too.
            drop(guard);
            drop(stdio);
            drop(read);
            let go = go.map(|(go_read, go_write)| {
                drop(go_write);
                go_read
            });
            child(parent, options, write, go, f)
        }
        Ok(Forked::Parent(pid)) => {
            drop(write);
            // The child waits for the go byte, so it cannot have ended (nor
            // its pid be free) while we open its pidfd. Under `FORK_LOCK`,
            // so no other call's child inherits the go pipe's write end.
            let handle = go.and_then(|(go_read, go_write)| {
                drop(go_read);
                let handle = sys::ProcessHandle::open(pid).ok();
                let _ = sys::write_all_no_sigpipe(go_write.as_fd(), b"g");
                handle
            });
            drop(guard);
            drop(stdio);
            drop(f);
            let child = children::register(pid, handle, tasks);
            let deadline = options.get_timeout().map(|t| started + t);
            wait(pid, &child, read, deadline)
        }
        Err(err) => {
            drop(guard);
            drop(stdio);
            Err(JoinError::transport("fork", err.to_string()))
        }
    }
}

/// The child's side: set up, run, reply, `_exit`.
fn child<T, F>(
    parent: sys::Pid,
    options: &ProcessOptions,
    write: OwnedFd,
    go: Option<OwnedFd>,
    f: F,
) -> !
where
    F: FnOnce() -> T,
    T: Serialize,
{
    unirun_core::mark_forked_child();
    crate::server::close_in_child();
    if !sys::die_with_parent(parent) {
        sys::exit_now(111);
    }
    if let Some(go) = go {
        // Until the parent holds our pidfd (see `fork_call_in`). Ends: the
        // parent writes the byte, or closes its end (it died, or failed).
        let mut byte = [0u8; 1];
        if !matches!(sys::read_until(go.as_fd(), &mut byte, None), Ok(Some(1))) {
            sys::exit_now(111);
        }
    }
    let reply = match setup(options) {
        Err((what, err)) => Reply::Failed {
            what: what.to_string(),
            detail: err.to_string(),
        },
        Ok(()) => match unirun_core::catch_panic(f) {
            Ok(value) => Reply::Value(value),
            Err(err) => Reply::panic(&err),
        },
    };
    let frame = wire::encode(&reply).or_else(|err| {
        wire::encode(&Reply::<()>::Failed {
            what: "encoding the result".to_string(),
            detail: err.to_string(),
        })
    });
    let code = match frame {
        Ok(frame) => i32::from(sys::write_all(write.as_fd(), &frame).is_err()),
        Err(_) => 1,
    };
    sys::exit_now(code)
}

pub(crate) fn setup(options: &ProcessOptions) -> Result<(), (&'static str, std::io::Error)> {
    if let Some(bytes) = options.address_space_cap() {
        sys::set_limit(Limit::AddressSpace, bytes).map_err(|e| ("setting the memory limit", e))?;
    }
    if let Some(secs) = options.cpu_seconds() {
        // Soft below hard: the kernel sends `SIGXCPU` at the soft limit, as
        // documented, and `SIGKILL` only a second later if it is ignored.
        sys::set_limits(Limit::CpuSeconds, secs, secs.saturating_add(1))
            .map_err(|e| ("setting the CPU-time limit", e))?;
        // `SIGXCPU` dumps core by default: a limit hit is not a crash to keep.
        let _ = sys::set_limit(Limit::CoreFileBytes, 0);
    }
    if let Some(nice) = options.get_nice() {
        sys::set_nice(nice).map_err(|e| ("setting the nice value", e))?;
    }
    Ok(())
}

/// The parent's side: read the reply, reap the child, decide the outcome.
fn wait<T: DeserializeOwned>(
    pid: sys::Pid,
    child: &Registered,
    read: OwnedFd,
    deadline: Option<Instant>,
) -> Result<T, JoinError> {
    let outcome = wire::read_reply(read.as_fd(), deadline);
    drop(read);
    if matches!(outcome, Ok(Read::TimedOut)) {
        child.kill();
    }
    child.unregister();
    let status = reap(pid, child);
    if child.was_cancelled() {
        return Err(JoinError::cancelled());
    }
    let outcome = outcome.map_err(|err| JoinError::transport("read", err.to_string()))?;
    if matches!(outcome, Read::TimedOut) {
        return Err(JoinError::timed_out());
    }
    let code = match status {
        Ok(Some(ExitStatus::Signaled(signal))) => {
            return Err(JoinError::crashed(signal, sys::signal_name(signal)));
        }
        Ok(Some(ExitStatus::Exited(code))) => Some(code),
        // The kernel reaped the child for us: how it ended is lost.
        Ok(None) => None,
        Err(err) if err.raw_os_error() == Some(libc::ECHILD) => None,
        Err(err) => return Err(JoinError::transport("waitpid", err.to_string())),
    };
    match outcome {
        // The whole result arrived: it wins over a status the host's
        // `SIGCHLD` setting made unknowable.
        Read::Frame(body) => wire::decode::<T>(&body)?.into_result(),
        Read::Eof { got, expected } => {
            let Some(code) = code else {
                return Err(JoinError::transport(
                    "exit status",
                    lost_status(got, expected),
                ));
            };
            Err(JoinError::transport(
                "decode",
                match expected {
                    Some(len) => format!(
                        "truncated frame: the child exited (status {code}) after {} of {} bytes",
                        got - wire::HEADER,
                        len
                    ),
                    None => format!(
                        "the child exited (status {code}) without sending a result ({got} header bytes)"
                    ),
                },
            ))
        }
        Read::TimedOut => Err(JoinError::timed_out()),
    }
}

/// Reaps the child (its reply read, or it was killed): its status, or
/// `Ok(None)`/`ECHILD` when the host's `SIGCHLD` setting had the kernel
/// reap it and discard the status.
fn reap(pid: sys::Pid, child: &Registered) -> std::io::Result<Option<ExitStatus>> {
    match child.handle() {
        // The host reaps children itself: wait for the end through the
        // pidfd (it ends: the reply was read to its end or end of file, or
        // the child was killed), then collect a status only if the host
        // went back to the default meanwhile (the child is a zombie then;
        // otherwise this is `ECHILD`). Reaped through the pidfd, never by
        // pid: the pid may name another child of ours by now.
        Some(handle) => {
            let _ = handle.wait_ended();
            handle.reap()
        }
        None => sys::wait_pid(pid, true),
    }
}

/// Why a child without a result cannot say how it ended.
fn lost_status(got: usize, expected: Option<u64>) -> String {
    let sent = match expected {
        Some(len) => format!("{} of {len} result bytes", got.saturating_sub(wire::HEADER)),
        None => "no result".to_string(),
    };
    format!(
        "the child ended after sending {sent}, and how it ended is unknowable: this process \
         ignores SIGCHLD (SIG_IGN or SA_NOCLDWAIT), so the kernel reaped the child and discarded \
         its exit status (a crash cannot be told from an exit); restore SIGCHLD's default action \
         to have crashes reported with their signal"
    )
}

/// Runs `f` in a forked child; the wait happens on `executor`'s blocking
/// lane (never on an async worker). The call is one of the executor's
/// tasks: a shutdown that cancels them kills the child too (see
/// [`cancel_children`](crate::cancel_children)).
///
/// # Examples
///
/// ```
/// use unirun_process::ProcessOptions;
///
/// let pool = unirun_threads::ThreadPool::new().unwrap();
/// let factor = 6;
/// let handle = unirun_process::spawn(&pool.handle(), ProcessOptions::default(), move || factor * 7);
/// assert_eq!(handle.join().unwrap(), 42);
/// ```
pub fn spawn<T, F>(executor: &dyn Executor, options: ProcessOptions, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let schedule = executor.blocking_run_queue();
    let tasks = schedule.task_set().cloned();
    spawn_on(schedule, tasks, options, f)
}

/// Like [`spawn`], with the run queue of a blocking lane and the task
/// set the call joins given separately (a scope's set over a pool's lane).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{Executor, TaskSet};
/// use unirun_process::ProcessOptions;
///
/// let pool = unirun_threads::ThreadPool::new().unwrap();
/// let mine = Arc::new(TaskSet::new());
/// let lane = pool.handle().blocking_run_queue();
/// let handle = unirun_process::spawn_on(lane, Some(mine), ProcessOptions::default(), || "hi".to_string());
/// assert_eq!(handle.join().unwrap(), "hi");
/// ```
pub fn spawn_on<T, F>(
    schedule: Arc<dyn RunQueue>,
    tasks: Option<Arc<TaskSet>>,
    options: ProcessOptions,
    f: F,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    if unirun_core::in_forked_child() {
        // Already in a child: no lane threads here; fork from this thread.
        let result = fork_call(&options, f);
        let (runnable, handle) = unirun_core::spawn_blocking_fallible_with(
            move || result,
            None,
            |r, _| {
                r.run();
            },
        );
        runnable.schedule();
        return handle;
    }
    let call_tasks = tasks.clone();
    let (runnable, handle) = unirun_core::spawn_blocking_fallible_with(
        move || fork_call_in(&options, call_tasks.as_ref(), f),
        tasks.as_ref(),
        move |r, info| schedule.schedule(r, info),
    );
    runnable.schedule();
    handle
}

#[cfg(test)]
mod tests {
    use unirun_platform::process::{self as sys, ExitStatus, Forked, ProcessHandle};

    use super::reap;
    use crate::children;

    /// A child that exits with `code` at once (async-signal-safe only).
    fn exiting(code: i32) -> sys::Pid {
        // SAFETY: the child calls only `_exit`.
        match unsafe { sys::fork() }.unwrap() {
            Forked::Child => sys::exit_now(code),
            Forked::Parent(pid) => pid,
        }
    }

    /// Review fault: a child with a pidfd was reaped by pid after its
    /// pidfd said it ended; were that pid another (zombie) child of ours by
    /// now, its status was stolen. Here the pid passed names such a
    /// zombie: only the pidfd's own child is reaped.
    #[test]
    fn reaping_through_a_pidfd_never_reaps_another_child_by_pid() {
        let ours = exiting(3);
        let other = exiting(5);
        let handle = ProcessHandle::open(ours).unwrap();
        let registered = children::register(ours, Some(handle), None);
        registered.unregister();
        // Both are zombies once the other's end is seen through its pidfd.
        ProcessHandle::open(other).unwrap().wait_ended().unwrap();
        assert_eq!(
            reap(other, &registered).unwrap(),
            Some(ExitStatus::Exited(3))
        );
        assert_eq!(
            sys::wait_pid(other, true).unwrap(),
            Some(ExitStatus::Exited(5))
        );
    }
}
