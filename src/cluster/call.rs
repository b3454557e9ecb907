//! The caller's side in the facade: connecting a cluster scope, and
//! `Handle::call`/`Run::map_call` on one.

use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;
use unirun_cluster::{Client, ClusterOptions};
use unirun_core::TaskSet;

use crate::error::Error;
use crate::trace::DecisionTrace;
use crate::{Handle, JoinError, JoinHandle, Run, RunBuilder};

#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "cluster-backend"))))]
impl RunBuilder {
    /// Where a [`Flavor::Cluster`](crate::Flavor::Cluster) scope's calls
    /// go, and how they are carried (see [`ClusterOptions`]); without it,
    /// the server named by `UNIRUN_CLUSTER_URL`, or the default. Ignored
    /// by scopes of other flavors.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use unirun::{cluster::ClusterOptions, Run};
    ///
    /// let builder = Run::builder().cluster(
    ///     ClusterOptions::new("nats://10.0.0.5:4222").deadline(Duration::from_secs(60)),
    /// );
    /// # drop(builder);
    /// ```
    pub fn cluster(mut self, options: ClusterOptions) -> Self {
        self.cluster_options = Some(options);
        self
    }
}

/// Connects a cluster scope: `options`, or those of the environment. A
/// server that cannot be reached is an [`Error::Io`] naming it; two remote
/// functions that cannot be told apart, an [`Error::RemoteConflict`].
pub(crate) fn connect(
    options: Option<ClusterOptions>,
    trace: DecisionTrace,
) -> Result<(Client, DecisionTrace), Error> {
    unirun_cluster::registry::check().map_err(Error::RemoteConflict)?;
    let options = match options {
        Some(options) => options,
        None => super::options_from_env()?,
    };
    if let Err(expected) = crate::env::parse_cluster_url(options.url()) {
        return Err(Error::InvalidSetting {
            setting: "cluster url",
            value: options.url().to_string(),
            expected,
        });
    }
    let client = Client::connect(options).map_err(|reason| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            reason,
        ))
    })?;
    // Pull requests, not workers: each worker keeps several (the workers
    // that answered are counted in `Metrics`).
    let waiting = client.waiting_workers().map_or_else(
        || "pull requests unknown".to_string(),
        |n| format!("{n} pull requests of workers waiting"),
    );
    let trace = trace.with_cluster(format!(
        "server {}, stream {}, {waiting}",
        client.options().url(),
        client.options().stream_name()
    ));
    Ok((client, trace))
}

/// `handle.call(f, arg)` on a cluster scope: the call is one of the
/// scope's tasks (its shutdown waits for it, `shutdown_now` cancels it).
pub(crate) fn call<A, R>(handle: &Handle, client: &Client, f: fn(A) -> R, arg: A) -> JoinHandle<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let call = match client.call_fn(f, &arg) {
        Ok(call) => call,
        Err(err) => return JoinHandle::from_foreign(Failed(Some(err))),
    };
    let task = match handle.scope() {
        Some(scope) => spawn_where_woken(&scope.tasks, call),
        None => handle.spawn(call),
    };
    JoinHandle::from_foreign(Flatten(task))
}

/// A member of `tasks` that runs wherever it is woken instead of on a
/// worker of the scope: a call's task only waits for the client's thread
/// to send the call's outcome (its one await, woken once, by a channel
/// that holds no lock while it wakes) and decodes it, so the outcome goes
/// from that thread to whoever joins the call directly, with no worker
/// woken in between. Its first poll runs here.
fn spawn_where_woken<F>(tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (runnable, task) = unirun_core::spawn_with(future, Some(tasks), |runnable, _| {
        runnable.run();
    });
    runnable.schedule();
    task
}

#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "cluster-backend"))))]
impl Run {
    /// Calls `f` on every item and returns the outcomes in input order:
    /// on a [`Flavor::Cluster`](crate::Flavor::Cluster) scope on its
    /// workers (at most [`ClusterOptions::max_pending`] taken from `items`
    /// ahead of the oldest unanswered one; calls of a function known to be
    /// short, under a millisecond each so far, go to the workers in packs
    /// of up to 32 per message), elsewhere in the scope's process pool
    /// (see [`Run::call`]). Unlike [`Run::map`], a failed item does not
    /// stop the others: each has its own `Result`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// fn double(x: u32) -> u32 {
    ///     x * 2
    /// }
    ///
    /// let run = Run::new(Flavor::Processes)?;
    /// let out: Vec<u32> = run.map_call(double, 1..=3).into_iter().map(Result::unwrap).collect();
    /// assert_eq!(out, [2, 4, 6]);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn map_call<I, A, R>(&self, f: fn(A) -> R, items: I) -> Vec<Result<R, JoinError>>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let handle = self.handle();
        if let Some(scope) = handle.scope() {
            if let Some(client) = scope.cluster.get() {
                return map_on_cluster(&handle, &scope.tasks, client, f, items);
            }
        }
        let calls: Vec<_> = items.into_iter().map(|item| handle.call(f, item)).collect();
        calls.into_iter().map(JoinHandle::join).collect()
    }
}

