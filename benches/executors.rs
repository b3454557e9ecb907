//! Interleaved executor comparison: unirun's threads backend against tokio,
//! async-executor, futures-executor, rayon, `blocking` and futures-lite.
//!
//! # Why a hand-written harness
//!
//! criterion and divan time one benchmark function after another. On a small,
//! shared machine that lets a burst of outside load land on one contender
//! only, and neither can print a ratio between two contenders measured in the
//! same run. This harness therefore interleaves: for every sample round it
//! runs each contender of a scenario once, in rotated order (the first place
//! rotates by one each round, the rest are shuffled so that no contender
//! always runs right after the same other one, whose threads may still be
//! spinning down), so noise is spread over everyone alike. A short untimed
//! pause after each run lets the previous pool go idle. It then prints, per
//! scenario, the median and minimum time per operation and per iteration, and
//! for unirun the ratio `unirun / best peer` (and `unirun / rayon` where rayon
//! fits the scenario), and finally a summary of all ratios.
//!
//! # Running
//!
//! ```text
//! cargo bench                              # every scenario
//! cargo bench -- spawn_remote              # scenarios whose name contains a filter word
//! UNIRUN_BENCH_SAMPLES=100 cargo bench     # samples per contender (default 30)
//! ```
//!
//! Flags (`--bench`, which cargo adds, or any other `-x`) are never taken as
//! filters. When `--bench` is absent, the binary was started by `cargo test`
//! (e.g. `cargo test --all-targets`): it then runs a quick smoke pass of one
//! sample and no warm-up, unless `UNIRUN_BENCH_SAMPLES` says otherwise.
//!
//! # Method
//!
//! Every pool is built once, outside timing, with 2 workers wherever a count
//! applies, and reused by all samples. One sample is one full scenario
//! iteration timed with [`Instant`]; a few warm-up iterations per contender
//! run first. Blocking lanes (unirun's, tokio's, the `blocking` crate's) keep
//! their default elastic sizes, since that is what such lanes are for.
//!
//! Each scenario is written once per API family: generically over
//! [`Spawner`] for the task executors, over [`BlockingLane`] for blocking
//! pools, and once by hand for rayon where it fits.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures_lite::future::yield_now;

/// Workers of every pool with a worker count.
const WORKERS: usize = 2;
/// Samples per contender when `UNIRUN_BENCH_SAMPLES` is unset.
const DEFAULT_SAMPLES: usize = 30;
/// Untimed iterations per contender before sampling.
const WARMUP: usize = 3;
/// Untimed pause after every run, so the pool that just ran goes idle
/// (stops spinning) before the next contender starts.
const SETTLE: Duration = Duration::from_millis(1);

/// Tasks per iteration in `spawn_remote` and `spawn_local`.
const SPAWN_TASKS: usize = 10_000;
/// Tasks in `yield_many`.
const YIELD_TASKS: usize = 200;
/// Yields per task in `yield_many`.
const YIELDS_PER_TASK: usize = 1_000;
/// Round trips in `ping_pong`.
const ROUND_TRIPS: usize = 1_000;
/// Spawns in one `chained_spawn` chain.
const CHAIN_DEPTH: usize = 1_000;
/// Closures in `blocking_many`.
const BLOCKING_CALLS: usize = 2_000;
/// Calls in `block_on_ready`.
const READY_CALLS: usize = 100_000;
/// Argument of `fork_join`'s fib.
const FIB_N: u32 = 25;
/// Below this, `fork_join` computes fib sequentially.
const FIB_CUTOFF: u32 = 12;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// How a contender's numbers enter the ratios.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The library under test: the numerator of every ratio.
    Unirun,
    /// A peer: the best (lowest median) one is the denominator of the main ratio.
    Peer,
    /// Shown with its own ratio column, but never the "best peer" (rayon).
    Reference,
    /// Shown for context only, in no ratio.
    Shown,
    /// unirun's adapter onto another executor: compared with that
    /// executor's own row (named here) only.
    #[cfg_attr(
        not(any(feature = "tokio-backend", feature = "smol-backend")),
        allow(dead_code)
    )]
    Over(&'static str),
}

/// One executor running one scenario; `run` is `None` where the scenario
/// does not fit the executor (printed as `-`).
struct Contender {
    name: &'static str,
    role: Role,
    run: Option<Box<dyn FnMut()>>,
}

impl Contender {
    fn new(name: &'static str, role: Role, run: impl FnMut() + 'static) -> Self {
        Self {
            name,
            role,
            run: Some(Box::new(run)),
        }
    }

    fn absent(name: &'static str, role: Role) -> Self {
        Self {
            name,
            role,
            run: None,
        }
    }
}

/// A workload and everyone who runs it.
struct Scenario {
    name: &'static str,
    about: &'static str,
    /// Operations in one iteration; times are also reported divided by this.
    ops: usize,
    contenders: Vec<Contender>,
}

