//! [`TokioRuntime`]: a tokio runtime unirun owns, and its [`Builder`].

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::{Handle, DEFAULT_MAX_BLOCKING};

/// Settings for a [`TokioRuntime`].
///
/// # Examples
///
/// ```
/// let runtime = unirun_tokio::TokioRuntime::builder()
///     .workers(2)
///     .max_blocking_threads(16)
///     .name("api")
///     .build()
///     .unwrap();
/// assert_eq!(runtime.handle().num_workers(), 2);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    workers: Option<usize>,
    max_blocking: usize,
    name: String,
}

impl Builder {
    /// Worker threads (default: tokio's, one per CPU). Zero counts as one.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// assert_eq!(runtime.handle().num_workers(), 1);
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n.max(1));
        self
    }

    /// Cap of the blocking pool (default 512). Zero counts as one.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().max_blocking_threads(4).build().unwrap();
    /// assert_eq!(runtime.handle().max_blocking_threads(), 4);
    /// ```
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking = n.max(1);
        self
    }

    /// Thread name prefix: threads are `{name}-{i}` (default `unirun-tokio`).
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).name("net").build().unwrap();
    /// let name = runtime.handle().spawn(async { std::thread::current().name().map(String::from) });
    /// assert!(name.join().unwrap().unwrap().starts_with("net-"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the runtime.
    ///
    /// # Errors
    ///
    /// When the OS refuses what the runtime needs (threads, an I/O driver).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun_tokio::TokioRuntime::builder().build().is_ok());
    /// ```
    pub fn build(self) -> io::Result<TokioRuntime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        let counter = Arc::new(AtomicUsize::new(0));
        let prefix = self.name.clone();
        let live = Arc::new(AtomicUsize::new(0));
        let (started, stopped) = (live.clone(), live.clone());
        builder
            .enable_all()
            // Counts the runtime's threads (workers and blocking ones), so a
            // bounded shutdown can say whether it left one running.
            .on_thread_start(move || {
                started.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move || {
                stopped.fetch_sub(1, Ordering::SeqCst);
            })
            .max_blocking_threads(self.max_blocking)
            .thread_name_fn(move || {
                format!("{prefix}-{}", counter.fetch_add(1, Ordering::Relaxed))
            });
        if let Some(n) = self.workers {
            builder.worker_threads(n);
        }
        let runtime = builder.build()?;
        let workers = runtime.handle().metrics().num_workers();
        let handle = Handle::new(
            runtime.handle().clone(),
            self.name,
            workers,
            self.max_blocking,
            false,
            Some(unirun_core::fork_generation()),
        );
        Ok(TokioRuntime {
            runtime: Some(runtime),
            handle,
            live,
        })
    }
}

/// A tokio runtime owned by unirun: shut down when dropped, without ever
/// panicking or blocking an async worker.
///
/// # Examples
///
/// ```
/// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
/// let task = runtime.handle().spawn(async { 1 });
/// assert_eq!(task.join().unwrap(), 1);
///
/// // Dropping it inside another runtime's task is fine.
/// let outer = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
/// outer.block_on(async move { drop(runtime) });
/// ```
pub struct TokioRuntime {
    /// Taken by `Drop`.
    runtime: Option<tokio::runtime::Runtime>,
    handle: Handle,
    /// The runtime's threads alive now (tokio's thread start and stop
    /// hooks).
    live: Arc<AtomicUsize>,
}

impl TokioRuntime {
    /// A builder with default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().name("x").build().unwrap();
    /// assert_eq!(runtime.handle().name(), "x");
    /// ```
    pub fn builder() -> Builder {
        Builder {
            workers: None,
            max_blocking: DEFAULT_MAX_BLOCKING,
            name: "unirun-tokio".to_string(),
        }
    }

    /// A handle that spawns on this runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// assert!(!runtime.handle().is_ambient());
    /// ```
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Drives `future` to completion on the calling thread, inside the
    /// runtime's context (so tokio's timers and I/O work in it).
    ///
    /// # Panics
    ///
    /// When called inside async code, as tokio's `Runtime::block_on` does.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// let task = runtime.handle().spawn(async { 2 });
    /// assert_eq!(runtime.block_on(task).unwrap(), 2);
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime is present until drop")
            .block_on(future)
    }
}

