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
//! Blocking closures go to a separate lane (`{name}-blocking-{i}`) that grows
//! while closures wait and no thread is idle, up to a cap, and shrinks as idle
//! threads retire after a keep-alive. When the OS refuses a thread the cap
//! drops to what the lane has instead of panicking. The lane is also a type
//! of its own, [`BlockingLane`], for backends that bring their own async
//! executor (the smol backend owns one per executor).
//!
//! Every task, async or blocking, is a member of the pool's
//! [`TaskSet`](unirun_core::TaskSet): shutdown waits for the set to empty, and
//! the bounded forms close it, which cancels what has not finished. Worker and
//! lane threads are joined before shutdown returns, so the process's thread
//! count is back where it was.
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

mod backend;
mod lane;
mod pool;

pub use crate::lane::{default_blocking_cap, BlockingLane, BlockingLaneBuilder, LaneStats};
pub use crate::pool::{Builder, Handle, ThreadPool};
