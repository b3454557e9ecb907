//! unirun: one small, fast API over every way a Rust program runs work —
//! its own lock-free work-stealing thread pool, forked processes, smol and
//! tokio (each behind a cargo feature, see below) — in the vocabulary Rust
//! developers already speak (`spawn`, `spawn_blocking`, `JoinHandle`,
//! `block_on`).
//!
//! # Design
//!
//! The crate is a facade over three layers, dependencies pointing down:
//!
//! - [`unirun_core`] (`no_std` + `alloc`): the object-safe [`Executor`]
//!   trait, the work-stealing scheduler, [`JoinHandle`]/[`JoinError`] and
//!   [`block_on`].
//! - `unirun-platform`: the CPU budget (affinity, cgroup quotas) that sizes
//!   pools, and thread naming.
//! - `unirun-threads`: named worker threads driving the scheduler, and an
//!   elastic lane for blocking closures.
//! - `unirun-process` (feature `process-backend`, unix): closures in forked
//!   child processes, and pre-forked worker pools.
//!
//! A [`Run`] is a scope of work: [`Run::builder`] asks the scheduler for a
//! backend (from the flavor asked for, the [`RuntimeConfig`] set in code or
//! with [`configure`], the `UNIRUN_*` environment and the machine's
//! [`Capabilities`]) and records why in a [`DecisionTrace`]. The scope owns
//! the tasks spawned through it: shutting it down (or dropping it) waits for
//! them, the bounded forms cancel them, and a pool the scope started is
//! joined. Scopes nested in a running scope reuse its pool.
//! [`ThreadMode::Gil`] runs a scope serialized, one task at a time, with
//! [`allow_threads`] to let others in around blocking calls.
//!
//! The top-level helpers ([`spawn`], [`to_thread`], [`run_in_executor`],
//! [`get_executor`]) use a shared default pool, decided on first use and
//! kept until [`reset`]; the spawn path takes no lock. Every decision goes
//! to [`last_decision`] and the listeners of [`add_decision_listener`].
//! Every task is one allocation; a panic in a task is caught and comes back
//! as a [`JoinError`] with its message and location, and the worker thread
//! keeps serving (a program that replaces the panic hook calls
//! [`install_panic_hook`] after `std::panic::set_hook`, or the first panic
//! after it has no location).
//!
//! # Features
//!
//! - `std` (default): the threads backend, [`Run`] scopes, [`RuntimeConfig`]
//!   and the environment, the scheduler and its traces, the shared default
//!   executor, [`spawn`], [`to_thread`], [`gather`], [`JoinSet`], [`Handle`], timers
//!   on every backend ([`time`]), smol's sockets and timers in every task
//!   ([`io`]), and `compat::thread`. Without it the crate
//!   is `#![no_std]` and offers [`block_on`], the [`Executor`] trait and the
//!   single-threaded [`TickExecutor`] an embedded main loop can drive.
//! - `process-backend` (unix): forked-process execution, `to_process`,
//!   `to_process_with`, `Flavor::Processes` (see the `process` module).
//! - `tokio-backend`: [`Flavor::Tokio`] (the ambient tokio runtime, borrowed,
//!   or one the scope owns; `Flavor::Auto` inside a tokio runtime resolves
//!   to it) and `compat::tokio`; and tokio's own sockets and timers
//!   (`tokio::net`, `tokio::time`) inside tasks of the threads backend
//!   (see [`io`]).
//! - `smol-backend`: [`Flavor::Smol`] (an async-executor driven by threads
//!   named after the scope, blocking work on unirun's lane,
//!   `{name}-blocking-{i}`) and `compat::smol`.
//! - `tracing`: scheduler decisions (`unirun::decision`), rejected or
//!   unknown `UNIRUN_*` variables (`unirun::env`, WARN) and scope start and
//!   shutdown (`unirun::scope`) as `tracing` events. Without a subscriber,
//!   warnings stay on stderr. `UNIRUN_TRACE=1|json` needs no feature.
//! - `macros`: the `#[unirun::main]` and `#[unirun::test]`
//!   attributes, an `async fn` run in [`block_on`].
//! - `cluster-backend` (unix; needs Rust 1.89): `Flavor::Cluster`,
//!   `Run::call` and `Run::map_call` on same-binary workers on other
//!   machines through a NATS JetStream server, `#[unirun::remote]` (see the
//!   `cluster` module). Enables `process-backend` and `macros`.
//! - `full`: every backend above but the cluster's, and `tracing`.
//!
//! # Examples
//!
//! ```
//! use unirun::{Flavor, Run, RuntimeConfig, ThreadMode};
//!
//! // CPU work as async tasks, blocking I/O on the blocking lane.
//! let sum = unirun::spawn(async { (1..=10u64).sum::<u64>() });
//! let cwd = unirun::to_thread(|| std::env::current_dir().is_ok());
//! let (sum, cwd) = unirun::block_on(async { (sum.await, cwd.await) });
//! assert_eq!(sum.unwrap(), 55);
//! assert!(cwd.unwrap());
//!
//! // A scope of its own, serialized, with the scheduler's reasons.
//! let run = Run::builder()
//!     .flavor(Flavor::Threads)
//!     .config(RuntimeConfig::default().io_bound(true).thread_mode(ThreadMode::Gil))
//!     .name("ingest")
//!     .build()?;
//! assert_eq!(run.map(1..=3, |i| i * 10), [10, 20, 30]);
//! println!("{}", run.trace()); // unirun: threads (requested threads) because explicit flavor threads; ...
//! run.shutdown();
//! # Ok::<(), unirun::Error>(())
//! ```

