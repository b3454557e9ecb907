//! Calls whose request the caller's thread sends (or queues) and whose
//! reply whoever waits for it reads: the fast path of
//! [`ProcessPool::spawn_call_on`].
//!
//! # Why
//!
//! Through a blocking lane, one call costs four cross-thread wake-ups: the
//! lane thread (to send), the worker (to compute), the lane thread again
//! (the reply) and the joiner (the result). A pipe echo costs two. And
//! many concurrent calls each held a lane thread blocked until a worker
//! was free.
//!
//! Here a call whose request fits in a pipe's atomic write (`PIPE_BUF`)
//! never waits on a lane thread for a worker:
//!
//! - **A worker is idle**: the calling thread writes the request itself
//!   (into the idle worker's empty pipe: it cannot block), so the worker
//!   computes before `spawn_call_on` returns, as it would through the lane.
//! - **All workers are busy** (and none may be started): the call joins the
//!   pool's queue, and whoever hands a worker back sends the queue's head
//!   on it (`Inner::release`).
//!
//! What is left, reading the reply (and, for a queued call that nobody
//! sent yet, getting a worker) and handing the worker back, is the
//! *reader*. Whoever needs it first takes it from the [`Call`]:
//!
//! - [`JoinHandle::join`] (through [`ForeignJoin::join_here`]) runs it on
//!   the joining thread: the reply wakes the joiner directly, two wake-ups
//!   in all, as for the echo. Taken before anything else needed it, it
//!   runs there as plain code: no task is ever made for it (see
//!   [`Lazy`]), so a call joined at once costs about what
//!   [`ProcessPool::call`] does;
//! - awaiting, dropping or aborting the handle, or asking
//!   `is_finished`, *asks for the reader*: once the request is sent (at
//!   once if it is), the reader is handed to the pool's reply watcher
//!   (`replies`), one thread that waits for the replies of all such calls
//!   and runs each reader when its reply is there, so no lane thread
//!   blocks per call; a reader that keeps its deadline itself goes to the
//!   lane instead;
//! - a caller that needs a worker while all are busy (`Inner::acquire`)
//!   runs a pending reader itself before it waits;
//! - when a call is queued, every pending reader is started (as above),
//!   and so is the reader of every call sent while the queue is not empty;
//! - [`ProcessPool::shutdown_now`] and [`ProcessPool::start_pending`] (a
//!   scope about to wait for its tasks) start every reader, queued calls
//!   included (those go to the lane, and get a worker, or `cancelled`,
//!   themselves).
//!
//! Every way but the first needs the reader as a task (a `Runnable` for
//! the reply watcher or the lane, a `JoinHandle` for the awaiting task):
//! it is made, once, under the reader lock, by the first of them
//! ([`Reader::make`]); whoever then finds no [`Lazy`] finds the task made.
//!
//! With calls queued, the reader that hands a worker back sends the
//! queue's head on it right away (`Inner::release`), on the watcher
//! thread, and that call's reader joins the watcher: one wake-up of the
//! watcher per call, and the awaiting task's wake-up off the worker's
//! path.
//!
//! # Liveness
//!
//! The call is a member of its task set from creation (a [`Tracked`]
//! membership, which the reader carries whether it runs as a task or on
//! the joining thread, and ends with the reader's outcome), so a scope's
//! shutdown counts it and waits for it, and its metrics count it once. A
//! reader whose set was closed before it started does not start (as a
//! task of that set would not): it is dropped unrun, see below. The [`Call`] hands its
//! reader out once, under its lock; the reader runs once or is dropped.
//! A read ends: on the reply, on end of file (the worker died or was
//! killed), or at the call's deadline (the pool's deadline watcher kills
//! the worker then, see `deadlines`, or, if its thread could not start,
//! the read polls until the deadline, on the lane). The reply watcher runs
//! a reader once its pipe is readable, which is when that read would end
//! (see `replies`). A reader dropped unrun (its task set closed first)
//! dequeues its call, or kills, reaps and retires its worker; its handle
//! resolves to cancelled.
//!
//! The queue moves: it is not empty only while every worker is busy, and
//! then every busy worker's reader is running, scheduled or held by the
//! reply watcher (pending ones were started when the call was queued,
//! later ones when sent), so each ends and hands its worker back
//! ([`Inner::release`]: to a thread waiting in `acquire` if any, else to
//! the queue's head) or retires it (`Inner::retire`: the head's reader is
//! scheduled to start a worker of its own). A thread waits in `acquire`
//! only when no reader is pending, so each busy worker's reader is running
//! (or watched) and ends, and a reader that becomes pending after the
//! check notifies the waiters (`Inner::register`).
//!
//! # Letting go of calls
//!
//! [`ProcessPool::retire`] (a teardown that must neither wait for calls in
//! flight nor lose them) *detaches* every sent call whose reader has not
//! taken its stage yet: under the stage lock it takes the `Sent` stage and
//! marks the call detached ([`Call::detach`]), takes the worker off the
//! busy list, and drops the reader unrun (or, held by the reply watcher,
//! after taking it back), so the reader task leaves its task set and its
//! handle resolves at once. A thread of the call's own then reads the
//! reply as a reader would ([`Inner::receive`], which kills and reaps the
//! worker of a retired pool) and puts the result in the call
//! ([`Call::finish`]); [`CallJoin`] looks there first, and when its reader
//! task ended without a result because of the detach (the mark is set
//! under the same lock that made the reader find nothing). That read ends
//! as any reader's does: on the reply, the worker's end, or the deadline.
//! A call sent while the pool is being retired is detached as it is
//! registered ([`Inner::register`]), so no sent call is missed.
//!
//! No lock-free protocol is added: the pool state, a call's stage, its
//! reader slot and its detached result are mutexes, taken in the order
//! state, stage, reader, detached; no thread takes the state while it
//! holds a stage. The reply watcher's
//! mutex is taken with none of them held, and released before the watcher
//! runs a reader.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use unirun_core::{ForeignJoin, JoinError, JoinHandle, RunQueue, Runnable, TaskSet, Tracked};
use unirun_platform::process::{self as sys, ExitStatus, Pid};

