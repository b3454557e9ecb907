//! Timers on every backend: [`sleep`], [`sleep_until`], [`timeout`] and
//! [`interval`] (feature `std`).
//!
//! They work in any task of any backend and in plain
//! [`block_on`](crate::block_on) outside any runtime. Which timer wakes a sleep is
//! chosen when it first has to wait (its first poll before the deadline),
//! from where that poll runs:
//!
//! - in a task (or `block_on`) of a [`Flavor::Tokio`](crate::Flavor::Tokio)
//!   scope whose runtime unirun started (feature `tokio-backend`): tokio's
//!   own timer (`tokio::time::sleep_until`) on that runtime. A runtime the
//!   scope borrows (the ambient one) may have been built without timers,
//!   which tokio cannot be asked about (it panics instead), so sleeps there
//!   use unirun's driver below, as they do inside any other tokio runtime;
//! - in a task of a [`Flavor::Smol`](crate::Flavor::Smol) scope (feature
//!   `smol-backend`): `async-io`'s timer (`smol::Timer`);
//! - everywhere else (the threads backend, the shared default, `block_on`):
//!   unirun's own timer driver, one thread named `unirun-timer`, started by
//!   the first sleep that has to wait and stopped by
//!   [`reset`](crate::reset). How it works, why it loses no wake-up and what
//!   it costs are described below.
//!
//! In a forked child (a `to_process` closure, a
//! process pool's worker) every sleep uses unirun's driver, whatever the
//! scope: the threads that drive the other timers were not copied by the
//! fork. The child's driver starts a thread of its own on the first sleep
//! that waits there, even when the parent's driver was running at the fork,
//! and never wakes a sleep of the parent's that it inherited.
//!
//! A sleep keeps the timer it chose for its life (until
//! [`Sleep::reset`]), even if it is later polled elsewhere.
//!
//! # Edges
//!
//! - A deadline that has passed when the sleep is first polled (a
//!   `sleep_until` of a past instant, `sleep(Duration::ZERO)`) is ready on
//!   that poll and never touches a timer.
//! - A `sleep(d)` (or `timeout(d, ..)`) with `d > 0` read the clock when it
//!   was made and saw its deadline ahead, so its first poll goes to a timer
//!   without reading the clock again, as tokio's does (a clock read costs
//!   tens of nanoseconds, a good part of a timeout that is cancelled). If
//!   the deadline went by before that first poll, the timer fires at once
//!   and the next poll completes.
//! - A duration too large to add to `Instant::now()` (such as
//!   `Duration::MAX`) means "never": the deadline is [`far_future`] (about
//!   30 years ahead), and `timeout(Duration::MAX, f)` returns `f`'s output.
//! - Dropping a waiting sleep removes its timer entry (`timeout`'s too).
//! - `unirun::reset` wakes every sleep waiting on unirun's driver; each one
//!   registers again on the driver's next thread, so it still completes at
//!   its deadline.
//!
//! # When no thread can start
//!
//! If the OS refuses the `unirun-timer` thread (`RLIMIT_NPROC`, a cgroup's
//! `pids.max`), a sleep on unirun's driver neither panics nor hangs: it
//! asks to be polled again at once, each poll reads the clock and tries the
//! thread again, and it completes at its deadline. That costs the polling
//! thread CPU until the deadline (or until a thread can be started, when
//! the driver takes over): a degraded mode that keeps timers correct, never
//! one to rely on. Where the shared default executor itself cannot start,
//! its tasks resolve to [`JoinError::not_started`](crate::JoinError::not_started)
//! instead (see [`get_executor`](crate::get_executor)). Tested by
//! `tests/no_thread.rs`.
//!
//! # unirun's timer driver
//!
//! ## Design
//!
//! All timers live under one mutex, in a min-heap of `(deadline, id)` keys
//! and a map from id to waker (deadlines as nanoseconds since the driver's
//! first use, so keys compare as two integers). An entry is live while its
//! waker is in the map. The id comes from a process-wide counter, so a key
//! never names two timers, not even across `unirun::reset`.
//!
//! - A sleep touches the driver only when it is polled before its deadline
//!   (lazy registration; for a `sleep(d)`'s first poll, as its creation
//!   saw it): a deadline already passed is ready at once, and a `timeout`
//!   whose future is ready on its first poll never registers.
//! - Registering stores (or refreshes) the sleep's waker and pushes its
//!   key: O(log n) at worst, one step for the usual deadline later than the
//!   others. Only when the new deadline is earlier than the one the driver
//!   thread is parked until does it unpark the thread; later deadlines cost
//!   no wake-up.
//! - Dropping (or completing) a registered sleep removes its waker, without
//!   waking the thread. Its key stays in the heap, stale: skipped when it
//!   reaches the front, and compacted away once stale keys outnumber live
//!   ones (amortized O(1) per sleep). The worst that follows is one early
//!   wake-up of the driver that finds nothing due and parks again.
//! - The thread loops: under the lock, it takes every live entry whose
//!   deadline has passed (and drops stale keys) until a live entry that is
//!   not due leads the heap, notes its deadline as the one it parks until
//!   (`planned`), releases the lock, wakes the taken wakers, and parks with
//!   `park_timeout` until `planned` (or with `park` when no timer is left).
//!
//! ## Why no wake-up is lost
//!
//! - Driver side: a registration that makes `planned` earlier sets
//!   `planned` and unparks the thread after releasing the lock. If the thread
//!   is between releasing the lock and parking, the unpark leaves a token and
//!   its park returns at once; it then looks at the heap again. A registration
//!   that does not make `planned` earlier is covered by the thread's own
//!   timed park, which returns no later than `planned`, before the new
//!   deadline.
//! - Sleep side: the waker is stored under the same lock the thread takes
//!   to fire entries. Either the thread fires the entry after the store (and
//!   wakes the stored waker) or the entry was fired or removed before it, in
//!   which case the poll inserts it again, and an entry whose deadline has
//!   passed is fired on the thread's next round (it is earlier than
//!   `planned`, so it unparks the thread).
//! - `unirun::reset` takes every entry out and wakes them all: each sleep is polled
//!   again, sees its entry gone and registers anew, which starts a new driver
//!   thread. So timers keep working across `reset`.
//!
//! ## What it costs
//!
//! One thread, started by the first sleep that has to wait, parked in the
//! kernel whenever no deadline is due (it never polls), stopped and joined
//! by [`unirun::reset`](crate::reset). Per waiting sleep: one heap key (a
//! deadline and an id), one map entry (the id and a waker) and two short
//! critical sections (register, remove) under an uncontended lock of the
//! driver made for this process's fork generation (a forked child makes
//! its own, so no fork guard is needed on this path). Accuracy is that of
//! `park_timeout`: the kernel's timer slack (about 50 µs on Linux), plus
//! the time to wake the task's executor.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use unirun::time::{sleep, timeout};
//!
//! unirun::block_on(async {
//!     sleep(Duration::from_millis(1)).await;
//!     let fast = timeout(Duration::from_secs(10), async { 7 }).await;
//!     assert_eq!(fast, Ok(7));
//!     let slow = timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
//!     assert!(slow.is_err());
//! });
//! ```