/// Median and minimum of one contender's samples.
#[derive(Clone, Copy)]
struct Stats {
    median: Duration,
    min: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let mid = samples.len() / 2;
        let median = if samples.len() % 2 == 0 {
            (samples[mid - 1] + samples[mid]) / 2
        } else {
            samples[mid]
        };
        Self {
            median,
            min: samples[0],
        }
    }
}

/// One printed row: a contender and its numbers, if it ran.
struct Row {
    name: &'static str,
    role: Role,
    stats: Option<Stats>,
}

/// Everything measured for one scenario.
struct Outcome {
    scenario: &'static str,
    ops: usize,
    rows: Vec<Row>,
}

impl Outcome {
    fn ns_per_op(&self, time: Duration) -> f64 {
        time.as_nanos() as f64 / self.ops as f64
    }

    /// The measured contender with `role` and the lowest median.
    fn best(&self, role: Role) -> Option<(&'static str, Stats)> {
        self.rows
            .iter()
            .filter(|row| row.role == role)
            .filter_map(|row| row.stats.map(|stats| (row.name, stats)))
            .min_by_key(|(_, stats)| stats.median)
    }

    fn unirun(&self) -> Option<Stats> {
        self.best(Role::Unirun).map(|(_, stats)| stats)
    }

    /// `row / base` on medians for an adapter row ([`Role::Over`]).
    fn over_ratio(&self, row: &Row) -> Option<f64> {
        let Role::Over(base) = row.role else {
            return None;
        };
        let base = self.rows.iter().find(|r| r.name == base)?.stats?;
        Some(row.stats?.median.as_secs_f64() / base.median.as_secs_f64())
    }

    /// `unirun / other` on medians, when both ran.
    fn ratio(&self, other: Option<(&'static str, Stats)>) -> Option<f64> {
        let unirun = self.unirun()?;
        let (_, other) = other?;
        Some(unirun.median.as_secs_f64() / other.median.as_secs_f64())
    }
}

/// Command line and environment settings.
struct Config {
    samples: usize,
    warmup: usize,
    filters: Vec<String>,
}

impl Config {
    fn from_env() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let bench_mode = args.iter().any(|arg| arg == "--bench");
        let filters = args
            .into_iter()
            .filter(|arg| !arg.starts_with('-'))
            .collect();
        let default_samples = if bench_mode { DEFAULT_SAMPLES } else { 1 };
        let samples = match std::env::var("UNIRUN_BENCH_SAMPLES") {
            Ok(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| {
                    panic!("UNIRUN_BENCH_SAMPLES={text:?}: want a positive integer")
                }),
            Err(_) => default_samples,
        };
        Self {
            samples,
            warmup: if bench_mode { WARMUP } else { 0 },
            filters,
        }
    }

    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// The order of one round: contender `round % count` first, the others
/// after it in an order shuffled by `seed` (xorshift64, deterministic).
fn round_order(round: usize, count: usize, seed: &mut u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).map(|step| (round + step) % count).collect();
    for i in (2..count).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = 1 + (*seed % i as u64) as usize;
        order.swap(i, j);
    }
    order
}

/// Runs every contender `warmup + samples` times, interleaved: each round
/// runs every contender once, in [`round_order`].
fn measure(scenario: &mut Scenario, config: &Config) -> Outcome {
    let count = scenario.contenders.len();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(config.samples); count];
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for round in 0..config.warmup + config.samples {
        for index in round_order(round, count, &mut seed) {
            let Some(run) = scenario.contenders[index].run.as_mut() else {
                continue;
            };
            let start = Instant::now();
            run();
            let elapsed = start.elapsed();
            thread::sleep(SETTLE);
            if round >= config.warmup {
                samples[index].push(elapsed);
            }
        }
    }
    let rows = scenario
        .contenders
        .iter()
        .zip(samples)
        .map(|(contender, samples)| Row {
            name: contender.name,
            role: contender.role,
            stats: contender.run.as_ref().map(|_| Stats::of(samples)),
        })
        .collect();
    Outcome {
        scenario: scenario.name,
        ops: scenario.ops,
        rows,
    }
}

/// A ratio as `1.23x`, or `-` when one side did not run.
fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

/// Median ns per op, or `-` for a contender that did not run.
fn ns_cell(outcome: &Outcome, stats: Option<Stats>) -> String {
    stats.map_or_else(
        || "-".to_owned(),
        |s| format!("{:.1}", outcome.ns_per_op(s.median)),
    )
}

