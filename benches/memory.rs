//! Resident memory per pending task: 200k tasks parked forever, measured in a
//! fresh process per contender so one contender's heap does not flatter or
//! burden the next.
//!
//! `cargo bench --bench memory` re-runs this binary once per contender
//! (`--contender NAME`). The child reads its resident set size, spawns 200k
//! tasks that each bump a counter and then wait forever, waits until every
//! task has been polled once, reads the resident set size again and prints
//! the difference per task. The parent prints the table and the ratio of
//! unirun to the leanest peer.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Tasks parked per contender.
const TASKS: usize = 200_000;
/// Workers of every pool with a worker count.
const WORKERS: usize = 2;

const CONTENDERS: &[&str] = &["unirun", "tokio", "async-executor", "futures-executor"];

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
    for &name in CONTENDERS {
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
        rows.push((name, bytes));
    }
    let unirun = rows[0].1;
    let (peer, best) = rows[1..]
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("peers");
    println!("  unirun / leanest peer ({peer}): {:.2}x", unirun / best);
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
        "unirun" => {
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
