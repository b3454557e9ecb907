//! The contenders behind two small traits ([`Spawner`] for task executors,
//! [`BlockingLane`] for blocking pools), and [`Pools`], which builds each
//! once and lists them. Adding a contender is one `impl` (if its API is
//! new) and one line in [`Pools::each_spawner`] / [`Pools::each_lane`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;

use unirun::{Flavor, Run, RuntimeConfig};

use crate::harness::Role;
use crate::WORKERS;

/// Adapts a join handle whose `Result` can only be an error through a bug
/// in this bench: yields the task's output or panics.
pub(crate) struct Joined<H>(H);

impl<H, T, E> Future for Joined<H>
where
    H: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|result| result.expect("task failed"))
    }
}

/// A task executor: spawn from anywhere, get an awaitable result.
pub(crate) trait Spawner: Clone + Send + Sync + 'static {
    /// Awaits a spawned task's output.
    type Task<T: Send + 'static>: Future<Output = T> + Send + 'static;

    /// Spawns `fut` now; the returned task yields its output.
    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Spawns `fut` now and lets it run to completion unobserved.
    fn detach<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Drives `fut` to completion on the calling (bench) thread.
    fn block_on<F: Future>(&self, fut: F) -> F::Output;
}

/// A pool for blocking closures, awaited from async code.
pub(crate) trait BlockingLane: Clone + 'static {
    /// Awaits a closure's result.
    type Task<T: Send + 'static>: Future<Output = T>;

    /// Starts `work` on the lane now; the returned task yields its result.
    fn unblock<T, W>(&self, work: W) -> Self::Task<T>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static;

    /// Drives `fut` to completion on the calling (bench) thread.
    fn block_on<F: Future>(&self, fut: F) -> F::Output;
}

/// Implements [`Spawner`] for a type whose `spawn` returns a
/// `unirun::JoinHandle` (`$spawn`), with `$block_on` as its `block_on`.
macro_rules! unirun_spawner {
    ($ty:ty, |$s:ident, $fut:ident| $spawn:expr, |$b:ident, $bfut:ident| $block_on:expr) => {
        impl Spawner for $ty {
            type Task<T: Send + 'static> = Joined<unirun::JoinHandle<T>>;

            fn spawn<F>(&self, $fut: F) -> Self::Task<F::Output>
            where
                F: Future + Send + 'static,
                F::Output: Send + 'static,
            {
                let $s = self;
                Joined($spawn)
            }

            fn detach<F>(&self, $fut: F)
            where
                F: Future<Output = ()> + Send + 'static,
            {
                let $s = self;
                $spawn.detach();
            }

            fn block_on<F: Future>(&self, $bfut: F) -> F::Output {
                let $b = self;
                $block_on
            }
        }
    };
}

/// A unirun scope (`Run`), spawned on with `Run::spawn` and driven with
/// `Run::block_on`, exactly as users call it.
#[derive(Clone)]
pub(crate) struct Scope(pub(crate) Arc<Run>);

unirun_spawner!(Scope, |s, fut| s.0.spawn(fut), |s, fut| s.0.block_on(fut));

// A scope's `Handle`, spawned on with `Handle::spawn`; `unirun::block_on`.
unirun_spawner!(unirun::Handle, |s, fut| s.spawn(fut), |_s, fut| {
    unirun::block_on(fut)
});

/// The shared default executor: `unirun::spawn` and `unirun::block_on`.
#[derive(Clone)]
pub(crate) struct Global;

unirun_spawner!(Global, |_s, fut| unirun::spawn(fut), |_s, fut| {
    unirun::block_on(fut)
});

// The raw threads pool below the facade (reference rows only).
unirun_spawner!(
    unirun_threads::Handle,
    |s, fut| unirun_threads::Handle::spawn(s, fut),
    |_s, fut| unirun::block_on(fut)
);

impl Spawner for tokio::runtime::Handle {
    type Task<T: Send + 'static> = Joined<tokio::task::JoinHandle<T>>;

    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Joined(tokio::runtime::Handle::spawn(self, fut))
    }

    fn detach<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(tokio::runtime::Handle::spawn(self, fut));
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        tokio::runtime::Handle::block_on(self, fut)
    }
}

/// tokio with every task tracked by a `tokio_util::task::TaskTracker`:
/// the peer with a unirun scope's contract (the scope knows, waits for and
/// can cancel each of its tasks), on the bench's tokio runtime.
#[cfg(feature = "tokio-backend")]
#[derive(Clone)]
pub(crate) struct TrackedTokio {
    runtime: tokio::runtime::Handle,
    tracker: tokio_util::task::TaskTracker,
}

#[cfg(feature = "tokio-backend")]
impl Spawner for TrackedTokio {
    type Task<T: Send + 'static> = Joined<tokio::task::JoinHandle<T>>;

    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Joined(self.tracker.spawn_on(fut, &self.runtime))
    }

    fn detach<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.tracker.spawn_on(fut, &self.runtime));
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }
}