/// Prints one scenario's table.
fn print_table(scenario: &Scenario, outcome: &Outcome) {
    println!();
    println!("{}: {}", scenario.name, scenario.about);
    println!(
        "  {:<18} {:>13} {:>11} {:>15} {:>13} {:>10}",
        "contender", "median ns/op", "min ns/op", "median us/iter", "vs best peer", "vs rayon"
    );
    let vs_peer = outcome.ratio(outcome.best(Role::Peer));
    let vs_rayon = outcome.ratio(outcome.best(Role::Reference));
    for row in &outcome.rows {
        let (median, min, iter) = match row.stats {
            Some(s) => (
                ns_cell(outcome, Some(s)),
                format!("{:.1}", outcome.ns_per_op(s.min)),
                format!("{:.1}", s.median.as_secs_f64() * 1e6),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let (peer, rayon) = if row.role == Role::Unirun {
            (ratio_cell(vs_peer), ratio_cell(vs_rayon))
        } else if let Role::Over(base) = row.role {
            (
                format!("{} {base}", ratio_cell(outcome.over_ratio(row))),
                String::new(),
            )
        } else {
            (String::new(), String::new())
        };
        println!(
            "  {:<18} {median:>13} {min:>11} {iter:>15} {peer:>13} {rayon:>10}",
            row.name
        );
    }
    if let Some((name, _)) = outcome.best(Role::Peer) {
        println!("  best peer: {name}");
    }
}

/// Prints every scenario's ratios.
fn print_summary(outcomes: &[Outcome], config: &Config) {
    println!();
    println!(
        "summary: median ratios unirun / other, {} samples per contender (< 1.00x: unirun faster)",
        config.samples
    );
    println!(
        "  {:<15} {:>12} {:<17} {:>11} {:>13} {:>12} {:>13}",
        "scenario",
        "unirun ns/op",
        "best peer",
        "peer ns/op",
        "unirun/peer",
        "rayon ns/op",
        "unirun/rayon"
    );
    for outcome in outcomes {
        let peer = outcome.best(Role::Peer);
        let rayon = outcome.best(Role::Reference);
        println!(
            "  {:<15} {:>12} {:<17} {:>11} {:>13} {:>12} {:>13}",
            outcome.scenario,
            ns_cell(outcome, outcome.unirun()),
            peer.map_or("-", |(name, _)| name),
            ns_cell(outcome, peer.map(|(_, s)| s)),
            ratio_cell(outcome.ratio(peer)),
            ns_cell(outcome, rayon.map(|(_, s)| s)),
            ratio_cell(outcome.ratio(rayon)),
        );
    }
    let adapters: Vec<_> = outcomes
        .iter()
        .flat_map(|o| o.rows.iter().map(move |row| (o, row)))
        .filter(|(o, row)| o.over_ratio(row).is_some())
        .collect();
    if !adapters.is_empty() {
        println!();
        println!("adapters: median ratio unirun-over-X / X on the same runtime");
        for (outcome, row) in adapters {
            let Role::Over(base) = row.role else { continue };
            println!(
                "  {:<15} {:<18} {:>12} vs {base}",
                outcome.scenario,
                row.name,
                ratio_cell(outcome.over_ratio(row)),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// API families
// ---------------------------------------------------------------------------

/// Adapts a join handle whose `Result` can only be an error through a bug
/// in this file: yields the task's output or panics.
struct Joined<H>(H);

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
trait Spawner: Clone + Send + Sync + 'static {
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

/// An async-executor `Executor` that [`AsyncExecutorPool`] drives.
#[derive(Clone)]
struct AsyncExecutor(Arc<async_executor::Executor<'static>>);

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

/// A pool for blocking closures, awaited from async code.
trait BlockingLane: Clone + 'static {
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
struct BlockingCrate;

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

/// The unirun contender: its threads backend behind the same two traits.
mod unirun_side {
    use super::{BlockingLane, Joined, Spawner, WORKERS};
    use std::future::Future;

    /// Builds the pool under test.
    pub(super) fn pool() -> unirun_threads::ThreadPool {
        unirun_threads::ThreadPool::builder()
            .workers(WORKERS)
            .name("bench")
            .build()
            .expect("unirun threads pool")
    }

    impl Spawner for unirun_threads::Handle {
        type Task<T: Send + 'static> = Joined<unirun::JoinHandle<T>>;

        fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
        where
            F: Future + Send + 'static,
            F::Output: Send + 'static,
        {
            Joined(unirun_threads::Handle::spawn(self, fut))
        }

        fn detach<F>(&self, fut: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            unirun_threads::Handle::spawn(self, fut).detach();
        }

        fn block_on<F: Future>(&self, fut: F) -> F::Output {
            unirun::block_on(fut)
        }
    }

    impl BlockingLane for unirun_threads::Handle {
        type Task<T: Send + 'static> = Joined<unirun::JoinHandle<T>>;

        fn unblock<T, W>(&self, work: W) -> Self::Task<T>
        where
            T: Send + 'static,
            W: FnOnce() -> T + Send + 'static,
        {
            Joined(self.spawn_blocking(work))
        }

        fn block_on<F: Future>(&self, fut: F) -> F::Output {
            unirun::block_on(fut)
        }
    }
}

/// unirun's tokio backend on the bench's tokio runtime (`tokio-backend`).
#[cfg(feature = "tokio-backend")]
mod over_tokio {
    use super::{BlockingLane, Joined, Spawner};
    use std::future::Future;

    impl Spawner for unirun_tokio::Handle {
        type Task<T: Send + 'static> = Joined<unirun::JoinHandle<T>>;

        fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
        where
            F: Future + Send + 'static,
            F::Output: Send + 'static,
        {
            Joined(unirun_tokio::Handle::spawn(self, fut))
        }

        fn detach<F>(&self, fut: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            unirun_tokio::Handle::spawn(self, fut).detach();
        }

        fn block_on<F: Future>(&self, fut: F) -> F::Output {
            self.tokio().block_on(fut)
        }
    }

    impl BlockingLane for unirun_tokio::Handle {
        type Task<T: Send + 'static> = Joined<unirun::JoinHandle<T>>;

        fn unblock<T, W>(&self, work: W) -> Self::Task<T>
        where
            T: Send + 'static,
            W: FnOnce() -> T + Send + 'static,
        {
            Joined(self.spawn_blocking(work))
        }

        fn block_on<F: Future>(&self, fut: F) -> F::Output {
            self.tokio().block_on(fut)
        }
    }
}

/// unirun's smol backend on the bench's async-executor (`smol-backend`).
#[cfg(feature = "smol-backend")]
mod over_smol {
    use super::{BlockingLane, Joined, Spawner};
    use std::future::Future;

    impl Spawner for unirun_smol::Handle {
        type Task<T: Send + 'static> = Joined<unirun::JoinHandle<T>>;

        fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
        where
            F: Future + Send + 'static,
            F::Output: Send + 'static,
        {
            Joined(unirun_smol::Handle::spawn(self, fut))
        }

        fn detach<F>(&self, fut: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            unirun_smol::Handle::spawn(self, fut).detach();
        }

        fn block_on<F: Future>(&self, fut: F) -> F::Output {
            futures_lite::future::block_on(fut)
        }
    }

    impl BlockingLane for unirun_smol::Handle {
        type Task<T: Send + 'static> = Joined<unirun::JoinHandle<T>>;

        fn unblock<T, W>(&self, work: W) -> Self::Task<T>
        where
            T: Send + 'static,
            W: FnOnce() -> T + Send + 'static,
        {
            Joined(self.spawn_blocking(work))
        }

        fn block_on<F: Future>(&self, fut: F) -> F::Output {
            futures_lite::future::block_on(fut)
        }
    }
}

/// Counts down from `n`; [`Latch::wait`] returns once it reaches zero.
/// Lets the bench thread await work handed to rayon.
struct Latch {
    left: AtomicUsize,
    done: Mutex<bool>,
    zero: Condvar,
}

impl Latch {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            left: AtomicUsize::new(n),
            done: Mutex::new(false),
            zero: Condvar::new(),
        })
    }

    fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().expect("latch poisoned") = true;
            self.zero.notify_all();
        }
    }

    fn wait(&self) {
        let mut done = self.done.lock().expect("latch poisoned");
        while !*done {
            done = self.zero.wait(done).expect("latch poisoned");
        }
    }
}

/// An async-executor `Executor` run by [`WORKERS`] threads until dropped.
struct AsyncExecutorPool {
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

/// Every pool, built once before any timing and shared by all samples.
struct Pools {
    unirun: unirun_threads::ThreadPool,
    tokio: tokio::runtime::Runtime,
    async_executor: AsyncExecutorPool,
    futures: futures::executor::ThreadPool,
    rayon: Arc<rayon::ThreadPool>,
}

impl Pools {
    fn new() -> Self {
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
        Self {
            unirun: unirun_side::pool(),
            tokio,
            async_executor: AsyncExecutorPool::new(),
            futures,
            rayon: Arc::new(rayon),
        }
    }
}

// ---------------------------------------------------------------------------
// Scenarios over the task executors
// ---------------------------------------------------------------------------

/// A scenario written once for every [`Spawner`], plus rayon where it fits.
trait AsyncScenario {
    const NAME: &'static str;
    const ABOUT: &'static str;
    const OPS: usize;

    /// One full iteration on `spawner`, issued from the bench thread.
    fn run<S: Spawner>(spawner: &S);

    /// The rayon version, if the scenario makes sense for rayon.
    fn rayon() -> Option<fn(&rayon::ThreadPool)> {
        None
    }
}

/// Spawns `make(i)` for `i in 0..n` and returns their result futures.
fn spawn_each<S, F>(spawner: &S, n: usize, make: impl Fn(usize) -> F) -> Vec<S::Task<F::Output>>
where
    S: Spawner,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    (0..n).map(|i| spawner.spawn(make(i))).collect()
}

/// Awaits every future in order.
async fn join_all<F: Future>(tasks: Vec<F>) {
    for task in tasks {
        black_box(task.await);
    }
}

/// Runs `work(i)` for `i in 0..n` as separate rayon jobs injected from the
/// bench thread, and waits for all of them.
fn rayon_each(pool: &rayon::ThreadPool, n: usize, work: fn(usize) -> usize) {
    let latch = Latch::new(n);
    for i in 0..n {
        let latch = Arc::clone(&latch);
        pool.spawn(move || {
            black_box(work(i));
            latch.count_down();
        });
    }
    latch.wait();
}

struct SpawnRemote;

impl AsyncScenario for SpawnRemote {
    const NAME: &'static str = "spawn_remote";
    const ABOUT: &'static str =
        "10k tasks spawned from the bench thread, then awaited; op = one task";
    const OPS: usize = SPAWN_TASKS;

    fn run<S: Spawner>(spawner: &S) {
        let tasks = spawn_each(spawner, SPAWN_TASKS, |i| async move { black_box(i) });
        spawner.block_on(join_all(tasks));
    }

    fn rayon() -> Option<fn(&rayon::ThreadPool)> {
        Some(|pool| rayon_each(pool, SPAWN_TASKS, black_box))
    }
}

struct SpawnLocal;

impl AsyncScenario for SpawnLocal {
    const NAME: &'static str = "spawn_local";
    const ABOUT: &'static str = "one task spawns 10k tasks and awaits them all; op = one task";
    const OPS: usize = SPAWN_TASKS;

    fn run<S: Spawner>(spawner: &S) {
        let inner = spawner.clone();
        spawner.block_on(spawner.spawn(async move {
            let tasks = spawn_each(&inner, SPAWN_TASKS, |i| async move { black_box(i) });
            join_all(tasks).await;
        }));
    }

    fn rayon() -> Option<fn(&rayon::ThreadPool)> {
        Some(|pool| {
            pool.install(|| {
                rayon::scope(|scope| {
                    for i in 0..SPAWN_TASKS {
                        scope.spawn(move |_| {
                            black_box(i);
                        });
                    }
                });
            });
        })
    }
}

struct YieldMany;

impl AsyncScenario for YieldMany {
    const NAME: &'static str = "yield_many";
    const ABOUT: &'static str = "200 tasks x 1000 yield_now each, awaited; op = one yield";
    const OPS: usize = YIELD_TASKS * YIELDS_PER_TASK;

    fn run<S: Spawner>(spawner: &S) {
        let tasks = spawn_each(spawner, YIELD_TASKS, |_| async {
            for _ in 0..YIELDS_PER_TASK {
                yield_now().await;
            }
        });
        spawner.block_on(join_all(tasks));
    }
}

/// A ping or pong: carries the sender on which the other side must answer.
struct Ball(oneshot::Sender<Ball>);

/// Serves `ROUND_TRIPS` balls: waits on `inbox`, answers through the
/// sender inside the ball with a fresh channel for the next one.
async fn serve(mut inbox: oneshot::Receiver<Ball>) {
    for _ in 0..ROUND_TRIPS {
        let Ball(reply) = inbox.await.expect("pinger vanished");
        let (next, next_inbox) = oneshot::channel();
        assert!(reply.send(Ball(next)).is_ok(), "pinger vanished");
        inbox = next_inbox;
    }
}

/// Starts `ROUND_TRIPS` round trips through `to_server`.
async fn ping(mut to_server: oneshot::Sender<Ball>) {
    for _ in 0..ROUND_TRIPS {
        let (back, answer) = oneshot::channel();
        assert!(to_server.send(Ball(back)).is_ok(), "server vanished");
        let Ball(next) = answer.await.expect("server vanished");
        to_server = next;
    }
}

struct PingPong;

impl AsyncScenario for PingPong {
    const NAME: &'static str = "ping_pong";
    const ABOUT: &'static str =
        "one persistent task pair, 1000 round trips over oneshot channels; op = one round trip";
    const OPS: usize = ROUND_TRIPS;

    fn run<S: Spawner>(spawner: &S) {
        let (to_server, inbox) = oneshot::channel();
        let server = spawner.spawn(serve(inbox));
        let pinger = spawner.spawn(ping(to_server));
        spawner.block_on(async {
            pinger.await;
            server.await;
        });
    }
}

/// Spawns the next link of a chain of `left` spawns; the last signals `done`.
fn chain<S: Spawner>(spawner: S, left: usize, done: oneshot::Sender<()>) {
    if left == 0 {
        let _ = done.send(());
        return;
    }
    let next = spawner.clone();
    spawner.detach(async move { chain(next, left - 1, done) });
}

/// The rayon version of [`chain`].
fn rayon_chain(left: usize, done: Arc<Latch>) {
    if left == 0 {
        done.count_down();
    } else {
        rayon::spawn(move || rayon_chain(left - 1, done));
    }
}

struct ChainedSpawn;

impl AsyncScenario for ChainedSpawn {
    const NAME: &'static str = "chained_spawn";
    const ABOUT: &'static str =
        "each task spawns the next, 1000 deep, the last signals; op = one spawn";
    const OPS: usize = CHAIN_DEPTH;

    fn run<S: Spawner>(spawner: &S) {
        let (done, finished) = oneshot::channel();
        chain(spawner.clone(), CHAIN_DEPTH, done);
        spawner.block_on(finished).expect("chain broken");
    }

    fn rayon() -> Option<fn(&rayon::ThreadPool)> {
        Some(|pool| {
            let done = Latch::new(1);
            let chain_done = Arc::clone(&done);
            // The first spawn is this one; the chain adds the other DEPTH - 1.
            pool.spawn(move || rayon_chain(CHAIN_DEPTH - 1, chain_done));
            done.wait();
        })
    }
}

/// Plain recursive fib: the sequential leaves of `fork_join`.
fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// fib with a task per fork above the cutoff: spawns `n - 1`, computes `n - 2`.
fn fib_tasks<S: Spawner>(spawner: S, n: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if n < FIB_CUTOFF {
            return fib(black_box(n));
        }
        let left = spawner.spawn(fib_tasks(spawner.clone(), n - 1));
        let right = fib_tasks(spawner, n - 2).await;
        left.await + right
    })
}

