//! The OS-threads backend of unirun: named worker threads driving the core's
//! work-stealing scheduler, plus an elastic lane of threads for blocking
//! closures.
//!
//! # Design
//!
//! [`ThreadPool`] starts `workers` threads (`{name}-{i}`, one per CPU of the
//! process's budget by default) and calls [`unirun_core::Worker::run`] on
//! each. Async tasks live on the core [`Pool`](unirun_core::Pool): spawned
//! from a worker they take its LIFO slot, from outside they go through the
//! injector and wake one idle worker.
//!
//! Blocking closures go to a [`BlockingLane`] (`{name}-blocking-{i}`, from
//! the `unirun-blocking` crate, re-exported here) that grows while closures
//! wait and no thread is idle, up to a cap (at least 512 by default), and
//! shrinks as idle threads retire after a keep-alive.
//!
//! A task that blocks a worker (`block_on` or `join` inside a task) hands
//! the worker's queue to a new thread, so what is queued behind it still
//! runs; at most [`Builder::max_handoff_threads`] such threads live at
//! once, and a wait past the cap fails inside its task with an error naming
//! it (never an abort: see [`DEFAULT_MAX_HANDOFF_THREADS`]).
//!
//! Every task, async or blocking, is a member of the pool's
//! [`TaskSet`](unirun_core::TaskSet): shutdown waits for the set to empty, and
//! the bounded forms close it, which cancels what has not finished. Worker and
//! lane threads are joined before shutdown returns, so the process's thread
//! count is back where it was; only
//! [`shutdown_timeout`](ThreadPool::shutdown_timeout) leaves behind threads
//! stuck in user code past its deadline, each exiting when that code returns.
//!
//! # Features
//!
//! This crate has no cargo features of its own; it is the `std` feature of
//! the `unirun` facade.
//!
//! # Examples
//!
//! ```
//! use unirun_threads::ThreadPool;
//!
//! let pool = ThreadPool::builder().workers(2).name("demo").build().unwrap();
//! let handle = pool.handle();
//! let squares: Vec<_> = (0..4u64).map(|i| handle.spawn(async move { i * i })).collect();
//! let total: u64 = pool.block_on(async {
//!     let mut total = 0;
//!     for square in squares {
//!         total += square.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 14);
//! ```

mod builder;
mod context;
mod handle;
mod pool;
mod shutdown;

pub use crate::builder::Builder;
pub use crate::context::WorkerContext;
pub use crate::handle::Handle;
pub use crate::pool::{watch_forks, ThreadPool};
pub use crate::shutdown::DEFAULT_MAX_HANDOFF_THREADS;
pub use unirun_blocking::{default_blocking_cap, BlockingLane, BlockingLaneBuilder, LaneStats};
