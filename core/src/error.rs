//! [`JoinError`]: why a task produced no value.

use alloc::boxed::Box;
use alloc::string::String;
use core::any::Any;
use core::fmt;

/// The payload a panicking task left behind, as `std::panic::catch_unwind` returns it.
///
/// # Examples
///
/// ```
/// use unirun_core::{panic_message, PanicPayload};
///
/// let payload: PanicPayload = std::panic::catch_unwind(|| panic!("oops")).unwrap_err();
/// assert_eq!(panic_message(&*payload), Some("oops"));
/// ```
pub type PanicPayload = Box<dyn Any + Send + 'static>;

/// Where a task panicked: file, line and column, as the panic hook saw them.
///
/// # Examples
///
/// ```
/// use unirun_core::TickExecutor;
///
/// let ex = TickExecutor::new();
/// let (line, handle) = (line!(), ex.spawn(async { panic!("boom") }));
/// ex.run_until_stalled();
/// let err = handle.join().unwrap_err();
/// let at = err.panic_location().unwrap();
/// assert_eq!((at.file(), at.line()), (file!(), line));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PanicLocation {
    file: String,
    line: u32,
    column: u32,
}

impl PanicLocation {
    /// Creates a location.
    ///
    /// # Examples
    ///
    /// ```
    /// let at = unirun_core::PanicLocation::new("src/main.rs", 3, 5);
    /// assert_eq!(at.to_string(), "src/main.rs:3:5");
    /// ```
    pub fn new(file: impl Into<String>, line: u32, column: u32) -> Self {
        Self {
            file: file.into(),
            line,
            column,
        }
    }

    /// The source file.
    ///
    /// # Examples
    ///
    /// ```
    /// let at = unirun_core::PanicLocation::new("src/lib.rs", 10, 4);
    /// assert_eq!(at.file(), "src/lib.rs");
    /// ```
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, starting at 1.
    ///
    /// # Examples
    ///
    /// ```
    /// let at = unirun_core::PanicLocation::new("src/lib.rs", 10, 4);
    /// assert_eq!(at.line(), 10);
    /// ```
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column, starting at 1.
    ///
    /// # Examples
    ///
    /// ```
    /// let at = unirun_core::PanicLocation::new("src/lib.rs", 10, 4);
    /// assert_eq!(at.column(), 4);
    /// ```
    pub fn column(&self) -> u32 {
        self.column
    }
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why a task's [`JoinHandle`](crate::JoinHandle) resolved without a value.
///
/// One type for every backend: a cancelled or panicked task on a thread pool,
/// and a timed-out, crashed or unreadable child process, all land here. Its
/// `Display` is a sentence a person can act on.
///
/// A panic carries its message and, when unirun's panic hook saw it, its
/// location (see `install_panic_hook`, with `std`; a payload
/// re-raised with `resume_unwind` runs no hook and has none). In a build
/// with `panic = "abort"` nothing is caught: a panicking task, or a
/// panicking destructor of a cancelled one, aborts the process, so no
/// `JoinError` is ever a panic there.
///
/// # Examples
///
/// ```
/// use unirun_core::{JoinError, TickExecutor};
///
/// let ex = TickExecutor::new();
/// let handle = ex.spawn(async { panic!("boom") });
/// ex.run_until_stalled();
/// let err: JoinError = unirun_core::block_on(handle).unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.panic_message(), Some("boom"));
/// ```
pub struct JoinError {
    /// Boxed: a task's allocation holds its future or its output, whichever
    /// is larger, so a small `JoinError` keeps every task small.
    repr: Box<Repr>,
}

enum Repr {
    Cancelled,
    Panicked {
        payload: SyncPayload,
        message: Option<String>,
        location: Option<PanicLocation>,
    },
    TimedOut,
    Crashed {
        signal: i32,
        name: &'static str,
    },
    Transport {
        what: &'static str,
        detail: String,
    },
    NotStarted {
        detail: String,
    },
}

/// Makes the payload `Sync` by never lending it out: it is only ever moved.
struct SyncPayload(PanicPayload);

// SAFETY: `SyncPayload` exposes its value only by value (`into_panic`) or
// through `&mut`, never through `&`, so sharing `&SyncPayload` between threads
// cannot race on the payload.
unsafe impl Sync for SyncPayload {}

/// Reads the message out of a panic payload, for `&str` and `String` payloads.
///
/// # Examples
///
/// ```
/// use unirun_core::panic_message;
///
/// let literal = std::panic::catch_unwind(|| panic!("literal")).unwrap_err();
/// assert_eq!(panic_message(&*literal), Some("literal"));
///
/// let n = 7;
/// let formatted = std::panic::catch_unwind(|| panic!("n = {n}")).unwrap_err();
/// assert_eq!(panic_message(&*formatted), Some("n = 7"));
///
/// let other = std::panic::catch_unwind(|| std::panic::panic_any(42)).unwrap_err();
/// assert_eq!(panic_message(&*other), None);
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Some(s)
    } else {
        payload.downcast_ref::<String>().map(String::as_str)
    }
}

