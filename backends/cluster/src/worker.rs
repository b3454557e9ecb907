//! The worker's side: pull jobs from the shared consumer, as many at a
//! time as the worker has pool processes, run each, reply, acknowledge.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use unirun_core::JoinError;

use crate::registry::{Job, Ran};
use crate::wire::{self, Reply};
use crate::{engine, ClusterOptions};

/// How many jobs a worker holds per pool process.
const JOBS_PER_PROCESS: usize = 16;

/// At most this many jobs go to a pool process in one frame.
const JOBS_PER_BATCH: usize = 8;

/// A function whose jobs took less than this each (a moving average) is
/// short: its jobs that arrive together go to a pool process in one frame,
/// one pipe round trip for all. Jobs of other functions (or of one not run
/// yet here) go one per frame, so a long job never holds back the answer
/// of another.
const SHORT: Duration = Duration::from_millis(1);

/// What one job of a batch did, or why the batch has no answers: what the
/// function given to [`serve`] resolves to.
pub type Batch = Result<Vec<Ran>, JoinError>;

/// Serves jobs until the process is killed: connects to the server in
/// `options` (retrying while it is down, or while no caller has made the
/// stream and the workers' consumer yet) and runs jobs through `run`, up
/// to sixteen at once per unit of `width` (the facade's pool processes, so
/// a crash kills a pool process, not the worker). `run` gets a batch of
/// jobs and answers one [`Ran`] per job, in order: packs (several calls
/// in one message) and jobs of short functions that arrive together are
/// run as one batch (at most eight messages, spread over `width`), one
/// pool round trip for all; a batch that fails as a whole
/// (its pool process crashed) is run again one job at a time, so only the
/// job that crashed it fails. Returns only if it cannot start: a bad URL,
/// or no thread for its runtime.
pub fn serve<F, Fut>(options: ClusterOptions, width: usize, run: F) -> Result<(), String>
where
    F: Fn(Vec<Job>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Batch> + Send + 'static,
{
    engine::check_url(&options.url)?;
    let runtime = engine::runtime("unirun-cluster-worker")
        .map_err(|err| format!("no thread for the cluster worker: {err}"))?;
    runtime.block_on(async move {
        let worker = format!(
            "{}:{}",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            std::process::id()
        );
        let nats = loop {
            match engine::connect_options("worker", &options)
                .connect(&options.url)
                .await
            {
                Ok(nats) => break nats,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        // Jobs spend most of their time on the wire, not in the pool: a
        // few jobs per pool process keep it busy (a job waiting for one
        // still sends signs of life, so it is not redelivered meanwhile).
        let width = width.max(1);
        let max_payload = nats.server_info().max_payload;
        let ctx = Arc::new(Ctx {
            nats,
            options,
            worker: worker.into(),
            run,
            paces: Mutex::new(HashMap::new()),
            width,
            max_payload: Mutex::new((std::time::Instant::now(), max_payload)),
        });
        // On the runtime's thread, where async-nats reads the socket: a
        // job reaches its task without a wake-up of another thread (this
        // one only waits).
        let _ = tokio::spawn(pull(ctx, width * JOBS_PER_PROCESS)).await;
    });
    Ok(())
}

/// What every job of a worker needs.
struct Ctx<F> {
    nats: async_nats::Client,
    options: ClusterOptions,
    worker: Arc<str>,
    run: F,
    /// How long a job of each function took, a moving average.
    paces: Mutex<HashMap<String, Duration>>,
    /// The pool's processes.
    width: usize,
    /// The server's `max_payload`, and when it was read.
    max_payload: Mutex<(std::time::Instant, usize)>,
}

impl<F> Ctx<F> {
    /// Whether `function`'s jobs are known to be short.
    fn is_short(&self, function: &str) -> bool {
        self.paces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(function)
            .is_some_and(|pace| *pace < SHORT)
    }

    /// Notes that each job of `batch` took `each`.
    fn note(&self, batch: &[Admitted], each: Duration) {
        let mut paces = self.paces.lock().unwrap_or_else(PoisonError::into_inner);
        for admitted in batch {
            match paces.get_mut(&admitted.function) {
                Some(pace) => *pace = (*pace * 3 + each) / 4,
                None => {
                    paces.insert(admitted.function.clone(), each);
                }
            }
        }
    }

    /// The server's `max_payload`, read again once a second at most
    /// (reading it copies the server's whole info).
    fn max_payload(&self) -> usize {
        let mut known = self
            .max_payload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if known.0.elapsed() >= Duration::from_secs(1) {
            *known = (
                std::time::Instant::now(),
                self.nats.server_info().max_payload,
            );
        }
        known.1
    }
}

/// The workers' consumer, once a caller made it and its stream.
async fn consumer(
    nats: &async_nats::Client,
    options: &ClusterOptions,
) -> Result<PullConsumer, String> {
    let js = jetstream::new(nats.clone());
    // Callers own the stream's and the consumer's settings: a worker waits
    // for one to make them (its own settings could refuse the callers').
    let stream = engine::find_stream(&js, options).await?;
    stream
        .get_consumer(&options.consumer())
        .await
        .map_err(|err| err.to_string())
}

/// Takes jobs from one long-lived pull subscription and runs them on tasks
/// of their own, at most `jobs` at once. The subscription asks the server
/// for `jobs` messages at a time and asks again when half of them
/// arrived, so the next jobs are on their way while these run (a job
/// costs no pull round trip of its own). A job is only taken from the
/// subscription once a slot is free; until then at most one batch waits
/// in it, on the server's `ack_wait` clock (redelivered if the jobs ahead
/// of it outlast that: delivery is at least once). With a job, the jobs
/// already in the subscription are taken too (as many as slots are free),
/// and go to the pool together where they are short ([`dispatch`]).
///
/// Ends never: a failed or ended subscription is made again, on the
/// consumer looked up again (async-nats renews the pull requests after a
/// reconnect itself; one that expires is renewed too).
async fn pull<F, Fut>(ctx: Arc<Ctx<F>>, jobs: usize)
where
    F: Fn(Vec<Job>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Batch> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(jobs));
    let gather = ctx.width * JOBS_PER_BATCH;
    loop {
        let Ok(consumer) = consumer(&ctx.nats, &ctx.options).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(jobs)
            .expires(Duration::from_secs(5))
            .heartbeat(Duration::from_secs(1))
            .messages()
            .await;
        let Ok(mut messages) = messages else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // What the subscription gave while jobs were being gathered, if it
        // was no job: handled as if it came next.
        let mut stash = None;
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let item = match stash.take() {
                Some(item) => item,
                None => messages.next().await,
            };
            match item {
                Some(Ok(message)) => {
                    let mut ready = vec![(message, slot)];
                    while ready.len() < gather {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            break;
                        };
                        match messages.next().now_or_never() {
                            Some(Some(Ok(message))) => ready.push((message, slot)),
                            Some(other) => {
                                stash = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    dispatch(&ctx, ready);
                }
                // A heartbeat missed while every slot was busy, or a
                // failed pull request: the subscription carries on.
                Some(Err(err))
                    if matches!(
                        err.kind(),
                        MessagesErrorKind::MissingHeartbeat | MessagesErrorKind::Pull
                    ) => {}
                // The consumer went away (or a status it cannot resume
                // from): subscribe again.
                Some(Err(_)) | None => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            }
        }
    }
}

/// Starts tasks for messages taken together, each holding its slot: the
/// packs, and the jobs of functions known to be short, in at most `width`
/// batches (one per pool process, at most [`JOBS_PER_BATCH`] messages
/// each); every other job alone.
fn dispatch<F, Fut>(ctx: &Arc<Ctx<F>>, ready: Vec<(jetstream::Message, OwnedSemaphorePermit)>)
where
    F: Fn(Vec<Job>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Batch> + Send + 'static,
{
    // A pack says its caller found the function short.
    let (short, other): (Vec<_>, Vec<_>) = ready.into_iter().partition(|(message, _)| {
        header(message, wire::PACK).is_some()
            || header(message, wire::FUNCTION).is_some_and(|name| ctx.is_short(&name))
    });
    for one in other {
        let ctx = ctx.clone();
        tokio::spawn(async move { handle(&ctx, vec![one]).await });
    }
    if short.is_empty() {
        return;
    }
    let batches = short.len().min(ctx.width);
    let size = short.len().div_ceil(batches).min(JOBS_PER_BATCH);
    let mut short = short.into_iter();
    loop {
        let batch: Vec<_> = short.by_ref().take(size).collect();
        if batch.is_empty() {
            break;
        }
        let ctx = ctx.clone();
        tokio::spawn(async move { handle(&ctx, batch).await });
    }
}

/// The value of the header `name` of `message`.
fn header(message: &jetstream::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_string())
}

/// A message taken from the stream, with its jobs to run: one, or the
/// calls of a pack.
struct Admitted {
    message: jetstream::Message,
    /// The function's registered name.
    function: String,
    jobs: Vec<Job>,
    /// Whether it is a pack (answered with all its replies in one).
    pack: bool,
    reply_to: String,
    delivered: u32,
    ack_wait: Duration,
    /// Its last delivery: the caller hears its signs of life too.
    last: bool,
}

/// Runs the jobs of `taken` (their slots are released when this ends) as
/// one pool call; answers and acknowledges each message.
async fn handle<F, Fut>(ctx: &Ctx<F>, taken: Vec<(jetstream::Message, OwnedSemaphorePermit)>)
where
    F: Fn(Vec<Job>) -> Fut,
    Fut: Future<Output = Batch>,
{
    let mut batch = Vec::with_capacity(taken.len());
    let mut slots = Vec::with_capacity(taken.len());
    for (message, slot) in taken {
        slots.push(slot);
        if let Some(admitted) = admit(ctx, message).await {
            batch.push(admitted);
        }
    }
    let total: usize = batch.iter().map(|a| a.jobs.len()).sum();
    if total == 0 {
        return;
    }
    // One job gives its argument to the pool; more are copied (they may
    // run again one by one).
    let jobs = match batch.as_mut_slice() {
        [one] if one.jobs.len() == 1 => std::mem::take(&mut one.jobs),
        many => many.iter().flat_map(|a| a.jobs.iter().cloned()).collect(),
    };
    let started = tokio::time::Instant::now();
    let result = with_progress(ctx, &batch, (ctx.run)(jobs)).await;
    let took = started.elapsed();
    match result {
        Ok(ran) if ran.len() == total => {
            let each = took / u32::try_from(total).unwrap_or(u32::MAX);
            ctx.note(&batch, each);
            let mut ran = ran.into_iter();
            for admitted in batch {
                let n = admitted.jobs.len().max(1);
                let replies = ran.by_ref().take(n).map(Reply::from_ran).collect();
                finish(ctx, admitted, replies, each).await;
            }
        }
        Err(err) if err.is_cancelled() || err.is_not_started() => {
            // This worker's pool is going away: another worker takes them.
            for admitted in batch {
                let _ = admitted.message.ack_with(AckKind::Nak(None)).await;
            }
        }
        _ if total > 1 => {
            // The batch's pool process died (one of its jobs crashed it, or
            // it ran out of time): each job again on its own, so only the
            // one that did it fails (the others may run twice: delivery is
            // at least once anyway).
            let alone = batch.into_iter().map(|admitted| alone(ctx, admitted));
            futures_util::future::join_all(alone).await;
        }
        result => {
            let reply = match result {
                Err(err) => Reply::from_join_error(&err),
                Ok(ran) => {
                    Reply::Worker(format!("the pool answered {} results for 1 job", ran.len()))
                }
            };
            for admitted in batch {
                finish(ctx, admitted, vec![reply.clone()], took).await;
            }
        }
    }
    drop(slots);
}

/// Runs each job of a message of a failed batch by itself (concurrently),
/// and answers the message; if the pool went away meanwhile, leaves it to
/// another worker.
async fn alone<F, Fut>(ctx: &Ctx<F>, mut admitted: Admitted)
where
    F: Fn(Vec<Job>) -> Fut,
    Fut: Future<Output = Batch>,
{
    let jobs = std::mem::take(&mut admitted.jobs);
    let n = jobs.len();
    let runs = jobs.into_iter().map(|job| {
        let running = (ctx.run)(vec![job]);
        let this = std::slice::from_ref(&admitted);
        async move {
            match with_progress(ctx, this, running).await {
                Ok(mut ran) if ran.len() == 1 => Some(Reply::from_ran(ran.remove(0))),
                Ok(ran) => Some(Reply::Worker(format!(
                    "the pool answered {} results for 1 job",
                    ran.len()
                ))),
                Err(err) if err.is_cancelled() || err.is_not_started() => None,
                Err(err) => Some(Reply::from_join_error(&err)),
            }
        }
    });
    let replies: Option<Vec<Reply>> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .collect();
    match replies {
        Some(replies) if replies.len() == n => {
            finish(ctx, admitted, replies, Duration::ZERO).await;
        }
        _ => {
            let _ = admitted.message.ack_with(AckKind::Nak(None)).await;
        }
    }
}

/// Checks a message's headers: its jobs to run, or `None` if it was
/// answered and terminated already (not a unirun job, past its deadline,
/// no function named, a pack that does not decode). On its last delivery,
/// the caller hears that it runs.
async fn admit<F>(ctx: &Ctx<F>, message: jetstream::Message) -> Option<Admitted> {
    let delivered = message
        .info()
        .map_or(1, |info| u32::try_from(info.delivered).unwrap_or(u32::MAX));
    let Some(reply_to) = header(&message, wire::REPLY_TO) else {
        // Not a unirun job: nobody to answer.
        let _ = message.ack_with(AckKind::Term).await;
        return None;
    };
    let deadline = header(&message, wire::DEADLINE).and_then(|d| d.parse::<u128>().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    if deadline.is_some_and(|d| d <= now) {
        // The caller stopped waiting: its handle says "timed out".
        let _ = message.ack_with(AckKind::Term).await;
        return None;
    }
    let pack = header(&message, wire::PACK).map(|n| n.parse::<usize>().ok());
    let function = header(&message, wire::FUNCTION);
    let jobs = match (
        function.clone(),
        header(&message, wire::SIGNATURE).and_then(|s| u64::from_str_radix(&s, 16).ok()),
        pack,
    ) {
        (Some(name), Some(signature), None) => Ok(vec![Job {
            name: name.clone(),
            signature,
            payload: message.payload.to_vec(),
        }]),
        (Some(name), Some(signature), Some(Some(n))) => {
            match postcard::from_bytes::<Vec<Vec<u8>>>(&message.payload) {
                Ok(args) if args.len() == n => Ok(args
                    .into_iter()
                    .map(|payload| Job {
                        name: name.clone(),
                        signature,
                        payload,
                    })
                    .collect()),
                Ok(args) => Err(format!(
                    "a pack of {n} calls carries {} arguments",
                    args.len()
                )),
                Err(err) => Err(format!("the arguments of a pack: {err}")),
            }
        }
        (_, _, Some(None)) => Err("the pack's header is no number".to_string()),
        _ => Err("the job's headers name no function or signature".to_string()),
    };
    let jobs = match jobs {
        Ok(jobs) => jobs,
        Err(why) => {
            answer(
                &ctx.nats,
                &reply_to,
                delivered,
                &ctx.worker,
                0,
                &Reply::Decode(why),
            )
            .await;
            let _ = message.ack_with(AckKind::Term).await;
            return None;
        }
    };
    let ack_wait = header(&message, wire::ACK_WAIT)
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(ctx.options.ack_wait, Duration::from_millis);
    // On the last delivery the server will not hand the job out again (and
    // says so only when it next looks): the caller hears the signs of
    // life too, and gives up when they stop.
    let last = header(&message, wire::MAX_DELIVER)
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|max| delivered >= max);
    if last {
        // Out before the job starts (it may take this worker down with it).
        answer(
            &ctx.nats,
            &reply_to,
            delivered,
            &ctx.worker,
            0,
            &Reply::Alive,
        )
        .await;
        let _ = ctx.nats.flush().await;
    }
    Some(Admitted {
        message,
        function: function.unwrap_or_default(),
        jobs,
        pack: pack.is_some(),
        reply_to,
        delivered,
        ack_wait,
        last,
    })
}

/// Awaits `running` (the pool call of `batch`'s jobs), giving signs of
/// life for each message of `batch` every half `ack_wait` meanwhile.
async fn with_progress<F, Fut>(ctx: &Ctx<F>, batch: &[Admitted], running: Fut) -> Batch
where
    Fut: Future<Output = Batch>,
{
    tokio::pin!(running);
    // The first sign of life is due after one period: an interval's
    // immediate first tick would still wait for the timer's next
    // millisecond, on every job.
    let ack_wait = batch
        .iter()
        .map(|a| a.ack_wait)
        .min()
        .unwrap_or(ctx.options.ack_wait);
    let period = (ack_wait / 2).max(Duration::from_millis(10));
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            result = &mut running => return result,
            _ = progress.tick() => {
                for admitted in batch {
                    // Still alive: keep the job from being redelivered.
                    let _ = admitted.message.ack_with(AckKind::Progress).await;
                    if admitted.last {
                        answer(&ctx.nats, &admitted.reply_to, admitted.delivered, &ctx.worker, 0, &Reply::Alive).await;
                    }
                }
            }
        }
    }
}

/// Answers a message whose jobs ran with `replies` (one per job; those of
/// a pack in one reply), saying each took `each`, then acknowledges it:
/// done for a value or a pack's answers; terminated for a panic, crash or
/// decode error (it would fail again). A reply that did not go out leaves
/// the job to be redelivered.
async fn finish<F>(ctx: &Ctx<F>, admitted: Admitted, replies: Vec<Reply>, each: Duration) {
    let max_payload = ctx.max_payload();
    let reply = if admitted.pack {
        wire::fit_pack(replies, &ctx.worker, max_payload)
    } else {
        let reply = replies
            .into_iter()
            .next()
            .unwrap_or_else(|| Reply::Worker("no answer".to_string()));
        wire::fit(reply, &ctx.worker, max_payload)
    };
    let micros = u64::try_from(each.as_micros()).unwrap_or(u64::MAX);
    if !answer(
        &ctx.nats,
        &admitted.reply_to,
        admitted.delivered,
        &ctx.worker,
        micros,
        &reply,
    )
    .await
    {
        return;
    }
    let ack = match reply {
        Reply::Value(_) => AckKind::Ack,
        _ => AckKind::Term,
    };
    let _ = admitted.message.ack_with(ack).await;
}

/// Publishes `reply` to the caller, saying it took `micros` per job (0:
/// not measured); whether it went out.
async fn answer(
    nats: &async_nats::Client,
    to: &str,
    delivered: u32,
    worker: &str,
    micros: u64,
    reply: &Reply,
) -> bool {
    match postcard::to_allocvec(&(delivered, worker, micros, reply)) {
        Ok(bytes) => nats.publish(to.to_string(), bytes.into()).await.is_ok(),
        Err(_) => false,
    }
}
