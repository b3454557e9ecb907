//! The caller's side: a connection, a reply inbox, and the calls in
//! flight, each resolved by exactly one of its reply, its deadline, the
//! server's `max_deliver` advisory, a publish failure, the loss of the
//! server, or [`Client::shutdown_now`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use unirun_core::JoinError;

use crate::wire::{self, Reply};
use crate::{engine, ClusterOptions};

/// What resolves one call: its reply's result, or why there is none.
type Outcome = Result<Vec<u8>, Failure>;

/// Why a call (or a pack of calls) has no value: made into a fresh
/// [`JoinError`] for each call it ends, so each item of a pack gets its own.
#[derive(Debug, Clone)]
enum Failure {
    Cancelled,
    TimedOut,
    Transport(&'static str, String),
    /// A worker's answer other than a value.
    Remote(Reply),
}

impl Failure {
    fn error(&self) -> JoinError {
        match self {
            Failure::Cancelled => JoinError::cancelled(),
            Failure::TimedOut => JoinError::timed_out(),
            Failure::Transport(what, detail) => JoinError::transport(what, detail.clone()),
            Failure::Remote(reply) => reply
                .clone()
                .into_result(unirun_platform::process::signal_name)
                .err()
                .unwrap_or_else(|| JoinError::transport("worker", "a value is no failure")),
        }
    }
}

/// A connection to the cluster's server for one scope's calls.
///
/// Dropping it (or [`shutdown_now`](Self::shutdown_now)) resolves every
/// call in flight to cancelled; its thread, `unirun-cluster`, is stopped
/// without blocking the dropping thread.
pub struct Client {
    inner: Arc<Inner>,
    /// Where calls run: the runtime's handle (a call made after the
    /// runtime stopped is dropped there, so it resolves to cancelled).
    handle: tokio::runtime::Handle,
    /// Taken when the client drops, to stop it in the background.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

struct Inner {
    options: ClusterOptions,
    nats: async_nats::Client,
    js: jetstream::Context,
    /// This client's reply subjects are `{inbox}.{call id}`.
    inbox: String,
    next_id: AtomicU64,
    /// The calls waiting for an answer, by call id, with their function's
    /// name. Whoever removes an entry resolves that call; nobody else can.
    pending: Mutex<HashMap<u64, (oneshot::Sender<Outcome>, &'static str)>>,
    /// How long a job of each function took on its worker, a moving
    /// average of what the workers say.
    paces: Mutex<HashMap<&'static str, Duration>>,
    /// The server's `max_payload`, read again when the link comes back
    /// (not on every call: reading it copies the server's whole info).
    max_payload: AtomicUsize,
    /// Stream sequence -> call id, for the `max_deliver` advisory.
    sequences: Mutex<HashMap<u64, u64>>,
    /// Signs of life of calls on their last delivery, by call id.
    beats: Mutex<HashMap<u64, mpsc::UnboundedSender<()>>>,
    /// Calls in flight, at most `max_pending`.
    permits: Arc<Semaphore>,
    closed: AtomicBool,
    /// Set while the server is lost (the connection down for `lost_after`
    /// without a break); new calls and calls waiting for a permit fail at
    /// once meanwhile. Cleared when the connection is back.
    lost: watch::Sender<bool>,
    counts: Counters,
    workers: Mutex<HashSet<String>>,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    redeliveries: AtomicU64,
    crashes: AtomicU64,
    timeouts: AtomicU64,
    transport: AtomicU64,
}

/// What a [`Client`]'s calls did so far (for `Metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterCounts {
    /// Calls published (each call of a pack counts).
    pub calls: u64,
    /// Deliveries beyond the first of the jobs (single calls or packs)
    /// that answered.
    pub redeliveries: u64,
    /// Calls whose pool process was killed by a signal.
    pub crashes: u64,
    /// Calls that ran past their deadline.
    pub timeouts: u64,
    /// Calls that failed in transport: server lost, publish refused,
    /// `max_deliver` exhausted, decode.
    pub transport: u64,
    /// Distinct workers that answered.
    pub workers: u64,
}

impl Client {
    /// Connects to the server, makes sure the stream and the workers'
    /// consumer exist (configured as `options` say), and starts the
    /// reply, advisory and connection watchers. Fails, within about
    /// [`ClusterOptions::lost_after`], naming the server if it cannot.
    pub fn connect(options: ClusterOptions) -> Result<Client, String> {
        engine::check_url(&options.url)?;
        let runtime = engine::runtime("unirun-cluster")
            .map_err(|err| format!("no thread for the cluster client: {err}"))?;
        let (up, link) = watch::channel(true);
        let inner = wait_on(&runtime, connect(options, Arc::new(up)))
            .ok_or_else(|| "the cluster client's thread stopped".to_string())??;
        let inner = Arc::new(inner);
        runtime.spawn(replies(inner.clone()));
        runtime.spawn(watch_connection(inner.clone(), link));
        Ok(Client {
            inner,
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
        })
    }