use super::relay::{self, Relay};
use super::replies::Replies;
use super::{worker, Inner, ProcessPool, State, Worker};
use crate::wire::{self, Read};

/// Requests up to this size take the fast path (POSIX guarantees at least
/// 512 bytes for an atomic pipe write, Linux 4096; a pipe holds at least
/// that much).
pub(super) const INLINE_REQUEST: usize = libc::PIPE_BUF;

/// Where a call is.
enum Stage {
    /// In the pool's queue, or just taken out of it by its own reader.
    Queued(Vec<u8>),
    /// Written to `worker` (`sent` says how that went; `deadline` is the
    /// reader's to keep, when the watcher does not).
    Sent {
        worker: Worker,
        sent: std::io::Result<()>,
        deadline: Option<Instant>,
    },
    /// Taken by its reader (or not set up yet).
    Done,
}

/// A reader task and who asked for it.
struct Reader {
    /// What making the reader task needs, until it is made (see
    /// [`Reader::make`]) or a joining thread takes it to read in place.
    lazy: Option<Lazy>,
    runnable: Option<Runnable>,
    /// The reader task's `JoinHandle<R>`, boxed, from when it is made
    /// until the call's handle takes it.
    handle: Option<Box<dyn Any + Send>>,
    /// The request is written (the reader can only read now).
    sent: bool,
    /// Once sent: the reply pipe, when the reply watcher may wait for it
    /// (`None`: the reader keeps a deadline itself or the write failed, so
    /// it goes to the lane).
    watch: Option<RawFd>,
    /// The handle asked for the reader to run without it (see the module
    /// docs).
    asked: bool,
}

/// What a reader needs that the call does not hold: the reader task is
/// made from it only when something other than a thread joining the
/// handle needs the reader (a call joined at once never makes one).
pub(super) struct Lazy {
    pool: Arc<Inner>,
    /// The blocking lane the reader task runs on, when it does.
    lane: Arc<dyn RunQueue>,
    /// The call's membership in its task set (its scope's), from the call
    /// until the reader ends: the reader counts as one of the set's tasks
    /// whether it runs as a task or on the joining thread.
    tracked: Option<Tracked>,
}

/// Makes a call's reader task from its [`Lazy`]: the runnable, and the
/// task's `JoinHandle<R>` boxed, `R` being the call's result type.
type Make = fn(&Arc<Call>, Lazy) -> (Runnable, Box<dyn Any + Send>);

impl Reader {
    /// Makes the reader task, unless it was made (or taken to be read in
    /// place) already. Under the reader lock: whoever finds `lazy` gone
    /// finds the task's handle in `handle` (or the call's handle has it).
    fn make(&mut self, call: &Arc<Call>) {
        if let Some(lazy) = self.lazy.take() {
            let (runnable, handle) = (call.make)(call, lazy);
            self.runnable = Some(runnable);
            self.handle = Some(handle);
        }
    }

