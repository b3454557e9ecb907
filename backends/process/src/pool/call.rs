//! Calls whose request the caller's thread sends and whose reply whoever
//! waits for it reads: the fast path of [`ProcessPool::spawn_call_on`].
//!
//! # Why
//!
//! Through a blocking lane, one call costs four cross-thread wake-ups: the
//! lane thread (to send), the worker (to compute), the lane thread again
//! (the reply) and the joiner (the result). A pipe echo costs two. Here,
//! when a worker is idle and the request fits in a pipe's atomic write
//! (`PIPE_BUF`, so writing it to the idle worker's empty pipe cannot
//! block), the calling thread sends the request itself, at once: the
//! worker starts computing before `spawn_call_on` returns, as it would
//! through the lane. What is left, reading the reply and handing the
//! worker back, is a task (the *reader*) that is created but not
//! scheduled. Whoever needs it first takes it from its [`Pending`] slot:
//!
//! - [`JoinHandle::join`] on the handle (through
//!   [`ForeignJoin::join_here`]) runs it on the joining thread: the reply
//!   wakes the joiner directly, two wake-ups in all, as for the echo;
//! - awaiting the handle schedules it on the lane, as before;
//! - dropping or aborting the handle schedules it on the lane (the worker
//!   must be read and handed back whatever becomes of the result);
//! - a caller that needs a worker while all are busy ([`Inner::acquire`])
//!   runs pending readers itself before it waits;
//! - [`ProcessPool::shutdown_now`] and [`adopt`](ProcessPool::start_pending)
//!   (a scope about to wait for its tasks) schedule every pending reader.
//!
//! # Liveness
//!
//! The reader is a member of the call's task set from creation, like any
//! lane task, so a scope's shutdown counts it. Every reader runs exactly
//! once or is dropped (the slot hands it out once, under its lock), and
//! its read ends: on the reply, on end of file (the worker died or was
//! killed), or at the call's deadline (the default timeout applies as on
//! the lane). A reader dropped unrun (its task set closed first) kills and
//! reaps the worker, and its handle resolves to cancelled. A caller waits
//! for a free worker only while no reader is pending: each busy worker then
//! has a running reader, which ends and hands the worker back with a
//! notification; a reader that becomes pending after a waiter checked
//! notifies the waiters (see `Inner::register`).
//!
//! No lock-free protocol is added: the slot and the pool state are plain
//! mutexes, always taken in the order state, then slot.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use serde::de::DeserializeOwned;
use unirun_core::{ForeignJoin, JoinError, JoinHandle, Runnable};

#[allow(unused_imports)] // for the docs
use super::ProcessPool;
use super::{Inner, Worker};

/// Requests up to this size are written by the caller (POSIX guarantees
/// at least 512 bytes for an atomic pipe write, Linux 4096; a pipe holds
/// at least that much).
pub(super) const INLINE_REQUEST: usize = libc::PIPE_BUF;

/// A reader task that nobody has scheduled or run yet.
pub(super) struct Pending(Mutex<Option<Runnable>>);

impl Pending {
    pub(super) fn new(runnable: Runnable) -> Self {
        Self(Mutex::new(Some(runnable)))
    }

    /// The reader, to whoever asks first.
    pub(super) fn take(&self) -> Option<Runnable> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Hands the reader to its lane, if still here.
    pub(super) fn schedule(&self) {
        if let Some(runnable) = self.take() {
            runnable.schedule();
        }
    }
}

/// A worker busy with a sent request, until its reply is read. Dropped
/// unread (its reader task was cancelled before it ran), it kills, reaps
/// and retires the worker.
pub(super) struct InFlight {
    pub(super) pool: Arc<Inner>,
    pub(super) worker: Option<Worker>,
    /// How writing the request went.
    pub(super) sent: std::io::Result<()>,
    pub(super) deadline: Option<Instant>,
}

impl InFlight {
    /// Reads the reply and hands the worker back (the reader's body).
    pub(super) fn finish<R: DeserializeOwned>(mut self) -> Result<R, JoinError> {
        let worker = self.worker.take().expect("a reader runs once");
        let sent = std::mem::replace(&mut self.sent, Ok(()));
        self.pool.receive(worker, sent, self.deadline)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.unbusy(worker.pid);
            worker.kill_and_reap();
            self.pool.retire();
        }
    }
}

/// The handle side of a fast-path call.
pub(super) struct CallJoin<R> {
    pub(super) pending: Arc<Pending>,
    /// The reader task's own handle.
    pub(super) task: JoinHandle<R>,
}

impl<R: Send + 'static> ForeignJoin<R> for CallJoin<R> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<R, JoinError>> {
        // Awaited (or polled by a `block_on`): the lane reads.
        self.pending.schedule();
        std::pin::Pin::new(&mut self.task).poll(cx)
    }

    fn is_finished(&self) -> bool {
        // Asked instead of joined (perhaps in a loop): the lane reads.
        self.pending.schedule();
        self.task.is_finished()
    }

    fn abort(&mut self) {
        // The worker is computing already; its reply must still be read
        // for it to serve again. The result is discarded with `self`.
        self.pending.schedule();
    }

    fn join_here(&mut self) -> Option<Result<R, JoinError>> {
        let runnable = self.pending.take()?;
        runnable.run();
        // The reader ran to its end (or was cancelled by a closed set):
        // its handle is ready.
        match std::pin::Pin::new(&mut self.task).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }
}

impl<R> Drop for CallJoin<R> {
    fn drop(&mut self) {
        // Detached: the lane reads the reply and hands the worker back.
        self.pending.schedule();
    }
}
