//! Spawning, yielding, chains and fork-join, each where it matters in two
//! shapes: joined (handles awaited inside `block_on`) and detached (no
//! handle kept; completion counted on a [`Latch`] the bench thread waits on).

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;

use futures::channel::oneshot;

use super::{detach_each, join_all, rayon_each, spawn_each, AsyncScenario, Latch, SelfWakes};
use crate::contenders::Spawner;

/// Tasks per iteration in `spawn_remote` and `spawn_local`.
const SPAWN_TASKS: usize = 10_000;
/// Tasks in `yield_many`.
const YIELD_TASKS: usize = 200;
/// Self-wakes per task in `yield_many`.
const YIELDS_PER_TASK: usize = 1_000;
/// Spawns in one `chained_spawn` chain.
const CHAIN_DEPTH: usize = 1_000;
/// Argument of `fork_join`'s fib.
pub(crate) const FIB_N: u32 = 25;
/// Below this, `fork_join` computes fib sequentially.
pub(crate) const FIB_CUTOFF: u32 = 12;

/// Tasks spawned from the bench thread (not a worker); `DETACHED` picks
/// the shape.
pub(crate) struct SpawnRemote<const DETACHED: bool>;

impl<const DETACHED: bool> AsyncScenario for SpawnRemote<DETACHED> {
    const NAME: &'static str = if DETACHED {
        "spawn_remote_detached"
    } else {
        "spawn_remote"
    };
    const ABOUT: &'static str = if DETACHED {
        "10k tasks spawned detached from the bench thread, counted on a latch; op = one task"
    } else {
        "10k tasks spawned from the bench thread, then awaited in block_on; op = one task"
    };
    const OPS: usize = SPAWN_TASKS;
    type Input = ();

    fn prepare() {}

    fn run<S: Spawner>(spawner: &S, (): ()) {
        if DETACHED {
            detach_each(spawner, SPAWN_TASKS, |i| async move { black_box(i) }).wait();
        } else {
            let tasks = spawn_each(spawner, SPAWN_TASKS, |i| async move { black_box(i) });
            spawner.block_on(join_all(tasks));
        }
    }

    fn rayon() -> Option<fn(&rayon::ThreadPool)> {
        Some(|pool| rayon_each(pool, SPAWN_TASKS, black_box))
    }
}

/// Tasks spawned from inside a task (on a worker); `DETACHED` picks the shape.
pub(crate) struct SpawnLocal<const DETACHED: bool>;

impl<const DETACHED: bool> AsyncScenario for SpawnLocal<DETACHED> {
    const NAME: &'static str = if DETACHED {
        "spawn_local_detached"
    } else {
        "spawn_local"
    };
    const ABOUT: &'static str = if DETACHED {
        "a detached task spawns 10k detached tasks, counted on a latch; op = one task"
    } else {
        "one task spawns 10k tasks and awaits them all, joined in block_on; op = one task"
    };
    const OPS: usize = SPAWN_TASKS;
    type Input = ();

    fn prepare() {}

    fn run<S: Spawner>(spawner: &S, (): ()) {
        let inner = spawner.clone();
        if DETACHED {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            spawner.detach(async move {
                let latch = detach_each(&inner, SPAWN_TASKS, |i| async move { black_box(i) });
                tx.send(latch).expect("bench thread waits");
            });
            rx.recv().expect("the root task ran").wait();
        } else {
            spawner.block_on(spawner.spawn(async move {
                let tasks = spawn_each(&inner, SPAWN_TASKS, |i| async move { black_box(i) });
                join_all(tasks).await;
            }));
        }
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

/// Tasks that wake themselves 1000 times each; `DETACHED` picks the shape
/// (detached + latch is the shape of the liveness issue's per-yield gap).
pub(crate) struct YieldMany<const DETACHED: bool>;

impl<const DETACHED: bool> AsyncScenario for YieldMany<DETACHED> {
    const NAME: &'static str = if DETACHED {
        "yield_detached"
    } else {
        "yield_many"
    };
    const ABOUT: &'static str = if DETACHED {
        "200 tasks spawned detached from the bench thread x 1000 self-wakes, latch; op = one yield"
    } else {
        "200 tasks x 1000 self-wakes, awaited in block_on; op = one yield"
    };
    const OPS: usize = YIELD_TASKS * YIELDS_PER_TASK;
    type Input = ();

    fn prepare() {}

    fn run<S: Spawner>(spawner: &S, (): ()) {
        let work = |_| SelfWakes(YIELDS_PER_TASK);
        if DETACHED {
            detach_each(spawner, YIELD_TASKS, work).wait();
        } else {
            spawner.block_on(join_all(spawn_each(spawner, YIELD_TASKS, work)));
        }
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

pub(crate) struct ChainedSpawn;

impl AsyncScenario for ChainedSpawn {
    const NAME: &'static str = "chained_spawn";
    const ABOUT: &'static str =
        "each task spawns the next detached, 1000 deep, the last signals block_on; op = one spawn";
    const OPS: usize = CHAIN_DEPTH;
    type Input = ();

    fn prepare() {}

    fn run<S: Spawner>(spawner: &S, (): ()) {
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

pub(crate) struct ForkJoin;

impl AsyncScenario for ForkJoin {
    const NAME: &'static str = "fork_join";
    const ABOUT: &'static str =
        "fib(25), forking above cutoff 12 (spawn+await, rayon::join); op = one fib(25)";
    const OPS: usize = 1;
    type Input = ();

    fn prepare() {}

    fn run<S: Spawner>(spawner: &S, (): ()) {
        let root = spawner.spawn(fib_tasks(spawner.clone(), FIB_N));
        black_box(spawner.block_on(root));
    }

    fn rayon() -> Option<fn(&rayon::ThreadPool)> {
        Some(|pool| {
            black_box(pool.install(|| fib_join(FIB_N)));
        })
    }
}