    /// The reader task, made now if need be, to whoever asks first.
    fn take(&mut self, call: &Arc<Call>) -> Option<Runnable> {
        self.make(call);
        self.runnable.take()
    }
}

/// What reading a sent call's reply needs: its worker, how the write went
/// and the deadline its reader keeps (see [`Stage::Sent`]).
pub(super) type Job = (Worker, std::io::Result<()>, Option<Instant>);

/// Reads a call's reply from its [`Job`] (or takes the error that stood
/// in for it) into a boxed `Result<R, JoinError>`, `R` being the call's
/// result type.
type Finish = fn(&Arc<Inner>, Result<Job, JoinError>) -> Box<dyn Any + Send>;

/// The outcome of a call let go of by its pool (see [`Call::detach`]).
#[derive(Default)]
struct Detached {
    /// A boxed `Result<R, JoinError>`, once read.
    result: Option<Box<dyn Any + Send>>,
    /// The handle waiting for it.
    waker: Option<Waker>,
}

/// One fast-path call, shared by its handle, its reader and the pool.
pub(super) struct Call {
    stage: Mutex<Stage>,
    reader: Mutex<Reader>,
    /// The pool's reply watcher.
    replies: Arc<Replies>,
    /// Set (under the stage lock, when the pool takes the stage `Sent`)
    /// once a retired pool let go of the call: its result comes here, not
    /// from the reader task.
    detached: Mutex<Option<Detached>>,
    /// Reads the reply of a call let go of (see `read_detached`).
    finish: Finish,
    /// Makes the reader task (see `make_reader`).
    make: Make,
}

impl Call {
    fn stage(&self) -> MutexGuard<'_, Stage> {
        self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reader(&self) -> MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn detached(&self) -> MutexGuard<'_, Option<Detached>> {
        self.detached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a sent call from its reader task, for a retired pool (see
    /// [`ProcessPool::retire`]): what reading its reply needs, or `None`
    /// when its reader took the stage first (it is reading, or done) or
    /// the call is not sent. From here on the reader, if it runs, finds
    /// nothing to do, and the handle waits for [`Call::finish`].
    pub(super) fn detach(&self) -> Option<Job> {
        let mut stage = self.stage();
        if !matches!(*stage, Stage::Sent { .. }) {
            return None;
        }
        let Stage::Sent {
            worker,
            sent,
            deadline,
        } = std::mem::replace(&mut *stage, Stage::Done)
        else {
            unreachable!("matched above, under the same lock");
        };
        // Under the stage lock: a reader that finds the stage `Done`
        // because of this finds the call detached too (see `CallJoin`).
        *self.detached() = Some(Detached::default());
        drop(stage);
        Some((worker, sent, deadline))
    }

    /// Reads a detached call's reply (or takes the error standing for it)
    /// and hands the result to its handle. A waker of the handle's that
    /// panics is contained (see [`relay::wake_contained`]): the caller, a
    /// thread of the pool's, goes on to tell the pool the call ended.
    pub(super) fn finish(&self, pool: &Arc<Inner>, job: Result<Job, JoinError>) {
        let result = (self.finish)(pool, job);
        let waker = {
            let mut detached = self.detached();
            let Some(detached) = detached.as_mut() else {
                unreachable!("only a detached call is finished this way");
            };
            detached.result = Some(result);
            detached.waker.take()
        };
        if let Some(waker) = waker {
            relay::wake_contained(waker);
        }
    }

    /// A detached call's result for its handle: `None` when the call is
    /// not detached; `Pending` (with `cx`'s waker kept) until it is read.
    fn poll_detached<R: 'static>(
        &self,
        cx: &mut Context<'_>,
    ) -> Option<Poll<Result<R, JoinError>>> {
        let mut detached = self.detached();
        let detached = detached.as_mut()?;
        let Some(result) = detached.result.take() else {
            detached.waker = Some(cx.waker().clone());
            return Some(Poll::Pending);
        };
        match result.downcast::<Result<R, JoinError>>() {
            Ok(result) => Some(Poll::Ready(*result)),
            Err(_) => unreachable!("`finish` is `read_detached::<R>` for this call's `R`"),
        }
    }

    /// Whether the call is detached, and if so whether its result is in.
    fn detached_finished(&self) -> Option<bool> {
        self.detached()
            .as_ref()
            .map(|detached| detached.result.is_some())
    }

