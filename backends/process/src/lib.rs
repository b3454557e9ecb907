//! The forked-process backend of unirun: run a closure in a child process
//! on a copy-on-write snapshot of the parent, and get its result — or a
//! typed error saying it panicked, crashed, timed out or was cancelled —
//! without risking the parent.
//!
//! # Design
//!
//! [`fork_call`] forks per call. The child marks itself as a forked child
//! (see below), asks for `SIGKILL` when the parent dies
//! (`PR_SET_PDEATHSIG` on Linux, then re-checks its parent's pid to close
//! the race with a parent that died first), applies the
//! [`ProcessOptions`] limits (`RLIMIT_AS` as headroom above the address
//! space it inherited, `RLIMIT_CPU`, nice), runs the
//! closure under `catch_unwind`, writes one frame with the result (or the
//! panic's message and location) to a close-on-exec pipe and leaves with
//! `_exit`, so no destructor or atexit handler of the parent runs twice.
//!
//! The parent reads the frame as the child writes it (a 100 MB result
//! streams through the pipe; nothing is written to the child, the closure
//! travels inside the forked image), then reaps the child. A deadline turns
//! into `SIGKILL` + reap + [`JoinError::timed_out`](unirun_core::JoinError::timed_out);
//! a child killed by a signal is
//! [`JoinError::crashed`](unirun_core::JoinError::crashed) with the signal's
//! number and name; a short or mistyped frame is a `"decode"` transport
//! error, never a panic. Every child is reaped and every descriptor closed
//! on every path.
//!
//! [`ProcessPool`] keeps pre-forked workers for `fn(A) -> R` calls: the
//! function pointer travels as an address (valid in a fork of the same
//! image, so the function must be in the program when the workers start:
//! one from a library loaded later is refused with a typed error on Linux)
//! with the argument and result as postcard frames; crashed or
//! timed-out workers are replaced, concurrency is capped at `max_workers`.
//! With [`init`] called at the top of `main`, workers come from a fork
//! server forked while the process was single-threaded; without it they
//! are forked directly from a dedicated thread of the parent
//! ([`ProcessPool::origin`] says which).
//!
//! [`ProcessPool::spawn_call_on`] (behind `Run::call`) does not hand a
//! small call to a lane thread: the calling thread writes the request to
//! an idle worker itself, or queues it when every worker is busy (whoever
//! hands a worker back sends the next one), and the reply is read by
//! whoever waits for it: `JoinHandle::join` reads it on the joining
//! thread, an awaited or dropped handle has the lane read it. A joined
//! call costs the two wake-ups of a pipe round trip instead of four.
//!
//! [`spawn`]/[`spawn_on`] run that wait on an executor's blocking lane, so an
//! async worker never blocks; the call belongs to the lane's task set, and
//! [`cancel_children`] (used by scope shutdown) kills the children of a set.
//!
//! # What is safe inside a forked closure
//!
//! `fork` copies the whole address space but only the calling thread. When
//! the parent has other threads (unirun's own pools included), at the moment
//! of the fork they may be holding locks or be half-way through updating
//! data; in the child those locks stay locked forever and that data stays
//! half-updated. unirun's fork paths close that hole for what unirun
//! controls:
//!
//! - **unirun's own state.** Every unirun lock a child may reach is a
//!   fork-guarded lock ([`unirun_platform::fork_guard`]): unirun forks
//!   only while no thread holds one, so the child finds them all free.
//!   They are: the global state behind the helpers (the shared executor,
//!   the config, the capabilities cache), the decision listeners and the
//!   last decision, the slot of unirun-io's runtime, this crate's child registry, fork server handle
//!   and `unirun-forker` slot. (The lock this crate's fork paths take
//!   around a fork is held by the forking thread itself, so no other
//!   thread holds it at a fork.) State that names a thread records the
//!   fork generation ([`unirun_core::fork_generation`]) or the process it
//!   started the thread in, so a child sees the parent's thread as absent:
//!   the timer driver of `unirun::time` is made per generation and never
//!   touches the parent's (not even its lock, so it needs no guard): a
//!   child makes its own, forgetting, never waking, the parent's sleeps; the forker runs its jobs on the calling thread,
//!   unirun-io starts a runtime of its own. Metrics read no lock there
//!   (the blocking lane's threads count as 0). Two locks of `unirun-core`,
//!   which cannot depend on the guard, are plain: the table of panics
//!   raised by unjoined tasks' destructors (taken only once such a panic
//!   happened) and the panic-hook installation lock (the fork paths
//!   install the hook in the parent, before forking). The facade's shared
//!   default executor is the child's own (the parent's is forgotten on
//!   first use, through the hook `mark_forked_child` runs), and so is any
//!   pool built in the child: their threads run. Pools inherited from the
//!   parent (whose threads do not exist in the child) run work inline:
//!   a scope built before the fork (`run.spawn(..).join()`,
//!   `run.spawn_blocking`), a nested fork call and
//!   a [`ProcessPool`] call (which forks a fresh child instead of using the
//!   parent's workers) all work in the child. Nothing waits for a thread
//!   that `fork` did not copy; an inherited pool that is dropped or shut
//!   down is forgotten instead of joined.
//! - **`stdout` and `stderr`.** The fork paths lock both (and flush stdout)
//!   before forking and release them on both sides after, so `println!` in
//!   the child never waits for a lock a parent thread held mid-print.
//! - **Allocation** with glibc's `malloc` (the system allocator on
//!   Linux-gnu), which re-arms its locks in the child through atfork
//!   handlers; system calls; opening new files and sockets; spawning new
//!   threads; computing on data the closure captured.
//!
//! What remains **unsafe (may deadlock)**: any lock unirun does not own that
//! another parent thread may have held at the fork -- a `Mutex` or `RwLock`
//! of yours shared with other threads, other libraries' locks (the
//! `log`/`tracing` machinery, a connection pool, a global allocator other
//! than glibc's: jemalloc or mimalloc may lack atfork handling), and
//! standard-library locks other than the standard streams (the environment
//! lock behind `std::env::set_var`, the panic-hook lock while another thread
//! replaces the hook). Data another thread was mutating at the fork may be
//! half-updated in the child.
//!
//! - **The safety net** is [`ProcessOptions::timeout`]: a child stuck on an
//!   inherited lock is killed and reaped, and the call fails with "timed
//!   out". It is on by default ([`ProcessOptions::DEFAULT_TIMEOUT`], one
//!   hour) so a deadlocked child never holds a handle forever; set a tighter
//!   one whenever the parent is multi-threaded and the closure does more than
//!   pure computation, or `timeout(None)` to wait without limit.
//! - A closure built with `panic = "abort"` aborts the child on panic: that
//!   is reported as a crash with `SIGABRT`, not as a panic.
//! - Output written with `print!` but not yet flushed is lost: the child
//!   leaves with `_exit`, which does not flush Rust's buffers.
//!
//! With the process single-threaded at the fork (start-up, or a program
//! with no other threads), none of the caveats apply.
//!
//! # Background thread and server
//!
//! Pool workers are forked from a dedicated `unirun-forker` thread, and the
//! fork server (see [`init`]) is its child. The thread runs while a pool
//! that forked workers from it, or the server, is alive; [`shutdown`] stops
//! the server, and pools release the thread when they are shut down
//! ([`ProcessPool::shutdown_now`]) or dropped. A pool with a timeout also
//! runs a `unirun-deadlines` thread from its first call, which kills a
//! worker whose call ran past the timeout (so a reply is read with one
//! blocking `read`, no `poll`); it is joined when the pool is shut down or
//! dropped. A pool retired with [`ProcessPool::retire`] keeps both until
//! the last call it let go of ends; each such call's reply is read on a
//! `unirun-call-reader` thread of its own, which ends with the call.
//!
//! # Output limits
//!
//! What a child sends back for an error is capped, so a child cannot make
//! the parent hold its output many times over: a panic message longer than
//! [`MAX_PANIC_MESSAGE`] bytes is cut in the child (at a character
//! boundary) and ends with `... [truncated: N of M bytes cut]`, the
//! location's file name likewise; and the parent keeps no error report
//! larger than [`MAX_ERROR_FRAME`] (it reads past it and reports a
//! transport error naming the cap). A result *value* is the caller's data
//! and is not capped: it streams through the pipe into one buffer, and the
//! parent holds that frame and the decoded value (about twice the value's
//! encoded size) until the call returns.
//!
//! # Wire format
//!
//! A frame is an 8-byte little-endian length followed by a
//! [postcard](https://docs.rs/postcard) body. postcard is serde-native,
//! compact (varint integers, no field names), has a stable documented wire
//! format (1.0) and is actively maintained; bincode 1.x, the usual
//! alternative, is no longer maintained. Both sides are the same binary, so
//! schema evolution does not arise.
//!
//! # Platforms
//!
//! Unix only (the crate is empty elsewhere); the parent-death signal is
//! Linux-only, other unixes get only the parent-pid check.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use unirun_process::ProcessOptions;
//!
//! let pool = unirun_threads::ThreadPool::new().unwrap();
//! let options = ProcessOptions::default().timeout(Duration::from_secs(30));
//! let crashy = unirun_process::spawn(&pool.handle(), options, || -> u32 {
//!     std::process::abort()
//! });
//! let err = crashy.join().unwrap_err();
//! assert!(err.is_crash());
//! assert_eq!(err.signal_name(), Some("SIGABRT"));
//! assert!(err.to_string().contains("SIGABRT"));
//! ```

#![cfg(unix)]

mod children;
mod fork;
mod forker;
mod options;
mod pool;
mod server;
mod wire;

pub use crate::children::{cancel_children, running_children};
pub use crate::fork::{fork_call, spawn, spawn_on};
pub use crate::options::ProcessOptions;
pub use crate::pool::ProcessPool;
pub use crate::server::{init, shutdown};
pub use crate::wire::{MAX_ERROR_FRAME, MAX_PANIC_MESSAGE};
pub use unirun_core::in_forked_child;
