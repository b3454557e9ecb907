//! unirun's elastic blocking lane: named threads for closures that may
//! block, shared by every backend that needs one.
//!
//! # Design
//!
//! A [`BlockingLane`] runs each closure given to
//! [`spawn_blocking`](BlockingLane::spawn_blocking) once, on a thread named
//! `{name}-blocking-{i}`. The lane starts with no thread and grows while
//! queued closures outnumber five times the idle threads, up to a cap
//! ([`default_blocking_cap`]: at least 512, like tokio, so closures that wait
//! for each other below that count never deadlock). Idle threads retire
//! after a keep-alive, so the cap costs nothing until closures need it. When
//! the OS refuses a thread, the cap shrinks to what the lane has and it keeps
//! serving; with no thread at all the closure runs on the caller instead of
//! waiting forever.
//!
//! Sleeping threads are woken one at a time, and a thread that takes a
//! closure first makes sure the rest of the queue has a thread awake or
//! coming: a closure may block for good, so no closure is ever left queued
//! behind it with nobody to serve it. The protocol (four counters under one
//! lock) is written out in the `lane` module and model-checked with loom,
//! including the race between a wake-up and a thread retiring after its
//! keep-alive.
//!
//! Every closure is a task of the core scheduler with a
//! [`JoinHandle`](unirun_core::JoinHandle) and a membership in a
//! [`TaskSet`](unirun_core::TaskSet): the lane's own, one given to
//! [`BlockingLaneBuilder::task_set`] (a pool passes its own), or one per call
//! with [`spawn_blocking_in`](BlockingLane::spawn_blocking_in). Closing a
//! set cancels its closures that have not started. The lane also serves as a
//! [`RunQueue`](unirun_core::RunQueue)
//! ([`run_queue`](BlockingLane::run_queue)) for an executor's
//! `blocking_run_queue`.
//!
//! The owner joins the lane's threads: [`shutdown`](BlockingLane::shutdown)
//! (or dropping the lane) lets queued closures run and joins every thread,
//! [`shutdown_timeout`](BlockingLane::shutdown_timeout) gives up on threads
//! stuck in a closure after a deadline and leaves them to exit when their
//! closure returns. Shut down from inside one of its own closures, the lane
//! moves the joins to a helper thread rather than wait for a sibling that may
//! be waiting for the caller.
//!
//! This crate depends only on `unirun-core` and `unirun-platform`, so any
//! backend can own a lane without depending on another backend.
//!
//! # Features
//!
//! This crate has no cargo features. Under `--cfg loom` its locks and threads
//! switch to loom's, for the models in `loom_tests.rs`:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p unirun-blocking --lib --release loom`.
//!
//! # Examples
//!
//! ```
//! use std::sync::{Arc, Barrier};
//! use unirun_blocking::BlockingLane;
//!
//! let lane = BlockingLane::builder().name("files").build().unwrap();
//!
//! // Eight closures that wait for each other: the lane grows to eight threads.
//! let barrier = Arc::new(Barrier::new(8));
//! let tasks: Vec<_> = (0..8)
//!     .map(|i| {
//!         let barrier = barrier.clone();
//!         lane.spawn_blocking(move || {
//!             barrier.wait();
//!             i * 2
//!         })
//!     })
//!     .collect();
//! let total: i32 = tasks.into_iter().map(|t| t.join().unwrap()).sum();
//! assert_eq!(total, 56);
//! assert!(lane.stats().threads >= 8);
//!
//! lane.shutdown(); // joins every thread
//! assert_eq!(lane.stats().threads, 0);
//! ```

mod builder;
mod handle;
mod lane;
mod sync;

#[cfg(all(test, loom))]
mod loom_tests;

pub use crate::builder::{default_blocking_cap, default_keep_alive, BlockingLaneBuilder};
pub use crate::handle::BlockingLane;
pub use crate::lane::LaneStats;
