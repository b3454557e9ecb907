//! Resident memory per pending task: 200k tasks parked forever, measured in a
//! fresh process per contender so one contender's heap does not flatter or
//! burden the next.
//!
//! `cargo bench --bench memory` re-runs this binary once per contender
//! (`--contender NAME`). The child reads its resident set size, spawns 200k
//! tasks that each bump a counter and then wait forever, waits until every
//! task has been polled once, reads the resident set size again and prints
//! the difference per task. The parent prints the table and the ratio of
//! each unirun row to the leanest peer: the headline through the public API
//! (`Run::spawn` on a 2-worker Threads scope), the raw `unirun_threads` pool
//! as a labelled reference, and (with their features) unirun scopes on tokio
//! and smol against raw tokio and raw async-executor.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Tasks parked per contender.
const TASKS: usize = 200_000;
/// Workers of every pool with a worker count.
const WORKERS: usize = 2;

/// How a contender enters the ratios.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// unirun through the public API (the headline) or its raw pool.
    Unirun,
    /// A peer: the leanest is the denominator of the unirun ratios.
    Peer,
    /// A unirun scope on another runtime, compared with that runtime's row.
    #[allow(dead_code)] // only with tokio-backend / smol-backend
    Over(&'static str),
}

const CONTENDERS: &[(&str, Role)] = &[
    ("unirun Run", Role::Unirun),
    ("raw pool (ref)", Role::Unirun),
    ("tokio", Role::Peer),
    ("async-executor", Role::Peer),
    ("futures-executor", Role::Peer),
    #[cfg(feature = "tokio-backend")]
    ("Run on tokio", Role::Over("tokio")),
    #[cfg(feature = "smol-backend")]
    ("Run on smol", Role::Over("async-executor")),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--contender") {
        let name = &args[at + 1];
        println!("{}", measure(name));
        // The parked tasks never finish: leave without tearing the pools down
        // (a graceful unirun shutdown would rightly wait for them forever).
        std::process::exit(0);
    }
    if !args.iter().any(|a| a == "--bench") {
        // Started by `cargo test --all-targets`: nothing to time.
        return;
    }
    println!("memory: resident bytes per pending task ({TASKS} tasks parked, fresh process each)");
    let exe = std::env::current_exe().expect("bench binary path");
    let mut rows = Vec::new();
    for &(name, role) in CONTENDERS {
        let out = Command::new(&exe)
            .args(["--contender", name])
            .output()
            .expect("run contender");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("bytes per task");
        println!("  {name:<18} {bytes:>8.0} B/task");
        rows.push((name, role, bytes));
    }
    let (peer, _, best) = rows
        .iter()
        .copied()
        .filter(|row| row.1 == Role::Peer)
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .expect("peers");
    for &(name, role, bytes) in &rows {
        match role {
            Role::Unirun => println!("  {name} / leanest peer ({peer}): {:.2}x", bytes / best),
            Role::Over(base) => {
                let base_bytes = rows.iter().find(|row| row.0 == base).expect("base row").2;
                println!("  {name} / {base}: {:.2}x", bytes / base_bytes);
            }
            Role::Peer => {}
        }
    }
}

/// A 2-worker scope of `flavor` (built inside a tokio runtime, a Tokio
/// scope borrows it). Leaked by the caller: its parked tasks never end.
#[cfg_attr(
    not(any(feature = "tokio-backend", feature = "smol-backend")),
    allow(dead_code)
)]
fn scope(flavor: unirun::Flavor) -> unirun::Run {
    let run = unirun::Run::builder()
        .flavor(flavor)
        .max_workers(WORKERS)
        .build()
        .expect("scope");
    assert_eq!(run.trace().resolved(), flavor, "{}", run.trace());
    run
}

/// Spawns the parked tasks on `run` and returns resident bytes per task.
fn on_scope<F>(run: unirun::Run, parked: impl Fn() -> F, wait_polled: impl Fn()) -> f64
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let bytes = per_task(|| {
        for _ in 0..TASKS {
            run.spawn(parked()).detach();
        }
        wait_polled();
    });
    std::mem::forget(run);
    bytes
}

/// Spawns the parked tasks on `name` and returns resident bytes per task.
/// Pools are leaked: the caller exits right after.
fn measure(name: &str) -> f64 {
    let polled = Arc::new(AtomicUsize::new(0));
    let parked = {
        let polled = polled.clone();
        move || {
            let polled = polled.clone();
            async move {
                polled.fetch_add(1, Ordering::Relaxed);
                std::future::pending::<()>().await;
            }
        }
    };
    let wait_polled = || {
        while polled.load(Ordering::Relaxed) < TASKS {
            std::thread::yield_now();
        }
    };
    match name {
        "unirun Run" => on_scope(scope(unirun::Flavor::Threads), &parked, wait_polled),
        #[cfg(feature = "tokio-backend")]
        "Run on tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .build()
                .unwrap();
            let run = {
                let _inside = rt.enter();
                scope(unirun::Flavor::Tokio)
            };
            let bytes = on_scope(run, &parked, wait_polled);
            std::mem::forget(rt);
            bytes
        }
        #[cfg(feature = "smol-backend")]
        "Run on smol" => on_scope(scope(unirun::Flavor::Smol), &parked, wait_polled),
        "raw pool (ref)" => {
            let pool = unirun_threads::ThreadPool::builder()
                .workers(WORKERS)
                .build()
                .unwrap();
            let bytes = per_task(|| {
                for _ in 0..TASKS {
                    pool.spawn(parked()).detach();
                }
                wait_polled();
            });
            std::mem::forget(pool);
            bytes
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .build()
                .unwrap();
            let bytes = per_task(|| {
                for _ in 0..TASKS {
                    drop(rt.spawn(parked()));
                }
                wait_polled();
            });
            std::mem::forget(rt);
            bytes
        }
        "async-executor" => {
            let ex = Arc::new(async_executor::Executor::new());
            for _ in 0..WORKERS {
                let ex = ex.clone();
                std::thread::spawn(move || {
                    futures_lite::future::block_on(ex.run(std::future::pending::<()>()))
                });
            }
            let bytes = per_task(|| {
                for _ in 0..TASKS {
                    ex.spawn(parked()).detach();
                }
                wait_polled();
            });
            std::mem::forget(ex);
            bytes
        }
        "futures-executor" => {
            let pool = futures::executor::ThreadPool::builder()
                .pool_size(WORKERS)
                .create()
                .unwrap();
            let bytes = per_task(|| {
                for _ in 0..TASKS {
                    pool.spawn_ok(parked());
                }
                wait_polled();
            });
            std::mem::forget(pool);
            bytes
        }
        other => panic!("unknown contender {other}"),
    }
}

/// Resident bytes added by `spawn_all`, per task.
fn per_task(spawn_all: impl FnOnce()) -> f64 {
    let before = resident_bytes();
    spawn_all();
    let after = resident_bytes();
    (after.saturating_sub(before)) as f64 / TASKS as f64
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .expect("resident field")
        .parse()
        .expect("pages");
    pages * 4096
}
