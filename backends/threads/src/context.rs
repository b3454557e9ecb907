//! [`WorkerContext`]: code every thread that polls a pool's tasks runs
//! inside, entered once per thread instead of once per poll.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A context the pool's worker threads run inside for their whole life,
/// set with [`Builder::worker_context`](crate::Builder::worker_context):
/// for example another runtime's thread-local context, entered once per
/// thread so the tasks polled there can use that runtime, at no cost per
/// poll.
///
/// It wraps the body of every thread that polls the pool's tasks: the
/// workers, and the threads that take a worker's core over while a task
/// blocks. The blocking lane's threads do not run inside it.
///
/// # Examples
///
/// ```
/// use std::any::Any;
/// use std::cell::Cell;
/// use std::sync::Arc;
/// use unirun_threads::{ThreadPool, WorkerContext};
///
/// thread_local!(static INSIDE: Cell<bool> = const { Cell::new(false) });
///
/// struct Flag;
/// impl WorkerContext for Flag {
///     fn run(&self, body: &mut dyn FnMut()) {
///         INSIDE.with(|f| f.set(true));
///         body();
///         INSIDE.with(|f| f.set(false));
///     }
///     fn as_any(&self) -> &dyn Any {
///         self
///     }
/// }
///
/// let pool = ThreadPool::builder().workers(1).worker_context(Arc::new(Flag)).build().unwrap();
/// assert!(pool.spawn(async { INSIDE.with(Cell::get) }).join().unwrap());
/// assert!(pool.handle().worker_context().unwrap().as_any().is::<Flag>());
/// ```
pub trait WorkerContext: Send + Sync + 'static {
    /// Runs `body`, a pool thread's whole loop, inside the context. It
    /// should call `body` once; if it returns without doing so, the pool
    /// runs `body` itself afterwards (a worker is never lost).
    fn run(&self, body: &mut dyn FnMut());

    /// The context as `Any`, so its owner can find its own type again
    /// through [`Handle::worker_context`](crate::Handle::worker_context).
    fn as_any(&self) -> &dyn Any;

    /// Parks an idle worker of the pool inside the context until `woken`
    /// completes (for example by driving a reactor on this thread, so the
    /// tasks its events wake run here), and returns `true`; or returns
    /// `false` at once, and the pool parks the thread its own way. `woken`
    /// completes once the worker is unparked; the context may also return
    /// earlier (a spurious wake-up). The default declines.
    ///
    /// Wakers that run on this thread while it parks queue their tasks on
    /// the parked worker, which runs them when the park returns.
    fn park(&self, _woken: Pin<&mut dyn Future<Output = ()>>) -> bool {
        false
    }

    /// Whether the calling thread, inside [`park`](Self::park), is running
    /// code other than wakers: a task of a runtime the park drives, which
    /// may block the thread or run for long. Tasks it wakes or spawns for
    /// the parked worker are then queued for the other workers, and one of
    /// them is woken (see `unirun_core::Park::runs_foreign_code`). The
    /// default: never.
    fn park_runs_foreign_code(&self) -> bool {
        false
    }
}

/// The builder's slot for a context: printable, cheap to clone.
#[derive(Clone)]
pub(crate) struct ContextSlot(pub(crate) Arc<dyn WorkerContext>);

impl fmt::Debug for ContextSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerContext")
    }
}

/// Runs `job` inside `context` (if any), and runs it anyway if the context
/// returned without calling it.
pub(crate) fn run_inside(context: Option<&Arc<dyn WorkerContext>>, job: impl FnOnce()) {
    let mut job = Some(job);
    if let Some(context) = context {
        context.run(&mut || {
            if let Some(job) = job.take() {
                job();
            }
        });
    }
    if let Some(job) = job.take() {
        job();
    }
}
