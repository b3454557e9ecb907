//! [`block_on`] with `std`: the core's, plus the context a `main` needs
//! (tokio's reactor with `tokio-backend`, the current executor for
//! [`Handle::current`](crate::Handle::current)).

use std::cell::Cell;
use std::future::Future;

thread_local! {
    /// How many [`block_on`] calls the calling thread is inside.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Whether the calling thread is inside [`block_on`].
pub(crate) fn in_block_on() -> bool {
    DEPTH.try_with(Cell::get).is_ok_and(|depth| depth > 0)
}

/// Counts one [`block_on`] on this thread while alive.
struct Depth;

impl Depth {
    fn enter() -> Depth {
        let _ = DEPTH.try_with(|d| d.set(d.get() + 1));
        Depth
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
    }
}

/// Runs `future` to completion on the calling thread and returns its
/// output: the entry point of a program's `main` (and of
/// `#[unirun::main]` with feature `macros`).
///
/// Inside it, [`spawn`](crate::spawn) and
/// [`Handle::current`](crate::Handle::current) reach the shared default
/// executor, smol's I/O (`async-io`, `async-net`) works as anywhere, and
/// with `tokio-backend` so does tokio's (`tokio::net`, `tokio::time`): on
/// a thread outside any tokio runtime, the call enters the reactor of the
/// shared default's workers (see [`crate::io`]), starting the shared
/// default if it has not started yet. Inside a tokio runtime, or on a
/// unirun worker, the context already there serves.
///
/// Entering the reactor costs what tokio's `Handle::enter` costs (tens of
/// nanoseconds a call, as [`Run::block_on`](crate::Run::block_on) pays,
/// nothing per poll): a `block_on` of a future
/// that is ready at once is that much slower with `tokio-backend` on
/// (`block_on_ready` in `cargo bench`). Without the feature it is the
/// core's call plus a thread-local counter.
///
/// Called on a unirun worker it does not deadlock the pool: the worker
/// hands its queue to another thread while it waits (see
/// [`unirun_core::block_on`], the same call without the context, which is
/// what `unirun::block_on` is without `std`).
///
/// The shared default's reactor stays up while the call is inside it: a
/// `#[unirun::main]` body may call [`configure`](crate::configure) first
/// (which replaces the default whose reactor the call entered), and another
/// thread may call [`reset`](crate::reset), without stopping the call's
/// timers and sockets.
///
/// Inside a task of a multi-thread tokio runtime (a `Flavor::Tokio` scope's,
/// or `#[tokio::test(flavor = "multi_thread")]`'s), the wait runs in
/// `tokio::task::block_in_place`: the worker's other tasks, timers and I/O
/// move to another thread meanwhile, so a future that needs them completes,
/// even on a runtime of one worker.
///
/// # Panics
///
/// Inside a task of a current-thread tokio runtime (`#[tokio::test]`'s, or a
/// task of an `Auto` scope that borrowed it, also under a
/// [`Run::block_on`](crate::Run::block_on) there), on the thread inside such
/// a runtime's `block_on`, and in a tokio `LocalSet` (its tasks, or its
/// `run_until`): the thread it would block drives that runtime or set, so
/// nothing the future waits for on it could ever happen. Use `.await`
/// there. Where tokio's `block_in_place` tells unirun so (all but the
/// first case), tokio's refusal is printed by the panic hook before
/// unirun's message.
///
/// # Examples
///
/// ```
/// let task = unirun::spawn(async { 6 * 7 });
/// assert_eq!(unirun::block_on(task).unwrap(), 42);
/// ```
///
/// With `tokio-backend`, tokio's sockets work in it:
///
/// ```
/// # #[cfg(feature = "tokio-backend")]
/// unirun::block_on(async {
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = unirun::spawn(async move { tokio::net::TcpStream::connect(addr).await });
///     let (_server_side, _) = listener.accept().await?;
///     client.await.unwrap()?;
///     Ok::<(), std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let _depth = Depth::enter();
    #[cfg(feature = "tokio-backend")]
    {
        match tokio::runtime::Handle::try_current() {
            Err(_) => {
                let default = crate::get_executor();
                // Declared first, dropped last: the runtime stays up while
                // the call is inside its context, even if `configure` or
                // `reset` shuts the default down meanwhile (see
                // `default_reactor`).
                let _lease = default_reactor(&default);
                let _context = default.backend().enter();
                unirun_core::block_on(future)
            }
            Ok(runtime) => in_tokio::block_on(&runtime, future),
        }
    }
    #[cfg(not(feature = "tokio-backend"))]
    unirun_core::block_on(future)
}

/// A lease on the shared default's reactor (unirun's own runtime, see
/// [`crate::io`]) for one [`block_on`] that enters it.
///
/// The body of a `#[unirun::main]` may call [`configure`](crate::configure)
/// first, and another thread may call [`reset`](crate::reset): either
/// shuts down the default whose reactor the call entered. Without the
/// lease, that default's shutdown would stop the runtime under the call's
/// timers and sockets ("A Tokio 1.x context was found, but it is being
/// shutdown"). With it, the runtime stops when the last of the pools and
/// calls holding it lets go. When that is this call's lease, its drop stops
/// the runtime without waiting for tokio blocking closures (as the `reset`
/// that shut the pools down would have): it waits only for `unirun-io` to
/// leave its loop, which it does once woken, so the call ends. A later
/// default leases the same runtime while it runs.
#[cfg(feature = "tokio-backend")]
fn default_reactor(default: &crate::Handle) -> Option<crate::io::CallLease> {
    match default.backend() {
        crate::backend::Backend::Threads(pool) => crate::io::reactor_of(pool)?.lease(),
        _ => None,
    }
}