#[cfg(feature = "tokio-backend")]
impl BlockingLane for TrackedTokio {
    type Task<T: Send + 'static> = Joined<tokio::task::JoinHandle<T>>;

    fn unblock<T, W>(&self, work: W) -> Self::Task<T>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        Joined(self.tracker.spawn_blocking_on(work, &self.runtime))
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }
}

/// An async-executor `Executor` that [`AsyncExecutorPool`] drives.
#[derive(Clone)]
pub(crate) struct AsyncExecutor(Arc<async_executor::Executor<'static>>);

impl Spawner for AsyncExecutor {
    type Task<T: Send + 'static> = async_executor::Task<T>;

    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(fut)
    }

    fn detach<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(fut).detach();
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures_lite::future::block_on(fut)
    }
}

impl Spawner for futures::executor::ThreadPool {
    type Task<T: Send + 'static> = futures::future::RemoteHandle<T>;

    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        futures::task::SpawnExt::spawn_with_handle(self, fut).expect("futures pool shut down")
    }

    fn detach<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_ok(fut);
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures::executor::block_on(fut)
    }
}

/// Implements [`BlockingLane`] for a unirun type with `spawn_blocking`.
macro_rules! unirun_lane {
    ($ty:ty, |$s:ident, $work:ident| $spawn:expr, |$b:ident, $fut:ident| $block_on:expr) => {
        impl BlockingLane for $ty {
            type Task<T: Send + 'static> = Joined<unirun::JoinHandle<T>>;

            fn unblock<T, W>(&self, $work: W) -> Self::Task<T>
            where
                T: Send + 'static,
                W: FnOnce() -> T + Send + 'static,
            {
                let $s = self;
                Joined($spawn)
            }

            fn block_on<F: Future>(&self, $fut: F) -> F::Output {
                let $b = self;
                $block_on
            }
        }
    };
}

unirun_lane!(Scope, |s, work| s.0.spawn_blocking(work), |s, fut| s
    .0
    .block_on(fut));
unirun_lane!(Global, |_s, work| unirun::to_thread(work), |_s, fut| {
    unirun::block_on(fut)
});
unirun_lane!(
    unirun_threads::Handle,
    |s, work| s.spawn_blocking(work),
    |_s, fut| unirun::block_on(fut)
);

impl BlockingLane for tokio::runtime::Handle {
    type Task<T: Send + 'static> = Joined<tokio::task::JoinHandle<T>>;

    fn unblock<T, W>(&self, work: W) -> Self::Task<T>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        Joined(self.spawn_blocking(work))
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        tokio::runtime::Handle::block_on(self, fut)
    }
}

/// The `blocking` crate's global, elastic thread pool.
#[derive(Clone)]
pub(crate) struct BlockingCrate;

impl BlockingLane for BlockingCrate {
    type Task<T: Send + 'static> = blocking::Task<T>;

    fn unblock<T, W>(&self, work: W) -> Self::Task<T>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        blocking::unblock(work)
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        futures_lite::future::block_on(fut)
    }
}

/// An async-executor `Executor` run by [`WORKERS`] threads until dropped.
pub(crate) struct AsyncExecutorPool {
    executor: AsyncExecutor,
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl AsyncExecutorPool {
    fn new() -> Self {
        let executor = AsyncExecutor(Arc::new(async_executor::Executor::new()));
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let threads = (0..WORKERS)
            .map(|i| {
                let ex = Arc::clone(&executor.0);
                let stopped = stopped.clone();
                thread::Builder::new()
                    .name(format!("async-executor-{i}"))
                    .spawn(move || {
                        // `recv` fails once the sender is dropped: that is the stop signal.
                        futures_lite::future::block_on(ex.run(async move {
                            let _ = stopped.recv().await;
                        }));
                    })
                    .expect("spawn async-executor thread")
            })
            .collect();
        Self {
            executor,
            stop: Some(stop),
            threads,
        }
    }
}

impl Drop for AsyncExecutorPool {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            thread.join().expect("async-executor thread panicked");
        }
    }
}