#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

mod error;
mod flavor;
mod gather;
mod parse;

pub use crate::error::Error;
pub use crate::flavor::{CompatMode, Flavor, ThreadMode};
pub use crate::gather::{gather, Gather};
pub use unirun_core::{Executor, JoinError, JoinHandle, PanicLocation, TickExecutor};

// Everything but the core's executors needs threads: one gate for the
// whole tree. Without `std`, `block_on` is the core's.
cfg_if::cfg_if! {
    if #[cfg(feature = "std")] {
        mod backend;
        mod config;
        mod entry;
        mod env;
        mod gil;
        mod global;
        mod handle;
        mod join_set;
        mod metrics;
        mod observe;
        mod run;
        mod scheduler;
        mod scope;

        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub mod compat;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub mod fork_join;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub mod io;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub mod time;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub mod trace;

        pub use crate::entry::block_on;
        /// The call `#[unirun::test]` expands to (see the attribute).
        #[doc(hidden)]
        pub use crate::entry::__block_on_test;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::config::RuntimeConfig;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::env::{EnvOverride, RejectedVar, ValueSource};
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::fork_join::{join, par_for_each, par_map, scope, ParallelInput, Scope};
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::gil::allow_threads;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::global::{
            capabilities, configure, get_executor, reset, run_in_executor, spawn, to_thread,
        };
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::handle::Handle;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::join_set::{AbortHandle, JoinSet};
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::metrics::Metrics;
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::run::{Run, RunBuilder};
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::scheduler::{
            add_decision_listener, last_decision, observe_decisions, remove_decision_listener,
            Capabilities, ListenerId, ObserveDecisions,
        };
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use crate::trace::DecisionTrace;
        /// Chains unirun's panic hook, which records where each panic happened, in
        /// front of the program's current hook (which keeps running for every
        /// panic). Call it right after `std::panic::set_hook`.
        ///
        /// Tasks install the hook by themselves. A program that replaces the hook
        /// later drops unirun's recorder, and unirun chains it back only at the
        /// next panic it catches, so that one panic's [`JoinError`] has no
        /// [`panic_location`](JoinError::panic_location); calling this after
        /// `set_hook` keeps every location. Calling it again is harmless; while
        /// the thread is panicking it does nothing.
        ///
        /// # Examples
        ///
        /// ```
        /// // unirun's hook is in place once a task was created...
        /// unirun::spawn(async {}).join().unwrap();
        /// // ...and the program replaces it with its own: chain unirun's back.
        /// std::panic::set_hook(Box::new(|_| { /* the program's own reporting */ }));
        /// unirun::install_panic_hook();
        ///
        /// let err = unirun::spawn(async { panic!("boom") }).join().unwrap_err();
        /// assert_eq!(err.panic_message(), Some("boom"));
        /// assert!(err.panic_location().is_some(), "the very first panic has its location");
        /// # let _ = std::panic::take_hook();
        /// ```
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub use unirun_core::install_panic_hook;
    } else {
        pub use unirun_core::block_on;
        /// The call `#[unirun::test]` expands to (see the attribute).
        #[doc(hidden)]
        pub use unirun_core::block_on as __block_on_test;
    }
}