    /// The options this client was connected with.
    pub fn options(&self) -> &ClusterOptions {
        &self.inner.options
    }

    /// Calls the function registered as `name` with `signature` on the
    /// encoded `payload`; resolves to the encoded result. Runs on the
    /// client's thread; dropping the future cancels the call (a job a
    /// worker already took still runs there).
    pub fn call(
        &self,
        name: &'static str,
        signature: u64,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, JoinError>> + Send + 'static {
        let inner = self.inner.clone();
        let call = self.send(name, signature, payload, None);
        async move {
            let outcome = call.await;
            inner.count(&outcome);
            outcome.map_err(|failure| failure.error())
        }
    }

    /// Publishes one job (`pack`: a pack of that many calls) and resolves
    /// to its reply or why there is none.
    fn send(
        &self,
        name: &'static str,
        signature: u64,
        payload: Vec<u8>,
        pack: Option<usize>,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        send(&self.inner, &self.handle, name, signature, payload, pack)
    }

    /// Resolves every call in flight to cancelled and refuses new ones.
    pub fn shutdown_now(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.permits.close();
        self.inner.fail_all(|| Failure::Cancelled);
    }

    /// What this client's calls did so far.
    pub fn counts(&self) -> ClusterCounts {
        let c = &self.inner.counts;
        ClusterCounts {
            calls: c.calls.load(Ordering::Relaxed),
            redeliveries: c.redeliveries.load(Ordering::Relaxed),
            crashes: c.crashes.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            transport: c.transport.load(Ordering::Relaxed),
            workers: self
                .inner
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len() as u64,
        }
    }

    /// How many pull requests of workers the server holds right now, for
    /// the trace. Not a count of workers: each worker keeps several.
    pub fn waiting_workers(&self) -> Option<usize> {
        let rt = self.runtime.lock().unwrap_or_else(PoisonError::into_inner);
        let rt = rt.as_ref()?;
        let inner = self.inner.clone();
        wait_on(rt, async move {
            let stream = inner.js.get_stream(&inner.options.stream).await.ok()?;
            let mut consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer(&inner.options.consumer()).await.ok()?;
            Some(consumer.info().await.ok()?.num_waiting)
        })
        .flatten()
    }
}

/// Publishes one job (`pack`: a pack of that many calls) from the
/// client's runtime, and resolves to its reply or why there is none. A
/// runtime shut down already drops the task at once: cancelled.
fn send(
    inner: &Arc<Inner>,
    runtime: &tokio::runtime::Handle,
    name: &'static str,
    signature: u64,
    payload: Vec<u8>,
    pack: Option<usize>,
) -> impl Future<Output = Outcome> + Send + 'static {
    let inner = inner.clone();
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    // The outcome comes back through a channel that is not tokio's: its
    // waker may run the caller's task right where it is woken (the
    // facade's does), which a tokio resource's cooperative budget would
    // turn into a wake-up of itself.
    let (tx, rx) = futures_channel::oneshot::channel();
    let call = call(inner.clone(), id, name, signature, payload, pack);
    let task = runtime
        .spawn(async move {
            let _ = tx.send(call.await);
        })
        .abort_handle();
    let guard = CancelOnDrop {
        inner,
        id,
        task: Some(task),
    };
    async move {
        // Dropped unsent (the task was aborted, or its runtime is gone or
        // never took it): cancelled.
        let outcome = rx.await.unwrap_or(Err(Failure::Cancelled));
        drop(guard);
        outcome
    }
}

/// Runs `future` on the client's thread and waits for it here: unlike
/// `Runtime::block_on`, this works on a thread inside another tokio
/// runtime too (a scope built in `#[tokio::main]`). `None` if the
/// runtime dropped it. Bounded: every future given here is (connection
/// and request timeouts).
fn wait_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().ok()
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown_now();
        if let Some(rt) = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.options.url)
            .field("stream", &self.inner.options.stream)
            .finish()
    }
}

