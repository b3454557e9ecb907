//! The `no_std` core of [unirun]: an object-safe [`Executor`] trait, a
//! lock-free work-stealing scheduler, [`JoinHandle`]/[`JoinError`] and
//! [`block_on`].
//!
//! # Design
//!
//! A task is one allocation (via `async-task`): the future, its output slot
//! and its schedule function live together, and a [`Runnable`] is a pointer to
//! it. Every future is wrapped so a panic becomes a [`JoinError`] at the task
//! boundary: the thread that polled it keeps serving.
//!
//! The [`Pool`] is a work-stealing scheduler in the shape tokio made standard:
//! each [`Worker`] has a bounded local queue (256 slots, single producer, half
//! of it stealable in one CAS) and a LIFO slot for the task the running task
//! just woke, so message passing stays on one core; a global [`Injector`
//! queue](Pool::schedule) takes work from outside the pool and overflow, and
//! is checked every 61 ticks for fairness. Idle workers park and are woken
//! **one at a time** by a protocol that caps concurrent searchers at half the
//! workers; the [`idle`] module documents it. The pool owns no threads:
//! whoever has threads calls [`Worker::run`]. The threads backend does; an
//! embedded target can use [`TickExecutor`] instead.
//!
//! The same workers fork-join: [`join`], [`scope`] and [`map_indexed`] put
//! the second half of a fork in a job on the forking thread's stack, offered
//! to idle workers through a per-worker deque and taken back if nobody took
//! it (see `fork_join`'s docs for the waiting rule and its liveness).
//!
//! [`block_on`] polls a ready future without touching anything else and
//! parks on a cached per-thread parker otherwise. On a worker thread it first
//! hands the worker's queues to a new thread, so blocking on queued work never
//! deadlocks a pool and never nests one task's stack on another's (see
//! [`Worker`](Worker#blocking-on-a-worker)).
//!
//! The lock-free parts (local queue, sleep protocol, parker, the handle's
//! task slot, task sets) are checked with [loom](https://docs.rs/loom): run
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p unirun-core --lib --release loom_tests`.
//!
//! # Features
//!
//! - `std` (default): panic capture with location, the cached-parker
//!   `block_on`, [`JoinHandle::join`], the thread-local worker context that
//!   lets tasks spawned on a worker skip the injector, [`park::pair`], and
//!   the [`WaitHook`] a layer above uses to release its own lock (a
//!   serialized scope's) while unirun blocks.
//!
//! Without `std` the crate needs only `alloc` and atomics.
//!
//! # Examples
//!
//! ```
//! use unirun_core::{Executor, Pool};
//!
//! let (pool, workers) = Pool::with_workers(2);
//! let threads: Vec<_> = workers.into_iter().map(|w| std::thread::spawn(move || w.run())).collect();
//!
//! let inner = pool.clone();
//! let total = unirun_core::block_on(pool.spawn(async move {
//!     let parts: Vec<_> = (0..4u64).map(|i| inner.spawn(async move { i * 10 })).collect();
//!     let mut sum = 0;
//!     for part in parts {
//!         sum += part.await.unwrap();
//!     }
//!     sum
//! }));
//! assert_eq!(total.unwrap(), 60);
//!
//! pool.shutdown();
//! threads.into_iter().for_each(|t| t.join().unwrap());
//! ```
//!
//! [unirun]: https://docs.rs/unirun

#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod abandoned;
mod barrier;
mod block_on;
mod cache_padded;
mod context;
mod error;
mod executor;
mod foreign;
mod fork;
#[cfg(feature = "std")]
mod fork_join;
mod fork_local;
pub mod idle;
mod join;
mod member;
#[cfg(feature = "std")]
mod panic;
pub mod park;
mod pool;
mod queue;
mod repoll;
mod stats;
mod sync;
mod task;
mod task_set;
mod tick;
mod wait;
mod worker;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, loom, feature = "std"))]
mod loom_tests_fork_join;
#[cfg(all(test, loom))]
mod loom_tests_task;

pub use async_task::ScheduleInfo;

pub use crate::block_on::{block_on, block_on_with};
pub use crate::context::on_worker_thread;
pub use crate::error::{panic_message, JoinError, PanicLocation, PanicPayload};
pub use crate::executor::{Executor, RunQueue};
pub use crate::foreign::{spawn_foreign, ForeignExecutor, ForeignJoin, ForeignRunQueue};
pub use crate::fork::{fork_generation, in_forked_child, mark_forked_child, on_forked_child};
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use crate::fork::{mark_driver_thread, set_runner_context};
#[cfg(feature = "std")]
pub use crate::fork_join::{
    join, map_indexed, on_worker_core, scope, sequentially, try_join_on_worker, Scope,
};
pub use crate::fork_local::ForkLocal;
pub use crate::join::JoinHandle;
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use crate::member::with_polled_owner;
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use crate::panic::{catch_panic, install_panic_hook};
pub use crate::park::{Park, Unpark};
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use crate::pool::SpawnThread;
pub use crate::pool::{Pool, PoolError};
pub use crate::stats::{PoolStats, TaskCounts};
pub use crate::task::{
    spawn_blocking_fallible_with, spawn_blocking_with, spawn_with, CatchPanic, Runnable, TaskFuture,
};
pub use crate::task_set::{TaskSet, Tracked, WaitEmpty};
pub use crate::tick::TickExecutor;
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub use crate::wait::{set_wait_hook, WaitHook};
pub use crate::worker::{Worker, MAX_LIFO_POLLS, MAX_SELF_REPOLLS};
