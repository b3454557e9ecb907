//! Process calls against their floor, each shape alone in its process.
//!
//! The `executors` bench measures process calls inside a long run, after
//! many other pools warmed the machine up. This harness measures the shapes
//! a user meets in a small program:
//!
//! - `seq`: a 2-worker `Flavor::Processes` scope, `fn(u64) -> u64`, each
//!   call joined from the main thread before the next, 10,000 calls per
//!   sample; floor: a pipe echo of a `u64` to one child pre-forked from the
//!   main thread;
//! - `concurrent`: 1,000 `Handle::call`s, each awaited by its own task on a
//!   2-worker Threads scope; floor: two echo children driven by two threads;
//! - `alone`: the `seq` shape with each contender alone in a fresh process
//!   (this binary run again): the unirun one builds only its scope, the
//!   echo one forks only its child, and nothing runs before either. Runs
//!   alternate the contenders; each reports its medians over its samples,
//!   and the CPU per call of its whole process tree (the usage of a
//!   reaped child, which counts the workers it reaped at its exit,
//!   start-up included); the rows give the median and range of the runs'
//!   medians.
//!
//! Samples interleave the contenders (the order alternates per round). Each
//! row prints the median, minimum and maximum microseconds per call and the
//! CPU time per call of this process and of its descendants (`getrusage`
//! for this process; `/proc/<pid>/schedstat` for the children, which are
//! not reaped while they serve); ratios compare the sums.
//!
//! ```text
//! cargo bench --bench process_call --all-features --no-run
//! target/release/deps/process_call-* --bench [seq] [concurrent] [--init] [--after-forks] [--samples N] [--only unirun|echo]
//! target/release/deps/process_call-* --bench alone [--runs N] [--samples N] [--init]
//! ```
//!
//! `--init` calls `unirun::process::init()` first (workers from the fork
//! server); `--after-forks` runs 200 `to_process` calls before measuring.
//! Run without `--bench` (as `cargo test --all-targets` does), it makes one
//! short sample of each shape.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use unirun::{Flavor, Run};
use unirun_platform::process as sys;

/// The pipe-echo floor, shared with the executors bench.
#[path = "common/echo.rs"]
mod echo;

use self::echo::Echo;

fn add_one(x: u64) -> u64 {
    x + 1
}

/// CPU time (user + system) of this process.
fn self_cpu() -> Duration {
    // SAFETY: all-zero is a valid `rusage` to receive into.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is writable; RUSAGE_SELF is a valid target.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(us(usage.ru_utime) + us(usage.ru_stime))
}

/// CPU time of this process's reaped descendants (theirs and that of the
/// descendants they reaped).
fn reaped_cpu() -> Duration {
    // SAFETY: all-zero is a valid `rusage` to receive into.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is writable; RUSAGE_CHILDREN is a valid target.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(us(usage.ru_utime) + us(usage.ru_stime))
}

/// CPU time of this process's living descendants: nanoseconds on CPU from
/// `/proc/<pid>/schedstat` (their main threads: workers and echo children
/// are single-threaded), or clock ticks of `/proc/<pid>/stat` without it.
fn children_cpu() -> Duration {
    let me = sys::getpid();
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // After the name: state(0) ppid(1) ... utime(11) stime(12).
        procs.push((pid, field(1) as i32, field(11) + field(12)));
    }
    // SAFETY: sysconf takes a plain constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let on_cpu = |pid: i32, ticks: u64| {
        std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(
                Duration::from_micros(ticks * 1_000_000 / hz),
                Duration::from_nanos,
            )
    };
    let mut family = vec![me];
    let mut total = Duration::ZERO;
    let mut grew = true;
    while grew {
        grew = false;
        for &(pid, ppid, ticks) in &procs {
            if family.contains(&ppid) && !family.contains(&pid) {
                family.push(pid);
                total += on_cpu(pid, ticks);
                grew = true;
            }
        }
    }
    total
}

/// One contender's samples: wall, own CPU and children's CPU, per call.
#[derive(Default)]
struct Row {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    child_cpu: Vec<f64>,
}

impl Row {
    fn time(&mut self, calls: usize, body: impl FnOnce()) {
        // The scan of `/proc` first: its own CPU time stays out of the sample.
        let child = children_cpu();
        let cpu = self_cpu();
        let start = Instant::now();
        body();
        let wall = start.elapsed();
        let per = |d: Duration| d.as_secs_f64() * 1e6 / calls as f64;
        self.wall.push(per(wall));
        self.cpu.push(per(self_cpu() - cpu));
        self.child_cpu
            .push(per(children_cpu().saturating_sub(child)));
    }

