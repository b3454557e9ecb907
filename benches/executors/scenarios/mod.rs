//! The workloads. Task scenarios are written once, generically over
//! [`Spawner`] ([`AsyncScenario`]), and run on every contender of
//! [`Pools::each_spawner`]; adding one is one `impl` and one line in
//! `main`'s list.

pub(crate) mod blocking;
pub(crate) mod fork_join;
pub(crate) mod ping_pong;
#[cfg(all(unix, feature = "process-backend"))]
pub(crate) mod process;
pub(crate) mod tasks;
pub(crate) mod timers;

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use crate::contenders::{Pools, Spawner, VisitSpawner};
use crate::harness::{Contender, Role, Scenario};

/// A scenario written once for every [`Spawner`], plus rayon where it fits.
pub(crate) trait AsyncScenario: 'static {
    const NAME: &'static str;
    const ABOUT: &'static str;
    const OPS: usize;

    /// What one iteration consumes, built untimed before it.
    type Input;

    /// Builds the input of one iteration (not timed).
    fn prepare() -> Self::Input;

    /// One full iteration on `spawner`, issued from the bench thread.
    fn run<S: Spawner>(spawner: &S, input: Self::Input);

    /// The rayon version, if the scenario makes sense for rayon.
    fn rayon() -> Option<fn(&rayon::ThreadPool)> {
        None
    }
}

/// `A` on every task executor, plus rayon (or its `-` row).
pub(crate) fn async_scenario<A: AsyncScenario>(pools: &Pools) -> Scenario {
    struct Collect<A>(Vec<Contender>, std::marker::PhantomData<A>);
    impl<A: AsyncScenario> VisitSpawner for Collect<A> {
        fn visit<S: Spawner>(&mut self, name: &'static str, role: Role, spawner: S) {
            self.0.push(Contender::timed(name, role, move || {
                let input = A::prepare();
                let start = Instant::now();
                A::run(&spawner, input);
                start.elapsed()
            }));
        }
    }
    let mut collect = Collect::<A>(Vec::new(), std::marker::PhantomData);
    pools.each_spawner(&mut collect);
    collect.0.push(match A::rayon() {
        Some(run) => {
            let pool = Arc::clone(&pools.rayon);
            Contender::new("rayon", Role::Reference, move || run(&pool))
        }
        None => Contender::absent("rayon", Role::Reference),
    });
    Scenario {
        name: A::NAME,
        about: A::ABOUT,
        ops: A::OPS,
        contenders: collect.0,
    }
}

/// Counts down from `n`; [`Latch::wait`] returns once it reaches zero.
/// How the bench thread learns that detached work finished.
pub(crate) struct Latch {
    left: AtomicUsize,
    done: Mutex<bool>,
    zero: Condvar,
}

impl Latch {
    pub(crate) fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            left: AtomicUsize::new(n),
            done: Mutex::new(false),
            zero: Condvar::new(),
        })
    }

    pub(crate) fn count_down(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().expect("latch poisoned") = true;
            self.zero.notify_all();
        }
    }

    /// Ends once `n` count-downs happened: each counted task calls
    /// [`count_down`](Self::count_down) exactly once as its last step.
    pub(crate) fn wait(&self) {
        let mut done = self.done.lock().expect("latch poisoned");
        while !*done {
            done = self.zero.wait(done).expect("latch poisoned");
        }
    }
}

/// Wakes itself `n` times (`wake_by_ref` inside `poll`, then `Pending`)
/// before it is ready: the cheapest possible yield, with no timer or
/// channel involved.
pub(crate) struct SelfWakes(pub(crate) usize);

impl Future for SelfWakes {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Spawns `make(i)` for `i in 0..n` and returns their result futures.
pub(crate) fn spawn_each<S, F>(
    spawner: &S,
    n: usize,
    make: impl Fn(usize) -> F,
) -> Vec<S::Task<F::Output>>
where
    S: Spawner,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    (0..n).map(|i| spawner.spawn(make(i))).collect()
}

/// Spawns `make(i)` for `i in 0..n` detached, each counting down a latch
/// when done, and returns the latch.
pub(crate) fn detach_each<S, F>(spawner: &S, n: usize, make: impl Fn(usize) -> F) -> Arc<Latch>
where
    S: Spawner,
    F: Future + Send + 'static,
{
    let latch = Latch::new(n);
    for i in 0..n {
        let (latch, work) = (Arc::clone(&latch), make(i));
        spawner.detach(async move {
            black_box(work.await);
            latch.count_down();
        });
    }
    latch
}

/// Awaits every future in order.
pub(crate) async fn join_all<F: Future>(tasks: Vec<F>) {
    for task in tasks {
        black_box(task.await);
    }
}

/// Runs `work(i)` for `i in 0..n` as separate rayon jobs injected from the
/// bench thread, and waits for all of them.
pub(crate) fn rayon_each(pool: &rayon::ThreadPool, n: usize, work: fn(usize) -> usize) {
    let latch = Latch::new(n);
    for i in 0..n {
        let latch = Arc::clone(&latch);
        pool.spawn(move || {
            black_box(work(i));
            latch.count_down();
        });
    }
    latch.wait();
}
