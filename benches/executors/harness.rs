//! The interleaved, round-by-round harness: contenders, sampling, medians,
//! ratios and the printed tables.

use std::thread;
use std::time::{Duration, Instant};

/// Samples per contender when `UNIRUN_BENCH_SAMPLES` is unset.
const DEFAULT_SAMPLES: usize = 30;
/// Untimed iterations per contender before sampling.
const WARMUP: usize = 3;
/// Untimed pause after every run, so the pool that just ran goes idle
/// (stops spinning) before the next contender starts.
const SETTLE: Duration = Duration::from_millis(1);

/// How a contender's numbers enter the ratios.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// unirun through its public API: the numerator of the headline ratios.
    Unirun,
    /// unirun below its public API (the raw pool): a labelled reference
    /// row with its own ratio, never the headline.
    UnirunRaw,
    /// A peer: the best (lowest median) one is the denominator of every ratio.
    Peer,
    /// Shown with its own ratio column, but never the "best peer" (rayon).
    Reference,
    /// Shown for context only, in no ratio.
    Shown,
    /// A unirun scope on another runtime: compared with that runtime's own
    /// row (named here) only.
    #[cfg_attr(
        not(any(feature = "tokio-backend", feature = "smol-backend")),
        allow(dead_code)
    )]
    Over(&'static str),
    /// A peer that keeps the contract of a unirun scope over runtime X
    /// (named here): every task tracked, as `tokio_util`'s `TaskTracker`
    /// does for tokio. Shown; the adapters' summary compares each scope
    /// over X with it too.
    #[cfg_attr(not(feature = "tokio-backend"), allow(dead_code))]
    SameContract(&'static str),
}

impl Role {
    fn is_unirun(self) -> bool {
        matches!(self, Role::Unirun | Role::UnirunRaw)
    }
}

/// One timed run of a contender: does any untimed setup, then times the
/// scenario body and returns its duration.
type Run = Box<dyn FnMut() -> Duration>;

/// One executor running one scenario; `run` is `None` where the scenario
/// does not fit the executor (printed as `-`).
pub(crate) struct Contender {
    name: &'static str,
    role: Role,
    run: Option<Run>,
}

impl Contender {
    /// A contender whose whole `run` is timed.
    pub(crate) fn new(name: &'static str, role: Role, mut run: impl FnMut() + 'static) -> Self {
        Self::timed(name, role, move || {
            let start = Instant::now();
            run();
            start.elapsed()
        })
    }

    /// A contender that times itself (to leave setup out of the sample).
    pub(crate) fn timed(
        name: &'static str,
        role: Role,
        run: impl FnMut() -> Duration + 'static,
    ) -> Self {
        Self {
            name,
            role,
            run: Some(Box::new(run)),
        }
    }

    /// The contender's row name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// A contender the scenario does not fit.
    pub(crate) fn absent(name: &'static str, role: Role) -> Self {
        Self {
            name,
            role,
            run: None,
        }
    }
}

/// A workload and everyone who runs it.
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    /// Operations in one iteration; times are also reported divided by this.
    pub(crate) ops: usize,
    pub(crate) contenders: Vec<Contender>,
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
pub(crate) struct Outcome {
    scenario: &'static str,
    about: &'static str,
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

    /// `row / base` on medians, when both ran.
    fn ratio_of(row: &Row, base: Option<Stats>) -> Option<f64> {
        Some(row.stats?.median.as_secs_f64() / base?.median.as_secs_f64())
    }

    /// `row / best peer` on minimums: less disturbed by outside load than
    /// the median on a busy machine, shown beside it in the summary.
    fn min_ratio(&self, row: &Row) -> Option<f64> {
        let base = self.best(Role::Peer)?.1;
        Some(row.stats?.min.as_secs_f64() / base.min.as_secs_f64())
    }

    /// The ratio printed beside `row`: unirun rows against the best peer,
    /// adapter rows against their own runtime.
    fn row_ratio(&self, row: &Row) -> Option<f64> {
        match row.role {
            Role::Unirun | Role::UnirunRaw => {
                Self::ratio_of(row, self.best(Role::Peer).map(|(_, s)| s))
            }
            Role::Over(base) => {
                let base = self.rows.iter().find(|r| r.name == base)?.stats;
                Self::ratio_of(row, base)
            }
            _ => None,
        }
    }

    /// The worst (highest) ratio of a public-API unirun row to the best peer.
    fn worst_public(&self) -> Option<f64> {
        self.rows
            .iter()
            .filter(|row| row.role == Role::Unirun)
            .filter_map(|row| self.row_ratio(row))
            .max_by(f64::total_cmp)
    }
}

/// Command line and environment settings.
pub(crate) struct Config {
    pub(crate) samples: usize,
    pub(crate) warmup: usize,
    filters: Vec<String>,
    /// `UNIRUN_BENCH_ONLY`: comma-separated contender names to run (for
    /// profiling one contender); empty = all.
    only: Vec<String>,
}

impl Config {
    pub(crate) fn from_env() -> Self {
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
        let only = std::env::var("UNIRUN_BENCH_ONLY")
            .map(|names| names.split(',').map(|n| n.trim().to_owned()).collect())
            .unwrap_or_default();
        Self {
            samples,
            warmup: if bench_mode { WARMUP } else { 0 },
            filters,
            only,
        }
    }

    /// Whether a scenario named `name` was asked for (a filter word is a
    /// substring of the name, or there is no filter).
    pub(crate) fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    /// Whether the contender named `name` runs.
    fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }

    pub(crate) fn filters(&self) -> &[String] {
        &self.filters
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
pub(crate) fn measure(scenario: &mut Scenario, config: &Config) -> Outcome {
    let count = scenario.contenders.len();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(config.samples); count];
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for round in 0..config.warmup + config.samples {
        for index in round_order(round, count, &mut seed) {
            let contender = &mut scenario.contenders[index];
            if !config.runs(contender.name) {
                continue;
            }
            let Some(run) = contender.run.as_mut() else {
                continue;
            };
            let elapsed = run();
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
            stats: contender
                .run
                .as_ref()
                .filter(|_| config.runs(contender.name))
                .map(|_| Stats::of(samples)),
        })
        .collect();
    Outcome {
        scenario: scenario.name,
        about: scenario.about,
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
pub(crate) fn print_table(outcome: &Outcome) {
    println!();
    println!("{}: {}", outcome.scenario, outcome.about);
    println!(
        "  {:<20} {:>13} {:>11} {:>15} {:>22} {:>10}",
        "contender", "median ns/op", "min ns/op", "median us/iter", "vs best peer", "vs rayon"
    );
    let rayon = outcome.best(Role::Reference).map(|(_, s)| s);
    for row in &outcome.rows {
        let (median, min, iter) = match row.stats {
            Some(s) => (
                ns_cell(outcome, Some(s)),
                format!("{:.1}", outcome.ns_per_op(s.min)),
                format!("{:.1}", s.median.as_secs_f64() * 1e6),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let (peer, vs_rayon) = match row.role {
            role if role.is_unirun() => (
                ratio_cell(outcome.row_ratio(row)),
                ratio_cell(Outcome::ratio_of(row, rayon)),
            ),
            Role::Over(base) => (
                format!("{} {base}", ratio_cell(outcome.row_ratio(row))),
                String::new(),
            ),
            _ => (String::new(), String::new()),
        };
        println!(
            "  {:<20} {median:>13} {min:>11} {iter:>15} {peer:>22} {vs_rayon:>10}",
            row.name
        );
    }
    if let Some((name, _)) = outcome.best(Role::Peer) {
        println!("  best peer: {name}");
    }
}

/// Prints every scenario's ratios: per unirun row (public API and raw
/// reference) against the best peer, then the adapters against their own
/// runtimes.
pub(crate) fn print_summary(outcomes: &[Outcome], config: &Config) {
    println!();
    println!(
        "summary: median ratio unirun / best peer (and the ratio of minimums), {} samples per contender \
         (< 1.00x: unirun faster); worst = the slowest public-API row by median",
        config.samples
    );
    println!(
        "  {:<22} {:<17} {:>11} {:>8}  per unirun row",
        "scenario", "best peer", "peer ns/op", "worst"
    );
    for outcome in outcomes {
        let peer = outcome.best(Role::Peer);
        let rows: Vec<String> = outcome
            .rows
            .iter()
            .filter(|row| row.role.is_unirun())
            .map(|row| {
                format!(
                    "{} {} (min {})",
                    row.name,
                    ratio_cell(outcome.row_ratio(row)),
                    ratio_cell(outcome.min_ratio(row))
                )
            })
            .collect();
        println!(
            "  {:<22} {:<17} {:>11} {:>8}  {}",
            outcome.scenario,
            peer.map_or("-", |(name, _)| name),
            ns_cell(outcome, peer.map(|(_, s)| s)),
            ratio_cell(outcome.worst_public()),
            rows.join(", "),
        );
    }
    let adapters: Vec<_> = outcomes
        .iter()
        .flat_map(|o| o.rows.iter().map(move |row| (o, row)))
        .filter(|(_, row)| matches!(row.role, Role::Over(_)))
        .collect();
    if !adapters.is_empty() {
        println!();
        println!("adapters: median ratio of a unirun scope on runtime X / X itself");
        for (outcome, row) in adapters {
            let Role::Over(base) = row.role else { continue };
            // And against the peers with the scope's contract on that runtime.
            let same_contract: String = outcome
                .rows
                .iter()
                .filter(|peer| peer.role == Role::SameContract(base))
                .map(|peer| {
                    let ratio = Outcome::ratio_of(row, peer.stats);
                    format!(", {:>8} vs {}", ratio_cell(ratio), peer.name)
                })
                .collect();
            println!(
                "  {:<22} {:<20} {:>8} vs {base}{same_contract}",
                outcome.scenario,
                row.name,
                ratio_cell(outcome.row_ratio(row)),
            );
        }
    }
}
