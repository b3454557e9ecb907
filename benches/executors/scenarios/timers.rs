//! Timers: `unirun::time` on a 2-worker Threads scope (unirun's own timer
//! driver) against tokio's time driver on a 2-worker runtime with timers
//! enabled.
//!
//! - `timers`: 10,000 tasks, each ten `sleep(1ms)` in a row; besides the
//!   time, the lateness (wake-up instant minus deadline) p50/p99 and the
//!   CPU time per timer of each contender, printed by [`print_timer_report`].
//! - `timer_churn`: 1,000,000 `timeout(1s, ready)` created, awaited and
//!   dropped, never firing (the common `timeout(d, fast_future)` case).
//! - `timer_churn_pending`: the same with a future that is pending once,
//!   so every timeout registers its timer and then cancels it.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::contenders::Pools;
use crate::harness::{Contender, Role, Scenario};

const TASKS: usize = 10_000;
const SLEEPS: usize = 10;
const CHURN: usize = 1_000_000;
const CHURN_PENDING: usize = 200_000;
const WORKERS: usize = 2;

/// A 2-worker tokio runtime with its time driver on (the shared bench
/// runtime has none).
fn tokio_with_timers() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("tokio-timers")
            .enable_time()
            .build()
            .expect("tokio runtime with timers"),
    )
}

/// Lateness samples (µs) and CPU time of one contender over all its runs.
#[derive(Default)]
struct Report {
    lateness_us: Vec<u32>,
    cpu: Duration,
    timers: usize,
}

static REPORTS: Mutex<Vec<(&'static str, Report)>> = Mutex::new(Vec::new());

fn record(name: &'static str, lateness: Vec<u32>, cpu: Duration) {
    let mut reports = REPORTS.lock().unwrap();
    let index = match reports.iter().position(|(n, _)| *n == name) {
        Some(i) => i,
        None => {
            reports.push((name, Report::default()));
            reports.len() - 1
        }
    };
    let report = &mut reports[index].1;
    report.timers += lateness.len();
    report.lateness_us.extend(lateness);
    report.cpu += cpu;
}

/// User + system CPU time of the whole process so far.
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` fills the zeroed struct we own; RUSAGE_SELF is valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn micros(late: Duration) -> u32 {
    late.as_micros().min(u32::MAX as u128) as u32
}

/// Prints lateness p50/p99 and CPU per timer of every `timers` contender.
pub(crate) fn print_timer_report() {
    let mut reports = REPORTS.lock().unwrap();
    if reports.is_empty() {
        return;
    }
    println!();
    println!("timers: lateness (wake - deadline) and CPU time per timer, all runs");
    println!(
        "  {:<20} {:>10} {:>10} {:>14}",
        "contender", "p50 us", "p99 us", "CPU ns/timer"
    );
    for (name, report) in reports.iter_mut() {
        report.lateness_us.sort_unstable();
        let at = |q: f64| {
            let i = ((report.lateness_us.len() as f64 - 1.0) * q).round() as usize;
            report.lateness_us.get(i).copied().unwrap_or(0)
        };
        let cpu_per = report.cpu.as_nanos() as f64 / report.timers.max(1) as f64;
        println!(
            "  {:<20} {:>10} {:>10} {:>14.0}",
            name,
            at(0.50),
            at(0.99),
            cpu_per
        );
    }
}

/// `timers` on every contender.
pub(crate) fn timers(pools: &Pools) -> Scenario {
    let run = Arc::clone(&pools.run.0);
    let unirun_row = Contender::timed("unirun Run", Role::Unirun, move || {
        let lateness = Arc::new(Mutex::new(Vec::with_capacity(TASKS * SLEEPS)));
        let cpu = cpu_time();
        let start = Instant::now();
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let lateness = Arc::clone(&lateness);
                run.spawn(async move {
                    let mut mine = [0u32; SLEEPS];
                    for late in &mut mine {
                        let sleep = unirun::time::sleep(Duration::from_millis(1));
                        let deadline = sleep.deadline();
                        sleep.await;
                        *late = micros(deadline.elapsed());
                    }
                    lateness.lock().unwrap().extend_from_slice(&mine);
                })
            })
            .collect();
        run.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        let took = start.elapsed();
        let lateness = std::mem::take(&mut *lateness.lock().unwrap());
        record("unirun Run", lateness, cpu_time() - cpu);
        took
    });
    let rt = tokio_with_timers();
    let tokio_row = Contender::timed("tokio", Role::Peer, move || {
        let lateness = Arc::new(Mutex::new(Vec::with_capacity(TASKS * SLEEPS)));
        let cpu = cpu_time();
        let start = Instant::now();
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let lateness = Arc::clone(&lateness);
                rt.spawn(async move {
                    let mut mine = [0u32; SLEEPS];
                    for late in &mut mine {
                        let sleep = tokio::time::sleep(Duration::from_millis(1));
                        let deadline = sleep.deadline().into_std();
                        sleep.await;
                        *late = micros(deadline.elapsed());
                    }
                    lateness.lock().unwrap().extend_from_slice(&mine);
                })
            })
            .collect();
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        let took = start.elapsed();
        let lateness = std::mem::take(&mut *lateness.lock().unwrap());
        record("tokio", lateness, cpu_time() - cpu);
        took
    });
    Scenario {
        name: "timers",
        about: "10,000 tasks x ten sleep(1ms) in a row (per op: one timer)",
        ops: TASKS * SLEEPS,
        contenders: vec![unirun_row, tokio_row],
    }
}

/// Pending on its first poll (waking itself), ready on the second.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// `timer_churn` (`pending: false`) or `timer_churn_pending`.
pub(crate) fn timer_churn(pools: &Pools, pending: bool) -> Scenario {
    let n = if pending { CHURN_PENDING } else { CHURN };
    let run = Arc::clone(&pools.run.0);
    let unirun_row = Contender::new("unirun Run", Role::Unirun, move || {
        run.block_on(async {
            for i in 0..n {
                let out = if pending {
                    unirun::time::timeout(Duration::from_secs(1), PendingOnce(false))
                        .await
                        .map(|()| i)
                } else {
                    unirun::time::timeout(Duration::from_secs(1), async { i }).await
                };
                black_box(out.unwrap());
            }
        });
    });
    let rt = tokio_with_timers();
    let tokio_row = Contender::new("tokio", Role::Peer, move || {
        rt.block_on(async {
            for i in 0..n {
                let out = if pending {
                    tokio::time::timeout(Duration::from_secs(1), PendingOnce(false))
                        .await
                        .map(|()| i)
                } else {
                    tokio::time::timeout(Duration::from_secs(1), async { i }).await
                };
                black_box(out.unwrap());
            }
        });
    });
    Scenario {
        name: if pending {
            "timer_churn_pending"
        } else {
            "timer_churn"
        },
        about: if pending {
            "200,000 timeout(1s, pending-once future): each registers, then cancels"
        } else {
            "1,000,000 timeout(1s, ready future) created and dropped unfired"
        },
        ops: n,
        contenders: vec![unirun_row, tokio_row],
    }
}
