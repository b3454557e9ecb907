//! [`JoinError`]: why a task produced no value.

use alloc::boxed::Box;
use alloc::string::String;
use core::any::Any;
use core::fmt;

/// The payload a panicking task left behind, as `std::panic::catch_unwind` returns it.
pub type PanicPayload = Box<dyn Any + Send + 'static>;

/// Where a task panicked: file, line and column, as the panic hook saw them.
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
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, starting at 1.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column, starting at 1.
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
    /// Boxed so `Result<T, JoinError>` (every task's output slot) is only a
    /// pointer bigger than `T`; errors are the rare path.
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
}

/// Makes the payload `Sync` by never lending it out: it is only ever moved.
struct SyncPayload(PanicPayload);

// SAFETY: `SyncPayload` exposes its value only by value (`into_panic`) or
// through `&mut`, never through `&`, so sharing `&SyncPayload` between threads
// cannot race on the payload.
unsafe impl Sync for SyncPayload {}

/// Reads the message out of a panic payload, for `&str` and `String` payloads.
pub fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Some(s)
    } else {
        payload.downcast_ref::<String>().map(String::as_str)
    }
}

impl JoinError {
    /// A task that was cancelled before it finished (aborted, or its executor shut down).
    pub fn cancelled() -> Self {
        Self {
            repr: Box::new(Repr::Cancelled),
        }
    }

    /// A task that panicked; `location` is where, when it is known.
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
    pub fn timed_out() -> Self {
        Self {
            repr: Box::new(Repr::TimedOut),
        }
    }

    /// A child process killed by `signal` (`name` as in `"SIGSEGV"`).
    pub fn crashed(signal: i32, name: &'static str) -> Self {
        Self {
            repr: Box::new(Repr::Crashed { signal, name }),
        }
    }

    /// A failure of the transport that carries a result back (`what` says which
    /// step, e.g. `"read"` or `"decode"`).
    pub fn transport(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            repr: Box::new(Repr::Transport {
                what,
                detail: detail.into(),
            }),
        }
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(*self.repr, Repr::Panicked { .. })
    }

    /// Whether the task ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(*self.repr, Repr::TimedOut)
    }

    /// Whether the task's process was killed by a signal.
    pub fn is_crash(&self) -> bool {
        matches!(*self.repr, Repr::Crashed { .. })
    }

    /// Whether carrying the result back failed (I/O or decoding).
    pub fn is_transport(&self) -> bool {
        matches!(*self.repr, Repr::Transport { .. })
    }

    /// The panic message, when the task panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Panicked { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// Where the task panicked, when known.
    pub fn panic_location(&self) -> Option<&PanicLocation> {
        match &*self.repr {
            Repr::Panicked { location, .. } => location.as_ref(),
            _ => None,
        }
    }

    /// The signal number that killed the task's process.
    pub fn signal(&self) -> Option<i32> {
        match *self.repr {
            Repr::Crashed { signal, .. } => Some(signal),
            _ => None,
        }
    }

    /// The signal's name (`"SIGSEGV"`) that killed the task's process.
    pub fn signal_name(&self) -> Option<&'static str> {
        match *self.repr {
            Repr::Crashed { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The panic payload, to resume the panic with `std::panic::resume_unwind`.
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
        }
    }
}

impl core::error::Error for JoinError {}