/// [`block_on`] for the body of a `#[unirun::test]`: after the body, a
/// tokio clock the body paused (`tokio::time::pause()`) on the reactor the
/// call entered, the shared default's, which every other test of the
/// process uses too, fails the test with a message that says so.
///
/// tokio can resume a clock only with its `test-util` feature, which unirun
/// does not turn on (it makes every read of tokio's clock take a lock), so
/// the clock stays paused for the rest of the process: the failure names
/// the test that paused it, and the way to write such a test.
#[doc(hidden)]
pub fn __block_on_test<F: Future>(future: F) -> F::Output {
    let output = block_on(future);
    #[cfg(feature = "tokio-backend")]
    if tokio::runtime::Handle::try_current().is_err() {
        // Only a default still running has a clock to look at: a body that
        // ended with `reset()` must not get a new one started here.
        let paused = crate::global::running_default().is_some_and(|default| {
            match default.backend().enter() {
                Some(_context) => crate::compat::tokio::task::clock_paused(),
                None => false,
            }
        });
        if paused {
            panic!("{PAUSED_IN_A_UNIRUN_TEST}");
        }
    }
    output
}

/// What [`__block_on_test`] says about a clock paused in the test.
#[cfg(feature = "tokio-backend")]
const PAUSED_IN_A_UNIRUN_TEST: &str = "this #[unirun::test] paused tokio's clock \
    (tokio::time::pause()): the clock is the one of unirun's reactor that every \
    unirun::block_on and every task of the shared default uses, in every test of this \
    process, and it stays paused; write a test with a paused clock as \
    #[tokio::test(start_paused = true)] and build its unirun scope inside with \
    Run::builder().build() (flavor Auto, which borrows the test's runtime and its clock)";

/// [`block_on`] on a thread inside a tokio runtime's context.
#[cfg(feature = "tokio-backend")]
mod in_tokio {
    use std::future::Future;

    use tokio::runtime::{Handle, RuntimeFlavor};

    /// What [`block_on`](super::block_on) says when it would block the
    /// thread that drives a current-thread runtime.
    pub(super) const DRIVES_THE_RUNTIME: &str = "unirun::block_on called inside a task of a \
        current-thread tokio runtime (such as #[tokio::test]'s, or unirun's own reactor, where \
        a plain tokio::spawn from a unirun task runs): the thread it would block drives that \
        runtime, so the runtime's timers, sockets and tasks (and whatever the future waits \
        for) could never make progress; use `.await` instead (or unirun::spawn for the task)";

    /// Runs `future` to completion on this thread, inside `runtime`'s
    /// context (kept as it is).
    ///
    /// - In a task of a multi-thread runtime, the wait runs in
    ///   `tokio::task::block_in_place`: the worker's other tasks, its
    ///   timers and its I/O move to another thread meanwhile, so a future
    ///   that needs them (even on a runtime of one worker) completes.
    /// - In a task of a current-thread runtime, nothing could drive the
    ///   runtime while this thread waits: it panics at once instead of
    ///   hanging. So it does, with its own message, wherever tokio refuses
    ///   `block_in_place`: on the thread inside a current-thread runtime's
    ///   `block_on`, in a task of such a runtime under a unirun scope's
    ///   `block_on` (whose reactor, entered on top, hides the runtime
    ///   beneath), and in a `LocalSet` (whose tasks this thread runs).
    /// - Elsewhere (inside `Handle::enter`, or a multi-thread runtime's
    ///   `block_on`), `block_in_place` just runs the wait. That includes a
    ///   task of a multi-thread runtime inside a unirun scope's `block_on`,
    ///   where unirun entered its own (current-thread) reactor: this thread
    ///   does not drive that one.
    pub(super) fn block_on<F: Future>(runtime: &Handle, future: F) -> F::Output {
        let in_task = tokio::task::try_id().is_some();
        if in_task
            && runtime.runtime_flavor() == RuntimeFlavor::CurrentThread
            && !crate::io::entered_by_unirun()
        {
            panic!("{DRIVES_THE_RUNTIME}");
        }
        match block_in_place(|| unirun_core::block_on(future)) {
            Some(output) => output,
            None => panic!("{BLOCKING_REFUSED}"),
        }
    }

    /// What [`block_on`](super::block_on) says where tokio refuses
    /// `block_in_place` (see [`block_in_place`]).
    pub(super) const BLOCKING_REFUSED: &str = "unirun::block_on called on a thread that \
        must not block: it drives a current-thread tokio runtime (inside its block_on, or in \
        one of its tasks, also under a unirun scope's block_on, which enters unirun's own \
        reactor on top) or runs a tokio LocalSet, so that runtime's or LocalSet's tasks, \
        timers and sockets (and whatever the future waits for) could never make progress \
        while it waits (tokio refused block_in_place); use `.await` instead (or \
        unirun::spawn for the task)";

    /// Runs `f` in `tokio::task::block_in_place`; `None`, with `f` dropped
    /// unrun, where tokio refuses to (it panics before running `f`: on a
    /// thread that drives a current-thread runtime, in its `block_on` or
    /// its tasks, or that runs a `LocalSet`, none of which tokio lets a
    /// caller see beforehand). A panic of `f` itself resumes here.
    ///
    /// tokio's refusal goes through the panic hook as any panic does, so
    /// its message is printed (once) before the caller's own.
    pub(crate) fn block_in_place<R>(f: impl FnOnce() -> R) -> Option<R> {
        let mut ran = false;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tokio::task::block_in_place(|| {
                ran = true;
                f()
            })
        }));
        match outcome {
            Ok(output) => Some(output),
            Err(_refused) if !ran => None,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }
}

#[cfg(feature = "tokio-backend")]
pub(crate) use self::in_tokio::block_in_place;
