//! Past one machine (cargo feature `cluster-backend`, unix; it needs Rust
//! 1.89): `Run::call` and [`Run::map_call`](crate::Run::map_call) on a
//! [`Flavor::Cluster`](crate::Flavor::Cluster) scope run on worker processes on other machines, carried by a NATS
//! JetStream server. Workers are the same binary: one call of
//! [`serve_if_worker`] at the top of `main` turns a process started with
//! `UNIRUN_CLUSTER_WORKER=1` into a worker.
//!
//! ```no_run
//! use unirun::{Flavor, Run};
//!
//! #[unirun::remote]
//! fn score(line: String) -> usize {
//!     line.split_whitespace().count()
//! }
//!
//! fn main() -> Result<(), unirun::Error> {
//!     // A process started with UNIRUN_CLUSTER_WORKER=1 serves jobs here
//!     // and never returns.
//!     unirun::cluster::serve_if_worker();
//!     // The server: UNIRUN_CLUSTER_URL, or `.cluster(ClusterOptions::new(url))`.
//!     let run = Run::builder().flavor(Flavor::Cluster).build()?;
//!     let one = run.call(score, "a b c".to_string());
//!     assert_eq!(one.join().unwrap(), 3);
//!     let many = run.map_call(score, vec!["a".to_string(), "b c".to_string()]);
//!     assert_eq!(many.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [1, 2]);
//!     Ok(())
//! }
//! ```
//!
//! # Functions across machines
//!
//! A function address means nothing on another host, so remote functions
//! are registered by name: put [`#[unirun::remote]`](crate::remote) on a
//! `fn(A) -> R` (`A`, `R`: serde). A call sends the function's module
//! path, name and line and a hash of its argument and result types and of
//! the build (the executable's GNU build-id, or without one a hash of the
//! executable's bytes, and the build's remote functions); a worker whose
//! build differs refuses the job (a transport error saying so: run the
//! same binary everywhere), and calling a function that is not
//! registered fails at once with [`JoinError::not_started`](crate::JoinError::not_started).
//!
//! `Run::call` gets a `fn` pointer, so the caller finds the function by
//! its address: the attribute makes the function `#[inline(never)]` (so
//! it has one address, not a copy per codegen unit) and gives its body a
//! `static` of its own (so an optimizer never merges two functions of
//! identical bodies into one), and refuses `#[inline]`. Should two remote
//! functions still share an address or a name, a cluster scope or worker
//! refuses to start with [`Error::RemoteConflict`](crate::Error::RemoteConflict)
//! naming both, rather than run the wrong one.
//!
//! # Delivery is at least once
//!
//! A worker runs each job in its local process pool (a crash kills a pool
//! process, not the worker), publishes the result to the caller's reply
//! inbox, then acknowledges the job. If the worker's host is lost first,
//! the server hands the job to another worker after
//! [`ack_wait`](ClusterOptions::ack_wait): **a remote function may run
//! more than once for one call, so it must be idempotent.**
//!
//! Calls of a short function (under a millisecond each so far) are
//! carried in bulk: [`Run::map_call`](crate::Run::map_call) packs up to 32
//! of them into one message (one publish, one reply, one acknowledgement
//! for all), and jobs that reach a worker together run as one batch in one
//! pool process (one pipe round trip for all). A panic stays its own
//! call's; if one job of a batch crashes the pool process, the others run
//! again one by one (so they may run twice) and only that call fails. The
//! calls of a pack share its delivery: a deadline, `max_deliver` or a lost
//! server fails each of them. Longer functions go one call per message.
//!
//! # Failures
//!
//! Every handle resolves, to the result or to a [`JoinError`](crate::JoinError):
//!
//! | what happened | `JoinError` |
//! | --- | --- |
//! | the function panicked | panicked, with the remote message and location |
//! | its pool process was killed by a signal | crashed, with the signal |
//! | no answer before [`deadline`](ClusterOptions::deadline) | timed out |
//! | argument or result did not decode | transport (`decode`) |
//! | the job's worker hosts were lost [`max_deliver`](ClusterOptions::max_deliver) times | transport (`max_deliver`) |
//! | the server was unreachable for [`lost_after`](ClusterOptions::lost_after) | transport (`server`) |
//! | the worker does not know the function | transport (`remote function`) |
//! | `shutdown_now`, or the handle's task was aborted | cancelled |
//!
//! A panic, a crash or a decode error is final: the job is terminated, not
//! redelivered. [`Metrics`](crate::Metrics) counts the scope's cluster
//! calls, redeliveries, crashes, timeouts and transport failures; the
//! scope's trace names the server, the stream and how many pull requests
//! of workers were waiting (not workers: each keeps several; `Metrics`
//! counts the workers that answered).

mod call;
mod worker;

pub use unirun_cluster::{ClusterCounts, ClusterOptions, Storage};

pub(crate) use self::call::{call, connect};
pub use self::worker::{serve, serve_if_worker, WORKER_ENV};

/// The variable naming the NATS server (`nats://host:port`) of cluster
/// scopes built without [`RunBuilder::cluster`](crate::RunBuilder::cluster),
/// and of workers.
pub const URL_ENV: &str = "UNIRUN_CLUSTER_URL";

/// What `#[unirun::remote]` expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use unirun_cluster::async_nats;
    pub use unirun_cluster::inventory;
    pub use unirun_cluster::registry::{invoke, types, Remote};
}

/// The options of a scope or worker that sets none in code: the server
/// from [`URL_ENV`] (checked), or [`ClusterOptions::DEFAULT_URL`].
pub(crate) fn options_from_env() -> Result<ClusterOptions, crate::Error> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.trim().is_empty() => {
            let url = crate::env::parse_cluster_url(url.trim()).map_err(|expected| {
                crate::Error::InvalidEnv {
                    var: URL_ENV.to_string(),
                    value: url.clone(),
                    expected,
                }
            })?;
            Ok(ClusterOptions::new(url))
        }
        _ => Ok(ClusterOptions::default()),
    }
}