/// Receives every task executor of [`Pools::each_spawner`].
pub(crate) trait VisitSpawner {
    fn visit<S: Spawner>(&mut self, name: &'static str, role: Role, spawner: S);
}

/// Receives every blocking lane of [`Pools::each_lane`].
pub(crate) trait VisitLane {
    fn visit<L: BlockingLane>(&mut self, name: &'static str, role: Role, lane: L);
}

/// Every pool, built once before any timing and shared by all samples.
pub(crate) struct Pools {
    /// The headline: a 2-worker Threads scope.
    pub(crate) run: Scope,
    raw: unirun_threads::ThreadPool,
    pub(crate) tokio: tokio::runtime::Runtime,
    async_executor: AsyncExecutorPool,
    futures: futures::executor::ThreadPool,
    pub(crate) rayon: Arc<rayon::ThreadPool>,
    #[cfg(feature = "tokio-backend")]
    run_tokio: Scope,
    #[cfg(feature = "smol-backend")]
    run_smol: Scope,
}

/// A 2-worker scope of `flavor`, checked to be what it claims.
fn scope(flavor: Flavor) -> Scope {
    let run = Run::builder()
        .flavor(flavor)
        .name(format!("bench-{flavor}"))
        .max_workers(WORKERS)
        .build()
        .expect("bench scope");
    assert_eq!(run.trace().resolved(), flavor, "{}", run.trace());
    println!("  scope: {}", run.trace());
    Scope(Arc::new(run))
}

impl Pools {
    pub(crate) fn new() -> Self {
        // `unirun::spawn` rows: the shared default on 2 Threads workers.
        unirun::configure(
            RuntimeConfig::default()
                .flavor(Flavor::Threads)
                .max_workers(WORKERS),
        )
        .expect("configure the shared default");
        assert_eq!(unirun::get_executor().num_workers(), WORKERS);
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("tokio")
            .build()
            .expect("tokio runtime");
        let futures = futures::executor::ThreadPool::builder()
            .pool_size(WORKERS)
            .name_prefix("futures-")
            .create()
            .expect("futures thread pool");
        let rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(WORKERS)
            .thread_name(|i| format!("rayon-{i}"))
            .build()
            .expect("rayon pool");
        let raw = unirun_threads::ThreadPool::builder()
            .workers(WORKERS)
            .name("bench-raw")
            .build()
            .expect("unirun threads pool");
        // Built inside the bench's tokio runtime, the Tokio scope borrows it
        // (trace: ambient tokio runtime), so it is compared with raw tokio
        // on the very same worker threads.
        #[cfg(feature = "tokio-backend")]
        let run_tokio = {
            let _inside = tokio.enter();
            scope(Flavor::Tokio)
        };
        Self {
            run: scope(Flavor::Threads),
            raw,
            tokio,
            async_executor: AsyncExecutorPool::new(),
            futures,
            rayon: Arc::new(rayon),
            #[cfg(feature = "tokio-backend")]
            run_tokio,
            #[cfg(feature = "smol-backend")]
            run_smol: scope(Flavor::Smol),
        }
    }

    /// Every task executor, with its role: the one list to extend.
    pub(crate) fn each_spawner(&self, v: &mut impl VisitSpawner) {
        v.visit("unirun Run", Role::Unirun, self.run.clone());
        v.visit("unirun Handle", Role::Unirun, self.run.0.handle());
        v.visit("unirun::spawn", Role::Unirun, Global);
        v.visit("raw pool (ref)", Role::UnirunRaw, self.raw.handle());
        v.visit("tokio", Role::Peer, self.tokio.handle().clone());
        v.visit(
            "async-executor",
            Role::Peer,
            self.async_executor.executor.clone(),
        );
        v.visit("futures-executor", Role::Peer, self.futures.clone());
        #[cfg(feature = "tokio-backend")]
        v.visit("Run on tokio", Role::Over("tokio"), self.run_tokio.clone());
        #[cfg(feature = "tokio-backend")]
        v.visit(
            "tokio+TaskTracker",
            Role::SameContract("tokio"),
            self.tracked_tokio(),
        );
        #[cfg(feature = "smol-backend")]
        v.visit(
            "Run on smol",
            Role::Over("async-executor"),
            self.run_smol.clone(),
        );
    }

    /// tokio with a fresh `TaskTracker` on the bench's runtime (one per
    /// scenario, as the Run scope is one per bench: nothing it tracks is
    /// left once a scenario's samples joined their tasks).
    #[cfg(feature = "tokio-backend")]
    fn tracked_tokio(&self) -> TrackedTokio {
        TrackedTokio {
            runtime: self.tokio.handle().clone(),
            tracker: tokio_util::task::TaskTracker::new(),
        }
    }

    /// Every blocking lane, with its role: the one list to extend. The smol
    /// scope's blocking work goes to unirun's lane, measured against the
    /// `blocking` crate the smol stack would use.
    pub(crate) fn each_lane(&self, v: &mut impl VisitLane) {
        v.visit("unirun Run", Role::Unirun, self.run.clone());
        v.visit("unirun::to_thread", Role::Unirun, Global);
        v.visit("raw pool (ref)", Role::UnirunRaw, self.raw.handle());
        v.visit("tokio", Role::Peer, self.tokio.handle().clone());
        v.visit("blocking", Role::Peer, BlockingCrate);
        #[cfg(feature = "tokio-backend")]
        v.visit("Run on tokio", Role::Over("tokio"), self.run_tokio.clone());
        #[cfg(feature = "tokio-backend")]
        v.visit(
            "tokio+TaskTracker",
            Role::SameContract("tokio"),
            self.tracked_tokio(),
        );
        #[cfg(feature = "smol-backend")]
        v.visit("Run on smol", Role::Over("blocking"), self.run_smol.clone());
    }
}
