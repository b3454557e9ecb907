//! The worker's side in the facade: a process pool runs each job, so a
//! crash of the function kills a pool process, never the worker.

use std::convert::Infallible;

use unirun_cluster::{ClusterOptions, Job, Ran};

use crate::error::Error;
use crate::{Flavor, Run};

/// The variable that makes [`serve_if_worker`] serve: `1` (or `true`,
/// `yes`, `on`).
pub const WORKER_ENV: &str = "UNIRUN_CLUSTER_WORKER";

/// Serves cluster jobs and never returns if this process was started as a
/// worker ([`WORKER_ENV`] set to `1`); otherwise returns at once. Call it
/// first thing in `main`, while the process has one thread (the workers'
/// process pool forks from there). The server is `UNIRUN_CLUSTER_URL`'s.
///
/// A worker takes [`WORKER_ENV`] out of its environment first, so the
/// processes its jobs start (even of this same binary) are not workers.
/// A worker that cannot start (a bad `UNIRUN_CLUSTER_URL`, no threads)
/// prints why and exits with status 2; one that loses its server keeps
/// retrying until it is back.
///
/// # Examples
///
/// ```
/// // Not started as a worker: returns at once.
/// unirun::cluster::serve_if_worker();
/// ```
pub fn serve_if_worker() {
    let on = std::env::var(WORKER_ENV)
        .ok()
        .and_then(|v| crate::env::parse_bool(v.trim()).ok())
        .unwrap_or(false);
    if !on {
        return;
    }
    // The worker's own children (a job may start a helper from this same
    // binary) are not workers.
    std::env::remove_var(WORKER_ENV);
    let Err(err) = super::options_from_env().and_then(serve);
    eprintln!("unirun cluster worker: {err}");
    std::process::exit(2);
}

/// Serves cluster jobs from the server in `options` with a process pool
/// as wide as the machine's CPU budget (`UNIRUN_MAX_WORKERS` caps it);
/// returns only if it cannot start (as [`Error::RemoteConflict`] if two
/// remote functions of this build cannot be told apart).
pub fn serve(options: ClusterOptions) -> Result<Infallible, Error> {
    unirun_cluster::registry::check().map_err(Error::RemoteConflict)?;
    // A worker survives SIGPIPE, even with the default disposition
    // restored by whoever started it.
    unirun_platform::process::ignore_sigpipe();
    crate::process::init();
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .name("cluster-worker")
        .build()?;
    let width = run.trace().workers().map_or(1, |w| w.cpu());
    let handle = run.handle();
    // A batch of jobs is one pool call: one pipe round trip for all.
    let served = unirun_cluster::serve(options, width, move |jobs| handle.call(run_jobs, jobs));
    let reason = served.map_or_else(|reason| reason, |()| "its jobs ended".to_string());
    Err(Error::Io(std::io::Error::other(format!(
        "the cluster worker stopped: {reason}"
    ))))
}

/// What a worker's pool process runs for each batch of jobs (a panic of
/// one is that job's answer; the others run on).
fn run_jobs(jobs: Vec<Job>) -> Vec<Ran> {
    unirun_cluster::execute_all(jobs)
}
