//! Fork-join and data parallelism through the calls a user writes:
//! `fork_join` adds `unirun::join` (a `Run::join` on the 2-worker scope,
//! recursing with `unirun::join`), `rayon::join` and chili's `Scope::join`
//! (2 threads each) to the spawn-and-await rows; `par_map` maps 100k fine
//! items into a `Vec` in order with `Run::map`, `Handle::par_map`, rayon's
//! `par_iter().map().collect()` and two hand-split scoped std threads.

use std::hint::black_box;
use std::num::NonZero;
use std::sync::Arc;

use rayon::prelude::*;

use super::async_scenario;
use super::tasks::{ForkJoin, FIB_CUTOFF, FIB_N};
use crate::contenders::Pools;
use crate::harness::{Contender, Role, Scenario};
use crate::WORKERS;

/// Forks in fib(`n`) cut at `FIB_CUTOFF`: one per call at or above it.
const fn forks(n: u32) -> usize {
    if n < FIB_CUTOFF {
        0
    } else {
        1 + forks(n - 1) + forks(n - 2)
    }
}

/// Items in `par_map`.
const ITEMS: usize = 100_000;

/// One fine item: 8 multiply-xor rounds.
fn mix(x: u64) -> u64 {
    (0..8u64).fold(x, |acc, round| {
        (acc ^ round).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

fn fib_unirun(n: u32) -> u64 {
    if n < FIB_CUTOFF {
        return fib(black_box(n));
    }
    let (a, b) = unirun::join(|| fib_unirun(n - 1), || fib_unirun(n - 2));
    a + b
}

fn fib_rayon(n: u32) -> u64 {
    if n < FIB_CUTOFF {
        return fib(black_box(n));
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

fn fib_chili(scope: &mut chili::Scope<'_>, n: u32) -> u64 {
    if n < FIB_CUTOFF {
        return fib(black_box(n));
    }
    let (a, b) = scope.join(|s| fib_chili(s, n - 1), |s| fib_chili(s, n - 2));
    a + b
}

/// A chili pool of `WORKERS` threads (its count includes the caller's).
fn chili_pool() -> chili::ThreadPool {
    chili::ThreadPool::with_config(chili::Config {
        thread_count: NonZero::new(WORKERS),
        ..chili::Config::default()
    })
}

/// `fork_join`: the spawn-and-await rows, plus the three joins as peers
/// (the async rows' rayon reference becomes the `rayon::join` peer).
pub(crate) fn fork_join(pools: &Pools) -> Scenario {
    let mut scenario = async_scenario::<ForkJoin>(pools);
    scenario.about = "fib(25), forking above cutoff 12: spawn+await rows, unirun::join, \
                      rayon::join, chili Scope::join; op = one fork";
    scenario.ops = forks(FIB_N);
    scenario.contenders.retain(|c| c.name() != "rayon");
    let run = Arc::clone(&pools.run.0);
    scenario
        .contenders
        .push(Contender::new("unirun::join", Role::Unirun, move || {
            black_box(run.join(|| fib_unirun(FIB_N - 1), || fib_unirun(FIB_N - 2)));
        }));
    let rayon = Arc::clone(&pools.rayon);
    scenario
        .contenders
        .push(Contender::new("rayon::join", Role::Peer, move || {
            black_box(rayon.install(|| fib_rayon(FIB_N)));
        }));
    let chili = chili_pool();
    scenario
        .contenders
        .push(Contender::new("chili join", Role::Peer, move || {
            black_box(fib_chili(&mut chili.scope(), FIB_N));
        }));
    scenario
}

/// `par_map`: 100k items mapped into a `Vec` in input order.
pub(crate) fn par_map(pools: &Pools) -> Scenario {
    let input: Arc<Vec<u64>> = Arc::new((0..ITEMS as u64).collect());
    let mut contenders = Vec::new();
    // `Run::map` takes the workers in a `cpu_bound` scope (the lane
    // otherwise): a child scope of the headline pool that says so.
    let run = unirun::Run::builder()
        .executor(pools.run.0.handle().clone())
        .config(unirun::RuntimeConfig::default().cpu_bound(true))
        .build()
        .expect("a cpu_bound scope on the bench pool");
    assert!(
        run.trace().to_string().contains("map on the workers"),
        "{}",
        run.trace()
    );
    contenders.push(Contender::new("unirun Run::map", Role::Unirun, move || {
        black_box(run.map(0..ITEMS as u64, mix));
    }));
    let (handle, items) = (pools.run.0.handle(), Arc::clone(&input));
    contenders.push(Contender::new("unirun par_map", Role::Unirun, move || {
        black_box(handle.par_map(items.as_slice(), |&x| mix(x)));
    }));
    let (rayon, items) = (Arc::clone(&pools.rayon), Arc::clone(&input));
    contenders.push(Contender::new("rayon par_iter", Role::Peer, move || {
        black_box(rayon.install(|| items.par_iter().map(|&x| mix(x)).collect::<Vec<_>>()));
    }));
    let items = Arc::clone(&input);
    contenders.push(Contender::new("2 scoped threads", Role::Peer, move || {
        black_box(two_threads(&items));
    }));
    Scenario {
        name: "par_map",
        about: "100k items of 8 multiply-xor rounds into a Vec in order; op = one item",
        ops: ITEMS,
        contenders,
    }
}

/// The hand-split baseline: each of two scoped threads maps one half into
/// its own part of the output.
fn two_threads(items: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; items.len()];
    let (low_in, high_in) = items.split_at(items.len() / 2);
    let (low_out, high_out) = out.split_at_mut(items.len() / 2);
    std::thread::scope(|s| {
        s.spawn(|| {
            low_out
                .iter_mut()
                .zip(low_in)
                .for_each(|(o, &x)| *o = mix(x))
        });
        high_out
            .iter_mut()
            .zip(high_in)
            .for_each(|(o, &x)| *o = mix(x));
    });
    out
}
