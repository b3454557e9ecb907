//! The worker's side: pull jobs from the shared consumer, as many at a
//! time as the worker has pool processes, run each, reply, acknowledge.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use unirun_core::JoinError;

use crate::registry::{Job, Rejected};
use crate::wire::{self, Reply};
use crate::{engine, ClusterOptions};

/// How many jobs a worker holds per pool process.
const JOBS_PER_PROCESS: usize = 16;

/// Serves jobs until the process is killed: connects to the server in
/// `options` (retrying while it is down, or while no caller has made the
/// stream and the workers' consumer yet) and runs jobs through `run`, up
/// to sixteen at once per unit of `width` (the facade's pool
/// processes, so a crash kills a pool process, not the worker). Returns
/// only if it cannot start: a bad URL, or no thread for its runtime.
pub fn serve<F, Fut>(options: ClusterOptions, width: usize, run: F) -> Result<(), String>
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Result<Vec<u8>, Rejected>, JoinError>> + Send + 'static,
{
    engine::check_url(&options.url)?;
    let runtime = engine::runtime("unirun-cluster-worker")
        .map_err(|err| format!("no thread for the cluster worker: {err}"))?;
    let run = Arc::new(run);
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
        let jobs = width.max(1) * JOBS_PER_PROCESS;
        pull(nats, options, worker, run, jobs).await;
    });
    Ok(())
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

/// Takes jobs from one long-lived pull subscription and runs each on a
/// task of its own, at most `jobs` at once. The subscription asks the
/// server for `jobs` messages at a time and asks again when half of them
/// arrived, so the next jobs are on their way while these run (a job
/// costs no pull round trip of its own). A job is only taken from the
/// subscription once a slot is free; until then at most one batch waits
/// in it, on the server's `ack_wait` clock (redelivered if the jobs ahead
/// of it outlast that: delivery is at least once).
///
/// Ends never: a failed or ended subscription is made again, on the
/// consumer looked up again (async-nats renews the pull requests after a
/// reconnect itself; one that expires is renewed too).
async fn pull<F, Fut>(
    nats: async_nats::Client,
    options: ClusterOptions,
    worker: String,
    run: Arc<F>,
    jobs: usize,
) where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Result<Vec<u8>, Rejected>, JoinError>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(jobs));
    let worker: Arc<str> = worker.into();
    loop {
        let Ok(consumer) = consumer(&nats, &options).await else {
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
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    let (nats, options, worker, run) =
                        (nats.clone(), options.clone(), worker.clone(), run.clone());
                    tokio::spawn(async move {
                        handle(&nats, message, &options, &worker, &*run).await;
                        drop(slot);
                    });
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

async fn handle<F, Fut>(
    nats: &async_nats::Client,
    message: jetstream::Message,
    options: &ClusterOptions,
    worker: &str,
    run: &F,
) where
    F: Fn(Job) -> Fut,
    Fut: Future<Output = Result<Result<Vec<u8>, Rejected>, JoinError>>,
{
    let delivered = message
        .info()
        .map_or(1, |info| u32::try_from(info.delivered).unwrap_or(u32::MAX));
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let Some(reply_to) = header(wire::REPLY_TO) else {
        // Not a unirun job: nobody to answer.
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let deadline = header(wire::DEADLINE).and_then(|d| d.parse::<u128>().ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    if deadline.is_some_and(|d| d <= now) {
        // The caller stopped waiting: its handle says "timed out".
        let _ = message.ack_with(AckKind::Term).await;
        return;
    }
    let job = match (
        header(wire::FUNCTION),
        header(wire::SIGNATURE).and_then(|s| u64::from_str_radix(&s, 16).ok()),
    ) {
        (Some(name), Some(signature)) => Job {
            name,
            signature,
            payload: message.payload.to_vec(),
        },
        _ => {
            let reply = Reply::Decode("the job's headers name no function or signature".into());
            answer(nats, &reply_to, delivered, worker, &reply).await;
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let ack_wait = header(wire::ACK_WAIT)
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(options.ack_wait, Duration::from_millis);
    // On the last delivery the server will not hand the job out again (and
    // says so only when it next looks): the caller hears the signs of
    // life too, and gives up when they stop.
    let last = header(wire::MAX_DELIVER)
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|max| delivered >= max);
    if last {
        // Out before the job starts (it may take this worker down with it).
        answer(nats, &reply_to, delivered, worker, &Reply::Alive).await;
        let _ = nats.flush().await;
    }
    let running = run(job);
    tokio::pin!(running);
    // The first sign of life is due after one period: an interval's
    // immediate first tick would still wait for the timer's next
    // millisecond, on every job.
    let period = (ack_wait / 2).max(Duration::from_millis(10));
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let result = loop {
        tokio::select! {
            result = &mut running => break result,
            _ = progress.tick() => {
                // Still alive: keep the job from being redelivered.
                let _ = message.ack_with(AckKind::Progress).await;
                if last {
                    answer(nats, &reply_to, delivered, worker, &Reply::Alive).await;
                }
            }
        }
    };
    let reply = match result {
        Ok(Ok(bytes)) => Reply::Value(bytes),
        Ok(Err(Rejected::Decode(detail))) => Reply::Decode(detail),
        Ok(Err(Rejected::Unknown(detail))) => Reply::Unknown(detail),
        Err(err) if err.is_cancelled() || err.is_not_started() => {
            // This worker's pool is going away: another worker takes it.
            let _ = message.ack_with(AckKind::Nak(None)).await;
            return;
        }
        Err(err) => Reply::from_join_error(&err),
    };
    let reply = wire::fit(reply, worker, nats.server_info().max_payload);
    if !answer(nats, &reply_to, delivered, worker, &reply).await {
        // The answer did not go out: leave the job to be redelivered.
        return;
    }
    // A panic, crash or decode error would fail again: never redelivered.
    let ack = match reply {
        Reply::Value(_) => AckKind::Ack,
        _ => AckKind::Term,
    };
    let _ = message.ack_with(ack).await;
}

/// Publishes `reply` to the caller; whether it went out.
async fn answer(
    nats: &async_nats::Client,
    to: &str,
    delivered: u32,
    worker: &str,
    reply: &Reply,
) -> bool {
    match postcard::to_allocvec(&(delivered, worker, reply)) {
        Ok(bytes) => nats.publish(to.to_string(), bytes.into()).await.is_ok(),
        Err(_) => false,
    }
}
