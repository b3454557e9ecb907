//! Unix process primitives for the forked-process backend: `fork`, close-on-exec
//! pipes and socket pairs, descriptor passing, `waitpid`, `kill`, resource limits, niceness, parent-death signals
//! and signal names.
//!
//! Everything here is a thin, safe (where it can be) wrapper over `libc`;
//! the functions a forked child calls ([`set_limit`], [`set_nice`],
//! [`die_with_parent`], [`write_all`], [`exit_now`]) are async-signal-safe
//! system calls only: they neither allocate nor take locks.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A process id.
pub type Pid = libc::pid_t;

/// What [`fork`] returned on this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// This is the new child process.
    Child,
    /// This is the parent; the child has this pid.
    Parent(Pid),
}

/// Forks the calling process.
///
/// # Safety
///
/// In the child only the calling thread exists. If the parent had other
/// threads, anything they held (locks, allocator arenas without atfork
/// handlers, half-updated data) stays as it was at the fork, forever. Until
/// it execs or exits, the child must only use state the forking thread
/// controls, plus async-signal-safe functions; the caller decides what that
/// is for its closure. The child must leave with [`exit_now`] rather than
/// returning into code that would run the parent's destructors or atexit
/// handlers twice.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: `fork` takes no arguments; the caller upholds the duties on the
    // child side listed above.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// The calling process's id.
pub fn getpid() -> Pid {
    // SAFETY: `getpid` has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// The parent process's id (1 or a subreaper once the parent died).
pub fn getppid() -> Pid {
    // SAFETY: `getppid` has no preconditions and cannot fail.
    unsafe { libc::getppid() }
}

/// A pipe whose two ends are closed on `exec` (`O_CLOEXEC`): `(read, write)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    cfg_if::cfg_if! {
        if #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd",
                     target_os = "netbsd", target_os = "openbsd", target_os = "dragonfly"))] {
            // SAFETY: `fds` is a writable array of two descriptors, as `pipe2` expects.
            let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
            if rc == -1 {
                return Err(io::Error::last_os_error());
            }
        } else {
            // SAFETY: `fds` is a writable array of two descriptors, as `pipe` expects.
            let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
            if rc == -1 {
                return Err(io::Error::last_os_error());
            }
            for fd in fds {
                // SAFETY: `fd` was just returned by `pipe` and is open.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
    // SAFETY: both descriptors were just opened by `pipe2`/`pipe` and nothing
    // else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit`/`_exit` with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

/// Waits for child `pid` to end and reaps it; with `block = false` returns
/// `Ok(None)` when it is still running. Retries on `EINTR`.
pub fn wait_pid(pid: Pid, block: bool) -> io::Result<Option<ExitStatus>> {
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status = 0;
        // SAFETY: `status` is a writable `c_int`; `waitpid` only writes it.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if rc == 0 {
            return Ok(None);
        }
        if libc::WIFSIGNALED(status) {
            return Ok(Some(ExitStatus::Signaled(libc::WTERMSIG(status))));
        }
        if libc::WIFEXITED(status) {
            return Ok(Some(ExitStatus::Exited(libc::WEXITSTATUS(status))));
        }
        // Stopped or continued: not an end; keep waiting (or report running).
        if !block {
            return Ok(None);
        }
    }
}

/// Whether this process's children are reaped by the kernel as they end,
/// their exit status discarded: `SIGCHLD` is ignored (`SIG_IGN`) or its
/// action has `SA_NOCLDWAIT`. A daemon or supervisor may set either. Then
/// `waitpid` cannot tell how a child ended (it fails with `ECHILD` once the
/// child is gone), and a child's pid may be reused as soon as it ends, so
/// signalling it by pid is no longer safe. One `sigaction` query, no
/// change.
pub fn children_autoreaped() -> bool {
    // SAFETY: all-zero is a valid `sigaction` to receive into.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `current` is writable.
    if unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut current) } == -1 {
        return false;
    }
    current.sa_sigaction == libc::SIG_IGN || current.sa_flags & libc::SA_NOCLDWAIT != 0
}

