//! Interleaved executor comparison: unirun, measured through the API users
//! call (a 2-worker Threads scope's `Run::spawn` and `Handle::spawn`, and
//! `unirun::spawn` on the shared default configured with 2 workers),
//! against tokio, async-executor, futures-executor, rayon, `blocking` and
//! futures-lite. The raw `unirun_threads` pool is a labelled reference row;
//! unirun scopes on tokio and smol are compared with raw tokio and raw
//! async-executor.
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
//! for every unirun row the ratio `unirun / best peer` (and `/ rayon` where
//! rayon fits), and finally a summary of all ratios.
//!
//! # Running
//!
//! ```text
//! cargo bench --bench executors                     # every scenario
//! cargo bench --bench executors -- ping_pong        # scenarios whose name contains a word
//! UNIRUN_BENCH_SAMPLES=100 cargo bench --bench executors   # samples (default 30)
//! cargo bench --bench executors --all-features      # + tokio/smol scopes, process rows
//! UNIRUN_BENCH_ONLY="unirun Run" cargo bench --bench executors -- yield_detached  # one contender (profiling)
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
//! iteration timed with `Instant` (untimed per-iteration input, such as a
//! pre-allocated channel chain, is built first); a few warm-up iterations per
//! contender run first. Blocking lanes keep their default elastic sizes,
//! since that is what such lanes are for.
//!
//! # Layout
//!
//! - `harness`: sampling, medians, ratios, tables;
//! - `contenders`: every executor behind `Spawner` / `BlockingLane`, and the
//!   one list of contenders (`Pools::each_spawner`, `Pools::each_lane`);
//! - `scenarios`: task scenarios written once over `Spawner`, in joined and
//!   detached shapes; blocking lanes and `block_on`; process calls.

mod contenders;
mod harness;
mod scenarios;

use contenders::Pools;
use harness::{measure, print_summary, print_table, Config};
use scenarios::blocking::{block_on_ready, blocking_many};
use scenarios::ping_pong::{PingPong, PingPongRoot};
use scenarios::tasks::{ChainedSpawn, SpawnLocal, SpawnRemote, YieldMany};
use scenarios::timers;
use scenarios::{async_scenario, AsyncScenario};

/// Workers of every pool with a worker count.
pub(crate) const WORKERS: usize = 2;

fn main() {
    // Process workers come from a fork server started here, while the
    // process is single-threaded.
    #[cfg(all(unix, feature = "process-backend"))]
    unirun::process::init();
    let config = Config::from_env();
    println!(
        "unirun executor comparison: {WORKERS} workers per pool, {} warm-up + {} samples per contender, interleaved",
        config.warmup, config.samples
    );
    let pools = Pools::new();
    // Scenarios are built lazily, so a filtered run starts only what it needs.
    type Build<'a> = (&'static str, Box<dyn Fn() -> harness::Scenario + 'a>);
    fn task<'a, A: AsyncScenario>(pools: &'a Pools) -> Build<'a> {
        (A::NAME, Box::new(move || async_scenario::<A>(pools)))
    }
    #[allow(unused_mut)] // extended with the process scenarios by feature
    let mut builds: Vec<Build<'_>> = vec![
        task::<SpawnRemote<false>>(&pools),
        task::<SpawnRemote<true>>(&pools),
        task::<SpawnLocal<false>>(&pools),
        task::<SpawnLocal<true>>(&pools),
        task::<YieldMany<false>>(&pools),
        task::<YieldMany<true>>(&pools),
        task::<PingPong>(&pools),
        task::<PingPongRoot>(&pools),
        task::<ChainedSpawn>(&pools),
        (
            "fork_join",
            Box::new(|| scenarios::fork_join::fork_join(&pools)),
        ),
        (
            "par_map",
            Box::new(|| scenarios::fork_join::par_map(&pools)),
        ),
        ("blocking_many", Box::new(|| blocking_many(&pools))),
        ("block_on_ready", Box::new(|| block_on_ready(&pools))),
        ("timers", Box::new(|| timers::timers(&pools))),
        (
            "timer_churn",
            Box::new(|| timers::timer_churn(&pools, false)),
        ),
        (
            "timer_churn_pending",
            Box::new(|| timers::timer_churn(&pools, true)),
        ),
    ];
    #[cfg(all(unix, feature = "process-backend"))]
    {
        use scenarios::process;
        builds.push(("to_process", Box::new(process::to_process)));
        builds.push(("process_call_seq", Box::new(process::process_call_seq)));
        builds.push((
            "process_call_concurrent",
            Box::new(|| process::process_call_concurrent(&pools)),
        ));
    }
    let mut outcomes = Vec::new();
    for (_, build) in builds.iter().filter(|(name, _)| config.selects(name)) {
        // Each scenario's contenders (and any pools of its own) drop
        // before the next scenario starts.
        let mut scenario = build();
        let outcome = measure(&mut scenario, &config);
        print_table(&outcome);
        outcomes.push(outcome);
    }
    if outcomes.is_empty() {
        println!("no scenario matches {:?}", config.filters());
    } else {
        timers::print_timer_report();
        print_summary(&outcomes, &config);
    }
    drop(builds);
    drop(pools);
}
