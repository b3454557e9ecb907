//! The tokio backend of unirun: unirun tasks, with unirun's [`JoinHandle`]
//! and `JoinError`, running on a tokio runtime.
//!
//! # Design
//!
//! A [`Handle`] points at a tokio runtime, either the *ambient* one the
//! calling code already runs in ([`Handle::current`]; it is borrowed and never
//! shut down) or one a [`TokioRuntime`] owns: a multi-thread runtime with
//! `workers` worker threads, a blocking pool capped at
//! `max_blocking_threads`, and threads named `{name}-{i}`.
//!
//! Each spawn is one tokio task (or one blocking-pool job): the runtime is
//! a [`ForeignExecutor`](unirun_core::ForeignExecutor) to the core, whose
//! [`spawn_foreign`](unirun_core::spawn_foreign) wraps the future so a panic
//! keeps its message and location and a scope's task stays in its
//! [`TaskSet`](unirun_core::TaskSet), and tokio's join handle becomes
//! unirun's [`JoinHandle`], so callers get `abort`,
//! `join` and `is_finished` and the same `JoinError` as on the threads
//! backend. A runtime that shut down drops the tasks it still holds: their
//! handles resolve to `Err(cancelled)`, never hang.
//!
//! Code that spawns through the object-safe
//! [`Executor`](unirun_core::Executor) trait gets tasks allocated by the
//! core instead: each time such a task is scheduled, it goes to tokio as a
//! small task that runs it once
//! ([`ForeignRunQueue`](unirun_core::ForeignRunQueue)).
//!
//! Dropping a [`TokioRuntime`] never panics, wherever it happens: on a
//! thread where tokio forbids blocking (inside async code), the runtime is
//! handed to a plain thread named `{name}-shutdown` that shuts it down.
//!
//! # Features
//!
//! This crate has no cargo features of its own; the `unirun` facade enables
//! it with its `tokio-backend` feature.
//!
//! # Examples
//!
//! ```
//! use unirun_tokio::TokioRuntime;
//!
//! let runtime = TokioRuntime::builder().workers(2).name("io").build().unwrap();
//! let handle = runtime.handle();
//! let task = handle.spawn(async { 40 + 2 });
//! let blocking = handle.spawn_blocking(|| "blocking");
//! assert_eq!(task.join().unwrap(), 42);
//! assert_eq!(blocking.join().unwrap(), "blocking");
//! ```

mod child;
mod handle;
mod join;
mod runtime;

use std::future::Future;

use unirun_core::JoinHandle;

pub use crate::handle::Handle;
pub use crate::runtime::{Builder, TokioRuntime};

/// Default cap of tokio's blocking pool (tokio's own default).
const DEFAULT_MAX_BLOCKING: usize = 512;

/// Spawns `future` on the runtime behind a tokio handle and returns
/// unirun's [`JoinHandle`]: the cheapest way in when the caller already has
/// the tokio handle (no [`Handle`] is built).
///
/// # Examples
///
/// ```
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
/// let task = unirun_tokio::spawn_on(rt.handle(), async { 9 });
/// assert_eq!(task.join().unwrap(), 9);
/// ```
pub fn spawn_on<F>(tokio: &tokio::runtime::Handle, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    unirun_core::spawn_foreign(&join::Tokio(tokio), None, future)
}
