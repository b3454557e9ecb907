//! The smol backend of unirun: unirun tasks, with unirun's [`JoinHandle`](unirun_core::JoinHandle)
//! and `JoinError`, running on an
//! [`async_executor::Executor`].
//!
//! # Design
//!
//! A [`SmolPool`] owns an executor and `workers` threads named `{name}-{i}`
//! that drive it (each runs the executor until the pool shuts down). A
//! [`Handle`] can also wrap an executor the caller drives
//! ([`Handle::from_executor`]); that one is never shut down by unirun.
//!
//! Each spawn is one executor task: the executor is a
//! [`ForeignExecutor`](unirun_core::ForeignExecutor) to the core, whose
//! [`spawn_foreign`](unirun_core::spawn_foreign) wraps the future (a panic
//! is caught with its message and location; a scope's task stays in its
//! [`TaskSet`](unirun_core::TaskSet)), and the executor's task handle
//! becomes unirun's [`JoinHandle`](unirun_core::JoinHandle).
//! Blocking closures run on unirun's elastic blocking lane
//! ([`BlockingLane`](unirun_blocking::BlockingLane)), threads named
//! `{name}-blocking-{i}`. Each handle has one lane: a [`SmolPool`] owns its
//! lane and joins its threads when it shuts down; the lane of a
//! [`Handle::from_executor`] is owned by that handle and its clones, and
//! joined when the last of them is dropped. When the executor is dropped,
//! the tasks it holds are cancelled:
//! handles never hang. Code that spawns through the object-safe
//! [`Executor`](unirun_core::Executor) trait gets core-allocated tasks that
//! go to the executor as a small task per wake-up
//! ([`ForeignRunQueue`](unirun_core::ForeignRunQueue)).
//!
//! In a process forked from the one that built a [`SmolPool`], the pool's
//! threads do not exist: its handle then runs tasks and blocking closures
//! on the calling thread ([`Handle::is_inherited`]), and dropping or
//! shutting down the pool there waits for and joins nothing.
//!
//! # Features
//!
//! This crate has no cargo features of its own; the `unirun` facade enables
//! it with its `smol-backend` feature.
//!
//! # Examples
//!
//! ```
//! use unirun_smol::SmolPool;
//!
//! let pool = SmolPool::builder().workers(2).name("smol").build().unwrap();
//! let handle = pool.handle();
//! assert_eq!(handle.spawn(async { 40 + 2 }).join().unwrap(), 42);
//! assert_eq!(handle.spawn_blocking(|| "blocking").join().unwrap(), "blocking");
//! pool.shutdown();
//! ```

mod child;
mod handle;
mod join;
mod pool;

/// The async-executor crate, so callers can name the executor type that
/// [`Handle::from_executor`] takes.
pub use async_executor;
pub use unirun_blocking::LaneStats;

pub use crate::handle::Handle;
pub use crate::pool::{Builder, SmolPool};