/// Restores the default action of `SIGCHLD` for the calling process (no
/// `SA_NOCLDWAIT`), so its own children stay zombies until it reaps them,
/// with their full status: for a helper process of ours (the fork server)
/// that inherited a host's "ignore". Async-signal-safe.
pub fn keep_children_status() -> io::Result<()> {
    // SAFETY: all-zero is a valid `sigaction` (empty mask, no flags), and
    // `SIG_DFL` is a valid handler value.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = libc::SIG_DFL;
    // SAFETY: `action` is a valid, initialized `sigaction`; the old action
    // is not wanted (null).
    if unsafe { libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `signal` to process `pid`.
pub fn kill(pid: Pid, signal: i32) -> io::Result<()> {
    // SAFETY: `kill` takes plain integers; a bad pid or signal is an error.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A process we can signal without ever reaching another one: a pidfd
/// (Linux 5.3), which names the process itself, not its pid. Once the
/// process has ended, a signal through it fails with `ESRCH` even if the
/// pid was reused meanwhile.
#[derive(Debug)]
pub struct ProcessHandle {
    fd: OwnedFd,
    /// The pid it was opened for: for [`reap`](Self::reap)'s fallback on
    /// kernels that cannot wait on a pidfd.
    pid: Pid,
}

/// The pidfd itself (e.g. for a forked child to close its inherited copy).
impl std::os::fd::AsFd for ProcessHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl ProcessHandle {
    /// A handle to process `pid`. It names the right process only if `pid`
    /// cannot have ended and been reaped yet (a child that is still
    /// running, or a zombie nobody reaped): the caller's duty, or the pid
    /// might already name another process.
    ///
    /// # Errors
    ///
    /// `ESRCH` when there is no such process; `ENOSYS`/`Unsupported` where
    /// the kernel or platform has no pidfds.
    pub fn open(pid: Pid) -> io::Result<Self> {
        cfg_if::cfg_if! {
            if #[cfg(any(target_os = "linux", target_os = "android"))] {
                // SAFETY: pidfd_open takes a pid and flags (0); it returns a
                // new descriptor or -1.
                let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: the descriptor was just opened (close-on-exec, as
                // pidfds always are) and nothing else owns it.
                Ok(Self { fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) }, pid })
            } else {
                let _ = pid;
                Err(io::ErrorKind::Unsupported.into())
            }
        }
    }

    /// Sends `signal` to the process; `ESRCH` once it has ended (never to
    /// a process that reused its pid).
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        cfg_if::cfg_if! {
            if #[cfg(any(target_os = "linux", target_os = "android"))] {
                // SAFETY: pidfd_send_signal takes our open pidfd, a signal
                // number, a null info pointer (plain kill semantics) and 0.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        self.fd.as_raw_fd(),
                        signal,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            } else {
                let _ = signal;
                Err(io::ErrorKind::Unsupported.into())
            }
        }
    }

    /// Reaps the process if it is our child and has ended unreaped (a
    /// zombie): its status; `Ok(None)` while it still runs. `ECHILD` when
    /// it was reaped already (the host ignores `SIGCHLD`). Never touches
    /// another process, even one that reused the pid: it waits through the
    /// pidfd (`waitid(P_PIDFD)`, Linux 5.4), and where the kernel refuses
    /// that (`EINVAL`: Linux 5.3 has pidfds but cannot wait on them) by
    /// pid, only while the pidfd proves the pid is still the process's
    /// (see `reap_by_pid`). Retries on `EINTR`.
    pub fn reap(&self) -> io::Result<Option<ExitStatus>> {
        match self.reap_by_pidfd() {
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => self.reap_by_pid(),
            done => done,
        }
    }

    /// [`reap`](Self::reap) through `waitid(P_PIDFD)`; `EINVAL` where the
    /// kernel cannot wait on a pidfd.
    fn reap_by_pidfd(&self) -> io::Result<Option<ExitStatus>> {
        cfg_if::cfg_if! {
            if #[cfg(any(target_os = "linux", target_os = "android"))] {
                /// `idtype_t` for a pidfd (Linux 5.4).
                const P_PIDFD: libc::idtype_t = 3;
                loop {
                    // SAFETY: all-zero is a valid `siginfo_t` to receive into.
                    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                    // SAFETY: our open pidfd as the id, a writable `info`.
                    let rc = unsafe {
                        libc::waitid(
                            P_PIDFD,
                            self.fd.as_raw_fd() as libc::id_t,
                            &mut info,
                            libc::WEXITED | libc::WNOHANG,
                        )
                    };
                    if rc == -1 {
                        let err = io::Error::last_os_error();
                        if err.raw_os_error() == Some(libc::EINTR) {
                            continue;
                        }
                        return Err(err);
                    }
                    // SAFETY: `waitid` filled `info` (or left it zeroed,
                    // pid 0, when the process has not ended: WNOHANG).
                    if unsafe { info.si_pid() } == 0 {
                        return Ok(None);
                    }
                    // SAFETY: as above; a WEXITED record.
                    let status = unsafe { info.si_status() };
                    return Ok(Some(if info.si_code == libc::CLD_EXITED {
                        ExitStatus::Exited(status)
                    } else {
                        ExitStatus::Signaled(status)
                    }));
                }
            } else {
                // No pidfds here: `open` refused, so no handle exists.
                Ok(None)
            }
        }
    }

    /// [`reap`](Self::reap) by pid, for kernels that refuse `P_PIDFD`. A
    /// signal 0 through the pidfd succeeds while the process runs or is a
    /// zombie, and fails with `ESRCH` once it has been reaped (by the
    /// kernel, for a host that ignores `SIGCHLD`). Until it is reaped its
    /// pid cannot be reused, so after a successful check `waitpid(pid)`
    /// reaches this process and no other: only we reap it (unless the host
    /// itself waits for any child, which no pidfd-less wait can guard
    /// against). Once reaped, `ECHILD`, as `waitid` says then.
    fn reap_by_pid(&self) -> io::Result<Option<ExitStatus>> {
        match self.signal(0) {
            Ok(()) => wait_pid(self.pid, false),
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => {
                Err(io::Error::from_raw_os_error(libc::ECHILD))
            }
            Err(err) => Err(err),
        }
    }

    /// Waits until the process has ended (whether or not anyone reaps it;
    /// the status is not read). Retries on `EINTR`.
    pub fn wait_ended(&self) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: `pfd` is one valid `pollfd` and the count passed is 1;
            // -1 waits without limit (a pidfd is readable once the process
            // has ended).
            let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
            if rc >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// A resource [`set_limit`] can cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Address space, in bytes (`RLIMIT_AS`): allocations beyond it fail.
    AddressSpace,
    /// CPU time, in seconds (`RLIMIT_CPU`): at the soft limit the kernel
    /// sends `SIGXCPU` (which kills by default), at the hard limit `SIGKILL`.
    CpuSeconds,
    /// Size of a core dump, in bytes (`RLIMIT_CORE`); 0 means none.
    CoreFileBytes,
}