    /// The reader, to whoever asks first (made now if it was not).
    pub(super) fn take(self: &Arc<Self>) -> Option<Runnable> {
        self.reader().take(self)
    }

    /// What the reader needs, when no reader task was made yet: the
    /// caller reads in place instead (no task is made any more).
    fn take_lazy(&self) -> Option<Lazy> {
        self.reader().lazy.take()
    }

    /// The reader task's handle, once made, to the call's handle.
    fn task_handle<R: 'static>(&self) -> Option<JoinHandle<R>> {
        let handle = self.reader().handle.take()?;
        match handle.downcast::<JoinHandle<R>>() {
            Ok(handle) => Some(*handle),
            Err(_) => unreachable!("`make` is `make_reader::<R>` for this call's `R`"),
        }
    }

    /// The reply pipe the watcher would wait on, once sent (for tests).
    #[cfg(test)]
    pub(super) fn reply_fd(&self) -> Option<RawFd> {
        self.reader().watch
    }

    /// Starts the reader now, whatever the stage: a sent call's on the
    /// reply watcher, a queued one's (which must get a worker) on its lane.
    pub(super) fn schedule_now(self: &Arc<Self>) {
        let mut reader = self.reader();
        let runnable = reader.take(self);
        let (sent, watch) = (reader.sent, reader.watch);
        drop(reader);
        if let Some(runnable) = runnable {
            if sent {
                self.start_reading(runnable, watch);
            } else {
                runnable.schedule();
            }
        }
    }

    /// Hands a sent call's reader to the reply watcher, or to its lane when
    /// the watcher cannot wait for it.
    fn start_reading(&self, runnable: Runnable, watch: Option<RawFd>) {
        let runnable = match watch {
            Some(fd) => match self.replies.watch(fd, runnable) {
                Ok(()) => return,
                Err(runnable) => runnable,
            },
            None => runnable,
        };
        runnable.schedule();
    }

    /// The handle will not read the reply itself: the reply watcher does,
    /// once the request is sent. The reader task is made now (the handle
    /// polls it), unless a joining thread took the reader already.
    fn ask_reader(self: &Arc<Self>) {
        let mut reader = self.reader();
        reader.asked = true;
        reader.make(self);
        let runnable = if reader.sent {
            reader.runnable.take()
        } else {
            None
        };
        let watch = reader.watch;
        drop(reader);
        if let Some(runnable) = runnable {
            self.start_reading(runnable, watch);
        }
    }

    /// The request is written, its reply to come on `watch` (see
    /// [`Reader::watch`]): the reader starts if it was asked for, or if
    /// `now`.
    fn mark_sent(self: &Arc<Self>, now: bool, watch: Option<RawFd>) {
        let mut reader = self.reader();
        reader.sent = true;
        reader.watch = watch;
        let runnable = if reader.asked || now {
            reader.take(self)
        } else {
            None
        };
        drop(reader);
        if let Some(runnable) = runnable {
            self.start_reading(runnable, watch);
        }
    }
}

/// What the reader owns (as a task, or on the thread that joins the
/// call): runs once, or cleans up when dropped unrun.
struct ReaderBody {
    pool: Arc<Inner>,
    call: Arc<Call>,
    /// See [`Lazy::tracked`]; ended with the reader's outcome.
    tracked: Option<Tracked>,
}

/// A call's [`Make`]: its reader as a blocking-lane task. The task is in
/// no task set: the reader's membership is `tracked`, since the call.
fn make_reader<R: DeserializeOwned + Send + 'static>(
    call: &Arc<Call>,
    lazy: Lazy,
) -> (Runnable, Box<dyn Any + Send>) {
    let Lazy {
        pool,
        lane,
        tracked,
    } = lazy;
    let body = ReaderBody {
        pool,
        call: call.clone(),
        tracked,
    };
    let (runnable, task) = unirun_core::spawn_blocking_fallible_with(
        move || body.run::<R>(),
        None,
        move |r, info| lane.schedule(r, info),
    );
    (runnable, Box::new(task))
}

impl ReaderBody {
    fn run<R: DeserializeOwned>(mut self) -> Result<R, JoinError> {
        if self.tracked.as_ref().is_some_and(Tracked::is_closed) {
            // Its set closed (a scope shut down without waiting): as a
            // task of that set, it does not start. Dropped, it frees what
            // the call holds; its membership counts it cancelled.
            return Err(JoinError::cancelled());
        }
        let tracked = self.tracked.take();
        // A panic while reading (a result type whose `Deserialize` panics)
        // becomes the call's panic error, as it would in any task: on the
        // joining thread the reader is no task, and must not unwind
        // through `join` (the worker was handed back before decoding).
        let result = unirun_core::catch_panic(|| self.read::<R>()).and_then(|read| read);
        if let Some(tracked) = tracked {
            tracked.end(result.as_ref().map(|_| ()));
        }
        result
    }