// Forked processes, on unix: the module, its helpers, and the cluster
// that builds on them.
cfg_if::cfg_if! {
    if #[cfg(all(unix, feature = "process-backend"))] {
        #[cfg_attr(docsrs, doc(cfg(all(unix, feature = "process-backend"))))]
        pub mod process;
        #[cfg_attr(docsrs, doc(cfg(all(unix, feature = "process-backend"))))]
        pub use crate::process::{to_process, to_process_with, ProcessOptions};
    }
}
cfg_if::cfg_if! {
    if #[cfg(all(unix, feature = "cluster-backend"))] {
        #[cfg_attr(docsrs, doc(cfg(all(unix, feature = "cluster-backend"))))]
        pub mod cluster;
        #[cfg_attr(docsrs, doc(cfg(all(unix, feature = "cluster-backend"))))]
        pub use unirun_macros::remote;
    }
}

// The attribute macros need no `std`: `block_on` is there either way.
cfg_if::cfg_if! {
    if #[cfg(feature = "macros")] {
        /// Marks an `async fn main` as the program's entry point, like
        /// `#[tokio::main]`: its body runs in [`block_on`] (with `std`, tokio's and
        /// smol's I/O work there and [`spawn`] uses the shared default executor).
        ///
        /// It takes no arguments: configure with `unirun::configure` at the top of
        /// `main` or with the `UNIRUN_*` environment. The expansion is
        /// `fn main() -> R { unirun::block_on(async move { body }) }`.
        ///
        /// # Examples
        ///
        /// ```
        /// #[unirun::main]
        /// async fn main() -> Result<(), std::num::ParseIntError> {
        ///     let n: u32 = async { "42".parse() }.await?;
        ///     assert_eq!(n, 42);
        ///     Ok(())
        /// }
        /// ```
        ///
        /// A misuse is a compile error that names the attribute and what it
        /// accepts (here: `#[unirun::main] takes no arguments; configure unirun
        /// with unirun::configure(..) or the UNIRUN_* environment variables`):
        ///
        /// ```compile_fail
        /// #[unirun::main(flavor = "threads")]
        /// async fn main() {}
        /// ```
        #[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
        pub use unirun_macros::main;

        /// Marks an `async fn` as a test whose body runs in [`block_on`], like
        /// `#[tokio::test]`. Other attributes (`#[should_panic]`, for one)
        /// and the body's inner attributes (`#![allow(..)]`) stay as written. The
        /// expansion is
        /// `#[test] fn name() -> R { unirun::block_on(async move { body }) }`,
        /// through a `block_on` that also checks the clock below.
        ///
        /// # A paused tokio clock
        ///
        /// Not here: with `tokio-backend`, tokio's timers in the body are those of
        /// unirun's own reactor, which every `unirun::block_on` and every task of
        /// the shared default uses, in every test of the process. A
        /// `tokio::time::pause()` in the body would pause them all, for good (tokio
        /// resumes a clock only with its `test-util` feature). So a test whose body
        /// leaves that clock paused fails, with a message that says so. Write a
        /// test with a paused clock as `#[tokio::test(start_paused = true)]` and
        /// build the service's scope inside it with `Run::builder().build()`
        /// (flavor `Auto`): the scope borrows the test's runtime, and the paused
        /// clock reaches `tokio::time` in the scope's tasks (see
        /// `docs/migration.md`).
        ///
        /// # Examples
        ///
        /// ```
        /// #[unirun::test]
        /// async fn adds() {
        ///     assert_eq!(async { 1 + 1 }.await, 2);
        /// }
        /// # fn main() {}
        /// ```
        #[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
        pub use unirun_macros::test;
    }
}

/// The README's examples, compiled and run as doctests. They show every
/// backend, so they are checked with all of them (`--all-features`).
#[cfg(all(
    doctest,
    unix,
    feature = "full",
    feature = "macros",
    feature = "cluster-backend"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