/// Stops a call the caller stopped waiting for: its task (which may still
/// wait for a permit, and would hold one until its deadline) and its
/// entry. Dropped after the call ended too, where both are no-ops.
struct CancelOnDrop {
    inner: Arc<Inner>,
    id: u64,
    task: Option<tokio::task::AbortHandle>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        self.inner.take(self.id);
    }
}

impl Inner {
    fn take(&self, id: u64) -> Option<oneshot::Sender<Outcome>> {
        self.take_entry(id).map(|(tx, _)| tx)
    }

    /// A call's entry, with its function's name.
    fn take_entry(&self, id: u64) -> Option<(oneshot::Sender<Outcome>, &'static str)> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }

    fn fail_all(&self, err: impl Fn() -> Failure) {
        let all: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for (_, (tx, _)) in all {
            let _ = tx.send(Err(err()));
        }
    }

    /// The error of a call the server's loss ended.
    fn lost_error(&self) -> Failure {
        Failure::Transport(
            "server",
            format!(
                "lost the NATS server at {}: no connection for {:?}",
                self.options.url, self.options.lost_after
            ),
        )
    }

    /// Counts one call's outcome.
    fn count(&self, outcome: &Outcome) {
        let counter = match outcome {
            Ok(_) | Err(Failure::Cancelled | Failure::Remote(Reply::Panicked { .. })) => return,
            Err(Failure::Remote(Reply::Crashed { .. })) => &self.counts.crashes,
            Err(Failure::TimedOut | Failure::Remote(Reply::TimedOut)) => &self.counts.timeouts,
            Err(Failure::Transport(..) | Failure::Remote(_)) => &self.counts.transport,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes how long a job of `name` took on its worker (a moving
    /// average), so `map` knows which functions are short.
    fn note(&self, name: &'static str, took: Duration) {
        let mut paces = self.paces.lock().unwrap_or_else(PoisonError::into_inner);
        let pace = paces.entry(name).or_insert(took);
        *pace = (*pace * 3 + took) / 4;
    }
}

/// `up` follows the connection: `false` from a disconnection until the
/// client is connected again.
async fn connect(options: ClusterOptions, up: Arc<watch::Sender<bool>>) -> Result<Inner, String> {
    let url = options.url.clone();
    let nats = engine::connect_options("caller", &options)
        .event_callback(move |event| {
            let up = up.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        up.send_replace(false);
                    }
                    async_nats::Event::Connected => {
                        up.send_replace(true);
                    }
                    _ => {}
                }
            }
        })
        .connect(&url)
        .await
        .map_err(|err| format!("cannot reach the NATS server at {url}: {err}"))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(options.lost_after.max(Duration::from_millis(100)))
        .build(nats.clone());
    let stream = engine::ensure_stream(&js, &options).await.map_err(|err| {
        format!("NATS server at {url}: {err} (is JetStream on? start it with -js)")
    })?;
    engine::ensure_consumer(&stream, &options)
        .await
        .map_err(|err| format!("NATS server at {url}: {err}"))?;
    let inbox = nats.new_inbox();
    let max_payload = nats.server_info().max_payload;
    Ok(Inner {
        permits: Arc::new(Semaphore::new(options.max_pending)),
        options,
        nats,
        js,
        inbox,
        next_id: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
        paces: Mutex::new(HashMap::new()),
        max_payload: AtomicUsize::new(max_payload),
        sequences: Mutex::new(HashMap::new()),
        beats: Mutex::new(HashMap::new()),
        closed: AtomicBool::new(false),
        lost: watch::channel(false).0,
        counts: Counters::default(),
        workers: Mutex::new(HashSet::new()),
    })
}

/// One call, start to end. It ends: every branch either resolves it or
/// waits for the deadline, which ends it.
async fn call(
    inner: Arc<Inner>,
    id: u64,
    name: &'static str,
    signature: u64,
    payload: Vec<u8>,
    pack: Option<usize>,
) -> Outcome {
    // One instant for both deadlines: the caller's, and the one the job
    // carries to the worker (which drops a job found past it).
    let deadline = tokio::time::Instant::now() + inner.options.deadline;
    let unix_deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(inner.options.deadline)
        .as_millis();
    // A call still waiting for its permit at its deadline is never
    // published: it timed out unsent.
    let permit = tokio::select! {
        permit = inner.permits.clone().acquire_owned() => permit,
        () = server_lost(&inner) => return Err(inner.lost_error()),
        () = tokio::time::sleep_until(deadline) => return Err(Failure::TimedOut),
    };
    let Ok(_permit) = permit else {
        return Err(Failure::Cancelled);
    };
    if inner.closed.load(Ordering::Acquire) {
        return Err(Failure::Cancelled);
    }
    if tokio::time::Instant::now() >= deadline {
        return Err(Failure::TimedOut);
    }
    let (tx, mut rx) = oneshot::channel();
    inner
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, (tx, name));
    // Checked after the entry is in: the watcher sets `lost` before it
    // fails the entries, so a call it missed sees the flag here.
    if *inner.lost.borrow() && inner.take(id).is_some() {
        return Err(inner.lost_error());
    }
    let (beat_tx, mut beats) = mpsc::unbounded_channel();
    inner
        .beats
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, beat_tx);
    let mut entries = Entries {
        beats: &inner.beats,
        sequences: &inner.sequences,
        id,
        sequence: None,
    };
    // Set once the last delivery runs: when its signs of life stop.
    let mut silent_at: Option<tokio::time::Instant> = None;
    inner
        .counts
        .calls
        .fetch_add(pack.unwrap_or(1) as u64, Ordering::Relaxed);
    let mut message = PublishMessage::build()
        .payload(payload.into())
        .message_id(format!("{}.{id}", inner.inbox))
        .header(wire::FUNCTION, name)
        .header(wire::SIGNATURE, format!("{signature:016x}"))
        .header(wire::REPLY_TO, format!("{}.{id}", inner.inbox))
        .header(wire::DEADLINE, unix_deadline.to_string())
        .header(
            wire::ACK_WAIT,
            inner.options.ack_wait.as_millis().to_string(),
        )
        .header(wire::MAX_DELIVER, inner.options.max_deliver.to_string());
    if let Some(calls) = pack {
        message = message.header(wire::PACK, calls.to_string());
    }
    let published = async {
        let ack = inner
            .js
            .send_publish(inner.options.subject(), message)
            .await
            .map_err(|err| err.to_string())?;
        ack.await.map_err(|err| err.to_string())
    };
    tokio::pin!(published);
    let mut acked = false;
    let outcome = loop {
        tokio::select! {
            biased;
            answer = &mut rx => break answer.unwrap_or(Err(Failure::Cancelled)),
            ack = &mut published, if !acked => {
                acked = true;
                match ack {
                    Ok(ack) => {
                        entries.sequence = Some(ack.sequence);
                        inner.sequences.lock().unwrap_or_else(PoisonError::into_inner).insert(ack.sequence, id);
                    }
                    Err(err) => {
                        if inner.take(id).is_some() {
                            break Err(Failure::Transport(
                                "publish",
                                format!("the NATS server at {} did not take the call: {err}", inner.options.url),
                            ));
                        }
                        // Someone else resolved it meanwhile; its answer is in `rx`.
                    }
                }
            }
            Some(()) = beats.recv() => {
                silent_at = Some(tokio::time::Instant::now() + inner.options.ack_wait * 2);
            }
            () = sleep_until_some(silent_at) => {
                silent_at = None;
                if inner.take(id).is_some() {
                    break Err(Failure::Transport(
                        "max_deliver",
                        format!(
                            "the job was handed to workers {} times (max_deliver) and none answered: \
                             the last one went silent (its host was lost, or the job kills its worker)",
                            inner.options.max_deliver
                        ),
                    ));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if inner.take(id).is_some() {
                    break Err(Failure::TimedOut);
                }
            }
        }
    };
    drop(entries);
    outcome
}