    fn read<R: DeserializeOwned>(&self) -> Result<R, JoinError> {
        if matches!(*self.call.stage(), Stage::Queued(_)) {
            // Ours from here on, unless a releaser sent it meanwhile (then
            // the stage says `Sent`).
            self.pool.dequeue(&self.call);
        }
        let stage = std::mem::replace(&mut *self.call.stage(), Stage::Done);
        match stage {
            Stage::Queued(request) => {
                let worker = self.pool.acquire()?;
                let (sent, deadline) = self.pool.send(&worker, &request);
                self.pool.receive(worker, sent, deadline)
            }
            Stage::Sent {
                worker,
                sent,
                deadline,
            } => self.pool.receive(worker, sent, deadline),
            Stage::Done => Err(JoinError::cancelled()),
        }
    }
}

impl Drop for ReaderBody {
    fn drop(&mut self) {
        // After `run` the stage is `Done`; dropped unrun, free what the
        // call holds.
        if matches!(*self.call.stage(), Stage::Queued(_)) {
            self.pool.dequeue(&self.call);
        }
        let stage = std::mem::replace(&mut *self.call.stage(), Stage::Done);
        if let Stage::Sent { worker, .. } = stage {
            self.pool.forget_deadline(worker.pid);
            self.pool.unbusy(worker.pid);
            worker.kill_and_reap();
            self.pool.retire();
        }
    }
}

/// The handle side of a fast-path call.
struct CallJoin<R> {
    call: Arc<Call>,
    /// The reader task's own handle, once made and taken from the call.
    task: Option<JoinHandle<R>>,
    /// The waker the reader task is polled with once awaited: it forwards
    /// to the awaiting task's (see `relay`).
    relay: Option<(Arc<Relay>, Waker)>,
}

impl<R: 'static> CallJoin<R> {
    /// The reader task's handle (`None` only if a join that read in place
    /// did not return: then nothing is to come).
    fn task(&mut self) -> Option<&mut JoinHandle<R>> {
        if self.task.is_none() {
            self.task = self.call.task_handle::<R>();
        }
        self.task.as_mut()
    }

    /// The relay waker, now forwarding to `waker`.
    fn relay(&mut self, waker: &Waker) -> Waker {
        let (relay, relayed) = self.relay.get_or_insert_with(|| {
            let relay = Arc::new(Relay::default());
            (relay.clone(), Waker::from(relay))
        });
        relay.set(waker);
        relayed.clone()
    }
}

impl<R: DeserializeOwned + Send + 'static> ForeignJoin<R> for CallJoin<R> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<R, JoinError>> {
        // A detached call's reader task is never polled again: it ended
        // (or ends) without the result, which comes from the call.
        if let Some(detached) = self.call.poll_detached(cx) {
            return detached;
        }
        let relayed = self.relay(cx.waker());
        self.call.ask_reader();
        let Some(task) = self.task() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        match Pin::new(task).poll(&mut Context::from_waker(&relayed)) {
            // The reader found nothing to do because the call was detached
            // meanwhile (its task ended when the pool dropped it unrun, or
            // it ran after the stage was taken): the result comes later.
            Poll::Ready(output) => self.call.poll_detached(cx).unwrap_or(Poll::Ready(output)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_finished(&self) -> bool {
        if let Some(finished) = self.call.detached_finished() {
            return finished;
        }
        // Asked instead of joined (perhaps in a loop): the watcher reads.
        self.call.ask_reader();
        // A reader task that ended because the call was detached meanwhile
        // is not the call's end.
        let finished = match &self.task {
            Some(task) => task.is_finished(),
            // Still the call's (made by `ask_reader` just now).
            None => self.call.reader().handle.as_ref().is_none_or(|handle| {
                handle
                    .downcast_ref::<JoinHandle<R>>()
                    .is_none_or(JoinHandle::is_finished)
            }),
        };
        finished && self.call.detached_finished().is_none_or(|done| done)
    }

    fn abort(&mut self) {
        // A sent call's worker is computing already; its reply must still
        // be read for it to serve again. The result is discarded with
        // `self` (a detached call's reply is read all the same).
        self.call.ask_reader();
    }

    fn join_here(&mut self) -> Option<Result<R, JoinError>> {
        if let Some(lazy) = self.call.take_lazy() {
            // Nobody needed the reader yet: it runs here, as no task.
            let body = ReaderBody {
                pool: lazy.pool,
                call: self.call.clone(),
                tracked: lazy.tracked,
            };
            let output = body.run::<R>();
            // Unless the call was detached before the reader took it.
            return match self.call.detached_finished() {
                None => Some(output),
                Some(_) => None,
            };
        }
        let runnable = self.call.take()?;
        runnable.run();
        // The reader ran to its end (or was cancelled by a closed set):
        // its handle is ready, unless the call was detached before the
        // reader took it (then `join` waits on `poll_join`).
        let task = self.task()?;
        let output = match Pin::new(task).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => return None,
        };
        match self.call.detached_finished() {
            None => Some(output),
            Some(_) => None,
        }
    }
}

