//! Blocking lanes (`blocking_many`) and `block_on` on a ready future.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;

use super::{join_all, rayon_each};
use crate::contenders::{BlockingLane, Pools, VisitLane};
use crate::harness::{Contender, Role, Scenario};

/// Closures in `blocking_many`.
const BLOCKING_CALLS: usize = 2_000;
/// Calls in `block_on_ready`.
const READY_CALLS: usize = 100_000;

/// The tiny closure body of `blocking_many`.
fn tiny(i: usize) -> usize {
    black_box(i).wrapping_add(black_box(1))
}

pub(crate) fn blocking_many(pools: &Pools) -> Scenario {
    struct Collect(Vec<Contender>);
    impl VisitLane for Collect {
        fn visit<L: BlockingLane>(&mut self, name: &'static str, role: Role, lane: L) {
            self.0.push(Contender::new(name, role, move || {
                let tasks: Vec<_> = (0..BLOCKING_CALLS)
                    .map(|i| lane.unblock(move || tiny(i)))
                    .collect();
                lane.block_on(join_all(tasks));
            }));
        }
    }
    let mut collect = Collect(Vec::new());
    pools.each_lane(&mut collect);
    let pool = Arc::clone(&pools.rayon);
    collect
        .0
        .push(Contender::new("rayon", Role::Reference, move || {
            rayon_each(&pool, BLOCKING_CALLS, tiny);
        }));
    Scenario {
        name: "blocking_many",
        about:
            "2000 tiny closures through the blocking lane, awaited in block_on; op = one closure",
        ops: BLOCKING_CALLS,
        contenders: collect.0,
    }
}

/// The immediately ready future of `block_on_ready`.
async fn ready() -> i32 {
    black_box(1)
}

pub(crate) fn block_on_ready(pools: &Pools) -> Scenario {
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
    let run = pools.run.clone();
    Scenario {
        name: "block_on_ready",
        about: "100k block_on calls on an immediately ready future; op = one call",
        ops: READY_CALLS,
        contenders: vec![
            on("unirun::block_on", Role::Unirun, ready, unirun::block_on),
            on("unirun Run", Role::Unirun, ready, move |f| {
                run.0.block_on(f)
            }),
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