/// fib with `rayon::join` per fork above the cutoff.
fn fib_join(n: u32) -> u64 {
    if n < FIB_CUTOFF {
        return fib(black_box(n));
    }
    let (left, right) = rayon::join(|| fib_join(n - 1), || fib_join(n - 2));
    left + right
}

struct ForkJoin;

impl AsyncScenario for ForkJoin {
    const NAME: &'static str = "fork_join";
    const ABOUT: &'static str =
        "fib(25), forking above cutoff 12 (spawn+await, rayon::join); op = one fib(25)";
    const OPS: usize = 1;

    fn run<S: Spawner>(spawner: &S) {
        let root = spawner.spawn(fib_tasks(spawner.clone(), FIB_N));
        black_box(spawner.block_on(root));
    }

    fn rayon() -> Option<fn(&rayon::ThreadPool)> {
        Some(|pool| {
            black_box(pool.install(|| fib_join(FIB_N)));
        })
    }
}

/// `A` on every task executor, plus rayon (or its `-` row).
fn async_scenario<A: AsyncScenario>(pools: &Pools) -> Scenario {
    fn on<A: AsyncScenario, S: Spawner>(name: &'static str, role: Role, spawner: S) -> Contender {
        Contender::new(name, role, move || A::run(&spawner))
    }
    let rayon = match A::rayon() {
        Some(run) => {
            let pool = Arc::clone(&pools.rayon);
            Contender::new("rayon", Role::Reference, move || run(&pool))
        }
        None => Contender::absent("rayon", Role::Reference),
    };
    Scenario {
        name: A::NAME,
        about: A::ABOUT,
        ops: A::OPS,
        contenders: vec![
            on::<A, _>("unirun", Role::Unirun, pools.unirun.handle()),
            on::<A, _>("tokio", Role::Peer, pools.tokio.handle().clone()),
            on::<A, _>(
                "async-executor",
                Role::Peer,
                pools.async_executor.executor.clone(),
            ),
            on::<A, _>("futures-executor", Role::Peer, pools.futures.clone()),
            rayon,
        ]
        .into_iter()
        .chain(async_adapters::<A>(pools))
        .collect(),
    }
}

