//! One pre-forked worker process: how it is forked, what it runs, and the
//! request frame the parent sends it.
//!
//! A worker is forked once and then serves calls in a loop: it reads a
//! request frame (the address of a monomorphized trampoline, the address
//! of the function, the postcard-encoded argument), runs the function
//! under `catch_unwind` and writes back a reply frame like
//! [`fork_call`](crate::fork_call)'s. Function pointers are valid in the
//! worker because it is a fork of this very image (same binary, same
//! address-space layout), so nothing is registered and nothing re-executed.
//!
//! Each side reads a whole frame before it writes one, and each worker has
//! its own pair of pipes, so payloads of any size flow without deadlock: the
//! parent writes the request while the worker reads it, then reads the
//! reply while the worker writes it.
//!
//! The parent closes its copy of a worker's reply-pipe write end right after
//! the fork (under the same lock as fork-per-call), so a crashed worker's
//! pipe reaches end of file even when later children inherited the rest.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;
use unirun_core::JoinError;
use unirun_platform::process::{self as sys, ExitStatus, Forked, Pid};

use super::Inner;
use crate::fork::{fork_quiesced, lock_stdio, setup, FORK_LOCK};
use crate::forker;
use crate::options::ProcessOptions;
use crate::server::{self, Server};
use crate::wire::{self, Read, Reply, HEADER};

/// A live worker process and the parent's ends of its pipes.
pub(super) struct Worker {
    pub(super) pid: Pid,
    /// The write end of the worker's request pipe, non-blocking, written
    /// with [`send_request`](Self::send_request) only.
    pub(super) requests: OwnedFd,
    pub(super) replies: OwnedFd,
    /// The parent's own copy of the request pipe's read end, never read:
    /// while it is open the pipe always has a reader, so a write to a
    /// worker that died (an OOM kill, a `kill -9`) neither raises
    /// `SIGPIPE` (which kills a host that keeps its default) nor fails:
    /// the worker's death shows as end of file on `replies` (nobody else
    /// holds its write end), and what is left unread here says whether
    /// the request ever reached it ([`request_unread`](Self::request_unread)).
    /// So a request is one plain `write`: no signal mask changed around
    /// it (two system calls more per call), and no socket pair with
    /// `MSG_NOSIGNAL` (a unix socket costs more per message than a pipe).
    /// The worker's reply write needs no such care: the parent closes its
    /// reply end only after killing the worker.
    pub(super) request_reader: OwnedFd,
    /// The fork server that forked it (its child, reaped through it).
    pub(super) served: Option<Arc<Server>>,
}

impl Worker {
    /// The parent's side of a new worker's pipes: `requests` is made
    /// non-blocking (see [`send_request`](Self::send_request)).
    pub(super) fn new(
        pid: Pid,
        requests: OwnedFd,
        replies: OwnedFd,
        request_reader: OwnedFd,
        served: Option<Arc<Server>>,
    ) -> std::io::Result<Self> {
        set_nonblocking(&requests)?;
        Ok(Self {
            pid,
            requests,
            replies,
            request_reader,
            served,
        })
    }

    /// Writes `request` to the worker; never raises `SIGPIPE` (see
    /// [`request_reader`](Self::request_reader)). A request that fits the
    /// pipe (an idle worker's pipe is empty: it read its last request
    /// whole before replying) is one `write`. A larger one waits for room
    /// while the worker reads; a worker that ends meanwhile makes `replies`
    /// readable (end of file: it replies only after reading the whole
    /// request), and the write stops with an error saying it was gone.
    /// That wait ends: the worker reads, or ends (on its own, or killed
    /// by the deadline watcher or a shutdown).
    pub(super) fn send_request(&self, mut request: &[u8]) -> std::io::Result<()> {
        while !request.is_empty() {
            // SAFETY: `request` is a live buffer of `request.len()` bytes
            // and `requests` is open (owned by `self`).
            let n = unsafe {
                libc::write(
                    self.requests.as_raw_fd(),
                    request.as_ptr().cast(),
                    request.len(),
                )
            };
            if n >= 0 {
                request = &request[n as usize..];
                continue;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => {
                    if self.wait_for_room()? {
                        return Err(gone());
                    }
                }
                _ => return Err(err),
            }
        }
        Ok(())
    }

