//! A drop-in for tokio's task API: `unirun::compat::tokio::task` mirrors
//! `tokio::task::{spawn, spawn_blocking, JoinHandle, JoinError}`.
//!
//! # Examples
//!
//! ```
//! # let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
//! # rt.block_on(async {
//! // Was: use tokio::task;
//! use unirun::compat::tokio::task;
//!
//! let sum = task::spawn(async { 1 + 1 });
//! let file = task::spawn_blocking(|| std::fs::metadata(".").is_ok());
//! assert_eq!(sum.await.unwrap(), 2);
//! assert!(file.await.unwrap());
//! # });
//! ```

/// `tokio::task`'s spawning API; see the [module docs](self).
///
/// In managed mode, [`task::spawn`] stays on the ambient tokio
/// runtime (its reactor and timers are needed) but the task is unirun's:
/// a panic keeps its message and location. [`task::spawn_blocking`]
/// runs the closure on unirun's blocking lane (the shared default
/// executor's, sized by the config) inside the caller's runtime context, so
/// `Handle::current()` still works in it. In passthrough mode both are
/// tokio's own.
///
/// What differs in managed mode: blocking closures run on threads named
/// `unirun-blocking-{i}` and count against unirun's lane cap rather than
/// tokio's `max_blocking_threads`; task ids (`JoinError::id`) and
/// `abort_handle()` are not offered.
pub mod task {
    use std::any::Any;
    use std::fmt;
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Spawns a future on the current tokio runtime, like
    /// `tokio::task::spawn`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as tokio's does.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// use unirun::compat::tokio::task;
    ///
    /// let handle = task::spawn(async { "done" });
    /// assert_eq!(handle.await.unwrap(), "done");
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if super::super::passthrough() {
            return JoinHandle(Inner::Tokio(tokio::task::spawn(future)));
        }
        // `current()` panics outside a runtime with tokio's own message.
        let runtime = tokio::runtime::Handle::current();
        JoinHandle(Inner::Unirun(unirun_tokio::spawn_on(&runtime, future)))
    }

    /// Runs a blocking closure where blocking is allowed, like
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// use unirun::compat::tokio::task;
    ///
    /// let handle = task::spawn_blocking(|| 6 * 7);
    /// assert_eq!(handle.await.unwrap(), 42);
    /// # });
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if super::super::passthrough() {
            return JoinHandle(Inner::Tokio(tokio::task::spawn_blocking(f)));
        }
        let runtime = tokio::runtime::Handle::try_current().ok();
        JoinHandle(Inner::Unirun(crate::to_thread(move || {
            let _context = runtime.as_ref().map(tokio::runtime::Handle::enter);
            f()
        })))
    }

    /// An owned permission to await a task, like `tokio::task::JoinHandle`:
    /// resolves to `Result<T, JoinError>`; dropping it detaches the task.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// use unirun::compat::tokio::task;
    ///
    /// let handle = task::spawn(std::future::pending::<()>());
    /// handle.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub struct JoinHandle<T>(Inner<T>);

    enum Inner<T> {
        Tokio(tokio::task::JoinHandle<T>),
        Unirun(crate::JoinHandle<T>),
    }

    impl<T> JoinHandle<T> {
        /// Cancels the task (a blocking closure that already started runs
        /// to the end, its output discarded).
        ///
        /// # Examples
        ///
        /// ```
        /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        /// # rt.block_on(async {
        /// let handle = unirun::compat::tokio::task::spawn(std::future::pending::<()>());
        /// handle.abort();
        /// assert!(handle.await.unwrap_err().is_cancelled());
        /// # });
        /// ```
        pub fn abort(&self) {
            match &self.0 {
                Inner::Tokio(handle) => handle.abort(),
                Inner::Unirun(handle) => handle.abort(),
            }
        }

        /// Whether the task has finished.
        ///
        /// # Examples
        ///
        /// ```
        /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        /// # rt.block_on(async {
        /// let handle = unirun::compat::tokio::task::spawn(async {});
        /// while !handle.is_finished() {
        ///     tokio::task::yield_now().await;
        /// }
        /// # });
        /// ```
        pub fn is_finished(&self) -> bool {
            match &self.0 {
                Inner::Tokio(handle) => handle.is_finished(),
                Inner::Unirun(handle) => handle.is_finished(),
            }
        }
    }

    impl<T> Future for JoinHandle<T> {
        type Output = Result<T, JoinError>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            // Both inner handles are `Unpin`.
            match &mut self.get_mut().0 {
                Inner::Tokio(handle) => Pin::new(handle)
                    .poll(cx)
                    .map_err(|e| JoinError(ErrorInner::Tokio(e))),
                Inner::Unirun(handle) => Pin::new(handle)
                    .poll(cx)
                    .map_err(|e| JoinError(ErrorInner::Unirun(e))),
            }
        }
    }

    impl<T> fmt::Debug for JoinHandle<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("JoinHandle")
                .field("finished", &self.is_finished())
                .finish()
        }
    }

    /// Why a task did not produce its output, like `tokio::task::JoinError`:
    /// it was cancelled or it panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let err = unirun::compat::tokio::task::spawn(async { panic!("boom") })
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_panic());
    /// assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"boom"));
    /// # });
    /// ```
    pub struct JoinError(ErrorInner);

    enum ErrorInner {
        Tokio(tokio::task::JoinError),
        Unirun(crate::JoinError),
    }

    impl JoinError {
        /// Whether the task was cancelled.
        ///
        /// # Examples
        ///
        /// ```
        /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        /// # rt.block_on(async {
        /// let handle = unirun::compat::tokio::task::spawn(std::future::pending::<()>());
        /// handle.abort();
        /// assert!(handle.await.unwrap_err().is_cancelled());
        /// # });
        /// ```
        pub fn is_cancelled(&self) -> bool {
            match &self.0 {
                ErrorInner::Tokio(e) => e.is_cancelled(),
                ErrorInner::Unirun(e) => e.is_cancelled(),
            }
        }

        /// Whether the task panicked.
        ///
        /// # Examples
        ///
        /// ```
        /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        /// # rt.block_on(async {
        /// let err = unirun::compat::tokio::task::spawn_blocking(|| panic!("x")).await.unwrap_err();
        /// assert!(err.is_panic());
        /// # });
        /// ```
        pub fn is_panic(&self) -> bool {
            match &self.0 {
                ErrorInner::Tokio(e) => e.is_panic(),
                ErrorInner::Unirun(e) => e.is_panic(),
            }
        }

        /// The panic payload.
        ///
        /// # Panics
        ///
        /// If the task did not panic, as tokio's does.
        ///
        /// # Examples
        ///
        /// ```
        /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        /// # rt.block_on(async {
        /// let err = unirun::compat::tokio::task::spawn(async { panic!("boom") }).await.unwrap_err();
        /// let payload = err.into_panic();
        /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        /// # });
        /// ```
        #[track_caller]
        pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
            self.try_into_panic()
                .expect("`JoinError` reason is not a panic.")
        }

        /// The panic payload, or the error itself if the task did not panic.
        ///
        /// # Examples
        ///
        /// ```
        /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        /// # rt.block_on(async {
        /// let handle = unirun::compat::tokio::task::spawn(std::future::pending::<()>());
        /// handle.abort();
        /// assert!(handle.await.unwrap_err().try_into_panic().is_err());
        /// # });
        /// ```
        pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
            match self.0 {
                ErrorInner::Tokio(e) => e
                    .try_into_panic()
                    .map_err(|e| JoinError(ErrorInner::Tokio(e))),
                ErrorInner::Unirun(e) if e.is_panic() => Ok(e.into_panic()),
                inner => Err(JoinError(inner)),
            }
        }
    }

    impl fmt::Display for JoinError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.0 {
                ErrorInner::Tokio(e) => fmt::Display::fmt(e, f),
                ErrorInner::Unirun(e) => fmt::Display::fmt(e, f),
            }
        }
    }

    impl fmt::Debug for JoinError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.0 {
                ErrorInner::Tokio(e) => fmt::Debug::fmt(e, f),
                ErrorInner::Unirun(e) => fmt::Debug::fmt(e, f),
            }
        }
    }

    impl std::error::Error for JoinError {}

    impl From<JoinError> for io::Error {
        fn from(err: JoinError) -> io::Error {
            io::Error::other(err.to_string())
        }
    }
}