/// unirun's adapters onto the bench's runtimes, where compiled in:
/// unirun-over-tokio on the tokio runtime, unirun-over-smol on the
/// async-executor pool.
#[allow(unused_mut, unused_variables, clippy::vec_init_then_push)] // depends on features
fn async_adapters<A: AsyncScenario>(pools: &Pools) -> Vec<Contender> {
    let mut out = Vec::new();
    #[cfg(feature = "tokio-backend")]
    {
        let handle = unirun_tokio::Handle::from_tokio(pools.tokio.handle().clone());
        out.push(Contender::new(
            "unirun-over-tokio",
            Role::Over("tokio"),
            move || A::run(&handle),
        ));
    }
    #[cfg(feature = "smol-backend")]
    {
        let handle = unirun_smol::Handle::from_executor(pools.async_executor.executor.0.clone());
        out.push(Contender::new(
            "unirun-over-smol",
            Role::Over("async-executor"),
            move || A::run(&handle),
        ));
    }
    out
}

// ---------------------------------------------------------------------------
// Scenarios over blocking lanes and block_on
// ---------------------------------------------------------------------------

/// The tiny closure body of `blocking_many`.
fn tiny(i: usize) -> usize {
    black_box(i).wrapping_add(black_box(1))
}

fn blocking_many(pools: &Pools) -> Scenario {
    fn on<L: BlockingLane>(name: &'static str, role: Role, lane: L) -> Contender {
        Contender::new(name, role, move || {
            let tasks: Vec<_> = (0..BLOCKING_CALLS)
                .map(|i| lane.unblock(move || tiny(i)))
                .collect();
            lane.block_on(join_all(tasks));
        })
    }
    let pool = Arc::clone(&pools.rayon);
    Scenario {
        name: "blocking_many",
        about: "2000 tiny closures through the blocking lane, awaited; op = one closure",
        ops: BLOCKING_CALLS,
        contenders: vec![
            on("unirun", Role::Unirun, pools.unirun.handle()),
            on("tokio", Role::Peer, pools.tokio.handle().clone()),
            on("blocking", Role::Peer, BlockingCrate),
            Contender::new("rayon", Role::Reference, move || {
                rayon_each(&pool, BLOCKING_CALLS, tiny);
            }),
        ]
        .into_iter()
        .chain(blocking_adapters(pools))
        .collect(),
    }
}

