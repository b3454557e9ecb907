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

use std::os::fd::{AsFd, OwnedFd};
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
    /// The write end of the worker's request pipe, written with
    /// [`send_request`](Self::send_request) only: a write to a worker that
    /// died (an OOM kill, a `kill -9`) is an `EPIPE` error there, never a
    /// `SIGPIPE` that would kill a host that keeps its default. (A socket
    /// pair with `MSG_NOSIGNAL` would need no check, but was measured a
    /// quarter slower per round trip than a pipe; blocking `SIGPIPE`
    /// around each write costs two `pthread_sigmask` calls.) The worker's reply
    /// write needs no such care: the parent closes its reply end only
    /// after killing the worker.
    pub(super) requests: OwnedFd,
    pub(super) replies: OwnedFd,
    /// The fork server that forked it (its child, reaped through it).
    pub(super) served: Option<Arc<Server>>,
}

impl Worker {
    /// Writes `request` to the worker, never raising `SIGPIPE`. A worker
    /// that was gone before the request was sent (nothing of it ran) is
    /// an error that says so.
    pub(super) fn send_request(&self, request: &[u8]) -> std::io::Result<()> {
        sys::write_all_no_sigpipe(self.requests.as_fd(), request).map_err(|err| {
            if err.raw_os_error() == Some(libc::EPIPE) {
                std::io::Error::new(
                    err.kind(),
                    "the worker process was gone before the request was sent \
                     (killed from outside, e.g. by the OOM killer); the next call gets a new worker",
                )
            } else {
                err
            }
        })
    }

    pub(super) fn kill_and_reap(self) -> Option<ExitStatus> {
        let _ = sys::kill(self.pid, libc::SIGKILL);
        drop(self.requests);
        drop(self.replies);
        if let Some(server) = &self.served {
            return server::reap(server, self.pid);
        }
        sys::wait_pid(self.pid, true).ok().flatten()
    }
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
    let mut request = vec![0u8; HEADER + 16];
    request[HEADER..HEADER + 8]
        .copy_from_slice(&(invoke::<A, R> as Trampoline as usize as u64).to_le_bytes());
    request[HEADER + 8..HEADER + 16].copy_from_slice(&(f as usize as u64).to_le_bytes());
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
            return spawned.map(|s| Worker {
                pid: s.pid,
                requests: s.requests,
                replies: s.replies,
                served: Some(s.server),
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
            drop(req_read);
            drop(rep_write);
            drop(guard);
            drop(stdio);
            Ok(Worker {
                pid,
                requests: req_write,
                replies: rep_read,
                served: None,
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
        sys::exit_now(111);
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