/// A call's entries in [`Inner::beats`] and [`Inner::sequences`], removed
/// however the call ends: also when its task is aborted mid-way.
struct Entries<'a> {
    beats: &'a Mutex<HashMap<u64, mpsc::UnboundedSender<()>>>,
    sequences: &'a Mutex<HashMap<u64, u64>>,
    id: u64,
    /// The job's stream sequence, once the server took it.
    sequence: Option<u64>,
}

impl Drop for Entries<'_> {
    fn drop(&mut self) {
        self.beats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        if let Some(sequence) = self.sequence {
            self.sequences
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&sequence);
        }
    }
}

/// Returns once the server is lost (at once if it is now).
async fn server_lost(inner: &Inner) {
    let mut lost = inner.lost.subscribe();
    if lost.wait_for(|lost| *lost).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Hands each reply to its call; replies of calls already resolved
/// (a redelivered job answered twice) are dropped.
async fn replies(inner: Arc<Inner>) {
    let advisory = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
        inner.options.stream,
        inner.options.consumer()
    );
    let (Ok(mut replies), Ok(mut advisories)) = (
        inner.nats.subscribe(format!("{}.*", inner.inbox)).await,
        inner.nats.subscribe(advisory).await,
    ) else {
        inner.fail_all(|| {
            Failure::Transport("subscribe", "could not subscribe to the reply inbox".into())
        });
        return;
    };
    loop {
        tokio::select! {
            Some(message) = replies.next() => {
                let id = message.subject.rsplit('.').next().and_then(|s| s.parse::<u64>().ok());
                let decoded = postcard::from_bytes::<(u32, &str, u64, Reply)>(&message.payload);
                if let (Some(id), Ok((_, _, _, Reply::Alive))) = (id, &decoded) {
                    if let Some(beat) = inner.beats.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
                        let _ = beat.send(());
                    }
                    continue;
                }
                let Some((tx, name)) = id.and_then(|id| inner.take_entry(id)) else { continue };
                let outcome = match decoded {
                    Ok((delivered, worker, micros, reply)) => {
                        inner.counts.redeliveries.fetch_add(u64::from(delivered.saturating_sub(1)), Ordering::Relaxed);
                        {
                            let mut workers = inner.workers.lock().unwrap_or_else(PoisonError::into_inner);
                            if !workers.contains(worker) {
                                workers.insert(worker.to_string());
                            }
                        }
                        match reply {
                            Reply::Value(bytes) => {
                                if micros > 0 {
                                    inner.note(name, Duration::from_micros(micros));
                                }
                                Ok(bytes)
                            }
                            other => Err(Failure::Remote(other)),
                        }
                    }
                    Err(err) => Err(Failure::Transport("decode", format!("the worker's reply: {err}"))),
                };
                let _ = tx.send(outcome);
            }
            Some(message) = advisories.next() => exhausted(&inner, &message.payload).await,
            else => break,
        }
    }
}