impl<R> Drop for CallJoin<R> {
    fn drop(&mut self) {
        // Detached: the watcher reads the reply and hands the worker back.
        self.call.ask_reader();
        // The reader task's handle, if it was made now: detached.
        let handle = self.call.reader().handle.take();
        drop(handle);
    }
}

/// How `try_send` placed a call.
enum Placed {
    Worker(Worker),
    /// Queued; the readers that were pending, to schedule.
    Queued(Vec<(Pid, Arc<Call>)>),
}

impl ProcessPool {
    /// The fast path (see the module docs): sends a small request to an
    /// idle worker from this thread, or queues it when every worker is
    /// busy; `None` to go through the lane (a large request, a worker to
    /// start, a pool shut down or inherited through a fork).
    pub(super) fn try_send<A, R>(
        &self,
        lane: &Arc<dyn RunQueue>,
        tasks: Option<&Arc<TaskSet>>,
        f: fn(A) -> R,
        arg: &A,
    ) -> Option<JoinHandle<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let inner = &self.inner;
        if !inner.owned_here() || tasks.is_some_and(|t| t.is_closed()) {
            return None;
        }
        let request = worker::request(f, arg).ok()?;
        if request.len() > INLINE_REQUEST {
            return None;
        }
        {
            // The cases below that give the call to the lane, checked first
            // so that no reader task is made when the lane does the call.
            // They can still arise after this look (a worker retired
            // meanwhile); the reader made by then does the call on the lane
            // itself, so the call is still one task, counted once.
            let state = inner.lock();
            if state.closed
                || state.retired
                || state.draining
                || (state.idle.is_empty() && state.live < inner.max_workers)
            {
                return None;
            }
        }
        // The reader is made lazily (see `Lazy`); the call is a member of
        // `tasks` from now on all the same.
        let call = Arc::new(Call {
            stage: Mutex::new(Stage::Done),
            reader: Mutex::new(Reader {
                lazy: Some(Lazy {
                    pool: inner.clone(),
                    lane: lane.clone(),
                    tracked: tasks.map(TaskSet::track),
                }),
                runnable: None,
                handle: None,
                sent: false,
                watch: None,
                asked: false,
            }),
            replies: inner.replies.clone(),
            detached: Mutex::new(None),
            finish: read_detached::<R>,
            make: make_reader::<R>,
        });
        #[cfg(test)]
        {
            let hook = inner
                .before_place
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(hook) = hook {
                hook(inner);
            }
        }
        let placed = {
            let mut state = inner.lock();
            if state.closed || state.retired || state.draining {
                None
            } else if let Some(worker) = state.idle.pop() {
                state.busy.push(worker.pid);
                Some(Placed::Worker(worker))
            } else if state.live < inner.max_workers {
                None
            } else {
                *call.stage() = Stage::Queued(request.clone());
                state.queue.push_back(call.clone());
                Some(Placed::Queued(std::mem::take(&mut state.pending)))
            }
        };
        match placed {
            // The lane does the call, with the reader as its task: from the
            // stage `Queued` (not in the pool's queue, so nobody else sends
            // it) its body gets a worker, sends and reads, as `call` does.
            // Nobody else sees the call yet: the handle is made below.
            None => {
                *call.stage() = Stage::Queued(request);
                if let Some(reader) = call.take() {
                    reader.schedule();
                }
            }
            Some(Placed::Worker(worker)) => {
                // At most `PIPE_BUF` bytes into the idle worker's empty
                // pipe: does not block.
                let (sent, deadline) = inner.send(&worker, &request);
                let (pid, watch) = (worker.pid, watchable(&worker, &sent, deadline));
                *call.stage() = Stage::Sent {
                    worker,
                    sent,
                    deadline,
                };
                inner.register(pid, call.clone(), watch);
            }
            Some(Placed::Queued(pending)) => {
                for (_, reader) in pending {
                    reader.schedule_now();
                }
            }
        }
        Some(JoinHandle::from_foreign(CallJoin {
            call,
            task: None,
            relay: None,
        }))
    }
}