mod driver;

/// Views into unirun's timer driver for unirun's own tests (feature
/// `__test-hooks`, never part of `full`): not a supported API.
#[cfg(feature = "__test-hooks")]
#[doc(hidden)]
pub use self::driver::test_hooks;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::backend::BackendTimer;

/// The deadline that stands for "never": about 30 years after `now`.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let now = Instant::now();
/// assert!(unirun::time::far_future(now) > now + Duration::from_secs(86_400 * 365 * 29));
/// ```
pub fn far_future(now: Instant) -> Instant {
    const THIRTY_YEARS: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(THIRTY_YEARS).unwrap_or(now)
}

/// `now + duration`, or [`far_future`] when that does not fit; and
/// whether that deadline is ahead of the `now` it was computed from.
fn deadline_after(duration: Duration) -> (Instant, bool) {
    let now = Instant::now();
    let deadline = match now.checked_add(duration) {
        Some(deadline) if deadline <= far_future(now) => deadline,
        _ => far_future(now),
    };
    (deadline, deadline > now)
}

/// Waits until `duration` has passed.
///
/// `Duration::ZERO` completes on the first poll; a duration too large to
/// represent (such as `Duration::MAX`) waits "forever" (see the module docs).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// unirun::block_on(unirun::time::sleep(Duration::from_millis(1)));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    let (deadline, ahead) = deadline_after(duration);
    Sleep {
        deadline,
        timer: if ahead { Timer::Ahead } else { Timer::Idle },
    }
}