/// `blocking_many` on unirun's adapters, where compiled in; the smol
/// adapter's blocking work goes to its own unirun lane, measured against the
/// `blocking` crate the smol stack would use.
#[allow(unused_mut, unused_variables, clippy::vec_init_then_push)] // depends on features
fn blocking_adapters(pools: &Pools) -> Vec<Contender> {
    #[allow(dead_code)] // unused without the features
    fn on<L: BlockingLane>(name: &'static str, base: &'static str, lane: L) -> Contender {
        Contender::new(name, Role::Over(base), move || {
            let tasks: Vec<_> = (0..BLOCKING_CALLS)
                .map(|i| lane.unblock(move || tiny(i)))
                .collect();
            lane.block_on(join_all(tasks));
        })
    }
    let mut out = Vec::new();
    #[cfg(feature = "tokio-backend")]
    out.push(on(
        "unirun-over-tokio",
        "tokio",
        unirun_tokio::Handle::from_tokio(pools.tokio.handle().clone()),
    ));
    #[cfg(feature = "smol-backend")]
    out.push(on(
        "unirun-over-smol",
        "blocking",
        unirun_smol::Handle::from_executor(pools.async_executor.executor.0.clone()),
    ));
    out
}

/// The immediately ready future of `block_on_ready`.
async fn ready() -> i32 {
    black_box(1)
}

