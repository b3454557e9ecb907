//! [`JoinError`], in tokio's shape.

use std::any::Any;
use std::fmt;
use std::io;

use super::Id;

/// Why a task did not produce its output, like `tokio::task::JoinError`:
/// it was cancelled or it panicked. `Display` and `Debug` read as tokio's
/// (`task 7 panicked with message "boom"`,
/// `JoinError::Panic(Id(7), "boom", ...)`).
///
/// # Examples
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let handle = unirun::compat::tokio::task::spawn(async { panic!("boom") });
/// let id = handle.id();
/// let err = handle.await.unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.id(), id);
/// assert_eq!(err.to_string(), format!("task {id} panicked with message \"boom\""));
/// assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"boom"));
/// # });
/// ```
pub struct JoinError(Repr);

enum Repr {
    Tokio(tokio::task::JoinError),
    Managed { err: crate::JoinError, id: Id },
}

impl JoinError {
    pub(super) fn tokio(err: tokio::task::JoinError) -> Self {
        JoinError(Repr::Tokio(err))
    }

    pub(super) fn managed(err: crate::JoinError, id: Id) -> Self {
        JoinError(Repr::Managed { err, id })
    }

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
            Repr::Tokio(e) => e.is_cancelled(),
            Repr::Managed { err, .. } => err.is_cancelled(),
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
            Repr::Tokio(e) => e.is_panic(),
            Repr::Managed { err, .. } => err.is_panic(),
        }
    }

    /// The id of the task that failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let handle = unirun::compat::tokio::task::spawn(std::future::pending::<()>());
    /// let id = handle.id();
    /// handle.abort();
    /// assert_eq!(handle.await.unwrap_err().id(), id);
    /// # });
    /// ```
    pub fn id(&self) -> Id {
        match &self.0 {
            Repr::Tokio(e) => Id::tokio(e.id()),
            Repr::Managed { id, .. } => *id,
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
            Repr::Tokio(e) => e.try_into_panic().map_err(JoinError::tokio),
            Repr::Managed { err, id } => err.try_into_panic().map_err(|err| Self::managed(err, id)),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Tokio(e) => fmt::Display::fmt(e, f),
            Repr::Managed { err, id } if err.is_cancelled() => write!(f, "task {id} was cancelled"),
            Repr::Managed { err, id } if err.is_panic() => match err.panic_message() {
                Some(message) => write!(f, "task {id} panicked with message {message:?}"),
                None => write!(f, "task {id} panicked"),
            },
            // Other failures (timeouts, crashes) come from backends that
            // compat::tokio does not spawn on; said in unirun's words.
            Repr::Managed { err, id } => write!(f, "task {id} failed: {err}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Tokio(e) => fmt::Debug::fmt(e, f),
            Repr::Managed { err, id } if err.is_cancelled() => {
                write!(f, "JoinError::Cancelled({id:?})")
            }
            Repr::Managed { err, id } if err.is_panic() => match err.panic_message() {
                Some(message) => write!(f, "JoinError::Panic({id:?}, {message:?}, ...)"),
                None => write!(f, "JoinError::Panic({id:?}, ...)"),
            },
            Repr::Managed { err, id } => write!(f, "JoinError::Other({id:?}, {err:?})"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(err: JoinError) -> io::Error {
        io::Error::other(err.to_string())
    }
}