/// Waits until `deadline`; a deadline that has passed completes on the
/// first poll.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let deadline = Instant::now() + Duration::from_millis(1);
/// unirun::block_on(unirun::time::sleep_until(deadline));
/// assert!(Instant::now() >= deadline);
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline)
}

/// The future of [`sleep`] and [`sleep_until`]: completes at its deadline.
///
/// It is `Send`, `Sync` and `Unpin`; creating one costs a clock read at
/// most, and it reaches a timer only when polled before its deadline.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    timer: Timer,
}

/// The timer a sleep waits on, chosen at its first waiting poll.
enum Timer {
    /// Not waiting on any timer yet.
    Idle,
    /// Not waiting on any timer yet, and the clock read that made the
    /// deadline (`sleep`'s) showed it ahead: the first poll goes straight
    /// to a timer without reading the clock again.
    Ahead,
    /// unirun's own driver.
    Own(driver::Entry),
    /// The timer of the scope's runtime (tokio's, async-io's), and its name.
    Backend(BackendTimer),
}

impl Sleep {
    fn new(deadline: Instant) -> Self {
        Sleep {
            deadline,
            timer: Timer::Idle,
        }
    }

    /// The instant this sleep completes at.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// assert_eq!(unirun::time::sleep_until(deadline).deadline(), deadline);
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// assert!(unirun::time::sleep(Duration::ZERO).is_elapsed());
    /// assert!(!unirun::time::sleep(Duration::from_secs(60)).is_elapsed());
    /// ```
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline (earlier or later), even after the sleep
    /// completed; the next poll waits for the new one. Its timer entry, if
    /// any, is released.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let mut sleep = unirun::time::sleep(Duration::from_secs(3600));
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// sleep.reset(soon);
    /// assert_eq!(sleep.deadline(), soon);
    /// unirun::block_on(&mut sleep);
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.release();
        self.deadline = deadline;
    }

    /// Drops the timer this sleep waits on, if any.
    fn release(&mut self) {
        if let Timer::Own(entry) = &mut self.timer {
            entry.cancel();
        }
        self.timer = Timer::Idle;
    }

    /// The timer a sleep first waiting here should use (see the module
    /// docs).
    fn pick(deadline: Instant) -> Timer {
        if unirun_core::in_forked_child() {
            // The threads that drive tokio's and async-io's timers were not
            // copied by the fork; unirun's driver starts one of its own.
            return Timer::Own(driver::Entry::default());
        }
        crate::scope::with_current(|scope| scope.backend.timer(deadline))
            .flatten()
            .map_or_else(|| Timer::Own(driver::Entry::default()), Timer::Backend)
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // A clock read costs tens of nanoseconds: skipped when the one that
        // made the deadline showed it ahead (see `Timer::Ahead`).
        if !matches!(this.timer, Timer::Ahead) && Instant::now() >= this.deadline {
            this.release();
            return Poll::Ready(());
        }
        if let Timer::Idle | Timer::Ahead = this.timer {
            this.timer = Sleep::pick(this.deadline);
        }
        match &mut this.timer {
            Timer::Idle | Timer::Ahead => unreachable!("a timer was just picked"),
            Timer::Own(entry) => {
                if !entry.register(this.deadline, cx.waker()) {
                    // No driver thread (the OS refused it): this task asks
                    // to be polled again, and each poll checks the clock
                    // and retries the thread, so the sleep still ends at
                    // its deadline (see "When no thread can start").
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Timer::Backend(timer) => timer.sleep.as_mut().poll(cx),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Timer::Own(entry) = &mut self.timer {
            entry.cancel();
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let timer = match &self.timer {
            Timer::Idle | Timer::Ahead => "none",
            Timer::Own(_) => "unirun",
            Timer::Backend(timer) => timer.name,
        };
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("timer", &timer)
            .finish()
    }
}

/// The error of [`timeout`]: the deadline passed before the future
/// completed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let out = unirun::block_on(unirun::time::timeout(
///     Duration::ZERO,
///     std::future::pending::<()>(),
/// ));
/// let err = out.unwrap_err();
/// assert_eq!(err.to_string(), "deadline has elapsed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` for at most `duration`: `Ok` with its output if it
/// completes first, `Err(Elapsed)` otherwise (the future is then dropped).
///
/// The future is polled before the deadline is looked at, so a future that
/// is ready at once is `Ok` even with `Duration::ZERO`, and never touches a
/// timer. `Duration::MAX` means no limit.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unirun::time::timeout;
///
/// let out = unirun::block_on(timeout(Duration::from_secs(1), async { "done" }));
/// assert_eq!(out, Ok("done"));
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Like [`timeout`], with a deadline instead of a duration.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let deadline = Instant::now() + Duration::from_secs(1);
/// let out = unirun::block_on(unirun::time::timeout_at(deadline, async { 1 }));
/// assert_eq!(out, Ok(1));
/// ```
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`]: its future's output, or [`Elapsed`].
    ///
    /// `Send` when the future is, `Unpin` when the future is.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    /// The future inside.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = unirun::time::timeout(Duration::from_secs(1), std::future::ready(3));
    /// let _inner: &std::future::Ready<i32> = t.get_ref();
    /// ```
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// The future inside, taken out (its deadline is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let t = unirun::time::timeout(Duration::from_secs(1), std::future::ready(3));
    /// assert_eq!(unirun::block_on(t.into_inner()), 3);
    /// ```
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed(())))
    }
}

