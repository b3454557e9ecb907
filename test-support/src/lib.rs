//! Helpers shared by unirun's tests (a dev-dependency of every crate in
//! the workspace, never published).
//!
//! - [`watchdog`] (and [`watchdog_this_test`], [`watchdog_for`]): runs a
//!   test body on a thread of its own, so a hang fails the test instead of
//!   blocking CI.
//! - [`child`]: re-runs one test of the current test binary in a fresh
//!   process, for tests that fork, crash, or touch process-global state.
//! - [`Gate`]: a one-shot latch a test opens to let blocked work go on.
//! - [`lists_threads`], [`skip`] and [`thread_names`]: platform-dependent
//!   checks that say when they do not run, instead of passing without
//!   checking.
//!
//! It depends on nothing but `std`, so `unirun-core`'s tests can use it as
//! well as the facade's.

pub mod child;
mod gate;
mod platform;
mod watchdog;

pub use gate::Gate;
pub use platform::{lists_threads, skip, thread_names, threads_named};
pub use watchdog::{watchdog, watchdog_for, watchdog_this_test, LIMIT};