impl TokioRuntime {
    /// Shuts the runtime down, waiting at most `timeout` for its blocking
    /// threads (tokio's `Runtime::shutdown_timeout`): threads still inside a
    /// closure then are left behind and exit when it returns. Returns
    /// whether none was left behind. Where blocking is not allowed (inside
    /// async code) the wait moves to a helper thread and this returns at
    /// once, `true` (it cannot know). In a forked child of the process that
    /// built it (see [`Handle::is_inherited`]) its threads do not exist:
    /// the runtime is leaked, at once, and this returns `false` (dropping
    /// it there leaks it too).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    ///
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// let (release, stuck) = mpsc::channel::<()>();
    /// let (started, running) = mpsc::channel();
    /// let _closure = runtime.handle().tokio().spawn_blocking(move || {
    ///     started.send(()).unwrap();
    ///     let _ = stuck.recv();
    /// });
    /// running.recv().unwrap();
    /// // The closure still runs: it is left behind, and said so.
    /// assert!(!runtime.shutdown_timeout(Duration::from_millis(10)));
    /// drop(release);
    ///
    /// let idle = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// assert!(idle.shutdown_timeout(Duration::from_secs(10)));
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        let Some(runtime) = self.runtime.take() else {
            return true;
        };
        if self.handle.is_inherited() {
            forget_inherited(runtime);
            return false;
        }
        if !shut_down(runtime, self.handle.name(), Some(timeout)) {
            return true;
        }
        // tokio's stop hook runs before a thread signs off from the
        // shutdown, so every thread it waited for is uncounted by now.
        self.live.load(Ordering::SeqCst) == 0
    }
}

impl Drop for TokioRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if self.handle.is_inherited() {
                forget_inherited(runtime);
                return;
            }
            shut_down(runtime, self.handle.name(), None);
        }
    }
}

/// A runtime inherited through `fork` (see [`Handle::is_inherited`]): its
/// threads are not in this process, so shutting it down would wait for
/// workers that never answer, and its locks may have been held by a parent
/// thread at the fork. It is leaked instead (a forked child leaves with
/// `_exit`, so nothing is lost).
#[cold]
fn forget_inherited(runtime: tokio::runtime::Runtime) {
    std::mem::forget(runtime);
}

/// Shuts `runtime` down (dropping it, or with tokio's `shutdown_timeout`
/// when `timeout` is given) without ever panicking: tokio panics when a
/// runtime is dropped where blocking is not allowed, and a runtime context
/// or a unirun worker is such a place, so there the shutdown moves to a
/// plain thread named `{name}-shutdown`. Returns whether it shut the
/// runtime down here (not on that thread).
fn shut_down(runtime: tokio::runtime::Runtime, name: &str, timeout: Option<Duration>) -> bool {
    let in_async = tokio::runtime::Handle::try_current().is_ok() || unirun_core::on_worker_thread();
    let finish = move |runtime: tokio::runtime::Runtime| match timeout {
        Some(timeout) => runtime.shutdown_timeout(timeout),
        None => drop(runtime),
    };
    if !in_async {
        finish(runtime);
        return true;
    }
    // The runtime waits in a shared slot, so a failed thread spawn does
    // not drop it here.
    let slot = Arc::new(Mutex::new(Some(runtime)));
    let theirs = slot.clone();
    let spawned = thread::Builder::new()
        .name(format!("{name}-shutdown"))
        .spawn(move || {
            if let Some(runtime) = take(&theirs) {
                finish(runtime);
            }
        });
    if spawned.is_err() {
        if let Some(runtime) = take(&slot) {
            // Does not wait for the workers, and never panics.
            runtime.shutdown_background();
        }
    }
    false
}

fn take(slot: &Mutex<Option<tokio::runtime::Runtime>>) -> Option<tokio::runtime::Runtime> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

impl fmt::Debug for TokioRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioRuntime")
            .field("handle", &self.handle)
            .finish()
    }
}