impl Inner {
    /// Lists a sent call's reader as pending (or starts it when calls are
    /// queued or the pool drains), and tells waiting callers (one may have
    /// found no pending reader just before). A call sent as the pool was
    /// retired is let go of at once (see [`ProcessPool::retire`]).
    fn register(self: &Arc<Self>, pid: Pid, call: Arc<Call>, watch: Option<RawFd>) {
        let mut state = self.lock();
        if state.retired && !state.closed {
            drop(state);
            self.detach(pid, &call);
            return;
        }
        state.sent.push((pid, call.clone()));
        let list = !(state.draining || state.closed || !state.queue.is_empty());
        if list {
            state.pending.push((pid, call.clone()));
        }
        let waiting = state.waiting > 0;
        drop(state);
        call.mark_sent(!list, watch);
        if waiting {
            self.freed.notify_all();
        }
    }

    /// Takes `call` out of the queue, if it is there.
    fn dequeue(&self, call: &Arc<Call>) {
        let mut state = self.lock();
        if let Some(at) = state.queue.iter().position(|c| Arc::ptr_eq(c, call)) {
            let _ours = state.queue.remove(at);
            drop(state);
        }
    }

    /// Sends `call`, just taken from the queue, on `worker` (listed busy
    /// already); `state` is held until the call's stage is, so its reader
    /// sees the stage `Sent` once it is out of the queue.
    pub(super) fn send_queued(
        self: &Arc<Self>,
        state: MutexGuard<'_, State>,
        call: Arc<Call>,
        worker: Worker,
    ) {
        let mut stage = call.stage();
        drop(state);
        let Stage::Queued(request) = std::mem::replace(&mut *stage, Stage::Done) else {
            unreachable!("a queued call's stage is `Queued` until it leaves the queue");
        };
        let (sent, deadline) = self.send(&worker, &request);
        let (pid, watch) = (worker.pid, watchable(&worker, &sent, deadline));
        *stage = Stage::Sent {
            worker,
            sent,
            deadline,
        };
        drop(stage);
        self.register(pid, call, watch);
    }
}

/// The reply pipe of a call just sent to `worker`, when the reply watcher
/// may wait for it: the write went through and no deadline is the
/// reader's to keep (the deadline watcher kills the worker at its
/// deadline, which ends the wait).
fn watchable(
    worker: &Worker,
    sent: &std::io::Result<()>,
    deadline: Option<Instant>,
) -> Option<RawFd> {
    (sent.is_ok() && deadline.is_none()).then(|| worker.replies.as_raw_fd())
}

/// Every reader of `queue` and `pending`, to schedule once the state is
/// unlocked.
pub(super) fn all_readers(state: &mut State) -> Vec<Arc<Call>> {
    let queue: VecDeque<Arc<Call>> = std::mem::take(&mut state.queue);
    let pending = std::mem::take(&mut state.pending);
    queue
        .into_iter()
        .chain(pending.into_iter().map(|(_, call)| call))
        .collect()
}