/// Ticks every `period`, the first tick at once; ticks missed while the
/// caller was busy come in a burst (each due one at once), keeping the
/// schedule `start + n * period`.
///
/// # Panics
///
/// If `period` is zero (it would tick in a busy loop): "unirun::time::interval:
/// the period must be non-zero, got 0ns".
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// unirun::block_on(async {
///     let mut every = unirun::time::interval(Duration::from_millis(1));
///     let first = every.tick().await; // at once
///     let second = every.tick().await;
///     assert_eq!(second - first, Duration::from_millis(1));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Like [`interval`], the first tick at `start`.
///
/// # Panics
///
/// If `period` is zero, as [`interval`].
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let mut every = unirun::time::interval_at(start, Duration::from_secs(1));
/// assert_eq!(unirun::block_on(every.tick()), start);
/// ```
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "unirun::time::interval: the period must be non-zero, got {period:?}"
    );
    Interval {
        period,
        sleep: sleep_until(start),
    }
}

/// Ticks at a fixed period: see [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    /// Waits for the next tick; its deadline is the next tick's instant.
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was due at.
    ///
    /// Cancel-safe: dropping the future before it completes loses no tick.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut every = unirun::time::interval(Duration::from_millis(1));
    /// let a = unirun::block_on(every.tick());
    /// let b = unirun::block_on(every.tick());
    /// assert!(b > a);
    /// ```
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick; see [`tick`](Self::tick).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut every = unirun::time::interval(Duration::from_secs(1));
    /// let first = unirun::block_on(std::future::poll_fn(|cx| every.poll_tick(cx)));
    /// assert!(first <= std::time::Instant::now());
    /// ```
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let due = self.sleep.deadline;
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let next = due
            .checked_add(self.period)
            .unwrap_or_else(|| far_future(due));
        self.sleep.reset(next);
        Poll::Ready(due)
    }

    /// The period between ticks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// assert_eq!(unirun::time::interval(Duration::from_secs(2)).period(), Duration::from_secs(2));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// Stops unirun's timer driver; called by [`reset`](crate::reset).
pub(crate) fn reset_driver() {
    driver::reset();
}