/// Caps `limit` for the calling process (soft and hard limit alike).
/// Async-signal-safe.
pub fn set_limit(limit: Limit, value: u64) -> io::Result<()> {
    set_limits(limit, value, value)
}

/// Sets the soft limit of `limit` to `soft` and its hard limit to `hard`.
/// A hard limit above the current one cannot be set without privileges,
/// so `hard` is lowered to the current hard limit, and `soft` to `hard`.
/// Async-signal-safe (`getrlimit` and `setrlimit` only).
///
/// # Examples
///
/// ```
/// use unirun_platform::process::{set_limits, Limit};
///
/// // In a throwaway child, as a forked call would: SIGXCPU at 1 s of CPU, SIGKILL at 2 s.
/// // SAFETY: the child only calls async-signal-safe functions and `_exit`.
/// match unsafe { unirun_platform::process::fork() }.unwrap() {
///     unirun_platform::process::Forked::Child => {
///         let ok = set_limits(Limit::CpuSeconds, 1, 2).is_ok();
///         unirun_platform::process::exit_now(if ok { 0 } else { 1 })
///     }
///     unirun_platform::process::Forked::Parent(pid) => {
///         let status = unirun_platform::process::wait_pid(pid, true).unwrap();
///         assert_eq!(status, Some(unirun_platform::process::ExitStatus::Exited(0)));
///     }
/// }
/// ```
pub fn set_limits(limit: Limit, soft: u64, hard: u64) -> io::Result<()> {
    let resource = match limit {
        Limit::AddressSpace => libc::RLIMIT_AS,
        Limit::CpuSeconds => libc::RLIMIT_CPU,
        Limit::CoreFileBytes => libc::RLIMIT_CORE,
    };
    let as_rlim = |v: u64| libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY);
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `current` is a valid, writable `rlimit`.
    if unsafe { libc::getrlimit(resource, &mut current) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let mut hard = as_rlim(hard);
    if current.rlim_max != libc::RLIM_INFINITY
        && (hard == libc::RLIM_INFINITY || hard > current.rlim_max)
    {
        hard = current.rlim_max;
    }
    let mut soft = as_rlim(soft);
    if hard != libc::RLIM_INFINITY && (soft == libc::RLIM_INFINITY || soft > hard) {
        soft = hard;
    }
    let rlim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `rlim` is a valid `rlimit` that outlives the call.
    if unsafe { libc::setrlimit(resource, &rlim) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Adds `increment` to the calling process's nice value (positive is
/// kinder). Async-signal-safe.
pub fn set_nice(increment: i32) -> io::Result<()> {
    // SAFETY: PRIO_PROCESS with who = 0 is the calling process; plain integers.
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let target = current.saturating_add(increment).clamp(-20, 19);
    // SAFETY: as above.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, target) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Arranges for the calling process to get `SIGKILL` when its parent dies
/// (Linux `PR_SET_PDEATHSIG`), then checks that the parent is still
/// `original_parent`: a parent that died before the call would never send
/// the signal. Returns `false` when the parent is already gone.
/// Async-signal-safe. Elsewhere only the check is made.
pub fn die_with_parent(original_parent: Pid) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: PR_SET_PDEATHSIG takes a signal number; the extra arguments
        // are ignored.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    getppid() == original_parent
}

/// Leaves the process at once with `code`: no destructors, no atexit
/// handlers, no stdio flush (`_exit`). Async-signal-safe.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Writes all of `bytes` to `fd`, retrying on `EINTR` and short writes.
/// Async-signal-safe (a loop over `write`).
pub fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live buffer of `bytes.len()` readable bytes and
        // `fd` is open for the duration of the borrow.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Like [`write_all`] into a pipe, but never raises `SIGPIPE` when the
/// reader is gone: that is an `EPIPE` error, whatever `SIGPIPE`'s
/// disposition is at the moment of the write (a host may switch it at any
/// time, e.g. a C library's init restoring the default).
///
/// `SIGPIPE` is blocked in the calling thread around every write (two
/// `pthread_sigmask` calls, well under a microsecond next to a pipe round
/// trip), and only when the write failed with `EPIPE` is the `SIGPIPE` it
/// raised taken back (`sigtimedwait` with a zero timeout) before the
/// thread's mask is restored; a thread that blocks `SIGPIPE` itself is
/// left as it is. The disposition is never read, so nothing is cached.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsFd;
/// use unirun_platform::process::{pipe, write_all_no_sigpipe};
///
/// let (read, write) = pipe().unwrap();
/// drop(read);
/// let err = write_all_no_sigpipe(write.as_fd(), b"hello").unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
/// ```
pub fn write_all_no_sigpipe(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: all-zero is a valid `sigset_t` to fill; the calls below only
    // read and write these local sets.
    let mut pipe_only: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pipe_only` is a valid set; SIGPIPE is a valid signal.
    unsafe {
        libc::sigemptyset(&mut pipe_only);
        libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
    }
    // SAFETY: valid sets; only the calling thread's mask changes.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, &mut before) } != 0 {
        return Err(io::Error::other("could not block SIGPIPE around a write"));
    }
    // SAFETY: `before` was filled by `pthread_sigmask`.
    let already_blocked = unsafe { libc::sigismember(&before, libc::SIGPIPE) } == 1;
    let written = write_all(fd, bytes);
    if !already_blocked {
        if written
            .as_ref()
            .is_err_and(|err| err.raw_os_error() == Some(libc::EPIPE))
        {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // The failed write raised SIGPIPE at this thread (unless it is
            // ignored right now, then nothing is pending), where it is
            // pending while blocked: take it back so unblocking does not
            // deliver it. A zero timeout never waits, so this returns at
            // once whether or not one is pending.
            // SAFETY: valid set and timespec; a null info pointer is allowed.
            unsafe { libc::sigtimedwait(&pipe_only, std::ptr::null_mut(), &zero) };
        }
        // SAFETY: restores the mask read above, for this thread only.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    }
    written
}

/// `send` flags that keep a write to a socket whose peer is gone from
/// raising `SIGPIPE` (the write fails with `EPIPE` instead). Where there
/// is no such flag, [`socket_pair`] sets `SO_NOSIGPIPE` on the socket.
#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos"
)))]
const NO_SIGPIPE: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos"
))]
const NO_SIGPIPE: libc::c_int = 0;

/// Writes all of `bytes` to the socket `socket`, retrying on `EINTR` and
/// short writes, and never raises `SIGPIPE`: a peer that is gone is an
/// `EPIPE` error, whatever the process's `SIGPIPE` disposition (a host may
/// keep the default, which kills). Costs what [`write_all`] costs: one
/// `send` per piece. Async-signal-safe.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsFd;
/// use unirun_platform::process::{send_all, socket_pair};
///
/// let (a, b) = socket_pair().unwrap();
/// drop(b);
/// // With `SIGPIPE` at its default this would kill the process with `write`.
/// let err = send_all(a.as_fd(), b"hello").unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
/// ```
pub fn send_all(socket: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live buffer of `bytes.len()` readable bytes and
        // `socket` is open for the duration of the borrow.
        let n = unsafe {
            libc::send(
                socket.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                NO_SIGPIPE,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Reads into `buf`, waiting at most until `deadline`: `Ok(Some(n))` after a
/// read (`0` is end of file), `Ok(None)` when the deadline passed first.
/// Retries on `EINTR`.
pub fn read_until(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<Option<usize>> {
    loop {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if !poll_readable(fd, left)? {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                continue;
            }
        }
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes and
        // `fd` is open for the duration of the borrow.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(Some(n as usize));
    }
}

/// Waits up to `timeout` for `fd` to become readable (or hung up).
fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Round up so a wait never ends just short of the deadline and spins.
    let ms = timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .min(libc::c_int::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid `pollfd` and the count passed is 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc == -1 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(rc > 0)
}

/// A connected pair of unix stream sockets, both close-on-exec (and, where
/// `send` has no `MSG_NOSIGNAL`, `SO_NOSIGPIPE`, so [`send_all`] never
/// raises `SIGPIPE`).
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let kind = libc::SOCK_STREAM;
    // SAFETY: `fds` is a writable array of two descriptors, as `socketpair` expects.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "tvos",
        target_os = "watchos"
    ))]
    for fd in fds {
        let on: libc::c_int = 1;
        // SAFETY: `fd` was just opened; `on` is a live `c_int` of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    // SAFETY: both descriptors were just opened and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Most descriptors [`send_fds`]/[`recv_fds`] carry in one message.
pub const MAX_FDS: usize = 4;

/// Sends `data` (at least one byte) and `fds` over the unix socket `socket`
/// (`SCM_RIGHTS`). The receiver gets its own copies of the descriptors.
/// Never raises `SIGPIPE` (see [`send_all`]).
pub fn send_fds(socket: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    assert!(!data.is_empty() && fds.len() <= MAX_FDS);
    let mut control = [0u64; 8]; // aligned room for a header and MAX_FDS descriptors
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(fd_bytes) } as _;
        // SAFETY: `msg` points at `control`, which is large enough for one
        // header with `fds.len()` descriptors (checked by the assert above),
        // so the first header and its data lie inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: `msg` and everything it points to live across the call.
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, NO_SIGPIPE) };
        if n >= 0 {
            // Small messages on a stream socket go in one piece; the rest
            // (descriptors are sent with the first byte) follows plainly.
            return send_all(socket, &data[n as usize..]);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives up to `buf.len()` bytes and the descriptors sent with them by
/// [`send_fds`] (close-on-exec where the platform allows). Returns the byte
/// count (0 at end of file) and the descriptors.
pub fn recv_fds(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid `msghdr`.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let flags = libc::MSG_CMSG_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let flags = 0;
    let n = loop {
        // SAFETY: `msg` points at live buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, flags) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` and set `msg_controllen`; the
    // CMSG_* walk stays inside it, and each SCM_RIGHTS descriptor is newly
    // opened in this process and owned by nobody else.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize - header) / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, fds))
}

/// Ignores `SIGPIPE` in this process (and the children it forks), whatever
/// its disposition was: a long-lived server process (a cluster worker)
/// must survive one, even if it was started with the default disposition
/// restored or built not to ignore it. Broken pipes are then `EPIPE`
/// errors.
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; `signal` with it
    // installs no handler, so no code runs at delivery.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// The conventional name of `signal` (`"SIGSEGV"`), or `"unknown signal"`.
pub fn signal_name(signal: i32) -> &'static str {
    const NAMES: &[(i32, &str)] = &[
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGURG, "SIGURG"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    NAMES
        .iter()
        .find(|(number, _)| *number == signal)
        .map_or("unknown signal", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn names() {
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(libc::SIGABRT), "SIGABRT");
        assert_eq!(signal_name(0), "unknown signal");
    }

    #[test]
    fn pipe_round_trip_and_deadline() {
        let (r, w) = pipe().unwrap();
        let mut buf = [0u8; 8];
        let past = Some(Instant::now());
        assert_eq!(read_until(r.as_fd(), &mut buf, past).unwrap(), None);
        write_all(w.as_fd(), b"hi").unwrap();
        assert_eq!(read_until(r.as_fd(), &mut buf, None).unwrap(), Some(2));
        drop(w);
        assert_eq!(read_until(r.as_fd(), &mut buf, None).unwrap(), Some(0));
    }

    #[test]
    fn descriptors_pass_over_a_socket() {
        let (a, b) = socket_pair().unwrap();
        let (r, w) = pipe().unwrap();
        send_fds(a.as_fd(), b"hello", &[w.as_fd()]).unwrap();
        drop(w);
        let mut buf = [0u8; 16];
        let (n, mut fds) = recv_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        let w2 = fds.pop().unwrap();
        write_all(w2.as_fd(), b"x").unwrap();
        drop(w2);
        let mut one = [0u8; 1];
        assert_eq!(read_until(r.as_fd(), &mut one, None).unwrap(), Some(1));
        assert_eq!(read_until(r.as_fd(), &mut one, None).unwrap(), Some(0));
    }

    /// Runs `body` in a forked child with `SIGPIPE` at its default and
    /// returns how the child ended: `Exited(0)` when `body` held.
    fn with_default_sigpipe(body: fn() -> bool) -> Option<ExitStatus> {
        // SAFETY: the child calls only async-signal-safe functions (signal,
        // pipe, socketpair, write/send, sigprocmask, sigtimedwait, close)
        // and leaves with `_exit`.
        match unsafe { fork() }.unwrap() {
            Forked::Child => {
                // SAFETY: SIG_DFL is a valid disposition for SIGPIPE.
                unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
                exit_now(if body() { 0 } else { 1 })
            }
            Forked::Parent(pid) => wait_pid(pid, true).unwrap(),
        }
    }

    #[test]
    fn a_write_to_a_pipe_without_reader_is_epipe_not_sigpipe() {
        let status = with_default_sigpipe(|| {
            let (r, w) = pipe().unwrap();
            drop(r);
            let first = write_all_no_sigpipe(w.as_fd(), b"x");
            // The one raised was taken back: a second write still survives,
            // and so does unblocking (the process is alive to exit 0).
            let second = write_all_no_sigpipe(w.as_fd(), b"y");
            [first, second]
                .iter()
                .all(|r| r.as_ref().unwrap_err().raw_os_error() == Some(libc::EPIPE))
        });
        assert_eq!(status, Some(ExitStatus::Exited(0)));
    }

    #[test]
    fn a_send_to_a_closed_socket_is_epipe_not_sigpipe() {
        let status = with_default_sigpipe(|| {
            let (a, b) = socket_pair().unwrap();
            drop(b);
            let (_r, w) = pipe().unwrap();
            let plain = send_all(a.as_fd(), b"x");
            let with_fds = send_fds(a.as_fd(), b"x", &[w.as_fd()]);
            [plain, with_fds]
                .iter()
                .all(|r| r.as_ref().unwrap_err().raw_os_error() == Some(libc::EPIPE))
        });
        assert_eq!(status, Some(ExitStatus::Exited(0)));
    }

    #[test]
    fn a_plain_write_without_reader_is_what_dies_of_sigpipe() {
        // The control for the two tests above.
        let status = with_default_sigpipe(|| {
            let (r, w) = pipe().unwrap();
            drop(r);
            write_all(w.as_fd(), b"x").is_err()
        });
        assert_eq!(status, Some(ExitStatus::Signaled(libc::SIGPIPE)));
    }

    /// A child that has ended and was reaped by the kernel (the host
    /// ignores `SIGCHLD`) can no longer be signalled through its handle:
    /// `ESRCH`, never a process that reused its pid.
    #[test]
    fn a_handle_never_signals_past_its_process_end() {
        let (go_read, go_write) = pipe().unwrap();
        // SAFETY: the child calls only read and `_exit` (async-signal-safe).
        let pid = match unsafe { fork() }.unwrap() {
            Forked::Child => {
                let mut byte = [0u8; 1];
                let _ = read_until(go_read.as_fd(), &mut byte, None);
                exit_now(0)
            }
            Forked::Parent(pid) => pid,
        };
        // The child waits for the go byte: it cannot have ended yet.
        let handle = ProcessHandle::open(pid).unwrap();
        handle.signal(0).unwrap();
        write_all(go_write.as_fd(), b"g").unwrap();
        handle.wait_ended().unwrap();
        assert_eq!(wait_pid(pid, true).unwrap(), Some(ExitStatus::Exited(0)));
        // Reaped: the pid is free for anyone now, the handle still names
        // the ended process.
        let err = handle.signal(libc::SIGKILL).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }

    /// The fallback for kernels that refuse `waitid(P_PIDFD)` (Linux 5.3,
    /// issue 19): forced here, it leaves a running child alone, reaps the
    /// zombie with its status (no zombie is left behind), and once the
    /// process is gone says `ECHILD` instead of waiting on its pid.
    #[test]
    fn reaping_by_pid_when_the_kernel_cannot_wait_on_a_pidfd() {
        let (go_read, go_write) = pipe().unwrap();
        // SAFETY: the child calls only read and `_exit` (async-signal-safe).
        let pid = match unsafe { fork() }.unwrap() {
            Forked::Child => {
                let mut byte = [0u8; 1];
                let _ = read_until(go_read.as_fd(), &mut byte, None);
                exit_now(9)
            }
            Forked::Parent(pid) => pid,
        };
        let handle = ProcessHandle::open(pid).unwrap();
        assert_eq!(handle.reap_by_pid().unwrap(), None, "still running");
        write_all(go_write.as_fd(), b"g").unwrap();
        handle.wait_ended().unwrap();
        assert_eq!(handle.reap_by_pid().unwrap(), Some(ExitStatus::Exited(9)));
        // Reaped: no zombie is left, and the pid is not waited on again.
        assert_eq!(
            wait_pid(pid, false).unwrap_err().raw_os_error(),
            Some(libc::ECHILD)
        );
        assert_eq!(
            handle.reap_by_pid().unwrap_err().raw_os_error(),
            Some(libc::ECHILD)
        );
    }

    #[test]
    fn fork_exit_and_signal() {
        // SAFETY: the child calls only `_exit` (async-signal-safe).
        let pid = match unsafe { fork() }.unwrap() {
            Forked::Child => exit_now(7),
            Forked::Parent(pid) => pid,
        };
        assert_eq!(wait_pid(pid, true).unwrap(), Some(ExitStatus::Exited(7)));
        // SAFETY: the child calls only `pause` and `_exit` (async-signal-safe).
        let pid = match unsafe { fork() }.unwrap() {
            Forked::Child => {
                // SAFETY: `pause` has no preconditions.
                unsafe { libc::pause() };
                exit_now(0)
            }
            Forked::Parent(pid) => pid,
        };
        kill(pid, libc::SIGKILL).unwrap();
        assert_eq!(
            wait_pid(pid, true).unwrap(),
            Some(ExitStatus::Signaled(libc::SIGKILL))
        );
    }
}
