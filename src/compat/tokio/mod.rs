//! A drop-in for tokio's task API: `unirun::compat::tokio` mirrors
//! `tokio::{spawn, task, task_local!}`, so `use tokio::task;` and
//! `tokio::spawn(..)` call sites change only their path.
//!
//! In passthrough mode every call is tokio's own. In managed mode (the
//! default) tasks are unirun's, with tokio's observable behaviour:
//!
//! - [`spawn`] runs "here": inside a unirun task, blocking closure or
//!   `block_on` on that executor's workers (a [`Run`](crate::Run) scope's,
//!   or the shared default's; tokio's I/O and timers work there), else on
//!   the ambient tokio runtime, as a unirun task: a panic keeps its message
//!   and location. Plain `tokio::spawn` is tokio's and goes to the tokio
//!   runtime whose context the thread is in (see [`crate::io`]).
//! - [`task::JoinSet`]'s local tasks (`spawn_local`, `spawn_local_on`) are
//!   tokio's, on the `LocalSet`, tracked by the set like the others.
//! - [`task::spawn_blocking`] runs on unirun's blocking lane, inside the
//!   caller's runtime context; while the runtime's clock is paused
//!   (`start_paused`, `tokio::time::pause`) it runs on tokio's blocking pool
//!   instead, so tokio does not auto-advance time past a closure in flight.
//!   Either way the runtime's drop waits for a closure that has been
//!   handed over, as tokio's waits for its own (its `shutdown_timeout`
//!   bounds the wait), so what a closure writes on shutdown is not lost.
//! - [`task::JoinSet`] is unirun's [`JoinSet`](crate::JoinSet), its tasks
//!   where [`spawn`] puts them (blocking ones as `spawn_blocking`'s).
//! - Aborts behave as tokio's: an aborted async task's handle resolves once
//!   its future has been dropped (a panic in that drop is reported as a
//!   panic); a blocking closure that already runs is not stopped and its
//!   handle returns its real result.
//! - Task ids ([`task::Id`]) are unirun's, unique in the process; `task::id()`
//!   inside a managed task returns its unirun id (tokio's own
//!   `tokio::task::id()` there returns the id of the tokio task carrying it).
//! - What managed mode cannot own is tokio's: `!Send` tasks
//!   ([`task::spawn_local`], [`task::LocalSet`]), the coop budget
//!   ([`task::consume_budget`], [`task::unconstrained`]), [`task::yield_now`],
//!   [`task::block_in_place`] and task-locals ([`task_local!`](crate::compat::tokio::task_local),
//!   [`task::LocalKey`]).
//!
//! # Examples
//!
//! ```
//! # let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
//! # rt.block_on(async {
//! // Was: use tokio::task;
//! use unirun::compat::tokio::{self as tokio_compat, task};
//!
//! let sum = tokio_compat::spawn(async { 1 + 1 });
//! let file = task::spawn_blocking(|| std::fs::metadata(".").is_ok());
//! assert_eq!(sum.await.unwrap(), 2);
//! assert!(file.await.unwrap());
//! # });
//! ```

pub mod task;

pub use task::spawn;
/// Declares task-local keys, as `tokio::task_local!` (it is tokio's).
pub use tokio::task_local;