    /// Waits until the request pipe has room or the worker ended; returns
    /// whether it ended.
    fn wait_for_room(&self) -> std::io::Result<bool> {
        let mut fds = [
            libc::pollfd {
                fd: self.requests.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            },
            libc::pollfd {
                fd: self.replies.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: `fds` is two valid `pollfd`s and the count passed is
            // 2; -1 waits without limit (see `send_request` for why it ends).
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if rc >= 0 {
                return Ok(fds[1].revents != 0);
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Whether bytes of the last request are still in the pipe: a worker
    /// that ended without replying never took (all of) it, so its function
    /// did not run.
    pub(super) fn request_unread(&self) -> bool {
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD writes one `c_int` through the pointer, which
        // is live and writable; the descriptor is open (owned by `self`).
        let rc =
            unsafe { libc::ioctl(self.request_reader.as_raw_fd(), libc::FIONREAD, &mut unread) };
        rc == 0 && unread > 0
    }

    pub(super) fn kill_and_reap(self) -> Option<ExitStatus> {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        drop(self.requests);
        drop(self.replies);
        drop(self.request_reader);
        if let Some(server) = &self.served {
            return server::reap(server, self.pid);
        }
        sys::wait_pid(self.pid, true).ok().flatten()
    }
}

/// How a worker exits when it cannot start serving: arming
/// die-with-parent failed, or one of its [`ProcessOptions`] limits (memory,
/// CPU time, nice value) could not be applied.
pub(super) const SETUP_FAILED: i32 = 111;

/// The error text of a call whose worker exited with [`SETUP_FAILED`]:
/// every new worker would do the same, so it says what to check.
pub(super) fn setup_failed() -> String {
    "the worker process exited before taking the request: it could not apply the pool's \
     ProcessOptions (memory limit, CPU-time limit or nice value; a negative nice needs \
     privilege) or arm its die-with-parent signal; `fork_call` with the same options \
     names the setting that failed"
        .to_string()
}

/// The error of a call whose worker was gone before it took the request.
pub(super) fn gone() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the worker process was gone before the request was sent \
         (killed from outside, e.g. by the OOM killer); the next call gets a new worker",
    )
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: F_GETFL on an open descriptor owned by the caller.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: F_SETFL with the flags just read plus O_NONBLOCK, on the same
    // open descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

type Trampoline = fn(usize, &[u8]) -> Vec<u8>;

/// Decodes the argument, calls `f` (the address of a `fn(A) -> R`) and
/// encodes the reply frame. Runs in the worker.
fn invoke<A: DeserializeOwned, R: Serialize>(f: usize, body: &[u8]) -> Vec<u8> {
    // SAFETY: `f` is the address of a `fn(A) -> R` taken in this same image
    // (the worker is a fork of the caller), sent together with this very
    // monomorphization of `invoke`, so the types match.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<*const (), fn(A) -> R>(f as *const ()) };
    let reply = match postcard::from_bytes::<A>(body) {
        Ok(arg) => match unirun_core::catch_panic(|| f(arg)) {
            Ok(value) => Reply::Value(value),
            Err(err) => Reply::panic(&err),
        },
        Err(err) => Reply::Failed {
            what: "decoding the argument".into(),
            detail: err.to_string(),
        },
    };
    wire::encode(&reply).unwrap_or_else(|err| {
        wire::encode(&Reply::<()>::Failed {
            what: "encoding the result".into(),
            detail: err.to_string(),
        })
        .unwrap_or_default()
    })
}

/// The request frame for `f(arg)`: the trampoline's and the function's
/// addresses, then the argument.
pub(super) fn request<A, R>(f: fn(A) -> R, arg: &A) -> Result<Vec<u8>, JoinError>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    // Room for a small argument, so the usual request is one allocation.
    let mut request = Vec::with_capacity(HEADER + 16 + 48);
    request.extend_from_slice(&[0u8; HEADER]);
    request.extend_from_slice(&(invoke::<A, R> as Trampoline as usize as u64).to_le_bytes());
    request.extend_from_slice(&(f as usize as u64).to_le_bytes());
    let mut request = postcard::to_extend(arg, request)
        .map_err(|err| JoinError::transport("encode", err.to_string()))?;
    let len = (request.len() - HEADER) as u64;
    request[..HEADER].copy_from_slice(&len.to_le_bytes());
    Ok(request)
}

impl Inner {
    /// A new worker: from the fork server if there is one, else forked
    /// from the `unirun-forker` thread.
    pub(super) fn start(&self) -> Result<Worker, JoinError> {
        if let Some(spawned) = server::spawn(&self.options) {
            return spawned.and_then(|s| {
                let (pid, server) = (s.pid, s.server);
                Worker::new(
                    pid,
                    s.requests,
                    s.replies,
                    s.request_reader,
                    Some(server.clone()),
                )
                .map_err(|err| {
                    let _ = sys::kill(pid, libc::SIGKILL);
                    server::reap(&server, pid);
                    JoinError::transport("start a worker", err.to_string())
                })
            });
        }
        let lease = {
            let mut held = self.forker.lock().unwrap_or_else(PoisonError::into_inner);
            match &*held {
                Some(lease) => lease.clone(),
                None => {
                    let lease = forker::lease()
                        .map_err(|err| JoinError::transport("start a worker", err.to_string()))?;
                    held.insert(lease).clone()
                }
            }
        };
        let options = self.options;
        let worker = lease.run(move || start(&options));
        // A shutdown that released the pool's lease meanwhile kills this
        // worker in `acquire`; our clone kept the thread up until then.
        drop(lease);
        worker
    }
}

/// Forks a worker from the calling thread.
pub(super) fn start(options: &ProcessOptions) -> Result<Worker, JoinError> {
    unirun_core::install_panic_hook();
    let parent = sys::getpid();
    let stdio = lock_stdio();
    let guard = FORK_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let pipes = sys::pipe().and_then(|a| sys::pipe().map(|b| (a, b)));
    let ((req_read, req_write), (rep_read, rep_write)) =
        pipes.map_err(|err| JoinError::transport("pipe", err.to_string()))?;
    // SAFETY: the worker runs only its loop over its own pipes, the
    // trampolines and functions sent to it, and async-signal-safe calls
    // until then; it leaves with `_exit`. We hold `stdio` and `FORK_LOCK`.
    match unsafe { fork_quiesced() } {
        Ok(Forked::Child) => {
            drop(guard);
            drop(stdio);
            drop(req_write);
            drop(rep_read);
            worker_main(parent, options, req_read, rep_write)
        }
        Ok(Forked::Parent(pid)) => {
            drop(rep_write);
            drop(guard);
            drop(stdio);
            Worker::new(pid, req_write, rep_read, req_read, None).map_err(|err| {
                let _ = sys::kill(pid, libc::SIGKILL);
                let _ = sys::wait_pid(pid, true);
                JoinError::transport("start a worker", err.to_string())
            })
        }
        Err(err) => Err(JoinError::transport("fork", err.to_string())),
    }
}

/// The worker's loop: read a request, run it, reply; until end of file.
pub(crate) fn worker_main(
    parent: Pid,
    options: &ProcessOptions,
    requests: OwnedFd,
    replies: OwnedFd,
) -> ! {
    unirun_core::mark_forked_child();
    server::close_in_child();
    if !sys::die_with_parent(parent) || setup(options).is_err() {
        sys::exit_now(SETUP_FAILED);
    }
    loop {
        let body = match wire::read_frame(requests.as_fd(), None) {
            Ok(Read::Frame(body)) if body.len() >= 16 => body,
            _ => sys::exit_now(0),
        };
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(bytes) as usize
        };
        // SAFETY: the parent sent the address of `invoke::<A, R>` from this
        // same image (see `request`).
        let trampoline: Trampoline =
            unsafe { std::mem::transmute::<*const (), Trampoline>(word(0) as *const ()) };
        let reply = trampoline(word(8), &body[16..]);
        if sys::write_all(replies.as_fd(), &reply).is_err() {
            sys::exit_now(1);
        }
    }
}
