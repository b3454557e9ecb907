//! [`ClusterOptions`]: where the server is and how jobs are carried.

use std::time::Duration;

/// How a cluster scope reaches its server and carries its jobs.
///
/// The defaults suit a LAN: jobs are redelivered when a worker has not
/// acknowledged them within [`ack_wait`](Self::ack_wait) (a running job
/// keeps extending it), at most [`max_deliver`](Self::max_deliver) times.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unirun_cluster::ClusterOptions;
///
/// let options = ClusterOptions::new("nats://10.0.0.5:4222")
///     .deadline(Duration::from_secs(60))
///     .max_deliver(5);
/// assert_eq!(options.url(), "nats://10.0.0.5:4222");
/// assert_eq!(options.max_deliver_count(), 5);
/// ```
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub(crate) url: String,
    pub(crate) stream: String,
    pub(crate) ack_wait: Duration,
    pub(crate) max_deliver: i64,
    pub(crate) deadline: Duration,
    pub(crate) max_pending: usize,
    pub(crate) lost_after: Duration,
    pub(crate) storage: Storage,
}

/// Where the server keeps the jobs waiting in the stream
/// ([`ClusterOptions::storage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Storage {
    /// On the server's disk (its `-sd` store): queued jobs survive a
    /// restart of the server. The default.
    #[default]
    File,
    /// In the server's memory: a publish costs the server less (no
    /// write to its store), but a restart of the server loses the jobs
    /// waiting in the stream (their calls fail with a transport error, as
    /// for any loss of the server; the client makes the stream again when
    /// it is back). Duplicate detection and redelivery work as with files.
    Memory,
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Storage::File => "file",
            Storage::Memory => "memory",
        })
    }
}

impl ClusterOptions {
    /// The server URL used when neither code nor `UNIRUN_CLUSTER_URL` names one.
    pub const DEFAULT_URL: &'static str = "nats://127.0.0.1:4222";

    /// Options for the server at `url` (`nats://host:port`), with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        ClusterOptions {
            url: url.into(),
            stream: "UNIRUN_JOBS".to_string(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 3,
            deadline: Duration::from_secs(3600),
            max_pending: 1024,
            lost_after: Duration::from_secs(5),
            storage: Storage::File,
        }
    }

    /// The JetStream stream (and the durable consumer's prefix) jobs go
    /// through; callers and workers must agree on it. Default `UNIRUN_JOBS`.
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// How long a worker may hold a job without a sign of life before the
    /// server hands it to another worker (a running job sends progress
    /// every half of it, so only a lost worker host runs out). Default 30 s.
    ///
    /// It and [`max_deliver`](Self::max_deliver) are the settings of the
    /// stream's one consumer: a scope asking for other values than the
    /// consumer has (made by another scope, or an earlier run) fails to
    /// build, naming both.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// How many times a job is handed out before the caller's handle
    /// resolves to a transport error naming `max_deliver`. Default 3.
    pub fn max_deliver(mut self, times: u32) -> Self {
        self.max_deliver = i64::from(times.max(1));
        self
    }

    /// How long after its call a job may still answer; then its handle
    /// resolves to "timed out" and a worker that finds it later skips it.
    /// The time a call waits for [`max_pending`](Self::max_pending) counts:
    /// a call still waiting at its deadline is never sent.
    /// Default one hour.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How many calls of one scope may be in flight at once; `map` waits
    /// for answers before publishing more. Default 1024.
    pub fn max_pending(mut self, calls: usize) -> Self {
        self.max_pending = calls.max(1);
        self
    }

    /// How long the connection to the server may stay down without a
    /// break before every call in flight resolves to a transport error,
    /// and new calls fail at once until it is back. Default 5 s. (A
    /// shorter break fails the calls in flight too: a reply sent while the
    /// link was down is lost.)
    pub fn lost_after(mut self, grace: Duration) -> Self {
        self.lost_after = grace;
        self
    }

    /// Where the server keeps the stream's jobs: [`Storage::File`] (the
    /// default: jobs survive a restart of the server) or
    /// [`Storage::Memory`] (cheaper for the server, lost on its restart).
    /// It is the stream's setting, made by the first scope: a scope asking
    /// for other storage than the stream has fails to build, naming both.
    /// Workers take the stream as it is.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// The set [`storage`](Self::storage).
    pub fn storage_kind(&self) -> Storage {
        self.storage
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The stream name.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// The set [`max_deliver`](Self::max_deliver).
    pub fn max_deliver_count(&self) -> u32 {
        u32::try_from(self.max_deliver).unwrap_or(u32::MAX)
    }

    /// The set [`max_pending`](Self::max_pending).
    pub fn max_pending_calls(&self) -> usize {
        self.max_pending
    }

    /// The subject jobs are published on.
    pub(crate) fn subject(&self) -> String {
        format!("unirun.jobs.{}", self.stream)
    }

    /// The durable pull consumer workers share.
    pub(crate) fn consumer(&self) -> String {
        format!("{}_WORKERS", self.stream)
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions::new(Self::DEFAULT_URL)
    }
}
