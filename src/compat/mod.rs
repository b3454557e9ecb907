//! Drop-in replacements for the spawning APIs of `std::thread`, tokio and
//! smol: change the `use` line, keep every call site.
//!
//! | module | mirrors | managed (default) | passthrough |
//! | --- | --- | --- | --- |
//! | [`thread`] | `std::thread` (`spawn`, `Builder`, `JoinHandle`, `scope`; the rest re-exported) | closures (scoped ones too) run on the shared default executor's blocking lane: no OS thread per call, a dedicated one when the lane is full | std's own |
//! | `tokio` (`tokio-backend`) | `tokio::{spawn, task_local!}`, `tokio::task::{spawn, spawn_blocking, JoinHandle, JoinError, JoinSet, AbortHandle, Id, id, try_id, ...}` | `spawn` runs on the unirun executor the caller is in (a scope's workers), else on the ambient tokio runtime; `spawn_blocking` runs on unirun's blocking lane (tokio's pool while the clock is paused); `JoinSet` is unirun's; `!Send` tasks and the coop budget are tokio's | tokio's own |
//! | `smol` (`smol-backend`) | `smol` (`spawn`, `unblock`, `block_on`, `Task`, `FallibleTask`; the rest re-exported) | unirun's shared executor and blocking lane | smol's own |
//!
//! The mode comes from `UNIRUN_COMPAT_MODE` (`managed` or `passthrough`; an
//! operator kill switch that wins over code), else from
//! [`RuntimeConfig::compat_mode`](crate::RuntimeConfig::compat_mode) given
//! to [`configure`](crate::configure), else managed. It is read on first
//! use and again after [`reset`](crate::reset) or `configure`. Handles
//! created in either mode keep working after a switch.
//!
//! Returned handles keep the original's shape: tokio's resolves to
//! `Result<T, JoinError>` and has `abort()`/`is_finished()`; smol's `Task<T>`
//! resolves to `T`, cancels on drop, has `detach()`/`cancel()`; std's
//! `join()` returns `std::thread::Result<T>`. What differs is listed in each
//! module and in `docs/migration.md`.
//!
//! # Examples
//!
//! ```
//! // Was: use std::thread;
//! use unirun::compat::thread;
//!
//! let handles: Vec<_> = (0..4).map(|i| thread::spawn(move || i * i)).collect();
//! let squares: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
//! assert_eq!(squares, [0, 1, 4, 9]);
//! ```

use crate::flavor::CompatMode;

#[cfg(feature = "smol-backend")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol-backend")))]
pub mod smol;
pub mod thread;
#[cfg(feature = "tokio-backend")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio-backend")))]
pub mod tokio;

/// Whether compat calls go to the original APIs.
fn passthrough() -> bool {
    crate::global::compat_mode() == CompatMode::Passthrough
}