fn block_on_ready() -> Scenario {
    fn on<F: Future<Output = i32> + 'static>(
        name: &'static str,
        role: Role,
        make: fn() -> F,
        mut block_on: impl FnMut(F) -> i32 + 'static,
    ) -> Contender {
        Contender::new(name, role, move || {
            for _ in 0..READY_CALLS {
                black_box(block_on(make()));
            }
        })
    }
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio current_thread runtime");
    Scenario {
        name: "block_on_ready",
        about: "100k block_on calls on an immediately ready future; op = one call",
        ops: READY_CALLS,
        contenders: vec![
            on("unirun", Role::Unirun, ready, unirun::block_on),
            on("futures-lite", Role::Peer, ready, |f| {
                futures_lite::future::block_on(f)
            }),
            on("futures-executor", Role::Shown, ready, |f| {
                futures::executor::block_on(f)
            }),
            on("tokio-current", Role::Shown, ready, move |f| {
                current_thread.block_on(f)
            }),
        ],
    }
}

/// `to_process`: fork per call, against a raw fork + pipe + waitpid floor;
/// `pool_call`: a call in a pre-forked worker, against a pre-forked pipe
/// echo. Both measured in the same run (process backend, unix only).
///
/// The floors fork from a helper thread, as unirun does (from a blocking
/// lane thread, or its forker thread): on this VM a child forked from the
/// bench's main thread answered about 20x slower (96 us against 4.6 us per
/// echo round trip), an artifact that would flatter unirun.
#[cfg(all(unix, feature = "process-backend"))]
mod process_scenarios {
    use std::hint::black_box;
    use std::os::fd::AsFd;
    use std::thread;

    use unirun_platform::process::{self as sys, Forked};

    use super::{Contender, Role, Scenario};

    /// Forks per iteration.
    const FORK_CALLS: usize = 50;
    /// Calls per iteration of `pool_call`.
    const POOL_CALLS: usize = 1_000;

    /// The floor: the least a fork-per-call round trip can do. The child
    /// writes 8 bytes to a pipe and leaves; the parent reads them and reaps.
    fn raw_fork(value: u64) -> u64 {
        let (read, write) = sys::pipe().expect("pipe");
        // SAFETY: the child calls only `write` and `_exit` (async-signal-safe).
        match unsafe { sys::fork() }.expect("fork") {
            Forked::Child => {
                let code = i32::from(sys::write_all(write.as_fd(), &value.to_le_bytes()).is_err());
                sys::exit_now(code)
            }
            Forked::Parent(pid) => {
                drop(write);
                let mut buf = [0u8; 8];
                let mut got = 0;
                while got < 8 {
                    match sys::read_until(read.as_fd(), &mut buf[got..], None).expect("read") {
                        Some(0) | None => break,
                        Some(n) => got += n,
                    }
                }
                sys::wait_pid(pid, true).expect("waitpid");
                u64::from_le_bytes(buf)
            }
        }
    }

    /// The floor for `pool_call`: a pre-forked child that echoes 8-byte
    /// messages over a pair of pipes.
    struct Echo {
        pid: sys::Pid,
        to: std::os::fd::OwnedFd,
        from: std::os::fd::OwnedFd,
    }

