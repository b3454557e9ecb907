//! Process scenarios (process backend, unix only), each against a floor
//! measured in the same run:
//! - `to_process`: fork per call, against a raw fork + pipe + waitpid;
//! - `process_call_seq`: one `Run::call` at a time on a 2-worker Processes
//!   scope, joined from the bench thread, against the floor: a pipe echo
//!   of a `u64` to a pre-forked child (the raw `ProcessPool::call` as a
//!   reference row);
//! - `process_call_concurrent`: 1,000 concurrent `Handle::call`s, each
//!   awaited by its own async task, against two pre-forked echo children
//!   driven by two threads (throughput).
//!
//! The floors fork from a helper thread, as unirun does (from a blocking
//! lane thread, or its forker thread): on this VM a child forked from the
//! bench's main thread answered about 20x slower (96 us against 4.6 us per
//! echo round trip), an artifact that would flatter unirun.

use std::hint::black_box;
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::thread;

use unirun::{Flavor, Run};
use unirun_platform::process::{self as sys, Forked};

use self::echo::Echo;
use crate::contenders::Pools;
use crate::harness::{Contender, Role, Scenario};
use crate::WORKERS;

/// The pipe-echo floor, shared with the `process_call` bench.
#[path = "../../common/echo.rs"]
mod echo;

/// Forks per iteration of `to_process`.
const FORK_CALLS: usize = 50;
/// Calls per iteration of `process_call_seq`.
const POOL_CALLS: usize = 1_000;
/// Calls per iteration of `process_call_concurrent`, each from its own task.
const CONCURRENT_CALLS: usize = 1_000;

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

fn add_one(x: u64) -> u64 {
    x + 1
}

/// A pre-forked echo child, forked from a helper thread.
fn echo() -> Echo {
    thread::spawn(Echo::start).join().expect("echo")
}

/// A 2-worker Processes scope; its workers are started outside timing.
fn processes() -> Run {
    let run = Run::builder()
        .flavor(Flavor::Processes)
        .name("bench-processes")
        .max_workers(WORKERS)
        .build()
        .expect("processes scope");
    println!("  scope: {}", run.trace());
    let warm: Vec<_> = (0..WORKERS as u64).map(|i| run.call(add_one, i)).collect();
    for handle in warm {
        handle.join().expect("worker");
    }
    run
}

pub(crate) fn process_call_seq() -> Scenario {
    let run = processes();
    let pool = unirun::process::ProcessPool::new(1, Default::default());
    // Start the worker outside timing, as the echo child is.
    assert_eq!(pool.call(add_one, 0).expect("worker"), 1);
    let echo = echo();
    Scenario {
        name: "process_call_seq",
        about: "1000 sequential calls of fn(u64) -> u64, each joined from the bench thread; op = one round trip (floor: pre-forked pipe echo)",
        ops: POOL_CALLS,
        contenders: vec![
            Contender::new("unirun Run::call", Role::Unirun, move || {
                for i in 0..POOL_CALLS as u64 {
                    black_box(run.call(add_one, i).join().expect("worker"));
                }
            }),
            Contender::new("ProcessPool (ref)", Role::UnirunRaw, move || {
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

/// `WORKERS` echo children, each driven by its own persistent thread: the
/// throughput floor of `WORKERS` pre-forked workers.
struct EchoDrivers {
    orders: Vec<mpsc::Sender<(usize, mpsc::Sender<()>)>>,
}

impl EchoDrivers {
    fn start() -> Self {
        let orders = (0..WORKERS)
            .map(|_| {
                let (order, orders) = mpsc::channel::<(usize, mpsc::Sender<()>)>();
                let echo = echo();
                // Ends when `orders` closes, i.e. when the drivers drop.
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
        Self { orders }
    }

    /// `calls` round trips spread over the children; returns when all ended.
    fn run(&self, calls: usize) {
        let (done, finished) = mpsc::channel();
        for order in &self.orders {
            order
                .send((calls / WORKERS, done.clone()))
                .expect("echo driver alive");
        }
        for _ in &self.orders {
            finished.recv().expect("echo driver finished");
        }
    }
}

pub(crate) fn process_call_concurrent(pools: &Pools) -> Scenario {
    let run = processes();
    let tasks = pools.run.clone();
    let drivers = EchoDrivers::start();
    Scenario {
        name: "process_call_concurrent",
        about: "1000 concurrent calls of fn(u64) -> u64 on 2 workers, each awaited by its own task on the Threads scope; op = one call (floor: 2 pipe echoes, 2 threads)",
        ops: CONCURRENT_CALLS,
        contenders: vec![
            Contender::new("unirun Handle::call", Role::Unirun, move || {
                let calls = run.handle();
                let handles: Vec<_> = (0..CONCURRENT_CALLS as u64)
                    .map(|i| {
                        let calls = calls.clone();
                        tasks.0.spawn(async move { calls.call(add_one, i).await })
                    })
                    .collect();
                tasks.0.block_on(async move {
                    for handle in handles {
                        black_box(handle.await.expect("task").expect("worker"));
                    }
                });
            }),
            Contender::new("pipe-echo x2", Role::Peer, move || {
                drivers.run(CONCURRENT_CALLS);
            }),
        ],
    }
}

pub(crate) fn to_process() -> Scenario {
    Scenario {
        name: "to_process",
        about: "50 sequential forks of a trivial closure returning a u64; op = one fork round trip (floor: raw fork + pipe + waitpid)",
        ops: FORK_CALLS,
        contenders: vec![
            Contender::new("unirun::to_process", Role::Unirun, || {
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
