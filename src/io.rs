//! Async I/O inside unirun's tasks: tokio's `tokio::net` and `tokio::time`
//! (feature `tokio-backend`) and smol's `async-io` / `async-net` (always),
//! on every backend.
//!
//! This module has no items to call: it says where each kind of I/O future
//! gets its reactor (the thing that waits for sockets and timers and wakes
//! the task) when it runs on unirun's scheduler.
//!
//! # tokio futures (feature `tokio-backend`)
//!
//! `tokio::net::{TcpListener, TcpStream, UdpSocket}`, `tokio::time::sleep`
//! and `tokio::time::timeout` need a tokio runtime's context. With the
//! `tokio-backend` feature they just work in [`spawn`](crate::spawn),
//! [`Run::spawn`](crate::Run::spawn) and [`Run::block_on`](crate::Run::block_on)
//! on every backend:
//!
//! - on a [`Flavor::Tokio`](crate::Flavor::Tokio) scope, the scope's own
//!   runtime (or the ambient one it borrows) is the reactor;
//! - on the threads backend (the shared default, [`Flavor::Threads`](crate::Flavor::Threads),
//!   and the thread pool of [`Flavor::Processes`](crate::Flavor::Processes)),
//!   the reactor is unirun's own: one small current-thread runtime with
//!   I/O and timers enabled, driven by one thread named `unirun-io` that
//!   blocks on it (parked in the kernel while nothing is ready). That holds
//!   inside a tokio runtime too: a pool's workers enter its reactor once,
//!   for their whole life, and an ambient runtime may be dropped while the
//!   pool lives (the shared default outlives every
//!   `#[tokio::test(flavor = "multi_thread")]` of a test binary), so a
//!   pool never borrows one: a dead runtime is never its reactor. A
//!   current-thread ambient runtime would not do anyway: its drivers turn
//!   only while its own thread waits inside it, so a blocking `join` there
//!   would stall every socket of the pool.
//!
//!   [`Run::trace`](crate::Run::trace) and `UNIRUN_TRACE` say which one a
//!   scope uses (`reactor: …`).
//!
//! ## Where the context is entered, and what it costs
//!
//! Each worker thread of a pool enters the reactor's context **once**, when
//! it starts, for its whole life (through
//! `unirun_threads::Builder::worker_context`), and so do the threads that
//! take a worker's place while a task blocks. A task's poll pays nothing
//! for it. [`Run::block_on`](crate::Run::block_on) enters it around the
//! call on the caller's thread; that costs what tokio's `Handle::enter`
//! costs (tens of nanoseconds per call, nothing per poll), so a
//! `Run::block_on` of a future that is ready at once is that much slower
//! with the feature on. [`unirun::block_on`](crate::block_on), on a thread
//! outside any tokio context, enters the reactor of the shared default's
//! workers the same way (starting the shared default if needed), so a
//! `main` written with it (or with `#[unirun::main]`) can bind a
//! `tokio::net::TcpListener`; inside a tokio runtime it keeps that
//! runtime's context. Blocking closures
//! ([`spawn_blocking`](crate::Run::spawn_blocking)) do not run inside the
//! context either.
//!
//! ## Lifetime of `unirun-io`
//!
//! unirun cannot see when a task first touches tokio, so the runtime and
//! its thread start with the first thread pool that needs them (the first
//! [`spawn`](crate::spawn), or the first threads scope), not with the first
//! socket: a program built with `tokio-backend` that uses a thread pool
//! has one more thread, parked, even if it never uses tokio.
//! [`Flavor::Tokio`](crate::Flavor::Tokio) and [`Flavor::Smol`](crate::Flavor::Smol)
//! scopes never start it.
//!
//! Every pool that uses it holds it; it stops (its thread joined) when the
//! last of them shuts down. [`reset`](crate::reset) shuts the shared
//! default down, so with no scope of your own left the `unirun-io` thread
//! is gone after it, and the next pool starts a new one: timers and
//! sockets keep working across `reset`. A scope that outlives a `reset`
//! keeps the runtime it started with.
//!
//! Stopping it waits for the blocking closures running on its runtime
//! (`tokio::task::spawn_blocking` in a task), as dropping a tokio runtime
//! does, except under a bounded shutdown: when
//! [`Run::shutdown_timeout`](crate::Run::shutdown_timeout) releases the
//! last hold, the runtime is stopped by the same deadline, closures still
//! running then are left to finish on their threads, and the call returns
//! `false`.
//!
//! On unirun's worker threads `tokio::spawn` works too and runs its task on
//! the reactor's runtime (on `unirun-io` itself for unirun's own); prefer
//! [`spawn`](crate::spawn). The context unirun entered is not an "ambient
//! runtime" for scope decisions: a [`Run`](crate::Run) built inside a task
//! decides as it would on any other thread.
//!
//! In a child forked by the process backend, the parent's `unirun-io`
//! thread does not exist, and pools inherited from the parent run their
//! tasks inline on the calling thread (their threads were not copied). A
//! scope's reactor there is a `unirun-io` of the child's own, started on
//! first use (the parent's is left alone): tokio futures work in
//! [`Run::block_on`](crate::Run::block_on) and in tasks a scope spawns
//! (for an inherited scope their first poll, inline in
//! [`Run::spawn`](crate::Run::spawn), enters it), for a scope built in the
//! parent as for one built in the child. The shared default behind
//! [`spawn`](crate::spawn) is the child's own there (see
//! [`get_executor`](crate::get_executor)): a pool with threads of the
//! child's, inside the child's `unirun-io`.
//!
//! ## Without the feature
//!
//! Without `tokio-backend`, no tokio context exists on unirun's threads and
//! tokio's I/O types panic with tokio's own message ("there is no reactor
//! running, must be called from the context of a Tokio 1.x runtime").
//! Enable the feature:
//!
//! ```toml
//! unirun = { version = "0.1", features = ["tokio-backend"] }
//! ```
//!
//! # smol futures (always)
//!
//! `async-io` (`Async<TcpStream>`, `async_io::Timer`) and `async-net` need
//! no context: async-io drives its reactor on a thread of its own
//! (`async-io`) whenever nobody else does, and unirun never blocks that
//! thread nor holds a lock it takes. They work in tasks of every backend
//! and in [`block_on`](crate::block_on).
//!
//! **Not in a forked child of a process that already used them.** async-io
//! keeps one reactor per process image in a private static, and `fork`
//! copies it: the child's sockets register with the epoll instance it
//! shares with the parent (whose `async-io` thread may take their readiness
//! events), and the reactor's lock may be held for good by that thread,
//! which the child does not have. A socket created in such a child never
//! wakes its task. unirun cannot re-create another crate's private reactor:
//! in a closure passed to `unirun::to_process` (or any child
//! of a process that used async-io before the fork), use tokio's sockets
//! (each fork generation gets its own `unirun-io`, above), blocking std
//! sockets, or `exec` a fresh program. A child of a process that never
//! touched async-io is fine: its reactor is created in the child.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//!
//! // A smol socket inside a unirun task, on any backend.
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = std::thread::spawn(move || {
//!     let (mut peer, _) = listener.accept().unwrap();
//!     let mut buf = [0; 4];
//!     peer.read_exact(&mut buf).unwrap();
//!     peer.write_all(&buf).unwrap();
//! });
//! let echoed = unirun::spawn(async move {
//!     use futures_lite::{AsyncReadExt, AsyncWriteExt};
//!     let mut stream = async_io::Async::<TcpStream>::connect(addr).await.unwrap();
//!     stream.write_all(b"ping").await.unwrap();
//!     let mut buf = [0; 4];
//!     stream.read_exact(&mut buf).await.unwrap();
//!     buf
//! });
//! assert_eq!(&unirun::block_on(echoed).unwrap(), b"ping");
//! server.join().unwrap();
//! ```

// unirun's own tokio reactor with `tokio-backend`; without it, only the
// answer to "does it run" (no).
cfg_if::cfg_if! {
    if #[cfg(feature = "tokio-backend")] {
        mod tokio_io;
        pub(crate) use self::tokio_io::{
            child_runtime, entered_by_unirun, reactor_of, CallLease, Context, Lease, Reactor,
        };
    } else {
        #[path = "io/no_tokio_io.rs"]
        mod tokio_io;
    }
}

/// Views into unirun's tokio reactor for unirun's own tests (feature
/// `__test-hooks`, never part of `full`): not a supported API.
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
pub mod test_hooks {
    /// Whether unirun's own tokio runtime (the `unirun-io` thread) runs
    /// now; never without `tokio-backend`.
    pub fn own_runtime_running() -> bool {
        super::tokio_io::own_running()
    }
}