/// The server gave up on a job after `max_deliver` deliveries: its call
/// fails naming that, and the job leaves the stream.
async fn exhausted(inner: &Inner, payload: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Advisory {
        stream_seq: u64,
        deliveries: u64,
    }
    let Ok(advisory) = serde_json::from_slice::<Advisory>(payload) else {
        return;
    };
    let id = inner
        .sequences
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&advisory.stream_seq);
    let Some(tx) = id.and_then(|id| inner.take(id)) else {
        return;
    };
    let _ = tx.send(Err(Failure::Transport(
        "max_deliver",
        format!(
            "the job was handed to workers {} times (max_deliver) and none answered: \
             their hosts were lost, or the job kills its worker",
            advisory.deliveries
        ),
    )));
    if let Ok(stream) = inner.js.get_stream(&inner.options.stream).await {
        let _ = stream.delete_message(advisory.stream_seq).await;
    }
}

/// Follows the connection. Down for `lost_after` without a break: the
/// server is lost, the calls in flight fail and new ones fail at once until
/// it is back. Back after a shorter break: the calls in flight fail as
/// transport errors, for a reply published while the link was down never
/// reaches this client (the server keeps no replies); the caller may call
/// again (remote functions are idempotent).
async fn watch_connection(inner: Arc<Inner>, link: watch::Receiver<bool>) {
    let lost_after = inner.options.lost_after;
    let url = inner.options.url.clone();
    watch_link(
        link,
        || tokio::time::sleep(lost_after),
        |change| match change {
            Link::Lost => {
                inner.lost.send_replace(true);
                inner.fail_all(|| inner.lost_error());
            }
            Link::Found => {
                inner.lost.send_replace(false);
                tokio::spawn(remake(inner.clone()));
            }
            Link::Back => {
                tokio::spawn(remake(inner.clone()));
                inner.fail_all(|| {
                    Failure::Transport(
                        "connection",
                        format!(
                        "the connection to the NATS server at {url} broke while the call waited, \
                         so its reply may have been lost: call again"
                    ),
                    )
                });
            }
        },
    )
    .await;
}