impl Inner {
    /// Reads the reply to a request written (`sent`) to `worker` and
    /// hands the worker back; a worker that fails is killed, reaped and
    /// retired.
    pub(super) fn receive<R: DeserializeOwned>(
        self: &Arc<Self>,
        worker: Worker,
        sent: std::io::Result<()>,
        deadline: Option<Instant>,
    ) -> Result<R, JoinError> {
        if let Some(why) = sent.as_ref().err().and_then(super::image::not_in_image) {
            // Nothing was written: the worker serves on.
            self.release(worker);
            return Err(JoinError::transport("call", why));
        }
        let read = match sent {
            Ok(()) => match wire::read_reply(worker.replies.as_fd(), deadline) {
                // Ended without taking the request: the function never ran.
                Ok(Read::Eof { .. }) if worker.request_unread() => Err(worker::gone()),
                read => read,
            },
            Err(err) => Err(err),
        };
        // Before the worker is handed back or reaped (see `deadlines`).
        let read = if self.forget_deadline(worker.pid) {
            Ok(Read::TimedOut)
        } else {
            read
        };
        match read {
            Ok(Read::Frame(body)) => {
                self.release(worker);
                wire::decode::<R>(&body)?.into_result()
            }
            Ok(Read::TimedOut) => {
                let closed = self.unbusy(worker.pid);
                worker.kill_and_reap();
                self.retire();
                if closed {
                    return Err(JoinError::cancelled());
                }
                self.timeouts.fetch_add(1, Ordering::Release);
                Err(JoinError::timed_out())
            }
            other => {
                // Bytes of the request still in the pipe: the worker never
                // took it, so whatever ended it, the function did not run
                // (and did not crash).
                let never_ran = worker.request_unread();
                let closed = self.unbusy(worker.pid);
                let status = worker.kill_and_reap();
                self.retire();
                if closed {
                    return Err(JoinError::cancelled());
                }
                match status {
                    Some(ExitStatus::Exited(worker::SETUP_FAILED)) => {
                        Err(JoinError::transport("worker setup", worker::setup_failed()))
                    }
                    Some(ExitStatus::Signaled(sig))
                        if !never_ran && (sig != libc::SIGKILL || other.is_ok()) =>
                    {
                        self.crashes.fetch_add(1, Ordering::Release);
                        Err(JoinError::crashed(sig, sys::signal_name(sig)))
                    }
                    _ => Err(JoinError::transport(
                        "read",
                        match other {
                            Err(err) => err.to_string(),
                            _ => "the worker exited without replying".to_string(),
                        },
                    )),
                }
            }
        }
    }
}

/// A detached call's [`Finish`]: reads the reply as [`Inner::receive`]
/// does (which hands the worker back to the retired pool: killed and
/// reaped).
fn read_detached<R: DeserializeOwned + Send + 'static>(
    pool: &Arc<Inner>,
    job: Result<Job, JoinError>,
) -> Box<dyn Any + Send> {
    let result: Result<R, JoinError> =
        job.and_then(|(worker, sent, deadline)| pool.receive(worker, sent, deadline));
    Box::new(result)
}

impl Inner {
    /// Lets go of `call`, sent to worker `pid`, for a retired pool (see
    /// [`ProcessPool::retire`]): unless its reader took it first, the call
    /// leaves its reader task (dropped unrun, the task leaves its task
    /// set) and a thread of its own reads the reply into the call, for
    /// its handle. The worker is no longer listed busy, so
    /// [`ProcessPool::shutdown_now`] leaves it alone; the deadline watcher
    /// still keeps its timeout.
    ///
    /// The thread's read ends as a watched reader's does (see the module
    /// docs): on the reply, the worker's end, or the pool's timeout.
    pub(super) fn detach(self: &Arc<Self>, pid: Pid, call: &Arc<Call>) {
        let Some(job) = call.detach() else {
            return;
        };
        {
            let mut state = self.lock();
            state.busy.retain(|&p| p != pid);
            state.detached += 1;
        }
        // Nothing left for it to do; its handle waits on the call now.
        drop(call.take());
        // Kept outside the thread's closure until it runs, so a thread that
        // cannot start leaves the worker to us.
        let slot = Arc::new(Mutex::new(Some(job)));
        let (pool, theirs, ours) = (self.clone(), slot.clone(), call.clone());
        let spawned = std::thread::Builder::new()
            .name("unirun-call-reader".into())
            .spawn(move || {
                // Told on the way out, even by a panic: the last call let
                // go of stops the helpers of a pool shut down meanwhile.
                let _ended = DetachedEnded(&pool);
                let job = theirs.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(job) = job {
                    ours.finish(&pool, Ok(job));
                }
            });
        if let Err(err) = spawned {
            // The failed spawn dropped its closure: the job is ours alone.
            let job = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some((worker, _, _)) = job {
                self.forget_deadline(worker.pid);
                worker.kill_and_reap();
                self.retire();
            }
            let why = format!(
                "could not start a thread to read the reply of a call its retired pool let go of: {err}"
            );
            call.finish(self, Err(JoinError::transport("thread", why)));
            self.detached_ended();
        }
    }
}

/// Tells the pool, when dropped, that a call it let go of ended (see
/// [`Inner::detached_ended`]).
struct DetachedEnded<'a>(&'a Arc<Inner>);

impl Drop for DetachedEnded<'_> {
    fn drop(&mut self) {
        self.0.detached_ended();
    }
}