impl JoinError {
    /// A task that was cancelled before it finished (aborted, or its executor shut down).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = unirun_core::JoinError::cancelled();
    /// assert!(err.is_cancelled());
    /// assert_eq!(err.to_string(), "task was cancelled before it finished");
    /// ```
    pub fn cancelled() -> Self {
        Self {
            repr: Box::new(Repr::Cancelled),
        }
    }

    /// A task that panicked; `location` is where, when it is known.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::{JoinError, PanicLocation};
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("bad input")).unwrap_err();
    /// let err = JoinError::panicked(payload, Some(PanicLocation::new("src/job.rs", 12, 9)));
    /// assert!(err.is_panic());
    /// assert_eq!(err.to_string(), "task panicked at src/job.rs:12:9: bad input");
    /// ```
    pub fn panicked(payload: PanicPayload, location: Option<PanicLocation>) -> Self {
        let message = panic_message(&*payload).map(String::from);
        Self {
            repr: Box::new(Repr::Panicked {
                payload: SyncPayload(payload),
                message,
                location,
            }),
        }
    }

    /// A panic that happened elsewhere (another process) and arrives as text only.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// let err = JoinError::panicked_remote("index out of bounds".to_string(), None);
    /// assert_eq!(err.panic_message(), Some("index out of bounds"));
    /// // The payload is the message as a `String`.
    /// let payload = err.into_panic();
    /// assert_eq!(payload.downcast_ref::<String>().unwrap(), "index out of bounds");
    /// ```
    pub fn panicked_remote(message: String, location: Option<PanicLocation>) -> Self {
        let payload: PanicPayload = Box::new(message.clone());
        Self {
            repr: Box::new(Repr::Panicked {
                payload: SyncPayload(payload),
                message: Some(message),
                location,
            }),
        }
    }

    /// A task that ran past its deadline and was stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = unirun_core::JoinError::timed_out();
    /// assert!(err.is_timeout());
    /// assert_eq!(err.to_string(), "task timed out and was stopped");
    /// ```
    pub fn timed_out() -> Self {
        Self {
            repr: Box::new(Repr::TimedOut),
        }
    }

    /// A child process killed by `signal` (`name` as in `"SIGSEGV"`).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = unirun_core::JoinError::crashed(11, "SIGSEGV");
    /// assert!(err.is_crash());
    /// assert!(err.to_string().contains("signal 11 (SIGSEGV)"));
    /// ```
    pub fn crashed(signal: i32, name: &'static str) -> Self {
        Self {
            repr: Box::new(Repr::Crashed { signal, name }),
        }
    }

    /// A failure of the transport that carries a result back (`what` says which
    /// step, e.g. `"read"` or `"decode"`).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = unirun_core::JoinError::transport("decode", "unexpected end of input");
    /// assert!(err.is_transport());
    /// assert_eq!(
    ///     err.to_string(),
    ///     "could not carry the task's result back (decode): unexpected end of input"
    /// );
    /// ```
    pub fn transport(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            repr: Box::new(Repr::Transport {
                what,
                detail: detail.into(),
            }),
        }
    }

    /// A task that never started because what would run it could not be
    /// started (the OS refused a thread); `detail` names what failed and
    /// the OS error.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = unirun_core::JoinError::not_started("no thread for pool `p`: os error 11");
    /// assert!(err.is_not_started());
    /// assert_eq!(
    ///     err.to_string(),
    ///     "task could not start: no thread for pool `p`: os error 11"
    /// );
    /// ```
    pub fn not_started(detail: impl Into<String>) -> Self {
        Self {
            repr: Box::new(Repr::NotStarted {
                detail: detail.into(),
            }),
        }
    }

    /// Whether the task never started because its executor could not be
    /// started (see [`not_started`](Self::not_started)).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert!(JoinError::not_started("no thread").is_not_started());
    /// assert!(!JoinError::cancelled().is_not_started());
    /// ```
    pub fn is_not_started(&self) -> bool {
        matches!(*self.repr, Repr::NotStarted { .. })
    }

    /// Whether the task was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert!(JoinError::cancelled().is_cancelled());
    /// assert!(!JoinError::timed_out().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert!(JoinError::panicked_remote("boom".into(), None).is_panic());
    /// assert!(!JoinError::cancelled().is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(*self.repr, Repr::Panicked { .. })
    }

    /// Whether the task ran out of time.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert!(JoinError::timed_out().is_timeout());
    /// assert!(!JoinError::crashed(9, "SIGKILL").is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(*self.repr, Repr::TimedOut)
    }

    /// Whether the task's process was killed by a signal.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert!(JoinError::crashed(6, "SIGABRT").is_crash());
    /// assert!(!JoinError::timed_out().is_crash());
    /// ```
    pub fn is_crash(&self) -> bool {
        matches!(*self.repr, Repr::Crashed { .. })
    }

    /// Whether carrying the result back failed (I/O or decoding).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert!(JoinError::transport("read", "broken pipe").is_transport());
    /// assert!(!JoinError::cancelled().is_transport());
    /// ```
    pub fn is_transport(&self) -> bool {
        matches!(*self.repr, Repr::Transport { .. })
    }

    /// The panic message, when the task panicked with a string.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert_eq!(JoinError::panicked_remote("boom".into(), None).panic_message(), Some("boom"));
    ///
    /// let payload = std::panic::catch_unwind(|| std::panic::panic_any(42)).unwrap_err();
    /// assert_eq!(JoinError::panicked(payload, None).panic_message(), None);
    /// assert_eq!(JoinError::cancelled().panic_message(), None);
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panicked { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// Where the task panicked, when known.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::{JoinError, PanicLocation};
    ///
    /// let at = PanicLocation::new("src/job.rs", 12, 9);
    /// let err = JoinError::panicked_remote("boom".into(), Some(at.clone()));
    /// assert_eq!(err.panic_location(), Some(&at));
    /// assert_eq!(JoinError::panicked_remote("boom".into(), None).panic_location(), None);
    /// ```
    pub fn panic_location(&self) -> Option<&PanicLocation> {
        match &*self.repr {
            Repr::Panicked { location, .. } => location.as_ref(),
            _ => None,
        }
    }

    /// The signal number that killed the task's process.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert_eq!(JoinError::crashed(11, "SIGSEGV").signal(), Some(11));
    /// assert_eq!(JoinError::timed_out().signal(), None);
    /// ```
    pub fn signal(&self) -> Option<i32> {
        match *self.repr {
            Repr::Crashed { signal, .. } => Some(signal),
            _ => None,
        }
    }

    /// The signal's name (`"SIGSEGV"`) that killed the task's process.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// assert_eq!(JoinError::crashed(11, "SIGSEGV").signal_name(), Some("SIGSEGV"));
    /// assert_eq!(JoinError::cancelled().signal_name(), None);
    /// ```
    pub fn signal_name(&self) -> Option<&'static str> {
        match *self.repr {
            Repr::Crashed { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The panic payload, to resume the panic with `std::panic::resume_unwind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::panic::{resume_unwind, AssertUnwindSafe};
    /// use unirun_core::TickExecutor;
    ///
    /// let ex = TickExecutor::new();
    /// let handle = ex.spawn(async { panic!("boom") });
    /// ex.run_until_stalled();
    /// let err = unirun_core::block_on(handle).unwrap_err();
    ///
    /// let payload = err.into_panic();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    ///
    /// // Re-raise the task's panic on this thread, with its original payload.
    /// let resumed = std::panic::catch_unwind(AssertUnwindSafe(|| resume_unwind(payload)));
    /// assert_eq!(unirun_core::panic_message(&*resumed.unwrap_err()), Some("boom"));
    /// ```
    ///
    /// # Panics
    ///
    /// If the error is not a panic; check [`is_panic`](Self::is_panic) or use
    /// [`try_into_panic`](Self::try_into_panic).
    #[track_caller]
    pub fn into_panic(self) -> PanicPayload {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(err) => {
                panic!("`JoinError::into_panic` called on an error that is not a panic: {err}")
            }
        }
    }

    /// The panic payload, or the error itself when it is not a panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::JoinError;
    ///
    /// let payload = JoinError::panicked_remote("boom".into(), None).try_into_panic().unwrap();
    /// assert_eq!(unirun_core::panic_message(&*payload), Some("boom"));
    ///
    /// let err = JoinError::timed_out().try_into_panic().unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    pub fn try_into_panic(self) -> Result<PanicPayload, JoinError> {
        match *self.repr {
            Repr::Panicked { payload, .. } => Ok(payload.0),
            repr => Err(Self {
                repr: Box::new(repr),
            }),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Cancelled => f.write_str("task was cancelled before it finished"),
            Repr::Panicked {
                message, location, ..
            } => {
                f.write_str("task panicked")?;
                if let Some(location) = location {
                    write!(f, " at {location}")?;
                }
                match message {
                    Some(message) => write!(f, ": {message}"),
                    None => f.write_str(" with a non-string payload"),
                }
            }
            Repr::TimedOut => f.write_str("task timed out and was stopped"),
            Repr::Crashed { signal, name } => {
                write!(
                    f,
                    "task's process crashed: killed by signal {signal} ({name})"
                )
            }
            Repr::Transport { what, detail } => {
                write!(
                    f,
                    "could not carry the task's result back ({what}): {detail}"
                )
            }
            Repr::NotStarted { detail } => write!(f, "task could not start: {detail}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panicked {
                message, location, ..
            } => f
                .debug_struct("JoinError::Panicked")
                .field("message", message)
                .field("location", location)
                .finish(),
            Repr::TimedOut => f.write_str("JoinError::TimedOut"),
            Repr::Crashed { signal, name } => f
                .debug_struct("JoinError::Crashed")
                .field("signal", signal)
                .field("name", name)
                .finish(),
            Repr::Transport { what, detail } => f
                .debug_struct("JoinError::Transport")
                .field("what", what)
                .field("detail", detail)
                .finish(),
            Repr::NotStarted { detail } => f
                .debug_struct("JoinError::NotStarted")
                .field("detail", detail)
                .finish(),
        }
    }
}

impl core::error::Error for JoinError {}