/// Makes the stream and the workers' consumer again if the server came
/// back without them (a server restarted with [`Storage::Memory`]
/// streams, or a new store), and reads its `max_payload` again. A server
/// just started may not serve JetStream yet: tried again every 200 ms,
/// for ten seconds at most (each try bounded by the context's request
/// timeout); calls meanwhile fail with the server's answer.
///
/// [`Storage::Memory`]: crate::Storage::Memory
async fn remake(inner: Arc<Inner>) {
    inner
        .max_payload
        .store(inner.nats.server_info().max_payload, Ordering::Relaxed);
    for _ in 0..50 {
        if let Ok(stream) = engine::ensure_stream(&inner.js, &inner.options).await {
            if engine::ensure_consumer(&stream, &inner.options)
                .await
                .is_ok()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A change [`watch_link`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// The link was down for one timer without a break.
    Lost,
    /// The link is up again after [`Link::Lost`].
    Found,
    /// The link is up again after a break shorter than the timer.
    Back,
}

/// Reports the breaks of `up` (`false` while the link is down) to
/// `report`; a new `timer()` starts at each break, so only downtime
/// without a break counts. Ends when `up`'s sender is gone.
async fn watch_link<T, F>(mut up: watch::Receiver<bool>, mut timer: T, mut report: impl FnMut(Link))
where
    T: FnMut() -> F,
    F: Future<Output = ()>,
{
    loop {
        if up.wait_for(|up| !*up).await.is_err() {
            return;
        }
        let back = tokio::select! {
            back = up.wait_for(|up| *up) => Some(back.is_ok()),
            () = timer() => None,
        };
        match back {
            Some(true) => report(Link::Back),
            Some(false) => return,
            None => {
                report(Link::Lost);
                if up.wait_for(|up| *up).await.is_err() {
                    return;
                }
                report(Link::Found);
            }
        }
    }
}

impl Client {
    /// Calls `f(arg)` on a worker: `f` must be registered with
    /// `#[unirun::remote]` (else this fails at once, before anything is
    /// sent, with [`JoinError::not_started`] saying so); `arg` and the
    /// result travel postcard-encoded.
    pub fn call_fn<A, R>(
        &self,
        f: fn(A) -> R,
        arg: &A,
    ) -> Result<impl Future<Output = Result<R, JoinError>> + Send + 'static, JoinError>
    where
        A: serde::Serialize,
        R: serde::de::DeserializeOwned + Send + 'static,
    {
        let remote = crate::registry::by_address(f as usize).ok_or_else(|| {
            JoinError::not_started(format!(
                "the {} at {:#x} is not registered for the cluster: put #[unirun::remote] on it",
                std::any::type_name::<fn(A) -> R>(),
                f as usize
            ))
        })?;
        let payload = postcard::to_allocvec(arg).map_err(|err| {
            JoinError::transport(
                "encode",
                format!("argument of type {}: {err}", std::any::type_name::<A>()),
            )
        })?;
        self.check_fits(remote.name, payload.len())?;
        let call = self.call(remote.name, crate::registry::signature(remote), payload);
        Ok(async move { decode(call.await?) })
    }

    /// Fails a call whose argument is `len` bytes encoded if it cannot fit
    /// in a message (the server would close the connection for it, losing
    /// the replies of the calls in flight).
    fn check_fits(&self, name: &str, len: usize) -> Result<(), JoinError> {
        let max_payload = self.inner.max_payload.load(Ordering::Relaxed);
        if wire::job_fits(len, name, &self.inner.inbox, max_payload) {
            return Ok(());
        }
        Err(JoinError::not_started(format!(
            "the argument of `{name}` is {len} bytes encoded, over the NATS server's max_payload \
             of {max_payload} bytes (headers included): send less, or raise the server's \
             max_payload"
        )))
    }

    /// Whether the jobs of `f` are known to be short: under a millisecond
    /// each on their workers so far (as their replies say). `map` packs
    /// calls of such a function; others go one per message, so a long one
    /// never waits behind another in one worker's pool process.
    pub fn is_short<A, R>(&self, f: fn(A) -> R) -> bool {
        let Some(remote) = crate::registry::by_address(f as usize) else {
            return false;
        };
        self.inner
            .paces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(remote.name)
            .is_some_and(|pace| *pace < SHORT)
    }

    /// Calls `f` on each of `args` as [`call_fn`](Self::call_fn) does, in
    /// packs: as many calls as fit go in one message (one publish, one
    /// reply, one acknowledgement, one pool round trip on the worker for
    /// all), and resolves to each call's outcome, in order. The calls of a
    /// pack share its delivery (deadline, `max_deliver`, loss of the server
    /// or worker: each gets its own error); a panic or crash is the call's
    /// own. A pack whose answers do not fit in one message together is
    /// called again one call per message.
    pub fn call_pack_fn<A, R>(
        &self,
        f: fn(A) -> R,
        args: Vec<A>,
    ) -> impl Future<Output = Vec<Result<R, JoinError>>> + Send + 'static
    where
        A: serde::Serialize,
        R: serde::de::DeserializeOwned + Send + 'static,
    {
        // Each item's outcome: decided here (not registered, too large,
        // unencodable), or the index of its pack and its place in it.
        enum Slot {
            Failed(JoinError),
            In(usize),
        }
        let remote = crate::registry::by_address(f as usize);
        let mut slots = Vec::with_capacity(args.len());
        let mut packs: Vec<Vec<Vec<u8>>> = Vec::new();
        let max_payload = self.inner.max_payload.load(Ordering::Relaxed);
        let mut room = 0usize;
        for arg in &args {
            let Some(remote) = remote else {
                slots.push(Slot::Failed(JoinError::not_started(format!(
                    "the {} at {:#x} is not registered for the cluster: put #[unirun::remote] on it",
                    std::any::type_name::<fn(A) -> R>(),
                    f as usize
                ))));
                continue;
            };
            let payload = match postcard::to_allocvec(arg) {
                Ok(payload) => payload,
                Err(err) => {
                    slots.push(Slot::Failed(JoinError::transport(
                        "encode",
                        format!("argument of type {}: {err}", std::any::type_name::<A>()),
                    )));
                    continue;
                }
            };
            if let Err(err) = self.check_fits(remote.name, payload.len()) {
                slots.push(Slot::Failed(err));
                continue;
            }
            // A length prefix of at most 10 bytes goes with each.
            let size = payload.len() + 10;
            let last = packs.len().wrapping_sub(1);
            match packs.last_mut() {
                Some(pack) if size <= room => {
                    room -= size;
                    slots.push(Slot::In(last));
                    pack.push(payload);
                }
                _ => {
                    room = max_payload.saturating_sub(
                        size + remote.name.len() + 2 * self.inner.inbox.len() + 1024,
                    );
                    slots.push(Slot::In(packs.len()));
                    packs.push(vec![payload]);
                }
            }
        }
        let calls: Vec<_> = match remote {
            None => Vec::new(),
            Some(remote) => {
                let signature = crate::registry::signature(remote);
                packs
                    .into_iter()
                    .map(|pack| {
                        send_pack(
                            self.inner.clone(),
                            self.handle.clone(),
                            remote.name,
                            signature,
                            pack,
                        )
                    })
                    .collect()
            }
        };
        async move {
            let mut answered: Vec<std::vec::IntoIter<Result<Vec<u8>, JoinError>>> =
                futures_util::future::join_all(calls)
                    .await
                    .into_iter()
                    .map(Vec::into_iter)
                    .collect();
            slots
                .into_iter()
                .map(|slot| match slot {
                    Slot::Failed(err) => Err(err),
                    Slot::In(pack) => answered[pack]
                        .next()
                        .unwrap_or_else(|| Err(JoinError::cancelled()))
                        .and_then(decode),
                })
                .collect()
        }
    }
}

/// Decodes an encoded result of type `R`.
fn decode<R: serde::de::DeserializeOwned>(bytes: Vec<u8>) -> Result<R, JoinError> {
    postcard::from_bytes(&bytes).map_err(|err| {
        JoinError::transport(
            "decode",
            format!("result of type {}: {err}", std::any::type_name::<R>()),
        )
    })
}

/// A function whose jobs take less than this each is short (see
/// [`Client::is_short`]).
const SHORT: Duration = Duration::from_millis(1);

/// Sends one pack (one call: alone) and resolves to the encoded result or
/// error of each of its calls, in order, each counted. A pack the worker
/// answered [`Reply::Unpack`] is sent again one call per message.
async fn send_pack(
    inner: Arc<Inner>,
    runtime: tokio::runtime::Handle,
    name: &'static str,
    signature: u64,
    payloads: Vec<Vec<u8>>,
) -> Vec<Result<Vec<u8>, JoinError>> {
    let n = payloads.len();
    let outcomes: Vec<Outcome> = if n == 1 {
        let payload = payloads.into_iter().next().unwrap_or_default();
        vec![send(&inner, &runtime, name, signature, payload, None).await]
    } else {
        let packed = postcard::to_allocvec(&payloads).unwrap_or_default();
        match send(&inner, &runtime, name, signature, packed, Some(n)).await {
            Ok(bytes) => match postcard::from_bytes::<Vec<Reply>>(&bytes) {
                Ok(replies) if replies.len() == n => replies
                    .into_iter()
                    .map(|reply| match reply {
                        Reply::Value(bytes) => Ok(bytes),
                        other => Err(Failure::Remote(other)),
                    })
                    .collect(),
                Ok(replies) => vec![
                    Err(Failure::Transport(
                        "decode",
                        format!(
                            "the worker answered {} calls of a pack of {n}",
                            replies.len()
                        ),
                    ));
                    n
                ],
                Err(err) => vec![
                    Err(Failure::Transport(
                        "decode",
                        format!("the worker's answers to a pack: {err}")
                    ));
                    n
                ],
            },
            Err(Failure::Remote(Reply::Unpack)) => {
                // Counted as its calls, which go again one by one.
                inner.counts.calls.fetch_sub(n as u64, Ordering::Relaxed);
                let alone = payloads
                    .into_iter()
                    .map(|payload| send(&inner, &runtime, name, signature, payload, None));
                futures_util::future::join_all(alone).await
            }
            Err(failure) => vec![Err(failure); n],
        }
    };
    outcomes
        .into_iter()
        .map(|outcome| {
            inner.count(&outcome);
            outcome.map_err(|failure| failure.error())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A call task aborted while it waits (as `CancelOnDrop` does) leaves
    /// no entry behind.
    #[test]
    fn an_aborted_call_leaves_no_entries() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let beats = Arc::new(Mutex::new(HashMap::new()));
        let sequences = Arc::new(Mutex::new(HashMap::new()));
        let (b, q) = (beats.clone(), sequences.clone());
        let watched = beats.clone();
        rt.block_on(async move {
            let task = tokio::spawn(async move {
                let (tx, _rx) = mpsc::unbounded_channel();
                b.lock().unwrap().insert(7, tx);
                q.lock().unwrap().insert(70, 7);
                let mut entries = Entries {
                    beats: &b,
                    sequences: &q,
                    id: 7,
                    sequence: None,
                };
                entries.sequence = Some(70);
                std::future::pending::<()>().await;
                drop(entries);
            });
            while watched.lock().unwrap().is_empty() {
                tokio::task::yield_now().await;
            }
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
        });
        assert!(beats.lock().unwrap().is_empty());
        assert!(sequences.lock().unwrap().is_empty());
    }

    /// Yields until `reports` has `n` entries (or a bound of yields).
    async fn settle(reports: &Mutex<Vec<Link>>, n: usize) {
        for _ in 0..1000 {
            if reports.lock().unwrap().len() >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Two short breaks whose sum exceeds the timer are two `Back`s, not a
    /// loss: each break starts a timer of its own. A break that outlasts
    /// its timer is `Lost`, then `Found`.
    #[test]
    fn only_downtime_without_a_break_is_a_loss() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (up, link) = watch::channel(true);
            // Timer `k` (the k-th started) fires once `fired` reaches k.
            let (fire, fired) = watch::channel(0usize);
            let started = Arc::new(AtomicUsize::new(0));
            let reports = Arc::new(Mutex::new(Vec::new()));
            let (s, r) = (started.clone(), reports.clone());
            tokio::spawn(async move {
                watch_link(
                    link,
                    move || {
                        let k = s.fetch_add(1, Ordering::SeqCst) + 1;
                        let mut fired = fired.clone();
                        async move {
                            let _ = fired.wait_for(|&f| f >= k).await;
                        }
                    },
                    move |change| r.lock().unwrap().push(change),
                )
                .await;
            });
            up.send_replace(false);
            settle(&reports, 1).await;
            up.send_replace(true);
            settle(&reports, 1).await;
            assert_eq!(*reports.lock().unwrap(), [Link::Back]);
            up.send_replace(false);
            settle(&reports, 2).await;
            // The first break's timer runs out during the second break.
            fire.send_replace(1);
            settle(&reports, 2).await;
            assert_eq!(*reports.lock().unwrap(), [Link::Back]);
            assert_eq!(started.load(Ordering::SeqCst), 2);
            // The second break's own timer runs out: lost.
            fire.send_replace(2);
            settle(&reports, 2).await;
            assert_eq!(*reports.lock().unwrap(), [Link::Back, Link::Lost]);
            up.send_replace(true);
            settle(&reports, 3).await;
            assert_eq!(
                *reports.lock().unwrap(),
                [Link::Back, Link::Lost, Link::Found]
            );
        });
    }
}
