//! [`SmolPool`]: an async-executor driven by named threads that unirun
//! owns, with its blocking lane, and its [`Builder`].

use std::fmt;
use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use async_executor::Executor as SmolExecutor;
use unirun_blocking::BlockingLane;

use crate::Handle;

/// Settings for a [`SmolPool`].
///
/// # Examples
///
/// ```
/// let pool = unirun_smol::SmolPool::builder().workers(2).name("ev").build().unwrap();
/// assert_eq!(pool.handle().num_workers(), 2);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    workers: usize,
    name: String,
    max_blocking: Option<usize>,
    keep_alive: Option<Duration>,
}

impl Builder {
    /// Threads driving the executor (default: available parallelism). Zero
    /// counts as one.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().num_workers(), 1);
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Most threads of the blocking lane; defaults to
    /// [`unirun_blocking::default_blocking_cap`] (at least 512).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().max_blocking_threads(2).build().unwrap();
    /// assert_eq!(pool.handle().max_blocking_threads(), 2);
    /// ```
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking = Some(n);
        self
    }

    /// How long an idle blocking thread waits for work before it exits
    /// (default 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = unirun_smol::SmolPool::builder()
    ///     .keep_alive(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.handle().spawn_blocking(|| 1).join().unwrap(), 1);
    /// ```
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = Some(keep_alive);
        self
    }

    /// Thread name prefix: threads are `{name}-{i}`, blocking threads
    /// `{name}-blocking-{i}` (default `unirun-smol`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).name("ev").build().unwrap();
    /// let name = pool.handle().spawn(async { std::thread::current().name().map(String::from) });
    /// assert_eq!(name.join().unwrap().as_deref(), Some("ev-0"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the driver threads.
    ///
    /// # Errors
    ///
    /// When the OS refuses a thread (those already started are stopped), or
    /// `max_blocking_threads` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun_smol::SmolPool::builder().build().is_ok());
    /// assert!(unirun_smol::SmolPool::builder().max_blocking_threads(0).build().is_err());
    /// ```
    pub fn build(self) -> io::Result<SmolPool> {
        let mut lane = BlockingLane::builder().name(self.name.clone());
        if let Some(n) = self.max_blocking {
            lane = lane.max_threads(n);
        }
        if let Some(keep_alive) = self.keep_alive {
            lane = lane.keep_alive(keep_alive);
        }
        let lane = lane.build()?;
        let executor = Arc::new(SmolExecutor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let generation = unirun_core::fork_generation();
        let mut pool = SmolPool {
            handle: Handle::new(
                &executor,
                self.name.clone(),
                self.workers,
                lane,
                Some(generation),
            ),
            executor: Some(executor.clone()),
            stop: Some(stop),
            threads: Vec::with_capacity(self.workers),
        };
        for i in 0..self.workers {
            let (executor, stopped) = (executor.clone(), stopped.clone());
            let thread = thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || {
                    // Runs tasks until the pool closes the channel; the
                    // thread's own reference keeps the executor alive
                    // throughout (see `drive`).
                    crate::join::drive(&executor, || {
                        let _ = futures_lite::future::block_on(executor.run(stopped.recv()));
                    });
                })?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }
}

/// An async-executor driven by named threads, owned by unirun, with its own
/// blocking lane: shutting it down (or dropping it) stops and joins the
/// driver threads, cancels the tasks still pending, then shuts down the
/// lane (closures already queued still run) and joins its threads.
///
/// In a forked child of the process that built it (see
/// [`Handle::is_inherited`]) its threads do not exist: shutting it down
/// there joins nothing and returns at once (`shutdown_timeout` returns
/// `false`: the parent's threads are not ours to account for), and its
/// executor, whose locks a parent thread may have held at the fork, is
/// leaked rather than dropped.
///
/// # Examples
///
/// ```
/// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
/// let task = pool.handle().spawn(async { 1 });
/// assert_eq!(task.join().unwrap(), 1);
/// drop(pool);
/// ```
pub struct SmolPool {
    handle: Handle,
    /// The pool's own reference, dropped at shutdown.
    executor: Option<Arc<SmolExecutor<'static>>>,
    /// Dropping it closes the channel the driver threads wait on.
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl SmolPool {
    /// A builder with default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().name("x").build().unwrap();
    /// assert_eq!(pool.handle().name(), "x");
    /// ```
    pub fn builder() -> Builder {
        Builder {
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            name: "unirun-smol".to_string(),
            max_blocking: None,
            keep_alive: None,
        }
    }

    /// A handle that spawns on this pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().num_workers(), 1);
    /// ```
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops and joins the driver threads; tasks still pending are cancelled
    /// once the last handle lets go of the executor. Then the blocking lane
    /// stops: closures already queued still run, closures submitted later
    /// are cancelled, and every lane thread is joined (so a closure that
    /// never returns keeps this waiting). The same as dropping the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).name("gone").build().unwrap();
    /// pool.shutdown();
    /// ```
    pub fn shutdown(self) {
        drop(self);
    }

    /// [`shutdown`](Self::shutdown) bounded by `timeout` for the blocking
    /// lane: driver threads are stopped and joined (they run no user code
    /// between polls), then lane threads still inside a closure when
    /// `timeout` has passed are left behind, detached, and exit as soon as
    /// their closure returns. Returns whether every lane thread was joined.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// let (release, stuck) = std::sync::mpsc::channel::<()>();
    /// let (started_tx, started) = std::sync::mpsc::channel();
    /// let waiting = pool.handle().spawn_blocking(move || {
    ///     started_tx.send(()).unwrap();
    ///     stuck.recv().is_ok()
    /// });
    /// started.recv().unwrap();
    /// assert!(!pool.shutdown_timeout(Duration::from_millis(10)));
    /// release.send(()).unwrap();
    /// let _ = waiting.join(); // resolves: finished on its detached thread
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        if self.handle.is_inherited() {
            self.forget_inherited();
            return false;
        }
        let deadline = Instant::now().checked_add(timeout);
        self.stop_drivers();
        let remaining = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        // Takes the lane's threads: the `Drop` that follows joins none.
        self.handle.lane().shutdown_timeout(remaining)
    }

    /// A pool inherited through `fork`: its threads are not in this
    /// process, so there is nothing to stop or join (joining would panic or
    /// hang), and its executor and channel may hold locks that a parent
    /// thread held at the fork: all of it is leaked. The blocking lane's
    /// threads are absent too; its closures ran inline (the lane does that
    /// in a forked child), so nothing is left in it to wait for, and a
    /// leaked handle keeps the last one from shutting the lane down (which
    /// would join the absent threads).
    #[cold]
    fn forget_inherited(&mut self) {
        std::mem::forget(self.handle.clone());
        std::mem::forget(std::mem::take(&mut self.threads));
        std::mem::forget(self.stop.take());
        std::mem::forget(self.executor.take());
    }

    /// Stops and joins the driver threads, then lets go of the executor.
    fn stop_drivers(&mut self) {
        drop(self.stop.take());
        let me = thread::current().id();
        for thread in self.threads.drain(..) {
            // A pool dropped by one of its own tasks cannot join itself.
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
        drop(self.executor.take());
    }
}

impl Drop for SmolPool {
    fn drop(&mut self) {
        if self.handle.is_inherited() {
            self.forget_inherited();
            return;
        }
        self.stop_drivers();
        // Blocking closures are joined last: a task cancelled above may
        // have been what one of them waited for.
        self.handle.lane().shutdown();
    }
}

impl fmt::Debug for SmolPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolPool")
            .field("handle", &self.handle)
            .finish()
    }
}