/// At most this many calls of a short function go in one message.
const PACK_CALLS: usize = 32;

/// What `map_call` waits for, in input order: one call, or a pack of
/// `n` calls.
enum Ahead<R> {
    One(JoinHandle<R>),
    Pack(JoinHandle<Vec<Result<R, JoinError>>>, usize),
}

/// `map_call` on a cluster scope: at most `max_pending` items are taken
/// from `items` ahead of the one joined next (more would only wait for a
/// permit, holding their arguments meanwhile). Calls of a function the
/// client knows to be short go in packs of up to [`PACK_CALLS`] (one
/// message, one reply, one pool round trip on the worker for all; see
/// [`Client::call_pack_fn`]); others one per message.
fn map_on_cluster<I, A, R>(
    handle: &Handle,
    tasks: &Arc<TaskSet>,
    client: &Client,
    f: fn(A) -> R,
    items: I,
) -> Vec<Result<R, JoinError>>
where
    I: IntoIterator<Item = A>,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let window = client.options().max_pending_calls();
    let pack_size = PACK_CALLS.min(window);
    let mut items = items.into_iter();
    let mut out = Vec::with_capacity(items.size_hint().0);
    let mut ahead = std::collections::VecDeque::new();
    // Items taken and sent, not joined yet.
    let mut in_flight = 0;
    let mut pack = Vec::new();
    let mut short = false;
    let send = |pack: &mut Vec<A>, ahead: &mut std::collections::VecDeque<Ahead<R>>| {
        let calls = std::mem::take(pack);
        let n = calls.len();
        let task = spawn_where_woken(tasks, client.call_pack_fn(f, calls));
        ahead.push_back(Ahead::Pack(task, n));
    };
    loop {
        if in_flight + pack.len() >= window {
            if pack.is_empty() {
                match ahead.pop_front() {
                    Some(Ahead::One(call)) => {
                        in_flight -= 1;
                        out.push(call.join());
                    }
                    Some(Ahead::Pack(calls, n)) => {
                        in_flight -= n;
                        out.extend(join_pack(calls, n));
                    }
                    None => break,
                }
            } else {
                in_flight += pack.len();
                send(&mut pack, &mut ahead);
            }
            continue;
        }
        let Some(item) = items.next() else { break };
        // Looked at again with each new pack (its replies say how long a
        // job takes).
        if pack.is_empty() {
            short = client.is_short(f);
        }
        if short {
            pack.push(item);
            if pack.len() >= pack_size {
                in_flight += pack.len();
                send(&mut pack, &mut ahead);
            }
        } else {
            in_flight += 1;
            ahead.push_back(Ahead::One(handle.call(f, item)));
        }
    }
    if !pack.is_empty() {
        send(&mut pack, &mut ahead);
    }
    for next in ahead {
        match next {
            Ahead::One(call) => out.push(call.join()),
            Ahead::Pack(calls, n) => out.extend(join_pack(calls, n)),
        }
    }
    out
}

/// The outcomes of a pack's `n` calls; if its task ended without them
/// (cancelled by `shutdown_now`), each call's error says so.
fn join_pack<R>(
    calls: JoinHandle<Vec<Result<R, JoinError>>>,
    n: usize,
) -> Vec<Result<R, JoinError>> {
    match calls.join() {
        Ok(outcomes) => outcomes,
        Err(err) => (0..n)
            .map(|_| {
                if err.is_cancelled() {
                    Err(JoinError::cancelled())
                } else {
                    Err(JoinError::transport("pack", err.to_string()))
                }
            })
            .collect(),
    }
}

/// A call that failed before it was sent.
struct Failed(Option<JoinError>);

impl<R> unirun_core::ForeignJoin<R> for Failed {
    fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<R, JoinError>> {
        Poll::Ready(Err(self.0.take().unwrap_or_else(JoinError::cancelled)))
    }

    fn is_finished(&self) -> bool {
        true
    }

    fn abort(&mut self) {}
}

/// The scope's task carrying a call, whose output is the call's outcome.
struct Flatten<R>(JoinHandle<Result<R, JoinError>>);

impl<R: Send + 'static> unirun_core::ForeignJoin<R> for Flatten<R> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<R, JoinError>> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.and_then(|r| r))
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    fn abort(&mut self) {
        self.0.abort();
    }
}

use std::future::Future as _;
