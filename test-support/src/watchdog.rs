//! Turns a hang into a test failure.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

/// How long [`watchdog`] lets a body run before failing it as hung: far
/// beyond any test's normal time on a loaded 2-core machine, so only a
/// body that never ends reaches it.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` on a thread of its own and returns its value. A panic in
/// `body` is re-raised here (with its own message); a body still running
/// after [`LIMIT`] fails the test with a message naming `what`.
///
/// # Examples
///
/// ```
/// let sum = unirun_test_support::watchdog("adding", || 2 + 2);
/// assert_eq!(sum, 4);
/// ```
pub fn watchdog<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_for(what, LIMIT, body)
}

/// [`watchdog`] named after the running test: libtest runs each test on a
/// thread named after it, so a hang's message says which test hung.
///
/// # Examples
///
/// ```
/// let sum = unirun_test_support::watchdog_this_test(|| 2 + 2);
/// assert_eq!(sum, 4);
/// ```
pub fn watchdog_this_test<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let test = std::thread::current()
        .name()
        .unwrap_or("the test body")
        .to_string();
    watchdog(&test, body)
}

/// [`watchdog`] with a limit of its own, for the few bodies that
/// legitimately run longer (many forks, long shutdown sweeps).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let caught = std::panic::catch_unwind(|| {
///     unirun_test_support::watchdog_for("sleeping", Duration::ZERO, || {
///         std::thread::sleep(Duration::from_millis(50))
///     })
/// });
/// assert!(caught.is_err(), "a body past its limit fails");
/// ```
pub fn watchdog_for<T: Send + 'static>(
    what: &str,
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(panic::catch_unwind(AssertUnwindSafe(body)));
    });
    match finished.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        // The body's thread is left running: it hangs, and the test fails.
        Err(_) => panic!("{what}: still running after {limit:?}, so it hangs"),
    }
}
