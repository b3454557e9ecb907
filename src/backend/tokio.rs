//! A tokio runtime: one the scope owns, or the ambient one it borrows
//! (feature `tokio-backend`).

pub(crate) use unirun_tokio::Handle;
use unirun_tokio::TokioRuntime;

use super::{Backend, BackendContext, BackendHandle, BackendTimer, Shutdown, Started};
use crate::error::Error;
use crate::flavor::Flavor;

/// Starts a multi-thread tokio runtime of `workers` threads named after
/// `name`, with up to `blocking_cap` blocking threads.
pub(crate) fn start(workers: usize, blocking_cap: usize, name: &str) -> Result<Started, Error> {
    let runtime = TokioRuntime::builder()
        .workers(workers)
        .max_blocking_threads(blocking_cap)
        .name(name)
        .build()?;
    Ok(Started {
        backend: Backend::Tokio(runtime.handle()),
        owned: Box::new(runtime),
        processes: None,
    })
}

/// The tokio runtime the calling thread runs in, when unirun can borrow it.
pub(crate) fn ambient() -> Option<Backend> {
    Handle::current().map(Backend::Tokio)
}

impl Shutdown for TokioRuntime {
    fn shutdown(self: Box<Self>) {
        drop(self);
    }

    fn shutdown_timeout(self: Box<Self>, timeout: std::time::Duration) -> bool {
        TokioRuntime::shutdown_timeout(*self, timeout)
    }
}

impl BackendHandle for Handle {
    super::inherent_spawn_methods!();

    fn flavor(&self) -> Flavor {
        Flavor::Tokio
    }

    fn enter(&self) -> Option<BackendContext<'_>> {
        if self.is_inherited() {
            // A runtime inherited through `fork` has no driver thread here
            // (a timer registered on it would never fire): its tasks run
            // inline (see `is_inherited`), inside the child's own unirun-io.
            if let Some(tokio) = crate::io::child_runtime() {
                return Some(BackendContext::new(tokio.enter(), false));
            }
        }
        // A tokio scope's runtime: an ambient runtime for what runs inside.
        Some(BackendContext::new(self.tokio().enter(), false))
    }

    fn reactor(&self) -> Option<&'static str> {
        Some(if self.is_ambient() {
            "tokio's I/O and timers on the ambient tokio runtime"
        } else {
            "tokio's I/O and timers on the scope's tokio runtime"
        })
    }

    /// tokio's timer, on runtimes unirun started: they have timers enabled,
    /// while a borrowed one may not (and tokio would panic).
    fn timer(&self, deadline: std::time::Instant) -> Option<BackendTimer> {
        if self.is_ambient() {
            return None;
        }
        let _inside = self.tokio().enter();
        let sleep = ::tokio::time::sleep_until(::tokio::time::Instant::from_std(deadline));
        Some(BackendTimer {
            sleep: Box::pin(sleep),
            name: "tokio",
        })
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio-backend")))]
impl crate::Handle {
    /// A handle onto a tokio runtime the caller owns, for
    /// [`RunBuilder::executor`](crate::RunBuilder::executor): the scope runs
    /// its tasks there and never shuts the runtime down.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Handle, Run};
    ///
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    /// let run = Run::builder().executor(Handle::from_tokio(rt.handle().clone())).build()?;
    /// assert_eq!(run.trace().resolved(), Flavor::Tokio);
    /// assert_eq!(run.spawn(async { 1 }).join().unwrap(), 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn from_tokio(handle: ::tokio::runtime::Handle) -> crate::Handle {
        crate::Handle::new(Backend::Tokio(Handle::from_tokio(handle)), None)
    }
}
