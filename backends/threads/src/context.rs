//! [`WorkerContext`]: code every thread that polls a pool's tasks runs
//! inside, entered once per thread instead of once per poll.

use std::any::Any;
use std::fmt;
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