    fn median(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    /// Own plus children's CPU per call, per sample.
    fn total_cpu(&self) -> Vec<f64> {
        self.cpu
            .iter()
            .zip(&self.child_cpu)
            .map(|(a, b)| a + b)
            .collect()
    }

    fn print(&self, name: &str, floor: Option<&Row>) {
        let min = self.wall.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.wall.iter().copied().fold(0.0, f64::max);
        let (wall, cpu) = (Self::median(&self.wall), Self::median(&self.cpu));
        let total = Self::median(&self.total_cpu());
        let ratio = floor.map_or(String::new(), |f| {
            format!(
                "  x{:.2} wall, x{:.2} cpu (own + children)",
                wall / Self::median(&f.wall),
                total / Self::median(&f.total_cpu())
            )
        });
        println!(
            "  {name:<24} median {wall:7.2} us/call (min {min:.2}, max {max:.2}); cpu {cpu:.2} us/call + children {:.2}{ratio}",
            Self::median(&self.child_cpu)
        );
    }
}

fn seq(samples: usize, calls: usize, only: Option<&str>) {
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .name("bench-processes")
        .max_workers(2)
        .build()
        .expect("processes scope");
    let echo = Echo::start();
    // Workers start outside timing, as the echo child did.
    for i in 0..2 {
        run.call(add_one, i).join().expect("worker");
    }
    let (mut unirun, mut floor) = (Row::default(), Row::default());
    for round in 0..samples {
        let mut runs: [&mut dyn FnMut(); 2] = [
            &mut || {
                unirun.time(calls, || {
                    for i in 0..calls as u64 {
                        black_box(run.call(add_one, i).join().expect("worker"));
                    }
                })
            },
            &mut || {
                floor.time(calls, || {
                    for i in 0..calls as u64 {
                        black_box(echo.call(i));
                    }
                })
            },
        ];
        if round % 2 == 1 {
            runs.reverse();
        }
        for (at, run) in runs.into_iter().enumerate() {
            if only.is_none_or(|only| (only == "echo") == ((at + round) % 2 == 1)) {
                run();
            }
        }
    }
    if only.is_some() {
        let row = if only == Some("echo") {
            &floor
        } else {
            &unirun
        };
        row.print(only.unwrap_or_default(), None);
        return;
    }
    println!("seq: {calls} sequential calls per sample, {samples} samples");
    floor.print("pipe-echo", None);
    unirun.print("unirun Run::call", Some(&floor));
}

fn concurrent(samples: usize, calls: usize) {
    let processes = Run::builder()
        .flavor(Flavor::Processes)
        .name("bench-processes")
        .max_workers(2)
        .build()
        .expect("processes scope");
    let tasks = Run::builder()
        .flavor(Flavor::Threads)
        .name("bench-tasks")
        .max_workers(2)
        .build()
        .expect("threads scope");
    for i in 0..2 {
        processes.call(add_one, i).join().expect("worker");
    }
    let drivers: Vec<mpsc::Sender<(usize, mpsc::Sender<()>)>> = (0..2)
        .map(|_| {
            let (order, orders) = mpsc::channel::<(usize, mpsc::Sender<()>)>();
            let echo = Echo::start();
            // Ends when `order` is dropped with `drivers`.
            thread::spawn(move || {
                for (calls, done) in orders {
                    for i in 0..calls as u64 {
                        black_box(echo.call(i));
                    }
                    let _ = done.send(());
                }
            });
            order
        })
        .collect();
    let (mut unirun, mut floor) = (Row::default(), Row::default());
    for round in 0..samples {
        let mut runs: [&mut dyn FnMut(); 2] = [
            &mut || {
                unirun.time(calls, || {
                    let handle = processes.handle();
                    let handles: Vec<_> = (0..calls as u64)
                        .map(|i| {
                            let handle = handle.clone();
                            tasks.spawn(async move { handle.call(add_one, i).await })
                        })
                        .collect();
                    tasks.block_on(async move {
                        for h in handles {
                            black_box(h.await.expect("task").expect("worker"));
                        }
                    });
                })
            },
            &mut || {
                floor.time(calls, || {
                    let (done, finished) = mpsc::channel();
                    for order in &drivers {
                        order.send((calls / 2, done.clone())).expect("driver");
                    }
                    for _ in &drivers {
                        finished.recv().expect("driver finished");
                    }
                })
            },
        ];
        if round % 2 == 1 {
            runs.reverse();
        }
        for run in runs {
            run();
        }
    }
    println!("concurrent: {calls} calls awaited from tasks per sample, {samples} samples");
    floor.print("pipe-echo x2", None);
    unirun.print("unirun Handle::call", Some(&floor));
}

/// One contender of the `alone` shape, in this fresh process: only what
/// it needs is built. Prints `alone <median> <min> <max>` (microseconds
/// per call over the samples) for [`alone`] to read.
fn alone_child(contender: &str, samples: usize, calls: usize) {
    let mut row = Row::default();
    if contender == "echo" {
        let echo = Echo::start();
        black_box(echo.call(0));
        for _ in 0..samples {
            row.time(calls, || {
                for i in 0..calls as u64 {
                    black_box(echo.call(i));
                }
            });
        }
    } else {
        let run = Run::builder()
            .flavor(Flavor::Processes)
            .name("bench-processes")
            .max_workers(2)
            .build()
            .expect("processes scope");
        for i in 0..2 {
            run.call(add_one, i).join().expect("worker");
        }
        for _ in 0..samples {
            row.time(calls, || {
                for i in 0..calls as u64 {
                    black_box(run.call(add_one, i).join().expect("worker"));
                }
            });
        }
    }
    let min = row.wall.iter().copied().fold(f64::INFINITY, f64::min);
    let max = row.wall.iter().copied().fold(0.0, f64::max);
    println!(
        "alone {} {min} {max} {} {}",
        Row::median(&row.wall),
        Row::median(&row.cpu),
        Row::median(&row.child_cpu)
    );
}

/// A fresh process running [`alone_child`]: its line's figures (wall median,
/// minimum, maximum; own and descendants' CPU medians) and the CPU time of
/// its whole tree (its own and its reaped descendants', start-up included).
fn alone_run(contender: &str, samples: usize, init: bool, benching: bool) -> ([f64; 5], Duration) {
    use std::io::Read as _;
    let mut command = std::process::Command::new(std::env::current_exe().expect("own path"));
    command.args([
        "--alone-child",
        contender,
        "--samples",
        &samples.to_string(),
    ]);
    if init {
        command.arg("--init");
    }
    if benching {
        command.arg("--bench");
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the bench again");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .expect("read its figures");
    let before = reaped_cpu();
    let status = child.wait().expect("wait for the run");
    assert!(status.success(), "the {contender} run failed: {out}");
    let cpu = reaped_cpu() - before;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("alone "))
        .expect("the run's figures");
    let mut figures = [0.0; 5];
    for (slot, word) in figures.iter_mut().zip(line.split_whitespace()) {
        *slot = word.parse().expect("a figure");
    }
    (figures, cpu)
}

/// The `alone` shape: `runs` fresh processes per contender, alternating.
fn alone(runs: usize, samples: usize, calls: usize, init: bool, benching: bool) {
    let (mut unirun, mut floor) = (Row::default(), Row::default());
    for round in 0..runs {
        let order = if round % 2 == 0 {
            ["unirun", "echo"]
        } else {
            ["echo", "unirun"]
        };
        for contender in order {
            let ([median, min, max, own, children], tree) =
                alone_run(contender, samples, init, benching);
            // Start-up and warm-up included.
            let tree = tree.as_secs_f64() * 1e6 / (samples * calls) as f64;
            println!(
                "  {contender:<7} run {round}: median {median:7.2} us/call (min {min:.2}, max {max:.2}); cpu {own:.2} + children {children:.2} us/call ({tree:.2} for the whole process tree)"
            );
            let row = if contender == "echo" {
                &mut floor
            } else {
                &mut unirun
            };
            row.wall.push(median);
            row.cpu.push(own);
            row.child_cpu.push(children);
        }
    }
    println!(
        "alone: {calls} sequential calls per sample, {samples} samples per process, {runs} processes each; medians of the runs' medians"
    );
    floor.print("pipe-echo alone", None);
    unirun.print("unirun Run::call alone", Some(&floor));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--init") {
        unirun::process::init();
    }
    let benching = has("--bench");
    let samples = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|at| args.get(at + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if benching { 5 } else { 1 });
    let scale = if benching { 1 } else { 100 };
    if let Some(at) = args.iter().position(|a| a == "--alone-child") {
        let contender = args.get(at + 1).map_or("unirun", String::as_str);
        alone_child(contender, samples, 10_000 / scale);
        return;
    }
    if has("--after-forks") {
        for i in 0..200u64 {
            black_box(unirun::to_process(move || i + 1).join().expect("child"));
        }
    }
    let shapes: Vec<&str> = args
        .iter()
        .filter(|a| ["seq", "concurrent", "alone"].contains(&a.as_str()))
        .map(String::as_str)
        .collect();
    let wants = |shape: &str| shapes.is_empty() || shapes.contains(&shape);
    if wants("seq") {
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|at| args.get(at + 1))
            .map(String::as_str);
        seq(samples, 10_000 / scale, only);
    }
    if wants("concurrent") {
        concurrent(samples, 1_000 / scale.min(10));
    }
    if wants("alone") {
        let runs = args
            .iter()
            .position(|a| a == "--runs")
            .and_then(|at| args.get(at + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(if benching { 5 } else { 1 });
        alone(runs, samples, 10_000 / scale, has("--init"), benching);
    }
}