    impl Echo {
        fn start() -> Self {
            let (req_read, req_write) = sys::pipe().expect("pipe");
            let (rep_read, rep_write) = sys::pipe().expect("pipe");
            // SAFETY: the child calls only `read`, `write` and `_exit`
            // (async-signal-safe) on its own pipes.
            match unsafe { sys::fork() }.expect("fork") {
                Forked::Child => {
                    let mut buf = [0u8; 8];
                    loop {
                        if !read_exact(&req_read, &mut buf) {
                            sys::exit_now(0);
                        }
                        if sys::write_all(rep_write.as_fd(), &buf).is_err() {
                            sys::exit_now(1);
                        }
                    }
                }
                Forked::Parent(pid) => Echo {
                    pid,
                    to: req_write,
                    from: rep_read,
                },
            }
        }

        fn call(&self, value: u64) -> u64 {
            sys::write_all(self.to.as_fd(), &value.to_le_bytes()).expect("write");
            let mut buf = [0u8; 8];
            assert!(read_exact(&self.from, &mut buf), "the echo child died");
            u64::from_le_bytes(buf)
        }
    }

    impl Drop for Echo {
        fn drop(&mut self) {
            let _ = sys::kill(self.pid, libc::SIGKILL);
            let _ = sys::wait_pid(self.pid, true);
        }
    }

    fn read_exact(fd: &std::os::fd::OwnedFd, buf: &mut [u8]) -> bool {
        let mut got = 0;
        while got < buf.len() {
            match sys::read_until(fd.as_fd(), &mut buf[got..], None) {
                Ok(Some(n)) if n > 0 => got += n,
                _ => return false,
            }
        }
        true
    }

    fn add_one(x: u64) -> u64 {
        x + 1
    }

    pub(super) fn pool_call() -> Scenario {
        let pool = unirun::process::ProcessPool::new(1, Default::default());
        // Start the worker outside timing, as the echo child is.
        assert_eq!(pool.call(add_one, 0).expect("worker"), 1);
        let echo = thread::spawn(Echo::start).join().expect("echo");
        Scenario {
            name: "pool_call",
            about: "1000 sequential calls of fn(u64) -> u64 in a pre-forked worker; op = one round trip (floor: pre-forked pipe echo)",
            ops: POOL_CALLS,
            contenders: vec![
                Contender::new("unirun", Role::Unirun, move || {
                    for i in 0..POOL_CALLS as u64 {
                        black_box(pool.call(add_one, i).expect("worker"));
                    }
                }),
                Contender::new("pipe-echo", Role::Peer, move || {
                    for i in 0..POOL_CALLS as u64 {
                        black_box(echo.call(i));
                    }
                }),
            ],
        }
    }

    pub(super) fn to_process() -> Scenario {
        Scenario {
            name: "to_process",
            about: "50 sequential forks of a trivial closure returning a u64; op = one fork round trip (floor: raw fork + pipe + waitpid)",
            ops: FORK_CALLS,
            contenders: vec![
                Contender::new("unirun", Role::Unirun, || {
                    for i in 0..FORK_CALLS as u64 {
                        black_box(unirun::to_process(move || i + 1).join().expect("child"));
                    }
                }),
                Contender::new("raw-fork", Role::Peer, || {
                    // From a helper thread, as unirun forks from a lane
                    // thread (see the module docs).
                    thread::scope(|s| {
                        s.spawn(|| {
                            for i in 0..FORK_CALLS as u64 {
                                black_box(raw_fork(i + 1));
                            }
                        });
                    });
                }),
            ],
        }
    }
}

fn main() {
    // The pool_call workers come from a fork server started here, while
    // the process is single-threaded.
    #[cfg(all(unix, feature = "process-backend"))]
    unirun::process::init();
    let config = Config::from_env();
    let pools = Pools::new();
    let mut scenarios = vec![
        async_scenario::<SpawnRemote>(&pools),
        async_scenario::<SpawnLocal>(&pools),
        async_scenario::<YieldMany>(&pools),
        async_scenario::<PingPong>(&pools),
        async_scenario::<ChainedSpawn>(&pools),
        blocking_many(&pools),
        block_on_ready(),
        async_scenario::<ForkJoin>(&pools),
    ];
    #[cfg(all(unix, feature = "process-backend"))]
    scenarios.push(process_scenarios::to_process());
    #[cfg(all(unix, feature = "process-backend"))]
    scenarios.push(process_scenarios::pool_call());
    println!(
        "unirun executor comparison: {WORKERS} workers per pool, {} warm-up + {} samples per contender, interleaved",
        config.warmup, config.samples
    );
    let mut outcomes = Vec::new();
    for scenario in scenarios.iter_mut().filter(|s| config.selects(s.name)) {
        let outcome = measure(scenario, &config);
        print_table(scenario, &outcome);
        outcomes.push(outcome);
    }
    if outcomes.is_empty() {
        println!("no scenario matches {:?}", config.filters);
    } else {
        print_summary(&outcomes, &config);
    }
    // Contenders hold pool handles: drop them before the pools.
    drop(scenarios);
    drop(pools);
}
