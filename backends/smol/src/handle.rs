//! [`Handle`]: a reference to an async-executor that spawns unirun tasks
//! on it, with its blocking lane.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_executor::Executor as SmolExecutor;
use unirun_blocking::{BlockingLane, LaneStats};
use unirun_core::{Executor, ForeignRunQueue, JoinHandle, RunQueue, TaskSet};

use crate::join::Smol;

/// A reference to an async-executor that spawns unirun tasks on it.
///
/// `Clone + Send + Sync`; implements [`Executor`].
///
/// # Examples
///
/// ```
/// use unirun_core::Executor;
///
/// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
/// let handle = pool.handle();
/// let ex: &dyn Executor = &handle;
/// assert_eq!(ex.spawn(async { 7 }).join().unwrap(), 7);
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    /// Weak: an owned executor goes away with its pool, cancelling the
    /// tasks it still holds; later spawns are cancelled at once.
    executor: Smol,
    name: String,
    workers: usize,
    /// Wake-ups of core-allocated tasks (`dyn Executor` spawns), each a
    /// small executor task.
    spawn: Arc<ForeignRunQueue<Smol>>,
    /// Blocking closures. Shut down by the owning [`SmolPool`], or, for a
    /// caller's executor, when the last handle drops this `Inner`.
    lane: BlockingLane,
    max_blocking: usize,
    /// For a [`SmolPool`]'s handle, the fork generation its threads were
    /// started in (see `unirun_core::fork_generation`); `None` for a
    /// caller's executor, which the caller drives wherever it is.
    built_in: Option<usize>,
}

impl Handle {
    pub(crate) fn new(
        executor: &Arc<SmolExecutor<'static>>,
        name: String,
        workers: usize,
        lane: BlockingLane,
        built_in: Option<usize>,
    ) -> Self {
        Handle {
            inner: Arc::new(Inner {
                built_in,
                executor: Smol(Arc::downgrade(executor)),
                max_blocking: lane.stats().cap,
                lane,
                name,
                workers,
                spawn: Arc::new(ForeignRunQueue(Smol(Arc::downgrade(executor)))),
            }),
        }
    }

    /// Wraps an executor the caller drives (borrowed: unirun never stops
    /// it). The handle does not keep the executor alive: once the caller
    /// drops it, spawns through the handle are cancelled at once.
    ///
    /// Blocking closures go to a lane of threads named `smol-blocking-{i}`
    /// (default cap) that this handle owns with its clones: it is shut down,
    /// and its threads joined, when the last clone is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Weak};
    ///
    /// let ex = Arc::new(async_executor::Executor::new());
    /// let handle = unirun_smol::Handle::from_executor(ex.clone());
    /// let task = handle.spawn(async { 3 });
    /// assert_eq!(futures_lite::future::block_on(ex.run(task)).unwrap(), 3);
    /// ```
    pub fn from_executor(executor: Arc<SmolExecutor<'static>>) -> Handle {
        let name = "smol".to_string();
        let lane = BlockingLane::builder().name(name.clone()).build();
        // The default cap is never 0, so the builder cannot fail.
        let lane = lane.unwrap_or_else(|_| unreachable!("the default lane settings are valid"));
        Handle::new(&executor, name, 0, lane, None)
    }

    /// Spawns a future on the executor.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().spawn(async { "hi" }).join().unwrap(), "hi");
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_inner(None, future)
    }

    /// Spawns a future as a member of `tasks`, so their owner can wait for
    /// it or cancel it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Weak};
    ///
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// let set = Arc::new(unirun_core::TaskSet::new());
    /// let task = pool.handle().spawn_in(&set, std::future::pending::<()>());
    /// set.close();
    /// assert!(task.join().unwrap_err().is_cancelled());
    /// ```
    pub fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_inner(Some(tasks), future)
    }

    fn spawn_inner<F>(&self, tasks: Option<&Arc<TaskSet>>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.is_inherited() {
            return crate::child::spawn(tasks, future);
        }
        unirun_core::spawn_foreign(&self.inner.executor, tasks, future)
    }

    /// Whether this is the handle of a [`SmolPool`] built in another
    /// process, inherited through `fork`: the pool's threads do not exist
    /// here, so its tasks run on the thread that spawns or wakes them, as
    /// unirun's thread pools do in a forked child, and its blocking
    /// closures on the thread that submits them. A caller's executor
    /// ([`from_executor`](Self::from_executor)) is never inherited: the
    /// caller drives it.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert!(!pool.handle().is_inherited()); // built in this process
    /// ```
    ///
    /// [`SmolPool`]: crate::SmolPool
    #[inline]
    pub fn is_inherited(&self) -> bool {
        self.inner
            .built_in
            .is_some_and(|built_in| built_in != unirun_core::fork_generation())
    }

    /// Runs a blocking closure on the handle's blocking lane, on a thread
    /// named `{name}-blocking-{i}`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).name("ev").build().unwrap();
    /// assert_eq!(pool.handle().spawn_blocking(|| 6 * 7).join().unwrap(), 42);
    /// let name = pool.handle().spawn_blocking(|| std::thread::current().name().map(String::from));
    /// assert!(name.join().unwrap().unwrap().starts_with("ev-blocking-"));
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.lane.spawn_blocking(f)
    }

    /// Runs a blocking closure as a member of `tasks`; see
    /// [`spawn_in`](Self::spawn_in).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Weak};
    ///
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// let set = Arc::new(unirun_core::TaskSet::new());
    /// assert_eq!(pool.handle().spawn_blocking_in(&set, || 3).join().unwrap(), 3);
    /// ```
    pub fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.lane.spawn_blocking_in(tasks, f)
    }

    /// The thread name prefix (`smol` for a caller's executor).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).name("ev").build().unwrap();
    /// assert_eq!(pool.handle().name(), "ev");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of threads driving the executor (0 for a caller's executor).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(2).build().unwrap();
    /// assert_eq!(pool.handle().num_workers(), 2);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.inner.workers
    }

    /// The configured cap of the blocking lane.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder()
    ///     .workers(1)
    ///     .max_blocking_threads(8)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.handle().max_blocking_threads(), 8);
    /// ```
    pub fn max_blocking_threads(&self) -> usize {
        self.inner.max_blocking
    }

    /// The blocking lane's current size.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().blocking_stats().threads, 0); // started on demand
    /// pool.handle().spawn_blocking(|| ()).join().unwrap();
    /// assert!(pool.handle().blocking_stats().threads >= 1);
    /// ```
    pub fn blocking_stats(&self) -> LaneStats {
        self.inner.lane.stats()
    }

    /// The handle's blocking lane, for the pool that owns it to shut down.
    pub(crate) fn lane(&self) -> &BlockingLane {
        &self.inner.lane
    }
}

impl Executor for Handle {
    fn run_queue(&self) -> Arc<dyn RunQueue> {
        if self.is_inherited() {
            return Arc::new(crate::child::Inline);
        }
        self.inner.spawn.clone()
    }

    fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        self.inner.lane.run_queue()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("unirun_smol::Handle")
            .field("name", &self.inner.name)
            .field("workers", &self.inner.workers)
            .finish()
    }
}
