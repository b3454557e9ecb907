//! [`block_on`](crate::block_on) with `tokio-backend`: outside a tokio
//! context it enters the shared default's reactor; inside one it keeps that
//! context (see `no_tokio.rs` for the build without tokio).

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `future` to completion on this thread: inside the shared default's
/// reactor when the thread is in no tokio context, else in the context it
/// is in (see [`block_on_inside`]).
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    match Handle::try_current() {
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
        Ok(runtime) => block_on_inside(&runtime, future),
    }
}

/// A lease on the shared default's reactor (unirun's own runtime, see
/// [`crate::io`]) for one [`block_on`](crate::block_on) that enters it.
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
fn default_reactor(default: &crate::Handle) -> Option<crate::io::CallLease> {
    match default.backend() {
        crate::backend::Backend::Threads(pool) => crate::io::reactor_of(pool)?.lease(),
        _ => None,
    }
}

/// After a `#[unirun::test]` body (see `__block_on_test`): fails the test
/// if the body left the clock of the shared default's reactor paused.
pub(super) fn fail_if_clock_paused() {
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
}

/// What [`fail_if_clock_paused`] says about a clock paused in the test.
const PAUSED_IN_A_UNIRUN_TEST: &str = "this #[unirun::test] paused tokio's clock \
    (tokio::time::pause()): the clock is the one of unirun's reactor that every \
    unirun::block_on and every task of the shared default uses, in every test of this \
    process, and it stays paused; write a test with a paused clock as \
    #[tokio::test(start_paused = true)] and build its unirun scope inside with \
    Run::builder().build() (flavor Auto, which borrows the test's runtime and its clock)";

/// What [`block_on`](crate::block_on) says when it would block the
/// thread that drives a current-thread runtime.
const DRIVES_THE_RUNTIME: &str = "unirun::block_on called inside a task of a \
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
fn block_on_inside<F: Future>(runtime: &Handle, future: F) -> F::Output {
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

/// What [`block_on`](crate::block_on) says where tokio refuses
/// `block_in_place` (see [`block_in_place`]).
const BLOCKING_REFUSED: &str = "unirun::block_on called on a thread that \
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
